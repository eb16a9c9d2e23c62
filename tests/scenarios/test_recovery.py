"""F2 and F4: boards that stop answering after an update are brought back, escalating to SWD.

On the simulator the faults are injected; on hardware these scenarios need a board that is already in
such a state, so they are simulator-only here.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from scenario_steps import ensure_running

from rig.firmware.config import ConfigBackup
from rig.errors import Diagnosis, UpdateError
from rig.firmware.image import Image
from rig.station.recovery import BoardState, recover
from rig.station.bench import StationRig

pytestmark = [pytest.mark.sim_only, pytest.mark.destructive, pytest.mark.relay]


def test_board_hung_after_update_is_recovered(
    station: StationRig,
    config_backup: ConfigBackup,
    sim,  # noqa: ANN001 - rig.plugin.core.SimHandle
    baseline_firmware: Image,
    firmware: Image,
    bootloader: Image,
    allow_wrong_hw: bool,
    tmp_path: Path,
) -> None:
    """F2: blue LED, no connection after the update; after a power cycle the old firmware asks again."""
    ensure_running(station, baseline_firmware, allow_wrong_hw=allow_wrong_hw)
    sim.fault("no_bootloader_hangs")  # the bootloader sector is gone
    with pytest.raises(UpdateError) as caught:
        station.update(firmware, allow_wrong_hw=allow_wrong_hw)
    assert caught.value.diagnosis == Diagnosis.UNRESPONSIVE_AFTER_UPDATE
    sim.fault("no_bootloader_hangs", False)  # the behaviour stops; the erased bootloader stays erased

    result = recover(station, firmware=firmware, bootloader=bootloader, work_dir=tmp_path)
    assert result.initial == BoardState.SILENT
    assert result.final == BoardState.EXPECTED and result.version == firmware.version
    assert [s.action for s in result.steps][:3] == ["power cycle", "bootloader over USB", "update over USB"]
    station.update(baseline_firmware, allow_wrong_hw=allow_wrong_hw)


@pytest.mark.swd
def test_power_cut_during_bootloader_copy_is_recovered_over_swd(
    station: StationRig,
    config_backup: ConfigBackup,
    sim,  # noqa: ANN001 - rig.plugin.core.SimHandle
    baseline_firmware: Image,
    firmware: Image,
    bootloader: Image,
    allow_wrong_hw: bool,
    tmp_path: Path,
) -> None:
    """Power lost half way through the bootloader's copy: the app is half erased, only SWD helps."""
    ensure_running(station, baseline_firmware, allow_wrong_hw=allow_wrong_hw)
    sim.fault("reset_during_copy", at=0.5)
    with pytest.raises(UpdateError) as caught:
        station.update(firmware, allow_wrong_hw=allow_wrong_hw)
    assert caught.value.diagnosis == Diagnosis.UNRESPONSIVE_AFTER_UPDATE

    result = recover(station, firmware=baseline_firmware, bootloader=bootloader, work_dir=tmp_path)
    assert result.initial == BoardState.SILENT
    assert result.final == BoardState.EXPECTED
    assert "bootloader + firmware over SWD" in [s.action for s in result.steps]
