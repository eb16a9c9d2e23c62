"""F2 and F4: boards that stop answering after an update are brought back by the station strategy,
escalating to SWD.

On the simulator the faults are injected; on hardware these scenarios need a board that is already in
such a state, so they are simulator-only here.
"""

from __future__ import annotations

import pytest

from rig.errors import Diagnosis, UpdateError
from rig.firmware.image import Image
from rig.station.configs import ConfigCare
from rig.station.session import StationSession
from rig.station.strategy import Running, StationStrategy, Status

pytestmark = [pytest.mark.sim_only, pytest.mark.destructive, pytest.mark.relay]


def test_board_hung_after_update_is_recovered(
    station: StationSession,
    config_backup: ConfigCare,
    sim,  # noqa: ANN001 - rig.plugin.core.SimHandle
    baseline_firmware: Image,
    firmware: Image,
    strategy: StationStrategy,
) -> None:
    """F2: blue LED, no connection after the update; after a power cycle the old firmware asks again."""
    strategy.transition(Running(baseline_firmware))
    sim.fault("no_bootloader_hangs")  # the bootloader sector is gone
    with pytest.raises(UpdateError) as caught:
        station.update(firmware)
    assert caught.value.diagnosis == Diagnosis.UNRESPONSIVE_AFTER_UPDATE
    sim.fault("no_bootloader_hangs", False)  # the behaviour stops; the erased bootloader stays erased

    result = strategy.transition(Running(firmware))
    assert result.initial.status == Status.SILENT
    assert result.final.status == Status.RUNNING and result.final.version == firmware.version
    assert result.actions[:3] == ["power cycle", "bootloader over USB", "update over USB"]
    station.update(baseline_firmware)


@pytest.mark.swd
def test_power_cut_during_bootloader_copy_is_recovered_over_swd(
    station: StationSession,
    config_backup: ConfigCare,
    sim,  # noqa: ANN001 - rig.plugin.core.SimHandle
    baseline_firmware: Image,
    firmware: Image,
    strategy: StationStrategy,
) -> None:
    """Power lost half way through the bootloader's copy: the app is half erased, only SWD helps."""
    strategy.transition(Running(baseline_firmware))
    sim.fault("reset_during_copy", at=0.5)
    with pytest.raises(UpdateError) as caught:
        station.update(firmware)
    assert caught.value.diagnosis == Diagnosis.UNRESPONSIVE_AFTER_UPDATE

    result = strategy.transition(Running(baseline_firmware))
    assert result.initial.status == Status.SILENT
    assert result.final.status == Status.RUNNING and result.final.version == baseline_firmware.version
    assert "bootloader + firmware over SWD" in result.actions
