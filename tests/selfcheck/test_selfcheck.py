"""The suite proves it catches each field failure: with the fault the matching scenario fails with the
expected diagnosis; without it, the same scenario passes."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from cases import CASES, SelfCheck

from rig.station.rack import Rack, SimNode, load_rack

pytest_plugins = ["pytester"]
ROOT = Path(__file__).resolve().parents[2]
SIM_RACK = ROOT / "fixtures" / "racks" / "sim.toml"


def _with_fault(rack: Rack, case: SelfCheck) -> Rack:
    def faulted(node: SimNode) -> SimNode:
        return replace(node, faults=(*node.faults, case.fault)) if node.can_id == (case.can_id or 0) else node

    station = rack.station(case.station)
    assert station.sim is not None
    sim = replace(station.sim, node=faulted(station.sim.node), peers=tuple(map(faulted, station.sim.peers)))
    stations = tuple(replace(s, sim=sim) if s.name == case.station else s for s in rack.stations)
    return replace(rack, stations=stations)


def _run(pytester: pytest.Pytester, rack_file: Path, case: SelfCheck) -> list[pytest.TestReport]:
    """Run the case's scenario on its station; the reports of every phase of every test."""
    result = pytester.inline_run(
        str(ROOT / case.scenario),
        "--rack",
        str(rack_file),
        "--station",
        case.station,
        "--rig-dir",
        str(pytester.path / "reports"),
        "-p",
        "no:cacheprovider",
        "-p",
        "no:randomly",
    )
    return list(result.getreports("pytest_runtest_logreport"))


def _diagnoses(reports: list[pytest.TestReport]) -> set[str]:
    return {value for r in reports if r.failed for key, value in r.user_properties if key == "diagnosis"}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_fault_is_caught_with_its_diagnosis(pytester: pytest.Pytester, case: SelfCheck) -> None:
    rack_file = pytester.path / "faulted.toml"
    rack_file.write_text(_with_fault(load_rack(SIM_RACK), case).to_toml())
    reports = _run(pytester, rack_file, case)
    assert any(r.failed for r in reports), f"{case.scenario} passed on {case.station} despite {case.fault}"
    if case.diagnosis is None:  # the scenario's own assertion catches it
        assert any(r.failed and r.when == "call" for r in reports)
        return
    assert case.diagnosis.value in _diagnoses(reports), (
        f"expected diagnosis {case.diagnosis.value!r}, got {_diagnoses(reports) or 'none'}"
    )


CLEAN = list({(c.scenario, c.station): c for c in CASES}.values())  # one clean run per scenario and station


@pytest.mark.parametrize("case", CLEAN, ids=lambda c: f"{c.station}-{c.scenario.split('::')[-1]}")
def test_scenario_passes_without_the_fault(pytester: pytest.Pytester, case: SelfCheck) -> None:
    reports = _run(pytester, SIM_RACK, case)
    failed = [r.nodeid for r in reports if r.failed]
    assert not failed, f"fails without any fault: {failed}"
    assert any(r.passed and r.when == "call" for r in reports), "nothing ran"
