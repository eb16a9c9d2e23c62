"""F3: every node of a dual board (or a CAN bus behind one port) must end on the same firmware."""

from __future__ import annotations

import pytest
from scenario_steps import assert_phases

from rig.errors import Diagnosis, UpdateError
from rig.firmware.image import Image
from rig.firmware.update import check_nodes_agree
from rig.station.configs import ConfigCare
from rig.station.session import StationSession
from rig.station.strategy import Running, StationStrategy

pytestmark = pytest.mark.can


def test_all_can_nodes_take_the_update_and_agree(
    station: StationSession,
    config_backup: ConfigCare,
    baseline_firmware: Image,
    firmware: Image,
    strategy: StationStrategy,
) -> None:
    strategy.transition(Running(baseline_firmware, all_can=True))

    result = station.update(firmware, all_can=True)
    assert_phases(result)
    assert result.after.version == firmware.version
    assert len(result.nodes) == len(station.spec.can_ids) - 1, f"peers checked: {sorted(result.nodes)}"
    assert set(result.nodes) < set(station.spec.can_ids)
    assert {info.version for info in result.nodes.values()} == {firmware.version}

    station.update(baseline_firmware, all_can=True)


@pytest.mark.sim_only
def test_a_peer_that_missed_the_update_is_caught(
    station: StationSession,
    config_backup: ConfigCare,
    sim,  # noqa: ANN001 - rig.plugin.core.SimHandle
    baseline_firmware: Image,
    firmware: Image,
    strategy: StationStrategy,
) -> None:
    """The field failure itself: one side of a dual board stays on the old firmware."""
    strategy.transition(Running(baseline_firmware, all_can=True))
    peer = max(station.spec.can_ids)
    sim.fault("can_peer_update_fails", can_id=peer)
    try:
        with pytest.raises(UpdateError) as caught:
            station.update(firmware, all_can=True)
        assert caught.value.diagnosis == Diagnosis.CAN_VERSION_MISMATCH
    finally:
        sim.fault("can_peer_update_fails", False, can_id=peer)

    # the fix the rig offers: update all nodes again until they agree
    result = station.update(firmware, all_can=True)
    with station.connect() as esc:
        assert result.after.version == firmware.version
        check_nodes_agree(esc, tuple(result.nodes), result.after)
    station.update(baseline_firmware, all_can=True)
