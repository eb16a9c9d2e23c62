"""Fixtures of the flash-throughput benchmarks: their own simulated rack, in modelled real time.

The benchmarks serve the stations they need from the session's simulated rack file themselves, at
speed 1 (modelled real time) when benchmarks run and at speed 0 under ``--benchmark-disable`` (every
benchmark then runs once, as a quick correctness check). They do not use the plugin's rack, which
runs at ``--sim-speed`` for the scenarios.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from rig.device.firmware import profile_for
from rig.firmware.image import Image, load_bootloader, load_firmware
from rig.protocol.commands import FirmwareVersion
from rig.sim.image import make_bootloader_image, make_firmware_image
from rig.sim.serve import SimRack
from rig.station.bench import StationRig
from rig.station.rack import Rack, Station, load_rack

BENCH_FIRMWARES = ("3.40", "5.02", "6.02")  # the stations served: one per image generation benchmarked


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--bench-full-image",
        action="store_true",
        help="also benchmark the pipelined full-size 6.02 update (~30 s more at speed 1)",
    )


@dataclass
class BenchRack:
    """A simulated rack served for the benchmarks, and images made for its boards."""

    sim: SimRack
    speed: float
    image_dir: Path
    measured: dict[tuple[object, ...], object] = field(default_factory=dict)  # results shared between tests

    def station(self, fw: str) -> StationRig:
        rack = self.sim.resolved
        for spec in rack.stations:
            if spec.sim is not None and spec.sim.node.fw == fw:
                return StationRig(rack, spec)
        raise LookupError(f"no benchmark station runs firmware {fw}")

    def device_seconds(self, rig: StationRig) -> float:
        """Modelled seconds the station's simulated ESC has spent so far (its DeviceClock)."""
        return self.sim.device(rig.name).clock.modelled_s

    def firmware(self, hw: str, version: str, size: int | None = None) -> Image:
        """A simulated firmware image, written to disk and loaded as a user's file would be."""
        path = self.image_dir / f"fw-{hw}-{version}-{size or 'full'}.bin"
        if not path.exists():
            path.write_bytes(make_firmware_image(hw, version, size))
        return load_firmware(path, hw_names=(hw,), version=FirmwareVersion.parse(version))

    def bootloader(self) -> Image:
        path = self.image_dir / "bootloader.bin"
        if not path.exists():
            path.write_bytes(make_bootloader_image())
        return load_bootloader(path)


def bench_speed(config: pytest.Config) -> float:
    """1 (modelled real time) when benchmarks are measured, 0 (instant) under --benchmark-disable."""
    return 0.0 if config.getoption("benchmark_disable") else 1.0


def _bench_stations(rack: Rack) -> tuple[Station, ...]:
    """The first simulated station of each benchmarked firmware, without relays, supplies or probes."""
    chosen: dict[str, Station] = {}
    for spec in rack.stations:
        fw = spec.sim.node.fw if spec.sim is not None and not spec.sim.peers else None
        if fw in BENCH_FIRMWARES and fw not in chosen:
            chosen[fw] = replace(spec, relay=None, supply=None, swd=None)
    missing = set(BENCH_FIRMWARES) - set(chosen)
    if missing:
        pytest.skip(f"rack {rack.name} has no single simulated station with firmware {', '.join(sorted(missing))}")
    for fw in chosen:
        profile_for(fw)  # a typo in the table fails here, not in the middle of a round
    return tuple(chosen.values())


@pytest.fixture(scope="module")
def bench(request: pytest.FixtureRequest) -> Iterator[BenchRack]:
    """The benchmark rack, served for this module (hardware racks: not benchmarked yet)."""
    rack_file = request.config.getoption("rack")
    if not rack_file:
        pytest.skip("no --rack given")
    spec = load_rack(rack_file)
    if not spec.simulated or spec.served:
        pytest.skip("the flash benchmarks serve their own simulated rack; hardware racks are not benchmarked yet")
    spec = replace(spec, stations=_bench_stations(spec), relays=(), supplies=())
    run_dir = Path(tempfile.mkdtemp(prefix="vesc-bench-"))  # short: it holds a Unix socket
    speed = bench_speed(request.config)
    try:
        with SimRack(spec, run_dir, speed=speed) as sim:
            images = run_dir / "bench-images"
            images.mkdir()
            yield BenchRack(sim, speed, images)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
