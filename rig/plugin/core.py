"""The vesc-rig pytest plugin (registered through the pytest11 entry point).

Options say which rack to use and which images to test; fixtures give a test a station of that rack
(the test runs once per selected station), a connected ESC whose configs are backed up to disk
before the test and restored and verified after it, its power, its SWD probe, and, on a simulated
rack, fault control. Markers say what a test needs, so a station without it skips with the reason.

A simulated rack (``simulated = true``) is served in-process for the session (under pytest-xdist,
one simulator per worker); a rack file written by ``rig sim serve`` (``control`` set) is used as it
is, like hardware. A test holds its station through a lease (rig.station.leases) in the rack file's
``leases`` directory or ``--lease-dir``, so runs, CI jobs and xdist workers sharing a rack never use
one station at once; a station held elsewhere for longer than ``--lease-wait`` is skipped, with who
holds it.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from rig.firmware.config import ConfigBackup, read_backup, restore
from rig.errors import RigError
from rig.client.esc import Esc
from rig.firmware.image import Image, ImageKind, load_from_folder, load_image
from rig.station.leases import LeaseBusy, LeaseStore
from rig.protocol.commands import FirmwareVersion
from rig.station.rack import Rack, Station, load_rack
from rig.station.bench import Bounds, StationRig

log = logging.getLogger(__name__)
pytest_plugins = ["rig.plugin.records", "rig.plugin.allure"]

MARKERS = {
    "relay": "needs a relay channel or supply that powers the station",
    "swd": "needs an SWD probe on the station",
    "can": "needs CAN peers behind the station's port (a dual board)",
    "sim_only": "needs the simulator (fault injection); skipped on hardware",
    "destructive": "erases or bricks a board on purpose; on hardware only with --allow-destructive",
}
LEASE_WAIT_S = 60.0


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("vesc-rig", "VESC hardware-in-the-loop rig")
    group.addoption("--rack", default=None, help="rack file (the project's conftest may set a default)")
    group.addoption("--station", action="append", default=[], help="run only these stations (names or tags)")
    group.addoption("--firmware", default=None, help="candidate firmware: a .bin/.hex or a desktop-tool folder")
    group.addoption("--firmware-version", default=None, help="the version the candidate reports (X.YY)")
    group.addoption("--baseline-firmware", default=None, help="the last release: a .bin/.hex or a folder")
    group.addoption("--baseline-version", default=None, help="the version the baseline reports (X.YY)")
    group.addoption("--bootloader", default=None, help="bootloader image (.bin/.hex) or a desktop-tool folder")
    group.addoption("--allow-wrong-hw", action="store_true", help="upload images for other hardware (F6 guard off)")
    group.addoption("--allow-destructive", action="store_true", help="run destructive tests on hardware")
    group.addoption("--rig-dir", default="reports", help="where config backups, traces and images go")
    group.addoption("--sim-speed", type=float, default=0.0, help="simulated time speed (0 instant, 1 real)")
    group.addoption("--lease-dir", default=None, help="station lease database directory (default: the rack's leases)")
    group.addoption(
        "--lease-wait", type=float, default=LEASE_WAIT_S, help="seconds to wait for a station another run holds"
    )


def pytest_configure(config: pytest.Config) -> None:
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A test that failed on a RigError carries its diagnosis (reports and the selfcheck group by it)."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if call.excinfo is not None and isinstance(call.excinfo.value, RigError):
        report.user_properties.append(("diagnosis", call.excinfo.value.diagnosis.value))


# --- the rack ------------------------------------------------------------------------------------------


@dataclass
class RigSession:
    """What the plugin knows in one pytest process."""

    spec: Rack
    work: Path
    sim: Any = None  # rig.sim.serve.SimRack while a simulated rack is served in-process
    leases: LeaseStore | None = None
    generated: dict[str, Image] = field(default_factory=dict)


def _rack_spec(config: pytest.Config) -> Rack | None:
    cached = config.stash.get(_SPEC_KEY, None)
    if cached is None and config.getoption("rack"):
        cached = load_rack(config.getoption("rack"))
        config.stash[_SPEC_KEY] = cached
    return cached


_SPEC_KEY = pytest.StashKey[Rack]()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run every test that uses a station once per selected station of the rack."""
    if "station_name" not in metafunc.fixturenames:  # the test does not use the plugin's station
        return
    spec = _rack_spec(metafunc.config)
    if spec is None:
        metafunc.parametrize("station_name", [pytest.param(None, marks=pytest.mark.skip(reason="no --rack given"))])
        return
    try:
        stations = spec.select(metafunc.config.getoption("station"))
    except RigError as exc:
        raise pytest.UsageError(str(exc)) from exc
    metafunc.parametrize(
        "station_name",
        [pytest.param(s.name, marks=pytest.mark.xdist_group(s.name)) for s in stations],
        ids=[s.name for s in stations],
        scope="function",
    )


@pytest.fixture(scope="session")
def rig_session(request: pytest.FixtureRequest) -> Iterator[RigSession]:
    """The rack of this run, served in-process when it is a simulated rack not served elsewhere."""
    spec = _rack_spec(request.config)
    if spec is None:
        pytest.skip("no --rack given")
    work = Path(request.config.getoption("rig_dir"))
    session = RigSession(spec, work)
    if spec.simulated and not spec.served:
        from rig.sim.serve import SimRack  # only simulated racks need the simulator

        run_dir = Path(tempfile.mkdtemp(prefix="vesc-rig-"))  # short: it holds a Unix socket
        with SimRack(spec, run_dir, speed=request.config.getoption("sim_speed")) as sim:
            session.sim = sim
            yield session
        return
    yield session


@pytest.fixture(scope="session")
def rack(rig_session: RigSession) -> Rack:
    """The resolved rack: every station's port is known."""
    return rig_session.sim.resolved if rig_session.sim is not None else rig_session.spec


@pytest.fixture
def station_name(request: pytest.FixtureRequest) -> str:
    return request.param


def _skip_unless_capable(request: pytest.FixtureRequest, rack: Rack, spec: Station) -> None:
    node = request.node
    if node.get_closest_marker("relay") and spec.relay is None and spec.supply is None:
        pytest.skip(f"station {spec.name} has no relay channel or supply")
    if node.get_closest_marker("swd") and (spec.swd is None or spec.swd.probe is None):
        pytest.skip(f"station {spec.name} has no SWD probe")
    if node.get_closest_marker("can") and len(spec.can_ids) < 2:
        pytest.skip(f"station {spec.name} has no CAN peers")
    if node.get_closest_marker("sim_only") and not rack.simulated:
        pytest.skip("needs the simulator (fault injection)")
    destructive = node.get_closest_marker("destructive")
    if destructive and not rack.simulated and not request.config.getoption("allow_destructive"):
        pytest.skip("destructive on hardware: pass --allow-destructive")


def _bounds(session: RigSession) -> Bounds:
    """Hardware bounds; a simulator running faster than real time gets them scaled down (at least 5 s),
    so a board that never comes back fails in seconds instead of a minute."""
    if session.sim is None or session.sim.speed >= 1.0:
        return Bounds()
    hw = Bounds()
    scale = max(session.sim.speed, 0.0)
    return Bounds(
        connect_s=hw.connect_s,
        gone_s=hw.gone_s,
        back_s=max(5.0, hw.back_s * scale),
        answer_s=max(5.0, hw.answer_s * scale),
        settle_s=hw.settle_s * scale,
    )


def _lease_store(config: pytest.Config, rack: Rack, session: RigSession) -> LeaseStore:
    """The run's lease database: --lease-dir, the rack's `leases`, the in-process simulator's run
    directory (no other run shares that simulator), else a folder in the system's temporary directory."""
    directory = config.getoption("lease_dir") or rack.leases
    if directory is None:
        directory = session.sim.run_dir if session.sim else Path(tempfile.gettempdir()) / "vesc-rig-leases"
    if session.leases is None or session.leases.directory != Path(directory):
        session.leases = LeaseStore(directory)
    return session.leases


@pytest.fixture
def station(
    request: pytest.FixtureRequest, rack: Rack, rig_session: RigSession, station_name: str
) -> Iterator[StationRig]:
    """One station of the rack, leased for this test; skipped when it lacks what the test's markers need,
    or when another run holds it for longer than --lease-wait."""
    spec = rack.station(station_name)
    _skip_unless_capable(request, rack, spec)
    store = _lease_store(request.config, rack, rig_session)
    try:
        lease = store.acquire(rack.name, station_name, bound_s=request.config.getoption("lease_wait"))
    except LeaseBusy as exc:
        pytest.skip(f"station {station_name} is in use by another run: {exc}")
    rig = StationRig(rack, spec, bounds=_bounds(rig_session))
    try:
        yield rig
    finally:
        rig.close()
        lease.release()
    if lease.lost is not None:
        raise lease.lost


@pytest.fixture
def config_backup(station: StationRig, rig_session: RigSession) -> Iterator[ConfigBackup]:
    """mcconf and appconf of every node saved to disk before the test; restored and verified after it,
    pass or fail (F10). The test gets the local node's backup; a file is deleted only once verified."""
    with station.connect() as esc:
        backups = {node: read_backup(client) for node, client in station.nodes(esc)}
    folder = rig_session.work / "backups"
    stamp = f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
    paths = {node: b.save(folder / f"{station.name}-{b.uid}-{stamp}.json") for node, b in backups.items()}
    log.info("%s: configs backed up to %s", station.name, ", ".join(map(str, paths.values())))
    yield backups[None]
    with station.connect() as esc:
        for node, client in station.nodes(esc):
            restore(client, backups[node])
            paths[node].unlink()


@pytest.fixture
def esc(station: StationRig, config_backup: ConfigBackup) -> Iterator[Esc]:
    """The station's ESC, connected, its configs backed up (and restored after the test)."""
    client = station.connect()
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def power(station: StationRig, request: pytest.FixtureRequest) -> StationRig:
    """The station, for power operations; skipped when it has no relay channel or supply."""
    if station.spec.relay is None and station.spec.supply is None:
        pytest.skip(f"station {station.name} has no relay channel or supply")
    return station


@pytest.fixture
def swd(station: StationRig) -> StationRig:
    """The station, for SWD operations; skipped when it has no SWD probe."""
    if station.spec.swd is None or station.spec.swd.probe is None:
        pytest.skip(f"station {station.name} has no SWD probe")
    return station


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
def sim(rig_session: RigSession, rack: Rack, station: StationRig) -> SimHandle:
    """Fault control of the station's simulated ESC; skipped on hardware."""
    if rig_session.sim is not None:
        return SimHandle(station.name, rig_session.sim)
    if rack.simulated and rack.control:
        from rig.sim.serve import SimControl

        return SimHandle(station.name, SimControl(rack.control))
    pytest.skip("needs the simulator (fault injection)")


# --- images ------------------------------------------------------------------------------------------


def _version(text: str | None) -> FirmwareVersion | None:
    return FirmwareVersion.parse(text) if text else None


def _generated(session: RigSession, hw_name: str, version: FirmwareVersion | None, kind: ImageKind) -> Image:
    """An image made by the simulator's generator, laid out in a desktop-tool folder."""
    from rig.sim.image import make_bootloader_image, make_firmware_image

    key = f"{kind.value}-{hw_name}-{version}"
    if key not in session.generated:
        folder = session.work / "images" / (str(version) if version else "bootloader")
        if kind == ImageKind.FIRMWARE:
            assert version is not None
            target = folder / hw_name / "VESC_default.bin"
            data = make_firmware_image(hw_name, str(version))
        else:
            target = folder / "generic.bin"
            data = make_bootloader_image()
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        session.generated[key] = load_from_folder(folder, hw_name, kind, version=version)
    return session.generated[key]


@dataclass(frozen=True)
class Board:
    """What the station's board reported when the test started."""

    hw_name: str
    version: FirmwareVersion


@pytest.fixture
def board(station: StationRig, rig_session: RigSession) -> Board:
    """Hardware name and firmware version of the station's board (the simulated baseline on a sim rack)."""
    if rig_session.sim is not None:
        node = station.spec.sim.node if station.spec.sim else None
        if node is not None:
            return Board(node.hw, FirmwareVersion.parse(node.fw))
    with station.connect() as esc:
        assert esc.info is not None
        return Board(esc.info.hw_name or "", esc.info.version)


@pytest.fixture
def baseline_firmware(request: pytest.FixtureRequest, rig_session: RigSession, board: Board) -> Image:
    """The last release for this board: --baseline-firmware, or on a simulated rack the station's own firmware."""
    option = request.config.getoption("baseline_firmware")
    version = _version(request.config.getoption("baseline_version"))
    if option:
        return load_image(Path(option), ImageKind.FIRMWARE, board.hw_name, version=version)
    if rig_session.sim is None:
        pytest.skip("needs --baseline-firmware")
    return _generated(rig_session, board.hw_name, board.version, ImageKind.FIRMWARE)


@pytest.fixture
def firmware(request: pytest.FixtureRequest, rig_session: RigSession, board: Board) -> Image:
    """The candidate for this board: --firmware, or on a simulated rack a generated next version."""
    option = request.config.getoption("firmware")
    version = _version(request.config.getoption("firmware_version"))
    if option:
        return load_image(Path(option), ImageKind.FIRMWARE, board.hw_name, version=version)
    if rig_session.sim is None:
        pytest.skip("needs --firmware")
    candidate = FirmwareVersion(board.version.major, board.version.minor + 1)
    return _generated(rig_session, board.hw_name, candidate, ImageKind.FIRMWARE)


@pytest.fixture
def bootloader(request: pytest.FixtureRequest, rig_session: RigSession, board: Board) -> Image:
    """The bootloader for this board: --bootloader, or on a simulated rack a generated one."""
    option = request.config.getoption("bootloader")
    if option:
        return load_image(Path(option), ImageKind.BOOTLOADER, board.hw_name)
    if rig_session.sim is None:
        pytest.skip("needs --bootloader")
    return _generated(rig_session, board.hw_name, None, ImageKind.BOOTLOADER)


@pytest.fixture
def allow_wrong_hw(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("allow_wrong_hw"))
