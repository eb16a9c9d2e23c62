"""The upgrade path of a board from the field: 3.x, through 5.03, to 6.06 and 7.00.

Boards shipped before 2022 carry the bootloader without heatshrink (bldc-bootloader before 1de52ea). Every
image up to 5.03 is uncompressed and it takes them; a 6.x image (524 280 bytes) must be compressed, which
that bootloader reads as a size too big: three red blinks, and the old firmware boots again. VESC Tool's
desktop re-uploads the bootloader before an update (3.59+), its mobile app does not. The station strategy,
given the 2022 bootloader, sees the update not take and refreshes the bootloader before trying again.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from generation_steps import sim_bootloader, sim_firmware

from rig.device.firmware import release
from rig.device.update_format import BootloaderGeneration, shipped_bootloader
from rig.firmware.image import Image
from rig.protocol.commands import FirmwareVersion
from rig.station.configs import ConfigCare
from rig.station.session import StationSession
from rig.station.strategy import Running, StationStrategy

pytestmark = [pytest.mark.sim_only, pytest.mark.destructive]
LAST_UNCOMPRESSED = "5.03"


def test_from_3_x_through_5_03_to_6_06_and_7_00(
    station: StationSession,
    config_backup: ConfigCare,
    baseline_firmware: Image,
    bootloader: Image,
    strategy: StationStrategy,
    tmp_path: Path,
) -> None:
    start = baseline_firmware.version
    assert start is not None and station.spec.sim is not None
    if start >= FirmwareVersion(6, 0):
        pytest.skip(f"firmware {start} is past the upgrade path")
    hw = station.spec.sim.node.hw
    strategy.transition(Running(baseline_firmware))
    if start < FirmwareVersion.parse(LAST_UNCOMPRESSED):
        assert station.update(sim_firmware(tmp_path, hw, LAST_UNCOMPRESSED)).after.version == FirmwareVersion(5, 3)

    refreshing = StationStrategy(station, bootloader=sim_bootloader(tmp_path, BootloaderGeneration.CURRENT.value))
    done = refreshing.transition(Running(sim_firmware(tmp_path, hw, "6.06")))
    old_bootloader = shipped_bootloader(release(start).date) == BootloaderGeneration.OLD
    expected = ["update over USB", "bootloader over USB", "update over USB"] if old_bootloader else ["update over USB"]
    assert done.actions == expected, done.describe()
    assert station.update(sim_firmware(tmp_path, hw, "7.00")).after.version == FirmwareVersion(7, 0)

    # back as it came: its own bootloader (7.00 can erase sector 11 first), then its own firmware
    station.upload_bootloader(bootloader)
    assert station.update(baseline_firmware).after.version == start
