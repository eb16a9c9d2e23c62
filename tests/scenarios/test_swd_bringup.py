"""F4: a blank board brought up as a factory does: bootloader and firmware over SWD, then USB."""

from __future__ import annotations

import pytest

from rig.firmware.config import ConfigBackup
from rig.firmware.image import Image, write_merged_hex
from rig.station.bench import StationRig

pytestmark = [pytest.mark.swd, pytest.mark.relay, pytest.mark.destructive]


def test_blank_board_over_swd_then_usb(
    swd: StationRig,
    config_backup: ConfigBackup,
    baseline_firmware: Image,
    firmware: Image,
    bootloader: Image,
    allow_wrong_hw: bool,
    tmp_path,  # noqa: ANN001
) -> None:
    merged = write_merged_hex(tmp_path / "bootloader+firmware.hex", bootloader, baseline_firmware)
    with swd.swd() as session:
        session.mass_erase()  # blank, as a board from the assembly line
        result = session.program(str(merged), chip_erase=False, verify=True)
    assert result.programmed_bytes >= len(baseline_firmware.data)
    swd.power_cycle()  # boot what SWD wrote
    with swd.connect() as esc:
        assert esc.info is not None and esc.info.version == baseline_firmware.version

    update = swd.update(firmware, allow_wrong_hw=allow_wrong_hw)  # the bootloader SWD wrote does the copy
    assert update.after.version == firmware.version
    swd.update(baseline_firmware, allow_wrong_hw=allow_wrong_hw)
