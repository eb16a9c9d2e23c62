"""A rack of 32 simulated stations served from one process: start-up time and idle CPU per station.

Every station is a single ESC on its pty (firmware cycling through 3.40, 5.03, 6.02, 6.06, 7.00), no relays or
probes. Measured: wall time of SimRack.start() (boards booted, ports up), and the process CPU time per
second of wall time while every board idles, divided by the stations, both with no host on the ports (the
loop waits on inotify for an open) and with a host holding every port open (it waits on the ptys). The
target is <= 0.5 % of a core per station (the polling loop it replaced: about 0.9 %). Reported in the
benchmark's extra_info and printed (-s); nothing is asserted about speed. Under --benchmark-disable
(``make test``) each idle window is 0.5 s, with --benchmark-only 5 s.
"""

from __future__ import annotations

import os
import tempfile
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rig.sim.serve import SimRack
from rig.station.rack import parse_rack
from rig.transport.link import Link

pytestmark = pytest.mark.xdist_group("benchmarks")
STATIONS = 32
VERSIONS = ("3.40", "5.03", "6.02", "6.06", "7.00")


def _rack_toml(count: int) -> str:
    lines = ['name = "idle32"', "simulated = true", 'port_dir = "by-id"']
    for n in range(count):
        lines += ["[[station]]", f'name = "esc-{n:02d}"', "[station.sim]", 'hw = "60"', f'fw = "{VERSIONS[n % 5]}"']
    return "\n".join(lines) + "\n"


def _cpu_per_station(seconds: float) -> float:
    """Process CPU seconds per wall second per station, over an idle window of `seconds`."""
    cpu, wall = time.process_time(), time.monotonic()
    time.sleep(seconds)
    return (time.process_time() - cpu) / (time.monotonic() - wall) / STATIONS


@pytest.fixture
def window_s(request: pytest.FixtureRequest) -> float:
    return 0.5 if request.config.getoption("benchmark_disable") else 5.0


@pytest.fixture
def run_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="vesc-idle-") as path:  # short: it holds a Unix socket
        yield Path(path)


def test_idle_cpu_and_start_up_of_32_stations(benchmark: Any, run_dir: Path, window_s: float) -> None:
    rack = parse_rack(tomllib.loads(_rack_toml(STATIONS)), run_dir / "idle32.toml")
    sim = SimRack(rack, run_dir / "run")
    start = time.monotonic()
    resolved = sim.start()
    start_s = time.monotonic() - start
    try:
        ports = [s.port for s in resolved.stations]
        assert all(p and os.path.exists(p) for p in ports), "not every station's port is up"
        alone = _cpu_per_station(window_s)
        links = [Link.open(p) for p in ports if p]
        try:
            time.sleep(0.2)  # every loop has seen its host and waits on the pty now
            held = _cpu_per_station(window_s)
            turns = sum(served.loop.turns for served in sim._stations.values())
        finally:
            for link in links:
                link.close()
        benchmark.pedantic(lambda: None, rounds=1, iterations=1)
        benchmark.extra_info.update(
            {
                "stations": STATIONS,
                "start_s": round(start_s, 3),
                "idle_cpu_per_station_no_host": round(alone, 5),
                "idle_cpu_per_station_host_connected": round(held, 5),
                "loop_wakeups": turns,
            }
        )
        print(
            f"\n{STATIONS} stations: start {start_s:.2f} s; idle CPU per station {alone * 100:.3f} % of a core "
            f"(no host), {held * 100:.3f} % (host holding the port); {turns} loop wake-ups"
        )
    finally:
        sim.stop()
