"""F4: a blank board brought up as a factory does: bootloader and firmware over SWD, then USB."""

from __future__ import annotations

import pytest

from rig.firmware.image import Image
from rig.station.configs import ConfigCare
from rig.station.session import StationSession

pytestmark = [pytest.mark.swd, pytest.mark.relay, pytest.mark.destructive]


def test_blank_board_over_swd_then_usb(
    swd: StationSession,
    config_backup: ConfigCare,
    baseline_firmware: Image,
    firmware: Image,
    bootloader: Image,
) -> None:
    swd.swd_erase(mass=True)  # blank, as a board from the assembly line
    result = swd.swd_program([bootloader, baseline_firmware], verify=True)
    assert result.programmed_bytes >= len(baseline_firmware.data)
    swd.power_cycle()  # boot what SWD wrote
    with swd.connect() as esc:
        assert esc.info is not None and esc.info.version == baseline_firmware.version

    update = swd.update(firmware)  # the bootloader SWD wrote does the copy
    assert update.after.version == firmware.version
    swd.update(baseline_firmware)
