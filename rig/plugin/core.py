"""The vesc-rig pytest plugin (registered through the pytest11 entry point).

Options say which rack to use and which images to test; fixtures give a test a station of that rack
(the test runs once per selected station). A station is a :class:`rig.station.session.StationSession`,
opened the first time a test of this process needs it and held (its lease too) until the run ends, so
runs, CI jobs, xdist workers and command lines sharing a rack never use one station at once. The
``config_backup`` fixture keeps every node's configs around a test (backed up before, restored and
verified after, pass or fail); ``esc`` is a connected client; ``strategy`` brings the board to a firmware.

Misconfiguration fails, it does not skip: a station whose images are missing or that another run holds
beyond ``--lease-wait`` errors naming the fix. Skips remain for what a station lacks by design (no
relay, no SWD probe, no CAN peer, no TCP bridge, not a simulator), and for a station marked broken by an
earlier transition; ``rig.plugin.summary`` lists them per station at the end of the run.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from rig import interrupts
from rig.client.esc import Esc, Timeouts
from rig.errors import ConfigError, Diagnosis, RigError
from rig.firmware.image import Image, ImageKind, load_image
from rig.hardware.swd import SwdConfig
from rig.protocol.commands import FirmwareVersion
from rig.station.bench import Bounds
from rig.station.configs import ConfigCare
from rig.station.lease_choice import leases_for
from rig.station.leases import LeaseBackend, LeaseBusy
from rig.station.permissions import Permit
from rig.station.places import resolve_places
from rig.station.rack import Rack, Station, StationImages, load_rack
from rig.station.session import StationSession
from rig.station.state import StateDir
from rig.station.strategy import StationStrategy
from rig.transport.link import Trace

if TYPE_CHECKING:
    from rig.plugin.simulator import ServedRack

log = logging.getLogger(__name__)
pytest_plugins = [
    "rig.plugin.records",
    "rig.plugin.allure",
    "rig.plugin.simulator",
    "rig.plugin.summary",
    "rig.plugin.leases",
]

MARKERS = {
    "relay": "needs a relay channel or supply that powers the station",
    "tcp_bridge": "needs a TCP bridge to the station's ESC (forced TCP drops)",
    "swd": "needs an SWD probe on the station",
    "can": "needs CAN peers behind the station's port (a dual board)",
    "sim_only": "needs the simulator (fault injection); skipped on hardware",
    "destructive": "erases or bricks a board on purpose; on hardware only with --allow-destructive",
}
LEASE_WAIT_S = 60.0
SIM_MIN_BOUND_S = 2.0  # the shortest wait a fast simulator gets: its boards reboot at once, the host may be busy
EXIT_INTERRUPTED = 130


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
    group.addoption("--rig-dir", default="reports", help="where traces and other run output go")
    group.addoption(
        "--state-dir", default=None, help="config backups, records, leases (default: the rack's, else per user)"
    )
    group.addoption("--sim-speed", type=float, default=0.0, help="simulated time speed (0 instant, 1 real)")
    group.addoption("--lease-dir", default=None, help="station lease database directory (default: the state dir)")
    group.addoption(
        "--lease-wait", type=float, default=LEASE_WAIT_S, help="seconds to wait for a station another run holds"
    )


def pytest_configure(config: pytest.Config) -> None:
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")


_SIGNALS = pytest.StashKey[ExitStack]()


def pytest_sessionstart(session: pytest.Session) -> None:
    """SIGINT/SIGTERM stop the run at the next safe point (never half way through a step); the test in
    progress ends there, its configs are given back, and the run stops with exit status 130."""
    interrupts.reset()
    stack = ExitStack()
    stack.enter_context(interrupts.stopping_at_safe_points())
    session.config.stash[_SIGNALS] = stack


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    yield
    if interrupts.requested():
        item.session.shouldstop = "stopped by a signal at a safe point"


def pytest_sessionfinish(session: pytest.Session) -> None:
    stack = session.config.stash.get(_SIGNALS, None)
    if stack is not None:
        stack.close()
    if interrupts.requested():
        session.exitstatus = EXIT_INTERRUPTED


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A test that failed on a RigError carries its diagnosis and the phase it failed in (reports and the
    selfcheck group by them)."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    params = getattr(item, "callspec", None)
    if params is not None and "station_name" in params.params and call.when == "setup":
        item.user_properties.append(("station", params.params["station_name"]))  # for the later reports
        report.user_properties.append(("station", params.params["station_name"]))
    if call.excinfo is not None and isinstance(call.excinfo.value, RigError):
        report.user_properties.append(("diagnosis", call.excinfo.value.diagnosis.value))
        report.user_properties.append(("phase", call.when))


# --- the run -------------------------------------------------------------------------------------------


@dataclass
class RunContext:
    """What the plugin knows in one pytest process: the rack, where state goes, and the open sessions."""

    spec: Rack
    work: Path
    resolved: Rack
    state: StateDir
    leases: LeaseBackend
    permit: Permit
    bounds: Bounds
    lease_wait_s: float
    sessions: dict[str, StationSession] = field(default_factory=dict)
    failed_to_open: dict[str, str] = field(default_factory=dict)
    images: dict[str, Image] = field(default_factory=dict)

    def session(self, name: str) -> StationSession:
        """The station's session, opened (lease taken) the first time; held until the run ends."""
        if name in self.failed_to_open:
            raise LeaseBusy(name, None, self.lease_wait_s, f": {self.failed_to_open[name]}")
        if name not in self.sessions:
            session = StationSession(
                self.resolved,
                name,
                state=self.state,
                permit=self.permit,
                leases=self.leases,
                lease_wait_s=self.lease_wait_s,
                bounds=self.bounds,
            )
            try:
                session.open()
            except LeaseBusy as exc:
                self.failed_to_open[name] = str(exc)
                raise
            self.sessions[name] = session
        return self.sessions[name]

    def close(self) -> None:
        for session in self.sessions.values():
            session.close()
        self.sessions.clear()


_SPEC_KEY = pytest.StashKey[Rack]()


def rack_spec(config: pytest.Config) -> Rack | None:
    cached = config.stash.get(_SPEC_KEY, None)
    if cached is None and config.getoption("rack"):
        try:
            cached = load_rack(config.getoption("rack"))
        except RigError as exc:
            raise pytest.UsageError(str(exc)) from exc
        config.stash[_SPEC_KEY] = cached
    return cached


def longest_rig_bound_s(bounds: Bounds, timeouts: Timeouts = Timeouts(), swd: SwdConfig | None = None) -> float:
    """The longest single wait the rig itself may make on a station (a hung board ends there, with its
    diagnosis): a reboot's gone + back + answer, an erase, or an SWD operation after its connect attempts."""
    swd = swd or SwdConfig("any")
    reboot = bounds.gone_s + bounds.back_s + bounds.answer_s + bounds.connect_s
    swd_step = swd.connect_attempts * swd.attempt_bound_s + swd.operation_bound_s
    return max(reboot, timeouts.erase, timeouts.chunk * 3, swd_step)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Station tests get a pytest-timeout longer than the rig's own longest bound, so a hung board ends in the
    rig's diagnosis, never in pytest-timeout's stack dump (an explicit timeout marker on a test wins)."""
    if not config.pluginmanager.hasplugin("timeout"):
        return
    outer = round(longest_rig_bound_s(Bounds()) * 1.5 + 60)
    for item in items:
        if "station_name" in getattr(item, "fixturenames", ()) and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(outer))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run every test that uses a station once per selected station of the rack."""
    if "station_name" not in metafunc.fixturenames:  # the test does not use the plugin's station
        return
    spec = rack_spec(metafunc.config)
    if spec is None:
        raise pytest.UsageError("this test needs a station: give --rack (a rack file)")
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


def state_dir(config: pytest.Config, spec: Rack, fallback: Path | None) -> StateDir:
    """--state-dir, the rack's state_dir, $VESC_RIG_STATE_DIR / the per-user default; an in-process
    simulator's run directory when none of these is set explicitly (its boards live only as long)."""
    given = config.getoption("state_dir") or spec.state_dir
    if given is None and fallback is not None:
        return StateDir.at(fallback / "state")
    return StateDir.at(given)


def hardware_bounds(speed: float | None) -> Bounds:
    """Hardware bounds; a simulator running faster than real time gets them scaled down (at least
    SIM_MIN_BOUND_S), so a board that never comes back fails in seconds instead of a minute."""
    hw = Bounds()
    if speed is None or speed >= 1.0:
        return hw
    scale = max(speed, 0.0)
    return Bounds(
        connect_s=hw.connect_s,
        gone_s=max(SIM_MIN_BOUND_S, hw.gone_s * scale),
        back_s=max(SIM_MIN_BOUND_S, hw.back_s * scale),
        answer_s=max(SIM_MIN_BOUND_S, hw.answer_s * scale),
        settle_s=hw.settle_s * scale,
    )


@pytest.fixture(scope="session")
def rig_run(request: pytest.FixtureRequest, served_rack: ServedRack) -> Iterator[RunContext]:
    """The rack of this run (served in-process when it is a simulated rack not served elsewhere)."""
    config = request.config
    spec = rack_spec(config)
    assert spec is not None  # pytest_generate_tests refuses a station test without --rack
    resolved, speed, run_dir = served_rack
    state = state_dir(config, spec, run_dir)
    leases = leases_for(
        resolved,
        state,
        backend=config.getoption("lease_backend"),
        coordinator=config.getoption("lg_coordinator"),
        directory=config.getoption("lease_dir"),
    )
    resolved = resolve_places(resolved, leases)  # stations on labgrid places: their addresses
    wrong_hw = bool(config.getoption("allow_wrong_hw"))
    permit = (
        Permit.simulated(wrong_hw=wrong_hw)
        if spec.simulated
        else Permit.of(destructive=config.getoption("allow_destructive"), wrong_hw=wrong_hw, by="pytest options")
    )
    context = RunContext(
        spec=spec,
        work=Path(config.getoption("rig_dir")),
        resolved=resolved,
        state=state,
        leases=leases,
        permit=permit,
        bounds=hardware_bounds(speed),
        lease_wait_s=config.getoption("lease_wait"),
    )
    try:
        yield context
    finally:
        context.close()


@pytest.fixture(scope="session")
def rack(rig_run: RunContext) -> Rack:
    """The resolved rack: every station's port is known."""
    return rig_run.resolved


@pytest.fixture
def station_name(request: pytest.FixtureRequest) -> str:
    return request.param


def _skip_unless_capable(request: pytest.FixtureRequest, rack: Rack, spec: Station) -> None:
    node = request.node
    if node.get_closest_marker("relay") and spec.relay is None and spec.supply is None:
        pytest.skip(f"station {spec.name} has no relay channel or supply")
    if node.get_closest_marker("swd") and (spec.swd is None or spec.swd.probe is None):
        pytest.skip(f"station {spec.name} has no SWD probe")
    if node.get_closest_marker("tcp_bridge") and spec.bridge is None:
        pytest.skip(f"station {spec.name} has no TCP bridge")
    if node.get_closest_marker("can") and len(spec.can_ids) < 2:
        pytest.skip(f"station {spec.name} has no CAN peers")
    if node.get_closest_marker("sim_only") and not rack.simulated:
        pytest.skip("needs the simulator (fault injection)")
    destructive = node.get_closest_marker("destructive")
    if destructive and not rack.simulated and not request.config.getoption("allow_destructive"):
        pytest.skip("destructive on hardware: pass --allow-destructive")


@pytest.fixture
def station(request: pytest.FixtureRequest, rack: Rack, rig_run: RunContext, station_name: str) -> StationSession:
    """The station's session (its lease held for the whole run); skipped when it lacks what the test's
    markers need or is marked broken, an error when another run holds it beyond --lease-wait."""
    spec = rack.station(station_name)
    _skip_unless_capable(request, rack, spec)
    try:
        session = rig_run.session(station_name)
    except LeaseBusy as exc:
        pytest.fail(f"station {station_name} is in use by another run: {exc}", pytrace=False)
    mark = rig_run.state.broken(session.key)
    if mark is not None:
        pytest.skip(
            f"station {station_name} is broken since {mark.at_text} ({mark.diagnosis}: {mark.detail}); "
            f"repair it, then `rig rack clear-broken --rack RACK {station_name}`"
        )
    session.check_lease()
    session.bench.trace = Trace()  # this test's bytes only (reports attach it when the test fails)
    return session


@pytest.fixture
def config_backup(station: StationSession, request: pytest.FixtureRequest) -> Iterator[ConfigCare]:
    """Every node's mcconf and appconf saved to the state directory before the test, restored and verified
    after it, pass or fail (F10); a file is deleted only once verified. The test gets the care record
    (its ``local`` backup is the USB node's)."""
    with station.preserving_configs(f"test {request.node.name}") as care:
        if not care.nodes:
            raise ConfigError(
                f"{station.name}: the board does not answer, so its configs cannot be backed up before the test",
                diagnosis=Diagnosis.TIMEOUT,
            )
        yield care
    if not care.ok:
        raise ConfigError(
            f"{station.name}: configs not restored after the test:\n" + "\n".join(care.describe()),
            diagnosis=Diagnosis.CONFIG_NOT_RESTORED,
        )


@pytest.fixture
def esc(station: StationSession, config_backup: ConfigCare) -> Iterator[Esc]:
    """The station's ESC, connected, its configs backed up (and restored after the test)."""
    client = station.connect()
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def power(station: StationSession) -> StationSession:
    """The station, for power operations; skipped when it has no relay channel or supply."""
    if not station.has_power:
        pytest.skip(f"station {station.name} has no relay channel or supply")
    return station


@pytest.fixture
def swd(station: StationSession) -> StationSession:
    """The station, for SWD operations; skipped when it has no SWD probe."""
    if not station.has_swd:
        pytest.skip(f"station {station.name} has no SWD probe")
    return station


# --- images ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Board:
    """What the station's board reported when the test started."""

    hw_name: str
    version: FirmwareVersion


@pytest.fixture
def board(station: StationSession) -> Board:
    """Hardware name and firmware version of the station's board (the simulated baseline on a sim rack)."""
    node = station.spec.sim.node if station.spec.sim else None
    if node is not None:
        return Board(node.hw, FirmwareVersion.parse(node.fw))
    info = station.read_board()
    return Board(info.hw_name or "", info.version)


def _image(
    request: pytest.FixtureRequest, rig_run: RunContext, station: StationSession, board: Board, role: str
) -> Image:
    """The image of a role ("firmware", "baseline", "bootloader"): the command line's option, else the
    station's [station.images] in the rack; neither is a configuration error naming both."""
    options = {"firmware": ("firmware", "firmware_version"), "baseline": ("baseline_firmware", "baseline_version")}
    option, version_option = options.get(role, ("bootloader", None))
    images = station.spec.images or StationImages()
    path = request.config.getoption(option) or getattr(images, role)
    text = (request.config.getoption(version_option) if version_option else None) or getattr(
        images, f"{role}_version", None
    )
    if not path:
        flag = "--" + option.replace("_", "-")
        pytest.fail(
            f"station {station.name} needs a {role} image: give {flag}, or {role} in its [station.images] "
            "(a simulated rack generates them)",
            pytrace=False,
        )
    kind = ImageKind.BOOTLOADER if role == "bootloader" else ImageKind.FIRMWARE
    key = f"{role}:{path}:{board.hw_name}:{text}"
    if key not in rig_run.images:
        version = FirmwareVersion.parse(text) if text else None
        rig_run.images[key] = load_image(Path(path), kind, board.hw_name, version=version)
    return rig_run.images[key]


@pytest.fixture
def baseline_firmware(
    request: pytest.FixtureRequest, rig_run: RunContext, station: StationSession, board: Board
) -> Image:
    """The last release for this board: --baseline-firmware, else the station's images in the rack."""
    return _image(request, rig_run, station, board, "baseline")


@pytest.fixture
def firmware(request: pytest.FixtureRequest, rig_run: RunContext, station: StationSession, board: Board) -> Image:
    """The candidate for this board: --firmware, else the station's images in the rack."""
    return _image(request, rig_run, station, board, "firmware")


@pytest.fixture
def bootloader(request: pytest.FixtureRequest, rig_run: RunContext, station: StationSession, board: Board) -> Image:
    """The bootloader for this board: --bootloader, else the station's images in the rack."""
    return _image(request, rig_run, station, board, "bootloader")


@pytest.fixture
def strategy(station: StationSession, rig_run: RunContext, request: pytest.FixtureRequest) -> StationStrategy:
    """The station's strategy, with the station's bootloader for escalations when one is configured."""
    images = station.spec.images or StationImages()
    boot = None
    if request.config.getoption("bootloader") or images.bootloader:
        boot = request.getfixturevalue("bootloader")
    return StationStrategy(station, bootloader=boot)
