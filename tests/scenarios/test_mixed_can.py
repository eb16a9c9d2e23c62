"""An all-CAN update is refused when the nodes on the bus are different hardware.

VESC Tool reads every node's FW_VERSION over CAN and requires one hardware name before using the *_ALL_CAN
commands; so does the rig (rig.firmware.update.guard_can_nodes), before anything is erased. Here one node
of a dual board was flashed for other hardware by a tool without a hardware check (VESC Tool's CLI has
none), so the bus is mixed.
"""

from __future__ import annotations

import pytest

from rig.errors import Diagnosis, UpdateError
from rig.firmware.image import Image
from rig.station.configs import ConfigCare
from rig.station.session import StationSession
from rig.station.strategy import Running, StationStrategy

pytestmark = [pytest.mark.can, pytest.mark.sim_only]
OTHER_HW = "75_300"


def _hw_names(station: StationSession) -> dict[int | None, str | None]:
    with station.connect() as esc:
        return {node: client.fw_version().hw_name for node, client in station.nodes(esc)}


def test_all_can_update_refused_for_mixed_hardware(
    station: StationSession,
    config_backup: ConfigCare,
    sim,  # noqa: ANN001 - rig.plugin.core.SimHandle
    baseline_firmware: Image,
    firmware: Image,
    strategy: StationStrategy,
) -> None:
    strategy.transition(Running(baseline_firmware, all_can=True))
    peer = max(station.spec.can_ids)
    sim.fault("foreign_hw_firmware", can_id=peer, hw=OTHER_HW)
    try:
        assert _hw_names(station)[peer] == OTHER_HW
        with pytest.raises(UpdateError) as caught:
            station.update(firmware, all_can=True)
        assert caught.value.diagnosis == Diagnosis.WRONG_HARDWARE
        assert OTHER_HW in str(caught.value)
        assert strategy.versions(all_can=True) == {baseline_firmware.version}  # refused before any erase
    finally:
        sim.fault("foreign_hw_firmware", False, can_id=peer)
    assert set(_hw_names(station).values()) == {station.spec.sim.node.hw if station.spec.sim else None}
