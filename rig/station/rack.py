"""Rack files: which ESCs a rack has, how to reach them, and what powers and programs them.

A rack file is TOML (read with tomllib); ``fixtures/racks/example.toml`` documents every key. A
simulated rack (``simulated = true``) is served by the simulator (``rig sim serve``), which fills in
ports and addresses and writes the *resolved* rack (``rack.toml`` in its run directory, with the
``control`` key set): host code uses only a resolved rack, exactly as it uses a rack of hardware.

Every mistake is a :class:`~rig.errors.RackFileError` naming the file, the entry and the key.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from rig.errors import RackFileError
from rig.hardware.power.base import BOARD_KINDS, SUPPLY_KINDS

DEFAULT_PORT_DIR = "by-id"
SIM_RELAY_KINDS = ("lcus", "numato", "modbus-coils", "modbus-registers")  # what the simulator can serve
SWD_CONNECT_MODES = ("halt", "pre-reset", "under-reset", "attach")  # pyocd's connect_mode values (ConnectMode)
MODBUS_TRANSPORTS = ("tcp", "rtu")
URL_SCHEMES = ("socket", "rfc2217", "loop", "spy", "alt", "hwgrep")  # pyserial URL handlers
LEASE_BACKENDS = ("sqlite", "labgrid")  # rig.station.leases

# Channel numbers as the board's own protocol counts them (rig.hardware.power.base): first channel per kind.
FIRST_CHANNEL = {"lcus": 1, "numato": 0, "modbus-coils": 0, "modbus-registers": 1, "hid": 1, "command": 0}
# Options a relay kind takes besides name/kind/port/tcp (passed to rig.hardware.power.base.open_relay_board).
RELAY_OPTIONS = {
    "lcus": ("channels",),
    "numato": ("channels",),
    "modbus-coils": ("unit", "channels", "baudrate", "readback"),
    "modbus-registers": ("unit", "channels", "baudrate", "readback"),
    "hid": (),
    "command": ("argv", "on_word", "off_word"),
}
_SERIAL_ONLY = ("lcus", "numato")  # boards reached by a serial port only
_MODBUS = ("modbus-coils", "modbus-registers")
_HOST_PORT = re.compile(r"^(?P<host>[A-Za-z0-9_.\-\[\]:]+):(?P<port>\d{1,5})$")
_FW = re.compile(r"^\d+\.\d{2}$")
_PLACE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")  # a labgrid place name (no "/", no "+token")


# --- model -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RelayRef:
    """A station's power: channel `channel` of relay board `board`."""

    board: str
    channel: int

    def __str__(self) -> str:
        return f"{self.board}:{self.channel}"


@dataclass(frozen=True)
class RelayBoardSpec:
    """A relay board: kind (rig.hardware.power.base.BOARD_KINDS), address, and the board's options."""

    name: str
    kind: str
    port: str | None = None  # serial path or pyserial URL (hid: the board ID)
    tcp: str | None = None  # "HOST:PORT" for Modbus TCP
    channels: int = 8
    options: Mapping[str, Any] = field(default_factory=dict)  # unit, baudrate, readback, argv, ...
    transport: str = "tcp"  # simulated Modbus boards only: how the simulator serves it (tcp or rtu)

    @property
    def url(self) -> str:
        """The address as rig.hardware.power.base.open_relay_board takes it ("tcp://HOST:PORT" for Modbus TCP)."""
        return f"tcp://{self.tcp}" if self.tcp else (self.port or "")

    @property
    def open_options(self) -> dict[str, Any]:
        """Keyword options for rig.hardware.power.base.open_relay_board (channels included where the kind has it)."""
        extra = {"channels": self.channels} if "channels" in RELAY_OPTIONS[self.kind] else {}
        return {**extra, **self.options}


@dataclass(frozen=True)
class SupplySpec:
    """A bench supply (rig.hardware.power.base.SUPPLY_KINDS)."""

    name: str
    kind: str = "rd6006"
    port: str | None = None
    tcp: str | None = None
    unit: int = 1
    transport: str = "tcp"  # simulated supplies only

    @property
    def url(self) -> str:
        return f"tcp://{self.tcp}" if self.tcp else (self.port or "")


@dataclass(frozen=True)
class SwdSpec:
    """A station's SWD probe (pyocd): probe unique id or "remote:HOST:PORT", target type, clock, connect mode."""

    probe: str | None
    target: str
    frequency: int = 4_000_000
    connect: str = "halt"


@dataclass(frozen=True)
class SimNode:
    """One simulated ESC MCU: the USB node of a station or a CAN peer behind it."""

    can_id: int
    hw: str
    fw: str
    uid: bytes
    bootloader: bool = True
    faults: tuple[str, ...] = ()


@dataclass(frozen=True)
class SimSpec:
    """How the simulator builds a station: its USB node, CAN peers (a dual board), and an optional TCP bridge."""

    node: SimNode
    peers: tuple[SimNode, ...] = ()
    tcp_bridge: int | None = None  # None: no bridge; 0: an ephemeral port; else that port

    @property
    def nodes(self) -> tuple[SimNode, ...]:
        return (self.node, *self.peers)


@dataclass(frozen=True)
class StationImages:
    """The images a station's tests use (files or desktop-tool folders; versions as X.YY): the candidate
    firmware, the last release (baseline) and the bootloader. A served simulated rack fills them in."""

    firmware: str | None = None
    firmware_version: str | None = None
    baseline: str | None = None
    baseline_version: str | None = None
    bootloader: str | None = None


SettingValue = str | int | float | bool
CONFIG_KINDS = ("mcconf", "appconf")


@dataclass(frozen=True)
class ConfigSettings:
    """Factory settings by field name (rig.config.apply): per config ("mcconf", "appconf"), field -> value."""

    fields: Mapping[str, Mapping[str, SettingValue]] = field(default_factory=dict)

    def over(self, base: ConfigSettings) -> ConfigSettings:
        """These settings on top of `base` (a station's over its hardware's)."""
        kinds = [k for k in CONFIG_KINDS if k in base.fields or k in self.fields]
        return ConfigSettings({k: {**base.fields.get(k, {}), **self.fields.get(k, {})} for k in kinds})

    def __bool__(self) -> bool:
        return any(self.fields.values())


@dataclass(frozen=True)
class HwConfig:
    """A top-level [[config]]: factory settings for every board of one hardware."""

    hw: str
    settings: ConfigSettings


@dataclass(frozen=True)
class Station:
    """One ESC (or dual board) on the rack and everything attached to it."""

    name: str
    port: str | None = None  # device path (a /dev/serial/by-id name, or the simulator's symlink)
    url: str | None = None  # pyserial URL instead of a path: socket://HOST:65102, rfc2217://...
    usb_serial: str | None = None  # finds the port again after re-enumeration
    bridge: str | None = None  # socket://HOST:PORT of a TCP bridge to the same ESC, if there is one
    relay: RelayRef | None = None
    supply: str | None = None
    swd: SwdSpec | None = None
    can_ids: tuple[int, ...] = ()
    tags: tuple[str, ...] = ()
    sim: SimSpec | None = None
    images: StationImages | None = None
    hw: str | None = None  # the board's hardware name (checked against images; a simulated board's own)
    limits: Mapping[str, str] = field(default_factory=dict)  # [station.limits]: over the rack's [limits]
    config: ConfigSettings | None = None  # [station.config]: this station's factory settings
    place: str | None = None  # the labgrid place it is leased as; its addresses come from it when none are given

    @property
    def link_url(self) -> str | None:
        """What rig.transport.link.Link.open takes for this station (None until a simulated rack is served)."""
        return self.url or self.port


@dataclass(frozen=True)
class Rack:
    """A rack: relay boards, supplies and stations."""

    name: str
    stations: tuple[Station, ...]
    relays: tuple[RelayBoardSpec, ...] = ()
    supplies: tuple[SupplySpec, ...] = ()
    simulated: bool = False
    port_dir: str = DEFAULT_PORT_DIR  # simulated racks: where stable port names go, relative to the run dir
    control: str | None = None  # served simulated racks: the simulator's control socket
    path: Path | None = field(default=None, compare=False)
    leases: str | None = None  # directory of the station lease database shared by runs (rig.station.leases)
    state_dir: str | None = None  # backups, records, leases (rig.station.state; default per user)
    sim_speed: float | None = None  # served simulated racks: the simulator's time speed (0 instant, 1 real)
    schemas: str | None = None  # VESC Tool source folder or exported schema files (rig.config.source)
    configs: tuple[HwConfig, ...] = ()  # [[config]]: factory settings per hardware
    limits: Mapping[str, str] = field(default_factory=dict)  # [limits]: factory telemetry limits, "LOW:HIGH"
    erase_answering_boards: bool = False  # [factory]: rig factory / rig panel may mass erase a board that answers

    lease_backend: str | None = None  # "sqlite" (default) or "labgrid" (rig.station.leases)
    lg_coordinator: str | None = None  # labgrid leases: the coordinator's HOST:PORT

    def factory_settings(self, station: Station) -> ConfigSettings:
        """The settings the factory writes to a station's board: its hardware's [[config]], then its own."""
        settings = ConfigSettings()
        for entry in self.configs:
            if entry.hw == station.hw:
                settings = entry.settings.over(settings)
        return (station.config or ConfigSettings()).over(settings)

    @property
    def served(self) -> bool:
        """True for a hardware rack, or a simulated rack resolved by a running simulator."""
        return not self.simulated or self.control is not None

    def station(self, name: str) -> Station:
        for station in self.stations:
            if station.name == name:
                return station
        raise RackFileError(f"{self._where}: no station named {name!r}; stations: {self._names(self.stations)}")

    def relay(self, name: str) -> RelayBoardSpec:
        for board in self.relays:
            if board.name == name:
                return board
        raise RackFileError(f"{self._where}: no relay board named {name!r}; boards: {self._names(self.relays)}")

    def supply(self, name: str) -> SupplySpec:
        for supply in self.supplies:
            if supply.name == name:
                return supply
        raise RackFileError(f"{self._where}: no supply named {name!r}; supplies: {self._names(self.supplies)}")

    def select(self, names_or_tags: Iterable[str] = ()) -> tuple[Station, ...]:
        """Stations whose name or a tag is in `names_or_tags` (all stations when empty), in rack order."""
        wanted = set(names_or_tags)
        if not wanted:
            return self.stations
        known = {s.name for s in self.stations} | {t for s in self.stations for t in s.tags}
        unknown = sorted(wanted - known)
        if unknown:
            raise RackFileError(f"{self._where}: no station or tag named {', '.join(unknown)}")
        return tuple(s for s in self.stations if s.name in wanted or wanted.intersection(s.tags))

    def to_toml(self) -> str:
        """The rack as a TOML rack file that load_rack reads back to an equal Rack."""
        return _dump(self)

    @property
    def _where(self) -> str:
        return str(self.path) if self.path else f"rack {self.name!r}"

    @staticmethod
    def _names(entries: Iterable[Station | RelayBoardSpec | SupplySpec]) -> str:
        return ", ".join(e.name for e in entries) or "none"


# --- loading ---------------------------------------------------------------------------------------


def load_rack(path: str | Path) -> Rack:
    """Read and validate a rack file."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise RackFileError(f"{path}: cannot read rack file: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise RackFileError(f"{path}: not valid TOML: {exc}") from exc
    return parse_rack(data, path)


def parse_rack(data: Mapping[str, Any], path: Path | str = "<rack>") -> Rack:
    """Validate the parsed TOML of a rack file."""
    top = _Entry(str(path), "rack", data)
    simulated = top.flag("simulated", False)
    name = top.required_text("name")
    port_dir, control, sim_speed = DEFAULT_PORT_DIR, None, None
    if simulated:
        port_dir = top.text("port_dir", DEFAULT_PORT_DIR) or DEFAULT_PORT_DIR
        control = top.text("control")
        sim_speed = top.number("sim_speed", None, low=0.0)
    else:
        for key in ("port_dir", "control", "sim_speed"):
            top.forbid(key, "simulated racks")
    relays = tuple(_relay(e, simulated) for e in top.tables("relay"))
    supplies = tuple(_supply(e, simulated) for e in top.tables("supply"))
    top.unique("relay", [r.name for r in relays])
    top.unique("supply", [s.name for s in supplies])
    boards = {r.name: r for r in relays}
    stations = tuple(
        _station(e, simulated, boards, {s.name for s in supplies}, Path(path)) for e in top.tables("station")
    )
    top.unique("station", [s.name for s in stations])
    top.unique("station", [s.usb_serial for s in stations if s.usb_serial], key="usb_serial")
    leases = _folder(top, "leases", Path(path))
    state_dir = _folder(top, "state_dir", Path(path))
    schemas = _folder(top, "schemas", Path(path))
    configs = tuple(_hw_config(e) for e in top.tables("config"))
    limits = _limits(top.table("limits"))
    erase_answering_boards = _factory(top.table("factory"))
    top.unique("config", [c.hw for c in configs], key="hw")
    lease_backend, lg_coordinator = _lease_choice(top, stations, leases)
    top.done()
    if not stations:
        raise RackFileError(f"{path}: rack: no [[station]] entries")
    rack = Rack(name, stations, relays, supplies, simulated, port_dir, control, Path(path))
    return replace(
        rack,
        leases=leases,
        state_dir=state_dir,
        sim_speed=sim_speed,
        schemas=schemas,
        configs=configs,
        limits=limits,
        lease_backend=lease_backend,
        lg_coordinator=lg_coordinator,
        erase_answering_boards=erase_answering_boards,
    )


def _lease_choice(top: _Entry, stations: tuple[Station, ...], leases: str | None) -> tuple[str | None, str | None]:
    """lease_backend and lg_coordinator: labgrid needs no lease directory, and stations on places need labgrid."""
    backend = top.choice("lease_backend", LEASE_BACKENDS, "sqlite") if "lease_backend" in top.data else None
    coordinator = top.host_port("lg_coordinator")
    if backend == "labgrid" and leases is not None:
        top.fail("leases", 'a lease directory is for the sqlite backend, not lease_backend = "labgrid"')
    if coordinator is not None and backend != "labgrid":
        top.fail("lg_coordinator", 'only with lease_backend = "labgrid"')
    on_places = [s.name for s in stations if s.place is not None]
    if on_places and backend != "labgrid":
        top.fail("lease_backend", f'stations {", ".join(on_places)} name labgrid places: set lease_backend = "labgrid"')
    return backend, coordinator


def _folder(top: _Entry, key: str, path: Path) -> str | None:
    """A directory key: a path (relative ones are relative to the rack file's folder)."""
    text = top.text(key)
    if text is None:
        return None
    if "://" in text:
        top.fail(key, f"{text!r} is not a directory path")
    return str((path.parent / Path(text).expanduser()).resolve())


def _settings(e: _Entry) -> ConfigSettings:
    """mcconf = { field = value, ... } and appconf = { ... }: values are numbers, true/false or text (an enum
    label); the fields are checked against the board's schema when they are written."""
    found: dict[str, dict[str, SettingValue]] = {}
    for kind in CONFIG_KINDS:
        table = e.table(kind)
        if table is None:
            continue
        for name, value in table.data.items():
            if not name.strip():
                table.fail(name, "a field name must not be empty")
            if not isinstance(value, (str, int, float, bool)):
                table.fail(name, f"must be a number, true/false or text (an enum label), not {value!r}")
            table.seen.add(name)
        found[kind] = dict(table.data)
    return ConfigSettings(found)


LIMIT_NAMES = ("v_in", "temp_fet", "temp_motor")  # what the factory checks against limits (rig.factory.flow)
_RANGE = re.compile(r"^\s*(-?\d+(\.\d+)?)?\s*:\s*(-?\d+(\.\d+)?)?\s*$|^\s*none\s*$", re.IGNORECASE)


def _limits(e: _Entry | None) -> dict[str, str]:
    """[limits] / [station.limits]: "LOW:HIGH" (either side may be empty) or "none", per measurement."""
    if e is None:
        return {}
    found = {}
    for name in LIMIT_NAMES:
        text = e.text(name)
        if text is None:
            continue
        if not _RANGE.match(text):
            e.fail(name, f'{text!r} is not "LOW:HIGH" (either side may be empty, e.g. "30:60", ":70") or "none"')
        low, _, high = text.partition(":")
        if low.strip() and high.strip() and float(low) > float(high):
            e.fail(name, f"{text!r}: the low limit is above the high one")
        found[name] = text
    e.done()
    return found


def _factory(e: _Entry | None) -> bool:
    """[factory]: erase_answering_boards (default false): whether the factory (`rig factory`, `rig panel`) may
    mass erase a board that already answers over USB (it holds firmware and settings)."""
    if e is None:
        return False
    allowed = e.flag("erase_answering_boards", False)
    e.done()
    return allowed


def _hw_config(e: _Entry) -> HwConfig:
    e.label = f"config {e.data.get('hw', '#' + str(e.index))!r}"
    hw = e.text("hw", required=True)
    assert hw is not None
    settings = _settings(e)
    e.done()
    return HwConfig(hw, settings)


def _images(e: _Entry | None, path: Path) -> StationImages | None:
    """[station.images]: paths relative to the rack file's folder, versions as X.YY."""
    if e is None:
        return None
    found: dict[str, str | None] = {}
    for key in ("firmware", "baseline", "bootloader"):
        text = e.text(key)
        found[key] = None if text is None else str((path.parent / Path(text).expanduser()).resolve())
    for key in ("firmware_version", "baseline_version"):
        text = e.text(key)
        if text is not None and not _FW.match(text):
            e.fail(key, f'{text!r} is not MAJOR.MINOR with two minor digits (for example "6.05")')
        found[key] = text
    e.done()
    return StationImages(**found)


def _relay(e: _Entry, simulated: bool) -> RelayBoardSpec:
    e.label = f"relay {e.data.get('name', '#' + str(e.index))!r}"
    name = e.required_text("name")
    kind = e.choice("kind", BOARD_KINDS, required=True)
    if simulated and kind not in SIM_RELAY_KINDS:
        e.fail("kind", f"{kind!r} cannot be simulated; simulated kinds: {', '.join(SIM_RELAY_KINDS)}")
    port, tcp = e.text("port"), e.host_port("tcp")
    transport = e.choice("transport", MODBUS_TRANSPORTS, "tcp") if simulated and kind in _MODBUS else "tcp"
    if port and tcp:
        e.fail("tcp", "give either port or tcp, not both")
    if tcp and kind not in _MODBUS:
        e.fail("tcp", f"only Modbus boards are reached over TCP, not {kind}")
    if not simulated and kind in (*_SERIAL_ONLY, *_MODBUS) and not (port or tcp):
        e.fail("port", "missing (a serial path or pyserial URL" + (", or tcp" if kind in _MODBUS else "") + ")")
    if kind == "command" and (port or tcp):
        e.fail("port" if port else "tcp", "a command board has no address; give argv")
    channels = e.integer("channels", 8, low=1, high=256)
    options: dict[str, Any] = {}
    for key in RELAY_OPTIONS[kind]:
        if key == "channels" or key not in e.data:
            continue
        if key == "argv":
            options[key] = e.texts(key)
        elif key == "readback":
            options[key] = e.flag(key, True)
        elif key in ("on_word", "off_word"):
            options[key] = e.text(key)
        else:
            options[key] = e.integer(key, 0, low=0, high=4_000_000)
    if kind == "command" and not options.get("argv"):
        e.fail("argv", "missing (the program to run, with {channel} and {state} placeholders)")
    e.done()
    return RelayBoardSpec(name, kind, port, tcp, channels, options, transport)


def _supply(e: _Entry, simulated: bool) -> SupplySpec:
    e.label = f"supply {e.data.get('name', '#' + str(e.index))!r}"
    name = e.required_text("name")
    kind = e.choice("kind", SUPPLY_KINDS, "rd6006")
    port, tcp = e.text("port"), e.host_port("tcp")
    unit = e.integer("unit", 1, low=0, high=247)
    transport = e.choice("transport", MODBUS_TRANSPORTS, "tcp") if simulated else "tcp"
    if port and tcp:
        e.fail("tcp", "give either port or tcp, not both")
    if not simulated and not (port or tcp):
        e.fail("port", "missing (a serial path or pyserial URL, or tcp)")
    e.done()
    return SupplySpec(name, kind or "rd6006", port, tcp, unit, transport)


def _station(
    e: _Entry, simulated: bool, boards: Mapping[str, RelayBoardSpec], supplies: set[str], path: Path
) -> Station:
    e.label = f"station {e.data.get('name', '#' + str(e.index))!r}"
    name = e.required_text("name")
    place = _place(e, simulated)
    port, url, usb_serial = e.text("port"), e.url("url"), e.text("usb_serial")
    bridge = e.url("bridge")
    if port and url:
        e.fail("url", "give either port or url, not both")
    if not simulated and not (port or url or usb_serial or "place" in e.data):
        e.fail("port", "missing (a device path, or url, or usb_serial to find the port by, or a labgrid place)")
    relay = _relay_ref(e, boards)
    supply = e.text("supply")
    if supply is not None and supply not in supplies:
        e.fail("supply", f"no [[supply]] named {supply!r}; supplies: {', '.join(sorted(supplies)) or 'none'}")
    swd = _swd(e, simulated)
    can_ids = tuple(e.integers("can_ids", low=0, high=254))
    tags = tuple(e.texts("tags"))
    sim = None
    if simulated:
        sim = _sim(e.required_table("sim"), name)
        if not can_ids:
            can_ids = tuple(n.can_id for n in sim.nodes)
        elif set(can_ids) != {n.can_id for n in sim.nodes}:
            e.fail("can_ids", f"{list(can_ids)} differ from the simulated nodes {[n.can_id for n in sim.nodes]}")
        usb_serial = usb_serial or sim.node.uid.hex().upper()
    else:
        e.forbid("sim", "simulated racks")
    e.unique_values("can_ids", can_ids)
    images = _images(e.table("images"), path)
    hw = e.text("hw") or (sim.node.hw if sim else None)
    limits = _limits(e.table("limits"))
    config_table = e.table("config")
    config = None
    if config_table is not None:
        config = _settings(config_table)
        config_table.done()
    e.done()
    return Station(
        name,
        port,
        url,
        usb_serial,
        bridge,
        relay,
        supply,
        swd,
        can_ids,
        tags,
        sim,
        images,
        hw,
        config=config,
        limits=limits,
        place=place,
    )


def _place(e: _Entry, simulated: bool) -> str | None:
    """A labgrid place; without port/url/usb_serial, every address comes from it (rig.station.places)."""
    if simulated:
        e.forbid("place", "racks of hardware")
        return None
    place = e.text("place")
    if place is None:
        return None
    if not _PLACE.match(place):
        e.fail("place", f"{place!r} is not a labgrid place name (letters, digits, '_', '.', '-')")
    if not any(e.data.get(k) for k in ("port", "url", "usb_serial")):
        for key in ("relay", "supply", "bridge"):
            if key in e.data:
                e.fail(key, "comes from the place when the station gives no port, url or usb_serial")
        if isinstance(e.data.get("swd"), dict) and "probe" in e.data["swd"]:
            e.fail("swd", "its probe comes from the place (a NetworkService) when the station gives no port or url")
    return place


def _relay_ref(e: _Entry, boards: Mapping[str, RelayBoardSpec]) -> RelayRef | None:
    text = e.text("relay")
    if text is None:
        return None
    board, sep, channel_text = text.rpartition(":")
    if not sep or not board or not channel_text.isdigit():
        e.fail("relay", f'{text!r} is not BOARD:CHANNEL (for example "relays:1")')
    if board not in boards:
        e.fail("relay", f"no [[relay]] board named {board!r}; boards: {', '.join(boards) or 'none'}")
    spec, channel = boards[board], int(channel_text)
    first = FIRST_CHANNEL[spec.kind]
    last = first + spec.channels - 1
    if not first <= channel <= last:
        e.fail("relay", f"channel {channel} of {spec.kind} board {board!r} is out of range {first}..{last}")
    return RelayRef(board, channel)


def _swd(e: _Entry, simulated: bool) -> SwdSpec | None:
    table = e.table("swd")
    if table is None:
        return None
    probe = table.text("probe", required=not simulated and not e.data.get("place"))
    target = table.required_text("target")
    frequency = table.integer("frequency", 4_000_000, low=1_000, high=100_000_000)
    connect = table.choice("connect", SWD_CONNECT_MODES, "halt")
    table.done()
    return SwdSpec(probe, target, frequency, connect or "halt")


def _sim(e: _Entry, station: str) -> SimSpec:
    node = _sim_node(e, station, None)
    bridge = e.data.get("tcp_bridge", False)
    if isinstance(bridge, bool):
        e.seen.add("tcp_bridge")
        tcp_bridge = 0 if bridge else None
    else:
        tcp_bridge = e.integer("tcp_bridge", 0, low=0, high=65535)
    peers = []
    for index, table in enumerate(e.tables("peers"), 1):
        table.label = f"{e.label} peer {index}"
        peers.append(_sim_node(table, station, node))
        table.done()
    e.unique_values("peers", [n.can_id for n in (node, *peers)], what="can_id")
    e.done()
    return SimSpec(node, tuple(peers), tcp_bridge)


def _sim_node(e: _Entry, station: str, usb_node: SimNode | None) -> SimNode:
    """The USB node (usb_node None) or a CAN peer, which defaults to the USB node's hw, fw, bootloader."""
    hw = e.text("hw", usb_node.hw if usb_node else None, required=usb_node is None)
    fw = e.text("fw", usb_node.fw if usb_node else None, required=usb_node is None)
    assert hw is not None and fw is not None
    if not _FW.match(fw):
        e.fail("fw", f'{fw!r} is not MAJOR.MINOR with two minor digits (for example "6.02", "3.40")')
    can_id = e.integer("can_id", 0, low=0, high=254, required=usb_node is not None)
    seed = station if usb_node is None else f"{station}/can{can_id}"
    uid_text = e.text("uid")
    if uid_text is None:
        uid = hashlib.sha256(seed.encode()).digest()[:12]
    else:
        try:
            uid = bytes.fromhex(uid_text)
        except ValueError:
            uid = b""
        if len(uid) != 12:
            e.fail("uid", f"{uid_text!r} is not 24 hex digits (the 12-byte STM32 UID)")
    bootloader = e.flag("bootloader", usb_node.bootloader if usb_node else True)
    faults = tuple(e.texts("faults"))  # the simulator checks the names when it serves the rack
    return SimNode(can_id, hw, fw, uid, bootloader, faults)


class _Entry:
    """One table of the file: typed getters that name file, entry and key in every error."""

    def __init__(self, path: str, label: str, data: Any, index: int = 0) -> None:
        if not isinstance(data, dict):
            raise RackFileError(f"{path}: {label}: must be a table")
        self.path, self.label, self.data, self.index = path, label, data, index
        self.seen: set[str] = set()

    def fail(self, key: str, problem: str) -> None:
        raise RackFileError(f"{self.path}: {self.label}: key {key!r}: {problem}")

    def _get(self, key: str, kinds: type | tuple[type, ...], what: str, required: bool) -> Any:
        self.seen.add(key)
        if key not in self.data:
            if required:
                self.fail(key, "missing")
            return None
        value = self.data[key]
        if isinstance(value, bool) and bool not in (kinds if isinstance(kinds, tuple) else (kinds,)):
            self.fail(key, f"must be {what}, not {value!r}")
        if not isinstance(value, kinds):
            self.fail(key, f"must be {what}, not {value!r}")
        return value

    def required_text(self, key: str) -> str:
        found = self.text(key, required=True)
        assert found is not None  # _get raised for a missing one
        return found

    def text(self, key: str, default: str | None = None, *, required: bool = False) -> str | None:
        value = self._get(key, str, "a string", required)
        if value is not None and not value.strip():
            self.fail(key, "must not be empty")
        return default if value is None else value

    def flag(self, key: str, default: bool, *, required: bool = False) -> bool:
        value = self._get(key, bool, "true or false", required)
        return default if value is None else value

    def integer(self, key: str, default: int, *, low: int, high: int, required: bool = False) -> int:
        value = self._get(key, int, "an integer", required)
        if value is None:
            return default
        if not low <= value <= high:
            self.fail(key, f"{value} is out of range {low}..{high}")
        return value

    def number(self, key: str, default: float | None, *, low: float) -> float | None:
        value = self._get(key, (int, float), "a number", False)
        if value is None:
            return default
        if isinstance(value, bool) or value < low:
            self.fail(key, f"{value!r} is not a number of at least {low:g}")
        return float(value)

    def choice(self, key: str, choices: Iterable[str], default: str | None = None, *, required: bool = False) -> str:
        value = self.text(key, default, required=required)
        choices = tuple(choices)
        if value not in choices:
            self.fail(key, f"{value!r} is not one of {', '.join(choices)}")
        return value  # type: ignore[return-value]

    def texts(self, key: str) -> list[str]:
        value = self._get(key, list, "a list of strings", False) or []
        if not all(isinstance(v, str) and v for v in value):
            self.fail(key, f"must be a list of non-empty strings, not {value!r}")
        return value

    def integers(self, key: str, *, low: int, high: int) -> list[int]:
        value = self._get(key, list, "a list of integers", False) or []
        if not all(isinstance(v, int) and not isinstance(v, bool) and low <= v <= high for v in value):
            self.fail(key, f"must be a list of integers {low}..{high}, not {value!r}")
        return value

    def host_port(self, key: str) -> str | None:
        value = self.text(key)
        if value is not None and (not (m := _HOST_PORT.match(value)) or not 0 < int(m["port"]) < 65536):
            self.fail(key, f'{value!r} is not HOST:PORT (for example "127.0.0.1:502")')
        return value

    def url(self, key: str) -> str | None:
        value = self.text(key)
        if value is not None:
            parts = urlsplit(value)
            if parts.scheme not in URL_SCHEMES or (parts.scheme in ("socket", "rfc2217") and not _has_port(parts)):
                self.fail(key, f"{value!r} is not a pyserial URL such as socket://HOST:PORT or rfc2217://HOST:PORT")
        return value

    def table(self, key: str, *, required: bool = False) -> _Entry | None:
        value = self._get(key, dict, "a table", required)
        return None if value is None else _Entry(self.path, f"{self.label} {key}", value)

    def required_table(self, key: str) -> _Entry:
        found = self.table(key, required=True)
        assert found is not None  # _get raised for a missing one
        return found

    def tables(self, key: str) -> list[_Entry]:
        value = self._get(key, list, f"an array of tables ([[{key}]])", False) or []
        prefix = "" if self.label == "rack" else f"{self.label} "
        return [_Entry(self.path, f"{prefix}{key} #{i}", item, i) for i, item in enumerate(value, 1)]

    def forbid(self, key: str, where: str) -> None:
        self.seen.add(key)
        if key in self.data:
            self.fail(key, f"only allowed in {where}")

    def unique(self, what: str, values: list[str], key: str = "name") -> None:
        seen: set[str] = set()
        for value in values:
            if value in seen:
                raise RackFileError(f"{self.path}: {what} {value!r}: key {key!r}: duplicate")
            seen.add(value)

    def unique_values(self, key: str, values: Iterable[int], what: str = "value") -> None:
        values = list(values)
        dupes = sorted({v for v in values if values.count(v) > 1})
        if dupes:
            self.fail(key, f"duplicate {what} {dupes}")

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.seen)
        if unknown:
            self.fail(unknown[0], "unknown key" + (f" (also: {', '.join(unknown[1:])})" if unknown[1:] else ""))


def _has_port(parts: Any) -> bool:
    try:
        return bool(parts.hostname) and parts.port is not None
    except ValueError:
        return False


# --- writing ---------------------------------------------------------------------------------------


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {value!r} to a rack file")


def _lines(table: Mapping[str, Any]) -> list[str]:
    return [f"{key} = {_toml(value)}" for key, value in table.items() if value is not None]


def _settings_lines(prefix: str, settings: ConfigSettings) -> list[str]:
    out = []
    for kind, values in settings.fields.items():
        out += [f"[{prefix}.{kind}]", *(f"{json.dumps(name)} = {_toml(v)}" for name, v in values.items())]
    return out


def _node(node: SimNode) -> dict[str, Any]:
    out: dict[str, Any] = {"can_id": node.can_id, "hw": node.hw, "fw": node.fw, "uid": node.uid.hex()}
    out["bootloader"] = node.bootloader
    if node.faults:
        out["faults"] = list(node.faults)
    return out


def _dump(rack: Rack) -> str:
    top: dict[str, Any] = {
        "name": rack.name,
        "simulated": rack.simulated,
        "leases": rack.leases,
        "state_dir": rack.state_dir,
        "schemas": rack.schemas,
        "lease_backend": rack.lease_backend,
        "lg_coordinator": rack.lg_coordinator,
    }
    if rack.simulated:
        top |= {"port_dir": rack.port_dir, "control": rack.control, "sim_speed": rack.sim_speed}
    out = _lines(top)
    if rack.limits:
        out += ["", "[limits]", *_lines(dict(rack.limits))]
    if rack.erase_answering_boards:
        out += ["", "[factory]", "erase_answering_boards = true"]
    table: dict[str, Any]
    for board in rack.relays:
        table = {"name": board.name, "kind": board.kind, "port": board.port, "tcp": board.tcp}
        table |= {"channels": board.channels, **board.options}
        if rack.simulated and board.kind in _MODBUS:
            table["transport"] = board.transport
        out += ["", "[[relay]]", *_lines(table)]
    for supply in rack.supplies:
        table = {"name": supply.name, "kind": supply.kind, "port": supply.port, "tcp": supply.tcp, "unit": supply.unit}
        if rack.simulated:
            table["transport"] = supply.transport
        out += ["", "[[supply]]", *_lines(table)]
    for entry in rack.configs:
        out += ["", "[[config]]", f"hw = {_toml(entry.hw)}", *_settings_lines("config", entry.settings)]
    for s in rack.stations:
        table = {"name": s.name, "port": s.port, "url": s.url, "usb_serial": s.usb_serial, "bridge": s.bridge}
        table |= {"relay": str(s.relay) if s.relay else None, "supply": s.supply, "hw": s.hw, "place": s.place}
        if s.swd:
            table["swd"] = {k: v for k, v in vars(s.swd).items() if v is not None}
        table |= {"can_ids": list(s.can_ids), "tags": list(s.tags)}
        out += ["", "[[station]]", *_lines(table)]
        if s.images:
            out += ["[station.images]", *_lines(vars(s.images))]
        if s.limits:
            out += ["[station.limits]", *_lines(dict(s.limits))]
        if s.config:
            out += _settings_lines("station.config", s.config)
        if s.sim:
            sim = _node(s.sim.node)
            sim["tcp_bridge"] = False if s.sim.tcp_bridge is None else s.sim.tcp_bridge or True
            sim["peers"] = [_node(p) for p in s.sim.peers]
            out += ["[station.sim]", *_lines(sim)]
    return "\n".join(out) + "\n"
