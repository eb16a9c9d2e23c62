"""F9: power-cycle through the relay, prove it by the port going and coming back, time the answer."""

from __future__ import annotations

import pytest

from rig.station.session import StationSession

pytestmark = pytest.mark.relay


def test_power_cycle_and_time_to_answer(power: StationSession, record_property) -> None:  # noqa: ANN001
    before = power.bench.locator.current()
    result = power.power_cycle()
    assert result.port_before == before
    assert result.port_after
    assert "re-enumerated" in result.proof or "stopped answering" in result.proof
    for phase in ("off_s", "gone_s", "settle_s", "on_s", "back_s", "answer_s"):
        assert getattr(result, phase) >= 0.0, phase
    record_property("time_to_answer_s", round(result.back_s + result.answer_s, 3))
    with power.connect() as esc:
        assert esc.info is not None


@pytest.mark.sim_only
def test_stuck_board_comes_back_only_after_a_power_cycle(power: StationSession, sim) -> None:  # noqa: ANN001
    """State stuck in RAM: the board stops answering until its power is cut."""
    sim.fault("stuck_after", commands=1)
    with power.connect():
        pass  # the one command it still answers
    assert not power.answers()
    power.power_cycle()
    assert power.answers()
