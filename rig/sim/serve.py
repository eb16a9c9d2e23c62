"""Serve simulated ESCs exactly where hardware would be: USB ptys, TCP bridges, relay boards, supplies, SWD.

- :class:`DeviceLoop`: one thread per station polls its SimEsc nodes (one CAN bus) and reads every
  endpoint that feeds them. The devices are thread-safe: relay boards and tests call them directly.
- :class:`UsbPort`: a raw pty that exists only while the device's USB is up, with a stable
  ``/dev/serial/by-id`` style symlink; every USB up is a NEW pty, as a re-enumeration is.
- :class:`TcpBridge`: 127.0.0.1, one client at a time, like VESC Tool's TCP server (facts sheet 9).
- :class:`ControlServer` / :class:`SimControl`: JSON lines on a Unix socket, for tests in another process.
- :class:`SimRack`: serves a whole simulated rack and gives the resolved Rack (ports filled in).

Host-close detection on a pty: the server keeps no slave fd open. A read on the master then fails
with EIO while no host has the port open, and succeeds (data or EAGAIN) while one has; a host closing
its port turns the next read into EIO, which becomes ``device.host_disconnected()``. While no host is
connected the master cannot be select()ed (it would report HUP at once): an inotify watch on the slave
(rig.sim.pty_watch) says when a host opens it, and only where inotify is missing is the master probed
once per tick.

Idle cost: a loop sleeps in select() on its endpoints' fds and a wake pipe until the earliest time any
of its devices has work (SimEsc.next_poll_at: a job, a receive timeout, a held reply); a device that gets
work from another thread (power, faults, CAN) wakes it through ``on_work``. Nothing runs on a timer while
every board sits idle with its host connected or not.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import select
import socket
import socketserver
import threading
import time
import tty
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol, TypeVar

from rig.config.source import SchemaSource
from rig.device.firmware import next_release, release, series
from rig.device.update_format import shipped_bootloader
from rig.errors import Diagnosis, RackFileError, RigError, RigTimeout
from rig.firmware.image import FIRMWARE_FILE, GENERIC_BOOTLOADER
from rig.protocol.commands import FirmwareVersion
from rig.sim.can import CanBus
from rig.sim.clock import DeviceClock
from rig.sim.configs import SimConfigs
from rig.sim.device import SimEsc, SimEscSpec
from rig.sim.errors import SimError
from rig.sim.image import make_bootloader_image, make_firmware_image
from rig.sim.pty_watch import OpenWatch, open_watch
from rig.station.rack import Rack, RelayBoardSpec, SimNode, Station, StationImages, SupplySpec

log = logging.getLogger(__name__)

PowerInput = Callable[[bool], None]
SpecT = TypeVar("SpecT", RelayBoardSpec, SupplySpec)

TICK_S = 0.002  # how often an idle pty is probed for a host where inotify is missing
JOIN_TIMEOUT_S = 5.0
READY_TIMEOUT_S = 30.0  # start() waits this long at most for the boards to boot (5 s modelled at speed 1)
WRITE_TIMEOUT_S = 0.5  # a host that reads nothing for this long loses the device's output
CONTROL_TIMEOUT_S = 10.0
USB_PORT_PREFIX = "usb-STMicroelectronics_ChibiOS_RT_Virtual_COM_Port_"  # facts sheet 10
CONTROL_SOCKET = "control.sock"
RESOLVED_RACK = "rack.toml"
_UNIX_PATH_MAX = 107


class SimServeError(RigError):
    """The simulator could not serve (bad rack for the simulator, socket path too long, ...)."""

    diagnosis = Diagnosis.SIM


class Device(Protocol):
    """What the serving side needs of a simulated ESC (rig.sim.device.SimEsc)."""

    on_usb: Callable[[bool], None] | None
    transmit: Callable[[bytes], None] | None
    on_work: Callable[[], None] | None

    @property
    def usb_up(self) -> bool: ...
    def receive(self, data: bytes, now: float | None = None) -> None: ...
    def poll(self, now: float | None = None) -> None: ...
    def next_poll_at(self) -> float | None: ...
    def host_disconnected(self) -> None: ...


class Endpoint(Protocol):
    """Something a DeviceLoop serves: fds to watch, work to do when they are readable, and whether it must
    be serviced again within a tick without any fd (probing a pty where inotify is missing)."""

    def fds(self) -> list[int]: ...
    def service(self, readable: set[int]) -> None: ...
    def needs_tick(self) -> bool: ...
    def close(self) -> None: ...


# --- the loop --------------------------------------------------------------------------------------


class DeviceLoop:
    """One thread serving a group of simulated nodes (a station: one CAN bus): reads the host side of
    every endpoint into the devices and polls the devices when they have work (see the module docstring)."""

    def __init__(self, name: str, nodes: Sequence[Device], tick_s: float = TICK_S) -> None:
        self.name = name
        self.nodes = list(nodes)
        self.tick_s = tick_s
        self.turns = 0  # select() returns: how often the loop woke (idle cost, for benchmarks)
        self._endpoints: list[Endpoint] = []
        self._sinks: dict[int, list[Callable[[bytes], None]]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        for node in self.nodes:
            self._sinks[id(node)] = []
            node.transmit = _fan_out(self._sinks[id(node)])
            node.on_work = self.wake

    def add(self, endpoint: Endpoint, node: Device | None = None, sink: Callable[[bytes], None] | None = None) -> None:
        """Serve `endpoint`; with `sink`, `node`'s output (device -> host) also goes to it."""
        self._endpoints.append(endpoint)
        if node is not None and sink is not None:
            self._sinks[id(node)].append(sink)
        self.wake()

    def wake(self) -> None:
        """Make the loop look at its devices and fds now (from any thread)."""
        with contextlib.suppress(BlockingIOError, OSError):  # full: a wake-up is pending anyway
            os.write(self._wake_w, b"\0")

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"sim-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread (it is woken at once), then close every endpoint (ptys, symlinks, sockets)."""
        self._stop.set()
        self.wake()
        if self._thread is not None:
            self._thread.join(JOIN_TIMEOUT_S)
            if self._thread.is_alive():
                log.warning("sim loop %s did not stop within %.3g s", self.name, JOIN_TIMEOUT_S)
        for endpoint in self._endpoints:
            endpoint.close()
        for fd in (self._wake_r, self._wake_w):
            os.close(fd)

    def _timeout(self) -> float | None:
        """Seconds until the earliest device work (None: wait for an fd or a wake-up)."""
        due = [t for t in (node.next_poll_at() for node in self.nodes) if t is not None]
        if any(e.needs_tick() for e in self._endpoints):
            due.append(time.monotonic() + self.tick_s)
        return max(0.0, min(due) - time.monotonic()) if due else None

    def _run(self) -> None:
        while not self._stop.is_set():
            fds = [fd for e in self._endpoints for fd in e.fds()]
            try:
                readable = set(select.select([self._wake_r, *fds], [], [], self._timeout())[0])
            except (OSError, ValueError) as exc:  # an fd closed by another thread: the next turn rebuilds the set
                log.debug("sim loop %s select: %s", self.name, exc)
                readable = set()
            self.turns += 1
            if self._wake_r in readable:
                with contextlib.suppress(BlockingIOError):
                    os.read(self._wake_r, 4096)
            for endpoint in self._endpoints:
                self._guard(endpoint.service, readable)
            now = time.monotonic()
            for node in self.nodes:
                due = node.next_poll_at()
                if due is not None and due <= now:
                    self._guard(node.poll)

    def _guard(self, fn: Callable[..., None], *args: Any) -> None:
        """A bug in device code must not kill the loop (every host would then hang until its bound)."""
        try:
            fn(*args)
        except Exception:
            log.exception("sim loop %s: error in %s", self.name, getattr(fn, "__qualname__", fn))


def candidate_version(shipped: FirmwareVersion) -> FirmwareVersion:
    """The release a station on `shipped` is updated to in the scenarios: the next one, or for the newest
    release the one before it (an update is still a change of version)."""
    after = next_release(shipped)
    if after is not None:
        return after.version
    return max(r.version for r in series(shipped) if r.version < shipped)


def _fan_out(sinks: list[Callable[[bytes], None]]) -> Callable[[bytes], None]:
    """A device's transmit: its output goes to every host side (pty, TCP bridge) it is served on."""

    def transmit(data: bytes) -> None:
        for sink in sinks:
            sink(data)

    return transmit


# --- USB -------------------------------------------------------------------------------------------


def usb_port_name(usb_serial: str) -> str:
    """The /dev/serial/by-id name udev gives a VESC with this USB serial number."""
    return f"{USB_PORT_PREFIX}{usb_serial}-if00"


class UsbPort:
    """A device's USB CDC port: a raw pty while USB is up, behind a stable symlink in `port_dir`.

    ``on_usb`` and ``transmit`` come from the device with its lock held, from any thread; the port's
    own lock guards the pty, and it is never held while calling into the device.
    """

    def __init__(self, device: Device, loop: DeviceLoop, port_dir: Path, usb_serial: str) -> None:
        self.device = device
        self.path = Path(port_dir) / usb_port_name(usb_serial)
        self.device_path: str | None = None  # /dev/pts/N while USB is up
        self.host_connected = False
        self.enumerations = 0
        self._master: int | None = None
        self._watch: OpenWatch | None = None  # opens of the slave, while no host holds it
        self._last_device_path: str | None = None
        self._closed = False
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        loop.add(self, device, self.write)
        device.on_usb = self.set_usb
        if device.usb_up:
            self.set_usb(True)

    def set_usb(self, up: bool) -> None:
        """USB enumerated (a new pty, the symlink points at it) or gone (pty closed, symlink removed)."""
        with self._lock:
            if (up and self._closed) or up == (self._master is not None):
                return
            if up:
                self._enumerate()
            else:
                self._unplug()

    def _enumerate(self) -> None:
        master, name = self._open_pty()
        if name == self._last_device_path:  # the kernel reuses numbers: hold this one, take the next
            other = self._open_pty()
            os.close(master)
            master, name = other
        self._master, self.device_path, self._last_device_path = master, name, name
        self.host_connected = False
        self._watch = open_watch(name)
        self.enumerations += 1
        tmp = self.path.with_name(self.path.name + ".new")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        tmp.symlink_to(name)
        tmp.replace(self.path)  # atomic: the stable name never points at nothing while USB is up
        log.info("sim USB up: %s -> %s", self.path, name)

    @staticmethod
    def _open_pty() -> tuple[int, str]:
        master, slave = os.openpty()
        try:
            tty.setraw(slave)  # raw: 0x03, 0x11, CR... pass untouched, nothing is echoed back
            name = os.ttyname(slave)
        finally:
            os.close(slave)  # keep no slave open: a host closing its port then shows as EIO
        os.set_blocking(master, False)
        return master, name

    def _unplug(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        if self._watch is not None:
            self._watch.close()
            self._watch = None
        if self._master is not None:
            os.close(self._master)  # a host holding the port now reads EOF/EIO: rig.transport.link raises LinkLost
        log.info("sim USB down: %s (was %s)", self.path, self.device_path)
        self._master, self.device_path, self.host_connected = None, None, False

    def fds(self) -> list[int]:
        master, watch = self._master, self._watch
        if master is None:
            return []
        if self.host_connected:
            return [master]
        return [watch.fd] if watch is not None else []

    def needs_tick(self) -> bool:
        """No host and no inotify watch: the master must be probed every tick."""
        return self._master is not None and not self.host_connected and self._watch is None

    def service(self, readable: set[int]) -> None:
        """Read what the host sent (or probe for a host); feed the device outside the port's lock."""
        closed = False
        with self._lock:
            master, watch = self._master, self._watch
            if master is None or (self.host_connected and master not in readable):
                return
            if not self.host_connected and watch is not None:
                if watch.fd not in readable:
                    return
                watch.drain()
            try:
                data = os.read(master, 4096)
            except BlockingIOError:
                self.host_connected = True
                return
            except OSError as exc:
                if exc.errno != errno.EIO:
                    raise
                closed, self.host_connected = self.host_connected, False
                data = b""
            else:
                self.host_connected = True
        if data:
            self.device.receive(data)
        elif closed:
            log.debug("sim USB %s: host closed the port", self.path)
            self.device.host_disconnected()

    def write(self, data: bytes) -> None:
        """Device -> host; dropped while no host has the port open, as the CDC driver does."""
        with self._lock:
            if self._master is None or not self.host_connected:
                return
            view = memoryview(data)
            deadline = time.monotonic() + WRITE_TIMEOUT_S
            while view:
                try:
                    view = view[os.write(self._master, view) :]
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        log.warning("sim USB %s: host reads nothing, %d bytes lost", self.path, len(view))
                        return
                    select.select([], [self._master], [], 0.01)
                except OSError as exc:  # host gone: the next read turns it into host_disconnected()
                    log.debug("sim USB %s: write failed: %s", self.path, exc)
                    return

    def close(self) -> None:
        """Unplug for good: later USB-up events from the device are ignored."""
        self._closed = True
        self.set_usb(False)


# --- TCP -------------------------------------------------------------------------------------------


class TcpBridge:
    """A TCP bridge on 127.0.0.1 to a device; one client at a time, extra ones closed (facts sheet 9)."""

    def __init__(self, device: Device, loop: DeviceLoop, port: int = 0, host: str = "127.0.0.1") -> None:
        self.device = device
        self._listener = socket.create_server((host, port))
        self._listener.setblocking(False)
        self._client: socket.socket | None = None
        self._lock = threading.Lock()
        self.refused = 0
        loop.add(self, device, self.write)

    @property
    def address(self) -> str:
        host, port = self._listener.getsockname()[:2]
        return f"{host}:{port}"

    @property
    def url(self) -> str:
        return f"socket://{self.address}"

    @property
    def connected(self) -> bool:
        return self._client is not None

    def fds(self) -> list[int]:
        client = self._client
        return [self._listener.fileno()] + ([client.fileno()] if client is not None else [])

    def needs_tick(self) -> bool:
        return False

    def service(self, readable: set[int]) -> None:
        if self._listener.fileno() in readable:
            self._accept()
        client = self._client
        if client is None or client.fileno() not in readable:
            return
        try:
            data = client.recv(4096)
        except OSError as exc:
            log.debug("sim TCP %s: %s", self.address, exc)
            data = b""
        if data:
            self.device.receive(data)
        else:
            self._drop(client)

    def _accept(self) -> None:
        while True:
            try:
                conn, peer = self._listener.accept()
            except BlockingIOError:
                return
            if self._client is not None:
                log.info("sim TCP %s: refusing %s, a client is connected", self.address, peer)
                self.refused += 1
                conn.close()
                continue
            conn.settimeout(WRITE_TIMEOUT_S)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._client = conn
            log.info("sim TCP %s: client %s", self.address, peer)

    def write(self, data: bytes) -> None:
        with self._lock:
            if self._client is None:
                return
            try:
                self._client.sendall(data)
            except OSError as exc:  # the next read sees the drop
                log.debug("sim TCP %s: send failed: %s", self.address, exc)

    def drop(self) -> None:
        """Force a TCP drop now (forced-disconnect scenarios): the client sees the connection end."""
        client = self._client
        if client is not None:
            self._drop(client)

    def _drop(self, client: socket.socket) -> None:
        with self._lock:
            if self._client is not client:
                return
            client.close()
            self._client = None
        log.info("sim TCP %s: client dropped", self.address)
        self.device.host_disconnected()

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None
        self._listener.close()


# --- relay boards, supplies and SWD probes: the registry --------------------------------------------


class SimBoard(Protocol):
    """A simulated relay board (rig.sim.relay_boards): channels wired to power inputs."""

    responding: bool  # False: commands are ignored and nothing answers, as a dead board

    def wire(self, channel: int, power_input: PowerInput) -> None: ...
    def close(self) -> None: ...


class SimSupply(Protocol):
    """A simulated bench supply (rig.sim.supply.SimRd6006)."""

    responding: bool

    @property
    def address(self) -> str: ...
    def wire(self, power_input: PowerInput) -> None: ...
    def branch(self, power_input: PowerInput) -> PowerInput: ...
    def set_output(self, on: bool) -> None: ...
    def close(self) -> None: ...


def _serve_lcus(spec: RelayBoardSpec) -> tuple[SimBoard, str]:
    from rig.sim.relay_boards import SimLcusBoard

    board = SimLcusBoard(channels=spec.channels)
    return board, board.port


def _serve_numato(spec: RelayBoardSpec) -> tuple[SimBoard, str]:
    from rig.sim.relay_boards import SimNumatoBoard

    board = SimNumatoBoard(channels=spec.channels)
    return board, board.port


def _serve_modbus(spec: RelayBoardSpec) -> tuple[SimBoard, str]:
    from rig.sim.relay_boards import SimModbusRelay

    dialect = spec.kind.removeprefix("modbus-")
    unit = int(spec.options.get("unit", 1))
    board = SimModbusRelay(dialect=dialect, channels=spec.channels, unit=unit, transport=spec.transport)
    return board, board.address


def _serve_rd6006(spec: SupplySpec) -> SimSupply:
    from rig.sim.supply import SimRd6006

    return SimRd6006(unit=spec.unit, transport=spec.transport)


# Extension point: kind -> server. A server returns the board and its address (a pty path, or
# "tcp://127.0.0.1:PORT"), which goes into the resolved rack as `port` or `tcp`.
RELAY_SERVERS: dict[str, Callable[[RelayBoardSpec], tuple[SimBoard, str]]] = {
    "lcus": _serve_lcus,
    "numato": _serve_numato,
    "modbus-coils": _serve_modbus,
    "modbus-registers": _serve_modbus,
}
SUPPLY_SERVERS: dict[str, Callable[[SupplySpec], SimSupply]] = {"rd6006": _serve_rd6006}


def _at_address(spec: SpecT, address: str) -> SpecT:
    """`spec` at a served address: tcp://H:P -> tcp = "H:P", anything else -> port."""
    if address.startswith("tcp://"):
        return replace(spec, tcp=address.removeprefix("tcp://"), port=None)
    return replace(spec, port=address, tcp=None)


# --- the rack --------------------------------------------------------------------------------------


@dataclass
class _Served:
    """One served station: its loop, its nodes by CAN id, its USB port and bridge."""

    station: Station
    loop: DeviceLoop
    nodes: dict[int, SimEsc]  # by CAN id
    usb: UsbPort
    bridge: TcpBridge | None = None

    @property
    def usb_node(self) -> SimEsc:
        assert self.station.sim is not None
        return self.nodes[self.station.sim.node.can_id]


class SimRack:
    """A simulated rack, served in-process: ESCs on ptys (+ TCP bridges), relay boards, supplies, SWD probes.

    ``with SimRack(load_rack("fixtures/racks/sim.toml"), run_dir) as rack: ...`` then use only
    ``rack.resolved`` (or the ``rack.toml`` it writes) from host code; reach devices for faults and
    power through the methods here (they run in the device's own thread).
    """

    def __init__(self, rack: Rack, run_dir: Path, speed: float = 0.0) -> None:
        if not rack.simulated:
            raise SimServeError(f"{rack.path or rack.name}: not a simulated rack (simulated = true)")
        self.rack = rack
        self.run_dir = Path(run_dir)
        self.speed = speed
        self.port_dir = self.run_dir / rack.port_dir
        self.control_path = self.run_dir / CONTROL_SOCKET
        self.rack_file = self.run_dir / RESOLVED_RACK
        self._stations: dict[str, _Served] = {}
        self._boards: dict[str, SimBoard] = {}
        self._relay_specs: dict[str, RelayBoardSpec] = {}  # as served (address filled in)
        self._supplies: dict[str, SimSupply] = {}
        self._probes: dict[str, Any] = {}
        self._control: ControlServer | None = None
        self._resolved: Rack | None = None
        self._images: dict[tuple[str, str], bytes] = {}
        self.configs = SimConfigs(SchemaSource.resolve(rack_schemas=rack.schemas))  # rig.sim.configs

    @property
    def resolved(self) -> Rack:
        """The rack with every port and address filled in (only valid while started)."""
        if self._resolved is None:
            raise SimServeError(f"simulated rack {self.rack.name} is not started")
        return self._resolved

    def __enter__(self) -> SimRack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- starting and stopping ---------------------------------------------------------------------

    def start(self) -> Rack:
        """Serve everything; returns the resolved rack (also written to run_dir/rack.toml)."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if len(str(self.control_path)) > _UNIX_PATH_MAX:
            raise SimServeError(f"run directory too deep for a Unix socket: {self.control_path}")
        try:
            relays = tuple(self._serve_relay(spec) for spec in self.rack.relays)
            supplies = tuple(self._serve_supply(spec) for spec in self.rack.supplies)
            stations = tuple(self._serve_station(station) for station in self.rack.stations)
            for served in self._stations.values():
                self._wire_power(served.station)
            for served in self._stations.values():
                served.loop.start()
            self._control = ControlServer(self, self.control_path)
            self._wait_booted()
        except BaseException:
            self.stop()
            raise
        self._resolved = replace(
            self.rack,
            relays=relays,
            supplies=supplies,
            stations=stations,
            control=str(self.control_path),
            sim_speed=self.speed,
        )
        self.rack_file.write_text(self._resolved.to_toml())
        return self._resolved

    def _wait_booted(self) -> None:
        """Wait (bounded) until every board has booted: USB up, or nothing left to do (e.g. a dead board).

        A USB node's port must be in place too: the device says USB is up just before its port is made.
        """
        nodes = [node for served in self._stations.values() for node in served.nodes.values()]
        usb = [(served.usb_node, served.usb.path) for served in self._stations.values()]
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not (
            all(node.usb_up or not node.busy for node in nodes)
            and all(path.exists() for node, path in usb if node.usb_up)
        ):
            if time.monotonic() > deadline:
                log.warning("simulated boards still booting after %.3g s", READY_TIMEOUT_S)
                return
            time.sleep(0.005)

    def stop(self) -> None:
        """Stop serving; symlinks, ptys, sockets and servers are gone afterwards."""
        if self._control is not None:
            self._control.close()
            self._control = None
        closing: list[SimBoard | SimSupply] = [*self._boards.values(), *self._supplies.values()]
        for thing in closing:
            thing.close()  # first: a late relay command must not power a board whose port is closing
        stopping = [threading.Thread(target=probe.stop, daemon=True) for probe in self._probes.values()]
        for thread in stopping:  # in parallel: each waits out pyocd's 0.5 s server poll
            thread.start()
        for thread in stopping:
            thread.join(JOIN_TIMEOUT_S)
        for served in self._stations.values():
            served.loop.stop()
        self._stations.clear()
        self._probes.clear()
        self._boards.clear()
        self._supplies.clear()
        self._resolved = None
        with contextlib.suppress(FileNotFoundError):
            self.rack_file.unlink()

    def _serve_relay(self, spec: RelayBoardSpec) -> RelayBoardSpec:
        if spec.kind not in RELAY_SERVERS:
            raise SimServeError(f"relay board {spec.name}: kind {spec.kind} cannot be simulated")
        board, address = RELAY_SERVERS[spec.kind](spec)
        self._boards[spec.name] = board
        self._relay_specs[spec.name] = _at_address(spec, address)
        return self._relay_specs[spec.name]

    def _serve_supply(self, spec: SupplySpec) -> SupplySpec:
        if spec.kind not in SUPPLY_SERVERS:
            raise SimServeError(f"supply {spec.name}: kind {spec.kind} cannot be simulated")
        supply = SUPPLY_SERVERS[spec.kind](spec)
        self._supplies[spec.name] = supply
        return _at_address(spec, supply.address)

    def _serve_station(self, station: Station) -> Station:
        assert station.sim is not None and station.usb_serial is not None
        bus = CanBus() if station.sim.peers else None
        nodes: dict[int, SimEsc] = {}
        for node in station.sim.nodes:
            name = station.name if node is station.sim.node else f"{station.name}/can{node.can_id}"
            try:
                spec = self._node_spec(station, node, name)
                nodes[node.can_id] = SimEsc(spec, DeviceClock(self.speed), bus=bus, configs=self.configs)
            except SimError as exc:
                raise RackFileError(
                    f"{self.rack.path or self.rack.name}: station {station.name!r}: key 'faults': {exc}"
                ) from exc
        usb_node = nodes[station.sim.node.can_id]
        loop = DeviceLoop(station.name, list(nodes.values()))
        served = _Served(station, loop, nodes, UsbPort(usb_node, loop, self.port_dir, station.usb_serial))
        self._stations[station.name] = served
        changes: dict[str, Any] = {"port": str(served.usb.path)}
        if station.sim.tcp_bridge is not None:
            served.bridge = TcpBridge(usb_node, loop, station.sim.tcp_bridge)
            changes["bridge"] = served.bridge.url
        if station.swd is not None:
            changes["swd"] = replace(station.swd, probe=self._serve_probe(station.name, usb_node))
        changes["images"] = self._write_images(station)
        return replace(station, **changes)

    @staticmethod
    def _node_spec(station: Station, node: SimNode, name: str) -> SimEscSpec:
        assert station.sim is not None and station.usb_serial is not None
        return SimEscSpec(
            name=name,
            hw=node.hw,
            fw=node.fw,
            uid=node.uid,
            usb_serial=station.usb_serial if node is station.sim.node else node.uid.hex().upper(),
            can_id=node.can_id,
            bootloader=node.bootloader,
            faults=node.faults,
        )

    def _write_images(self, station: Station) -> StationImages:
        """The station's images as desktop-tool folders in the run directory: its own firmware (the baseline),
        the next release (the candidate; for the newest release the one before it) and the bootloader its board
        shipped with (rig.device.update_format.shipped_bootloader); images the rack file names are kept."""
        assert station.sim is not None
        hw, shipped = station.sim.node.hw, FirmwareVersion.parse(station.sim.node.fw)
        candidate = candidate_version(shipped)
        folder = self.run_dir / "images" / station.name
        for role, version in (("baseline", shipped), ("firmware", candidate)):
            target = folder / role / hw / FIRMWARE_FILE
            if not target.is_file():
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(self._image(hw, str(version)))
        boot = folder / "bootloader" / GENERIC_BOOTLOADER
        if not boot.is_file():
            boot.parent.mkdir(parents=True, exist_ok=True)
            boot.write_bytes(make_bootloader_image(generation=shipped_bootloader(release(shipped).date)))
        given = station.images or StationImages()
        return StationImages(
            firmware=given.firmware or str(folder / "firmware"),
            firmware_version=given.firmware_version or str(candidate),
            baseline=given.baseline or str(folder / "baseline"),
            baseline_version=given.baseline_version or str(shipped),
            bootloader=given.bootloader or str(boot.parent),
        )

    def _image(self, hw: str, version: str) -> bytes:
        key = (hw, version)
        if key not in self._images:
            self._images[key] = make_firmware_image(hw, version)
        return self._images[key]

    def _serve_probe(self, name: str, device: Any) -> str:
        from rig.sim.swd_probe import SimSwdProbe, SimSwdServer

        probe = SimSwdProbe(device.flash, unique_id=f"sim-swd-{name}", powered=lambda: bool(device.powered))
        server = SimSwdServer(probe)
        self._probes[name] = server
        return server.start()

    def _wire_power(self, station: Station) -> None:
        """Wire the station's power input to its relay channel and/or supply, then switch it on."""

        def power(on: bool) -> None:
            self.power(station.name, on)

        supply = self._supplies.get(station.supply) if station.supply else None
        if station.relay is not None:
            self._boards[station.relay.board].wire(station.relay.channel, supply.branch(power) if supply else power)
        elif supply is not None:
            supply.wire(power)
        self.power(station.name, True)
        if supply is not None:
            supply.set_output(True)
        if station.relay is not None:
            self._switch_on(station)

    def _switch_on(self, station: Station) -> None:
        """Close the station's relay through the board's own protocol, so its state reads back on."""
        from rig.hardware.power.base import open_relay_board

        assert station.relay is not None
        spec = self._relay_specs[station.relay.board]
        board = open_relay_board(spec.kind, spec.url, **spec.open_options)
        try:
            board.set(station.relay.channel, True)
        finally:
            board.close()

    # --- access for tests --------------------------------------------------------------------------

    def _served(self, name: str) -> _Served:
        if name not in self._stations:
            raise SimServeError(f"simulated rack {self.rack.name}: no station {name!r}; have {list(self._stations)}")
        return self._stations[name]

    def device(self, name: str, can_id: int | None = None) -> SimEsc:
        """The SimEsc of station `name` (its USB node, or CAN node `can_id`); it is thread-safe."""
        served = self._served(name)
        if can_id is None:
            return served.usb_node
        if can_id not in served.nodes:
            raise SimServeError(f"station {name}: no CAN node {can_id}; have {sorted(served.nodes)}")
        return served.nodes[can_id]

    def power(self, name: str, on: bool) -> None:
        """Power every node of a station on or off (what its relay channel does)."""
        for node in self._served(name).nodes.values():
            node.set_power(on)

    def fault(self, name: str, fault: str, on: bool = True, *, can_id: int | None = None, **params: Any) -> None:
        """Set or clear a fault (rig.sim.faults catalogue) on a station's node."""
        self.device(name, can_id).faults.set(fault, on, **params)

    def swd_fault(self, name: str, fault: str, on: bool = True, **params: int) -> None:
        """Set or clear a fault of station `name`'s SWD probe (rig.sim.swd_probe.SWD_FAULTS; stuck_bits takes
        address and mask)."""
        if name not in self._probes:
            raise SimServeError(f"station {name} has no SWD probe (swd in [[station]]); have {list(self._probes)}")
        self._probes[name].probe.set_fault(fault, on, **params)

    def responding(self, name: str, on: bool) -> None:
        """Make relay board or supply `name` answer (True) or ignore every command, as a dead one (False)."""
        thing = self._boards.get(name) or self._supplies.get(name)
        if thing is None:
            known = [*self._boards, *self._supplies]
            raise SimServeError(f"simulated rack {self.rack.name}: no relay board or supply {name!r}; have {known}")
        thing.responding = on

    def drop_tcp(self, name: str) -> None:
        """Drop the TCP bridge's client of station `name`."""
        bridge = self._served(name).bridge
        if bridge is None:
            raise SimServeError(f"station {name} has no TCP bridge (tcp_bridge in [station.sim])")
        bridge.drop()

    def port(self, name: str) -> UsbPort:
        """The USB port of station `name` (its stable `path`, current `device_path`, `enumerations`)."""
        return self._served(name).usb

    def state(self) -> dict[str, Any]:
        """Every station's state, JSON-ready."""
        return {name: _state(served) for name, served in self._stations.items()}


def _state(served: _Served) -> dict[str, Any]:
    usb = served.usb
    return {
        "port": str(usb.path),
        "device_path": usb.device_path,
        "usb_up": usb.device_path is not None,
        "host_connected": usb.host_connected,
        "enumerations": usb.enumerations,
        "tcp": served.bridge.address if served.bridge else None,
        "tcp_connected": served.bridge.connected if served.bridge else False,
        "nodes": {
            str(can_id): {"powered": bool(node.powered), "faults": dict(node.faults.active())}
            for can_id, node in served.nodes.items()
        },
    }


# --- control socket --------------------------------------------------------------------------------


class ControlServer:
    """JSON lines on a Unix socket: {"op": "state" | "power" | "fault" | "swd_fault" | "responding" | "drop_tcp"
    | "ping", ...}.

    Replies are one JSON line each: {"ok": true, ...} or {"ok": false, "error": "..."}.
    """

    def __init__(self, rack: SimRack, path: Path) -> None:
        self.rack = rack
        self.path = Path(path)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        handler = type("_Handler", (_ControlHandler,), {"control": self})
        self._server = socketserver.ThreadingUnixStreamServer(str(self.path), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="sim-control")
        self._thread.daemon = True
        self._thread.start()

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        rack = self.rack
        device, can_id = request.get("device", ""), request.get("can_id")
        if op == "ping":
            return {}
        if op == "state":
            return {"devices": rack.state()}
        if op == "power":
            rack.power(device, bool(request["on"]))
            return {}
        if op == "fault":
            rack.fault(
                device, request["name"], bool(request.get("on", True)), can_id=can_id, **request.get("params", {})
            )
            return {}
        if op == "swd_fault":
            rack.swd_fault(device, request["name"], bool(request.get("on", True)), **request.get("params", {}))
            return {}
        if op == "responding":
            rack.responding(request["name"], bool(request["on"]))
            return {}
        if op == "drop_tcp":
            rack.drop_tcp(device)
            return {}
        raise SimServeError(f"unknown control op {op!r} (ping, state, power, fault, swd_fault, responding, drop_tcp)")

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(JOIN_TIMEOUT_S)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


class _ControlHandler(socketserver.StreamRequestHandler):
    control: ControlServer
    timeout = 60.0  # an idle client is let go

    def handle(self) -> None:
        for line in self.rfile:
            try:
                reply = {"ok": True, **self.control.handle(json.loads(line))}
            except (RigError, KeyError, TypeError, ValueError) as exc:
                reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            self.wfile.write(json.dumps(reply).encode() + b"\n")


class SimControl:
    """Client of a running simulator's control socket (the `control` key of a served rack file)."""

    def __init__(self, path: str | Path, timeout_s: float = CONTROL_TIMEOUT_S) -> None:
        self.path = str(path)
        self.timeout_s = timeout_s

    def request(self, op: str, **fields: Any) -> dict[str, Any]:
        """Send one request; SimServeError if the simulator refuses it, RigTimeout if it does not answer."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(self.timeout_s)
                sock.connect(self.path)
                sock.sendall(json.dumps({"op": op, **fields}).encode() + b"\n")
                reply = b""
                while not reply.endswith(b"\n"):
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    reply += chunk
        except TimeoutError:
            raise RigTimeout(f"simulator control {op} at {self.path}", self.timeout_s) from None
        except OSError as exc:
            raise SimServeError(f"simulator control at {self.path}: {exc}") from exc
        if not reply:
            raise SimServeError(f"simulator control at {self.path} closed without answering {op}")
        answer = json.loads(reply)
        if not answer.pop("ok", False):
            raise SimServeError(f"simulator control {op}: {answer.get('error')}")
        return answer

    def ping(self) -> None:
        self.request("ping")

    def state(self) -> dict[str, Any]:
        return self.request("state")["devices"]

    def power(self, device: str, on: bool) -> None:
        self.request("power", device=device, on=on)

    def fault(self, device: str, name: str, on: bool = True, *, can_id: int | None = None, **params: Any) -> None:
        self.request("fault", device=device, name=name, on=on, can_id=can_id, params=params)

    def swd_fault(self, device: str, name: str, on: bool = True, **params: int) -> None:
        self.request("swd_fault", device=device, name=name, on=on, params=params)

    def responding(self, name: str, on: bool) -> None:
        """A relay board's or supply's `responding` flag."""
        self.request("responding", name=name, on=on)

    def drop_tcp(self, device: str) -> None:
        self.request("drop_tcp", device=device)
