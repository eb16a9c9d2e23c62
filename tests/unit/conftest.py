"""Fixtures shared by the simulator tests; byte-level helpers for a bare SimEsc live in simhost.py."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rig.config.source import ENV
from rig.sim.serve import SimRack
from rig.station.bench import Bounds, StationRig
from rig.station.rack import load_rack

DEFAULT_SIM_RACK = Path(__file__).resolve().parents[2] / "fixtures" / "racks" / "sim.toml"


@pytest.fixture(scope="session", autouse=True)
def _no_user_schemas() -> Iterator[None]:
    """Unit tests choose their config schemas (tests/data, fixtures/schemas): a VESC Tool tree the user
    points $VESC_TOOL_SRC at must not change what the simulator holds under them."""
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv(ENV, raising=False)
        yield


@pytest.fixture
def sim_rack(tmp_path: Path) -> Iterator[SimRack]:
    """The default simulated rack (fixtures/racks/sim.toml), served fresh for one test at speed 0."""
    with SimRack(load_rack(DEFAULT_SIM_RACK), tmp_path / "run") as served:
        yield served


@pytest.fixture
def station_rig(sim_rack: SimRack) -> Iterator[Callable[..., StationRig]]:
    """Make host-side StationRigs for stations of `sim_rack` (closed at the end of the test)."""
    made: list[StationRig] = []

    def make(name: str, bounds: Bounds = Bounds(settle_s=0.1), **options: object) -> StationRig:
        resolved = sim_rack.resolved
        made.append(StationRig(resolved, resolved.station(name), bounds=bounds, **options))  # type: ignore[arg-type]
        return made[-1]

    yield make
    for rig in made:
        rig.close()
