"""Scenario-suite options: how wide the forced-disconnect sweep is (CI runs a representative set)."""

from __future__ import annotations

import pytest
from disconnect_plan import cut_plan, update_phases


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--disconnect-sweep",
        choices=("ci", "nightly"),
        default="ci",
        help="ci: the named cut points; nightly: every 7th byte of each frame, every update phase, both delays",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    sweep = metafunc.config.getoption("disconnect_sweep")
    if "frame_cut" in metafunc.fixturenames:
        plan = cut_plan(sweep)
        ids = [f"{cut}-reconnect+{delay:g}s" for cut, delay in plan]
        metafunc.parametrize("frame_cut,reconnect_after_s", plan, ids=ids)
    if "update_phase" in metafunc.fixturenames:
        metafunc.parametrize("update_phase", update_phases(sweep))
