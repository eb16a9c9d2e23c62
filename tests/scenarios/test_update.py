"""Firmware update: baseline -> candidate -> baseline, as a release regression runs it."""

from __future__ import annotations

from scenario_steps import assert_phases, ensure_running

from rig.firmware.config import ConfigBackup
from rig.firmware.image import Image
from rig.station.bench import StationRig


def test_update_to_candidate_and_roll_back(
    station: StationRig,
    config_backup: ConfigBackup,
    baseline_firmware: Image,
    firmware: Image,
    allow_wrong_hw: bool,
) -> None:
    ensure_running(station, baseline_firmware, allow_wrong_hw=allow_wrong_hw)

    up = station.update(firmware, allow_wrong_hw=allow_wrong_hw)
    assert up.before.version == baseline_firmware.version
    assert up.after.version == firmware.version
    assert up.after.uid == up.before.uid, "a different board answered after the update"
    assert_phases(up)

    down = station.update(baseline_firmware, allow_wrong_hw=allow_wrong_hw)
    assert down.after.version == baseline_firmware.version
    assert_phases(down)
