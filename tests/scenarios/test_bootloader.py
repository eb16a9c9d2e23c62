"""F1 and the bootloader over USB: an update that does not take is diagnosed, and the fix works."""

from __future__ import annotations

import pytest

from rig.device.memory import BOOTLOADER_BASE, BOOTLOADER_SIZE
from rig.errors import Diagnosis, UpdateError
from rig.firmware.image import Image
from rig.protocol.commands import Cmd, FirmwareVersion
from rig.station.configs import ConfigCare
from rig.station.session import StationSession
from rig.station.strategy import Running, StationStrategy


def test_bootloader_upload_over_usb_then_update(
    station: StationSession,
    config_backup: ConfigCare,
    baseline_firmware: Image,
    firmware: Image,
    bootloader: Image,
    strategy: StationStrategy,
) -> None:
    strategy.transition(Running(baseline_firmware))
    with station.connect() as esc:
        erasable = esc.table.has(Cmd.ERASE_BOOTLOADER)
    if not erasable:  # before 3.59 only a blank sector can be written over USB: blank it over SWD first
        if not station.has_swd:
            pytest.skip(f"firmware {baseline_firmware.version} has no ERASE_BOOTLOADER and the station no SWD probe")
        station.swd_erase(start=BOOTLOADER_BASE, length=BOOTLOADER_SIZE)
    upload = station.upload_bootloader(bootloader)
    assert upload.stats.bytes_sent > 0
    with station.connect() as esc:  # the firmware keeps running while its bootloader is rewritten
        assert esc.info is not None and esc.info.version == baseline_firmware.version

    result = station.update(firmware)
    assert result.after.version == firmware.version
    station.update(baseline_firmware)


@pytest.mark.sim_only
@pytest.mark.destructive
def test_update_without_bootloader_is_diagnosed_and_fixed(
    station: StationSession,
    config_backup: ConfigCare,
    sim,  # noqa: ANN001 - rig.plugin.core.SimHandle
    baseline_firmware: Image,
    firmware: Image,
    bootloader: Image,
    strategy: StationStrategy,
) -> None:
    """F1: a board shipped without a bootloader; the old firmware comes back after the jump."""
    if baseline_firmware.version and baseline_firmware.version < FirmwareVersion(3, 49):
        pytest.skip("before 3.49 a jump to a missing bootloader hangs instead (F2): a recovery scenario")
    strategy.transition(Running(baseline_firmware))
    sim.fault("no_bootloader_returns")  # erases the bootloader sector, as on the boards users got
    try:
        with pytest.raises(UpdateError) as caught:
            station.update(firmware)
        assert caught.value.diagnosis == Diagnosis.BOOTLOADER_MISSING
        assert "bootloader" in str(caught.value)
    finally:
        sim.fault("no_bootloader_returns", False)

    # the fix the diagnosis offers: upload the bootloader over USB, then retry
    station.upload_bootloader(bootloader)
    result = station.update(firmware)
    assert result.after.version == firmware.version
    station.update(baseline_firmware)
