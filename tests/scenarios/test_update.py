"""Firmware update: baseline -> candidate -> baseline, as a release regression runs it."""

from __future__ import annotations

from scenario_steps import assert_phases

from rig.firmware.image import Image
from rig.station.configs import ConfigCare
from rig.station.session import StationSession
from rig.station.strategy import Running, StationStrategy


def test_update_to_candidate_and_roll_back(
    station: StationSession,
    config_backup: ConfigCare,
    baseline_firmware: Image,
    firmware: Image,
    strategy: StationStrategy,
) -> None:
    strategy.transition(Running(baseline_firmware))

    up = station.update(firmware)
    assert up.before.version == baseline_firmware.version
    assert up.after.version == firmware.version
    assert up.after.uid == up.before.uid, "a different board answered after the update"
    assert_phases(up)

    down = station.update(baseline_firmware)
    assert down.after.version == baseline_firmware.version
    assert_phases(down)
