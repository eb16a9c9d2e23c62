"""A rack whose stations are labgrid places: their addresses and their leases come from a real coordinator.

The simulated rack is served here and re-exported over 127.0.0.1 exactly as tests/unit/test_network_rack.py
does (ser2net for the ESC ports and the LCUS relay board, Modbus TCP for the Modbus relay and the supply,
pyocd's probe server for SWD). A labgrid-exporter publishes those addresses as resources, one group per
station (NetworkSerialPort, ModbusTCPCoil or NetworkPowerPort, NetworkService), and the rack file names
only places: ``lease_backend = "labgrid"``, ``place = "esc-602"``.

The rebooting scenarios (update, power cycle) run through a place in a pytest child process; with
RIG_LABGRID_COMPARE=1 the same scenarios also run on the rack of network addresses (SQLite leases) and
directly on the simulated rack, and the times are printed (-s).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import serial
import test_network_rack as network
from labgrid_lab import Coordinator, Exporter, exporter_yaml, make_place, station_exports

from rig.sim.image import make_firmware_image
from rig.station.lease_choice import leases_for
from rig.station.lease_heartbeat import run_identity
from rig.station.lease_labgrid import labgrid_leases
from rig.station.lease_labgrid_client import CoordinatorConnection
from rig.station.leases import LeaseLost
from rig.station.places import resolve_places
from rig.station.rack import Rack, load_rack
from rig.station.session import StationSession
from rig.station.state import StateDir

pytestmark = pytest.mark.xdist_group("labgrid-rack")
ser2net_bin = network.ser2net_bin  # the fixtures that serve the simulated rack behind the network exporters
exported = network.exported
Exported = network.Exported
QUICK = network.QUICK

REPO = Path(__file__).resolve().parents[2]
SUITE_BOUND_S = 600.0
COMPARE = os.environ.get("RIG_LABGRID_COMPARE") == "1"
STATION = "dual-602"  # raw TCP, Modbus coil relay, supply, probe server (test_network_rack runs RFC 2217 too)


@dataclass
class PlaceLab:
    exported: Exported
    coordinator: Coordinator
    exporter: Exporter
    admin: CoordinatorConnection
    rack_file: Path

    def comment(self, place: str) -> str:
        return str(self.admin.run(self.admin.place(place)).comment)


def place_rack(network: Rack, coordinator: str) -> Rack:
    """The network rack with every address left out: each station is the labgrid place of its name."""
    stations = tuple(
        replace(
            s,
            url=None,
            relay=None,
            supply=None,
            bridge=None,
            swd=replace(s.swd, probe=None) if s.swd else None,
            place=s.name,
        )
        for s in network.stations
    )
    return replace(
        network,
        name="lab",
        stations=stations,
        relays=(),
        supplies=(),
        lease_backend="labgrid",
        lg_coordinator=coordinator,
    )


@pytest.fixture(scope="module")
def places(exported: Exported, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlaceLab]:
    work = tmp_path_factory.mktemp("labgrid-rack")
    coordinator = Coordinator(work / "coordinator")
    exporter = Exporter(work, coordinator, "rack1", exporter_yaml(station_exports(exported.rack)))
    admin: CoordinatorConnection | None = None
    try:
        admin = CoordinatorConnection(coordinator.address, run_identity("test", "admin", "0"))
        exporter.start(admin)
        for station in exported.rack.stations:
            tags = {"hw": station.hw or "", "dual": "1" if len(station.can_ids) > 1 else "0"}
            make_place(admin, station.name, f"rack1/{station.name}/*", tags)
        rack_file = work / "lab.toml"
        rack_file.write_text(place_rack(exported.rack, coordinator.address).to_toml())
        yield PlaceLab(exported, coordinator, exporter, admin, rack_file)
        labgrid_leases(coordinator.address).close()  # this process's leases (rig.station.lease_choice's)
    finally:
        if admin is not None:
            admin.close()
        exporter.stop()
        coordinator.stop()


def test_the_rack_file_names_places_and_the_coordinator_gives_the_addresses(places: PlaceLab, tmp_path: Path) -> None:
    rack = load_rack(places.rack_file)
    assert rack.lease_backend == "labgrid" and not rack.relays and not rack.supplies
    assert all(s.place == s.name and s.url is None and s.relay is None for s in rack.stations)
    resolved = resolve_places(rack, leases_for(rack, StateDir.at(tmp_path)))
    network = places.exported.rack
    for station in network.stations:
        got = resolved.station(station.name)
        assert got.url == station.url
        assert got.swd is not None and station.swd is not None and got.swd.probe == station.swd.probe
        assert got.swd.target == station.swd.target
        if station.relay is None:  # a station without a relay (esc-606, esc-700): its place exports none
            assert got.relay is None
        else:
            assert got.relay is not None
            assert resolved.relay(got.relay.board).url == network.relay(station.relay.board).url
            assert got.relay.channel == station.relay.channel
        if station.supply is not None:
            assert got.supply is not None and resolved.supply(got.supply).url == network.supply(station.supply).url


def _images(work: Path) -> dict[str, Path]:
    images = {}
    for version in ("6.02", "6.05"):
        target = work / "images" / version / "60" / "VESC_default.bin"
        target.parent.mkdir(parents=True)
        target.write_bytes(make_firmware_image("60", version))
        images[version] = target.parent.parent
    return images


def _suite(rack_args: list[str], work: Path, images: dict[str, Path]) -> tuple[float, str]:
    argv = [sys.executable, "-m", "pytest", "tests/scenarios", "-q", "-p", "no:cacheprovider", *rack_args]
    argv += ["--station", STATION, "-m", "not sim_only", "--allow-destructive", "--rig-dir", str(work / "reports")]
    argv += ["--baseline-firmware", str(images["6.02"]), "--baseline-version", "6.02", "-k", QUICK]
    argv += ["--firmware", str(images["6.05"]), "--firmware-version", "6.05", "--state-dir", str(work / "state")]
    start = time.monotonic()
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=SUITE_BOUND_S)
    took = time.monotonic() - start
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    summary = done.stdout.strip().splitlines()[-1]
    assert re.search(r"[1-9]\d* passed", summary), summary
    return took, summary


def test_rebooting_scenarios_pass_through_labgrid_places(places: PlaceLab, tmp_path: Path) -> None:
    images = _images(tmp_path)
    took, summary = _suite(["--rack", str(places.rack_file)], tmp_path / "lab", images)
    assert places.admin.run(places.admin.place(STATION)).acquired is None  # held through its place, given back
    assert places.comment(STATION).startswith("free (last: "), places.comment(STATION)
    report = f"\nthrough labgrid places: {summary} ({took:.1f} s; serial {serial.__version__})"
    if COMPARE:
        network_s, by_address = _suite(["--rack", str(places.exported.rack_file)], tmp_path / "net", images)
        direct_s, direct = _suite(["--rack", str(network.SIM_RACK)], tmp_path / "direct", images)
        report += f"\nsame exporters by address, SQLite leases: {by_address} ({network_s:.1f} s)"
        report += f"\ndirect (the simulator's ptys in the child process): {direct} ({direct_s:.1f} s)"
    print(report)


def test_the_command_line_takes_the_place_and_a_held_place_is_refused_naming_its_holder(
    places: PlaceLab, tmp_path: Path
) -> None:
    rig = [sys.executable, "-c", "import sys; from rig.cli import main; sys.exit(main())"]  # the `rig` entry point
    argv = [*rig, "info", "--rack", str(places.rack_file), "--station", STATION, "--json"]
    argv += ["--state-dir", str(tmp_path / "state")]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["port"] == places.exported.rack.station(STATION).url  # the place's port
    assert places.comment(STATION).startswith("free (last: ")
    rack = load_rack(places.rack_file)
    with StationSession(rack, STATION, state=StateDir.at(tmp_path / "state"), holder="pytest-holder"):
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert f"station lab/{STATION}" in done.stderr and "held by pytest-holder as " in done.stderr
    assert f"labgrid place {STATION}" in done.stderr


def test_a_coordinator_restart_stops_the_session_at_its_next_step(places: PlaceLab, tmp_path: Path) -> None:
    """The module's last test: the exporter exits with the coordinator and is not started again."""
    rack = load_rack(places.rack_file)
    places.coordinator.wait_saved([s.name for s in rack.stations])  # a restart loses places not saved yet
    session = StationSession(rack, STATION, state=StateDir.at(tmp_path / "state"))
    with session:
        assert session.answers()  # a step through the place's NetworkSerialPort
        places.coordinator.kill()
        places.coordinator.start()
        with pytest.raises(LeaseLost, match=rf"labgrid place {STATION} is now held by nobody.*coordinator restarted"):
            session.probe()  # the next step: stopped, not run unlocked
        with pytest.raises(LeaseLost):
            session.power_cycle()  # and every step after it
