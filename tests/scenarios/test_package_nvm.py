"""A package whose native library uses its NVM, on firmware where that NVM is the bootloader sector.

From 6.06 (3bcc9039) read/write/wipe_nvm work on sector 11 from 0x080E0000, with no offset past the
bootloader: wipe_nvm erases the bootloader, write_nvm ANDs bits into it. Nothing in the firmware or VESC
Tool checks the bootloader, and the jump to it is blind: an erased sector resets the board on its old
firmware, a damaged one erases the app and crashes (bricked until SWD). So before the next update the
rig reads sector 11 over SWD, finds it is not the station's bootloader, writes it again
(ERASE_BOOTLOADER, which takes the package NVM with it) and only then updates.
"""

from __future__ import annotations

import pytest
from generation_steps import BootloaderDamaged, check_bootloader, install_package, read_code

from rig.device.firmware import profile_for
from rig.device.memory import BOOTLOADER_SECTOR
from rig.firmware.image import Image
from rig.station.configs import ConfigCare
from rig.station.session import StationSession
from rig.station.strategy import Running, StationStrategy

pytestmark = [pytest.mark.sim_only, pytest.mark.swd, pytest.mark.destructive]


@pytest.mark.parametrize("package_fault", ["package_wipes_nvm", "package_writes_nvm"])
def test_a_package_that_touches_its_nvm_is_caught_before_the_next_update(
    station: StationSession,
    config_backup: ConfigCare,
    sim,  # noqa: ANN001 - rig.plugin.core.SimHandle
    baseline_firmware: Image,
    firmware: Image,
    bootloader: Image,
    strategy: StationStrategy,
    package_fault: str,
) -> None:
    if baseline_firmware.version is None or profile_for(baseline_firmware.version).package_nvm_sector != (
        BOOTLOADER_SECTOR
    ):
        pytest.skip(f"firmware {baseline_firmware.version} keeps package NVM out of the bootloader sector (6.06+)")
    strategy.transition(Running(baseline_firmware))
    check_bootloader(station, bootloader)  # intact before
    sim.fault(package_fault)
    try:
        with station.connect() as esc:
            install_package(esc)  # it starts, and its native library touches the NVM
            assert read_code(esc) is not None
    finally:
        sim.fault(package_fault, False)

    with pytest.raises(BootloaderDamaged):
        check_bootloader(station, bootloader)  # noticed before anything is erased
    station.upload_bootloader(bootloader)
    check_bootloader(station, bootloader)

    result = station.update(firmware)
    assert result.after.version == firmware.version
    station.update(baseline_firmware)
