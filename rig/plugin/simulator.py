"""The simulator's side of the pytest plugin: serving a simulated rack in-process, and fault control.

This is the one place the plugin reaches into rig.sim. A simulated rack file that no simulator serves
yet is served here for the session (under pytest-xdist, one simulator per worker) in a temporary run
directory that is removed afterwards; a rack file written by ``rig sim serve`` (``control`` set) is
used as it is, like hardware, and its faults are set through the simulator's control socket.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from rig.station.rack import Rack
from rig.station.session import StationSession

ServedRack = tuple[Rack, float | None, Path | None]  # the resolved rack, its simulated speed, the run directory


@pytest.fixture(scope="session")
def served_rack(request: pytest.FixtureRequest) -> Iterator[ServedRack]:
    """The rack as the host sees it: hardware as it is, a served simulated rack as its file says, an
    unserved simulated rack served here for the session."""
    from rig.plugin.core import rack_spec

    spec = rack_spec(request.config)
    assert spec is not None
    if not spec.simulated:
        yield spec, None, None
        return
    if spec.served:
        yield spec, spec.sim_speed, None
        return
    from rig.sim.serve import SimRack

    run_dir = Path(tempfile.mkdtemp(prefix="vesc-rig-"))  # short: it holds a Unix socket
    try:
        with SimRack(spec, run_dir, speed=request.config.getoption("sim_speed")) as sim:
            request.config.stash[_SIM] = sim
            yield sim.resolved, sim.speed, run_dir
    finally:
        if _SIM in request.config.stash:
            del request.config.stash[_SIM]
        shutil.rmtree(run_dir, ignore_errors=True)


_SIM = pytest.StashKey[Any]()


@dataclass
class SimHandle:
    """Fault and power control of one simulated station (in-process, or through the control socket)."""

    station: str
    control: Any

    def fault(self, name: str, on: bool = True, *, can_id: int | None = None, **params: Any) -> None:
        self.control.fault(self.station, name, on, can_id=can_id, **params)

    def power(self, on: bool) -> None:
        self.control.power(self.station, on)


@pytest.fixture
def sim(request: pytest.FixtureRequest, rack: Rack, station: StationSession) -> SimHandle:
    """Fault control of the station's simulated ESC; skipped on hardware."""
    in_process = request.config.stash.get(_SIM, None)
    if in_process is not None:
        return SimHandle(station.name, in_process)
    if rack.simulated and rack.control:
        from rig.sim.serve import SimControl

        return SimHandle(station.name, SimControl(rack.control))
    pytest.skip("needs the simulator (fault injection)")
