"""Stations from labgrid places: a rack file may name a place instead of a station's addresses.

A labgrid exporter on the rack host publishes what a station is made of as resources, and the place
(on the coordinator) matches them. This module turns a place's resources into the station's addresses:

======================================  ================================================================
labgrid resource                        station
======================================  ================================================================
NetworkSerialPort, protocol rfc2217     ``url = "rfc2217://host:port?ign_set_control&timeout=1"``
NetworkSerialPort, protocol raw         ``url = "socket://host:port"``
ModbusTCPCoil (host "h:p", coil)        relay: a ``modbus-coils`` board at ``tcp://h:p``, channel = coil
NetworkPowerPort, model = a relay kind  relay: a board of that kind (lcus, numato, modbus-coils, ...) at
                                        ``host`` (a serial URL, or "h:p" for Modbus TCP), channel = index
NetworkPowerPort, model = rd6006        supply: an RD60xx at ``host``, Modbus unit = index
NetworkService (address, port)          SWD probe ``remote:address:port`` (a ``pyocd server``)
======================================  ================================================================

labgrid's exporter also publishes a local ``USBSerialPort`` as a NetworkSerialPort (through the ser2net
it starts), so both ways of exporting a VESC's port arrive here the same. What a place cannot say stays
in the rack file: the SWD target type (``swd = { target = ... }``), CAN ids, tags, hw, images. A place
without a serial port, or with a resource the rig cannot drive, is a :class:`PlaceError` naming the
place and the resource class. Other resource classes (labgrid's own drivers) are left alone.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol, runtime_checkable

from rig.errors import Diagnosis, RigError
from rig.hardware.power.base import BOARD_KINDS, SUPPLY_KINDS
from rig.station.rack import FIRST_CHANNEL, Rack, RelayBoardSpec, RelayRef, Station, SupplySpec, SwdSpec

log = logging.getLogger(__name__)

SERIAL = "NetworkSerialPort"
COIL = "ModbusTCPCoil"
POWER = "NetworkPowerPort"
SERVICE = "NetworkService"
MODBUS_PORT = 502
_MODBUS_KINDS = ("modbus-coils", "modbus-registers")


class PlaceError(RigError):
    """A place cannot be a station: a resource is missing, or is one the rig cannot drive."""

    diagnosis = Diagnosis.RACK_FILE


@dataclass(frozen=True)
class PlaceResource:
    """One resource a place matches, as the coordinator publishes it."""

    name: str  # the resource name, or the match's rename
    cls: str
    params: Mapping[str, Any]  # the exporter's parameters (labgrid's "extra" removed)
    path: str  # exporter/group/class/name


@runtime_checkable
class PlaceReader(Protocol):
    """A lease backend that can read places (rig.station.lease_labgrid.LabgridLeases)."""

    def place_resources(self, place: str) -> list[PlaceResource]: ...


@dataclass(frozen=True)
class PlaceStation:
    """A station resolved from its place, with the relay boards and supplies it brings along."""

    station: Station
    relays: tuple[RelayBoardSpec, ...] = ()
    supplies: tuple[SupplySpec, ...] = ()


def place_of(station: Station) -> str:
    """The labgrid place a station is leased as: its `place`, else its name."""
    return station.place or station.name


def from_place(station: Station) -> bool:
    """Whether the station's addresses come from its place (it names one and gives no address itself)."""
    return station.place is not None and not (station.port or station.url or station.usb_serial)


def _netloc(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _host_port(text: str, default_port: int) -> str:
    """labgrid's "host", "host:port" or "[v6]:port" as HOST:PORT."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.removeprefix(":")
        return _netloc(host, int(port) if port.isdigit() else default_port)
    host, sep, port = text.rpartition(":")
    if sep and port.isdigit() and ":" not in host:
        return _netloc(host, int(port))
    return _netloc(text, default_port)


class _Reading:
    """One place's resources, turned into station parts; every problem names the place and the class."""

    def __init__(self, place: str) -> None:
        self.place = place
        self.url: str | None = None
        self.relay: RelayRef | None = None
        self.boards: list[RelayBoardSpec] = []
        self.supplies: list[SupplySpec] = []
        self.probe: str | None = None

    def fail(self, resource: PlaceResource, problem: str) -> None:
        raise PlaceError(f"labgrid place {self.place}: {resource.cls} {resource.name!r} ({resource.path}): {problem}")

    def param(self, resource: PlaceResource, key: str) -> Any:
        if resource.params.get(key) in (None, ""):
            self.fail(resource, f"has no {key!r}")
        return resource.params[key]

    def read(self, resource: PlaceResource) -> None:
        readers = {SERIAL: self.serial, COIL: self.coil, POWER: self.power, SERVICE: self.service}
        reader = readers.get(resource.cls)
        if reader is None:
            log.debug(
                "labgrid place %s: %s %s is not a station part; left alone", self.place, resource.cls, resource.name
            )
            return
        reader(resource)

    def serial(self, resource: PlaceResource) -> None:
        if self.url is not None:
            self.fail(resource, "a second serial port; a station has one ESC port")
        netloc = _netloc(str(self.param(resource, "host")), int(self.param(resource, "port")))
        protocol = resource.params.get("protocol", "rfc2217")
        if protocol == "rfc2217":
            self.url = f"rfc2217://{netloc}?ign_set_control&timeout=1"  # ser2net: see docs/rack-host.md
        elif protocol == "raw":
            self.url = f"socket://{netloc}"
        else:
            self.fail(resource, f"protocol {protocol!r}; the rig reads rfc2217 or raw")

    def _add_relay(self, resource: PlaceResource, board: RelayBoardSpec, channel: int) -> None:
        if self.relay is not None:
            self.fail(resource, "a second relay; a station has one power relay")
        self.boards.append(board)
        self.relay = RelayRef(board.name, channel)

    def coil(self, resource: PlaceResource) -> None:
        if resource.params.get("invert"):
            self.fail(resource, "invert: true; the rig switches plain coils (on = coil set)")
        if resource.params.get("write_multiple_coils"):
            self.fail(resource, "write_multiple_coils: true; the rig writes single coils (function 05)")
        coil = int(self.param(resource, "coil"))
        tcp = _host_port(str(self.param(resource, "host")), MODBUS_PORT)
        board = RelayBoardSpec(f"{self.place}.{resource.name}", "modbus-coils", tcp=tcp, channels=coil + 1)
        self._add_relay(resource, board, coil)

    def power(self, resource: PlaceResource) -> None:
        model = str(self.param(resource, "model"))
        host = str(self.param(resource, "host"))
        index = int(self.param(resource, "index"))
        name = f"{self.place}.{resource.name}"
        if model in SUPPLY_KINDS:
            tcp, port = (None, host) if "://" in host else (_host_port(host, MODBUS_PORT), None)
            if self.supplies:
                self.fail(resource, "a second supply; a station has one")
            self.supplies.append(SupplySpec(name, model, port=port, tcp=tcp, unit=index))
            return
        if model not in BOARD_KINDS:
            kinds = ", ".join((*BOARD_KINDS, *SUPPLY_KINDS))
            self.fail(resource, f"model {model!r} is not a power the rig drives ({kinds}); export a ModbusTCPCoil")
        modbus_tcp = model in _MODBUS_KINDS and "://" not in host
        first = FIRST_CHANNEL[model]
        if index < first:
            self.fail(resource, f"index {index} is below {model}'s first channel {first}")
        board = RelayBoardSpec(
            name,
            model,
            port=None if modbus_tcp else host,
            tcp=_host_port(host, MODBUS_PORT) if modbus_tcp else None,
            channels=index - first + 1,
        )
        self._add_relay(resource, board, index)

    def service(self, resource: PlaceResource) -> None:
        if self.probe is not None:
            self.fail(resource, "a second NetworkService; a station has one SWD probe server")
        if resource.params.get("port") in (None, ""):
            self.fail(resource, "has no 'port' (the pyocd server's, for example 5555)")
        self.probe = f"remote:{_netloc(str(self.param(resource, 'address')), int(resource.params['port']))}"


def place_station(entry: Station, place: str, resources: Sequence[PlaceResource]) -> PlaceStation:
    """The rack file's station entry with the addresses its place's resources give."""
    reading = _Reading(place)
    for resource in sorted(resources, key=lambda r: r.path):
        reading.read(resource)
    if reading.url is None:
        found = ", ".join(sorted({r.cls for r in resources})) or "none"
        raise PlaceError(
            f"labgrid place {place}: no {SERIAL} (station {entry.name}'s ESC port); its resources: {found}"
        )
    swd = entry.swd
    if swd is not None:
        if reading.probe is None:
            raise PlaceError(
                f"labgrid place {place}: no {SERVICE} (the pyocd server of station {entry.name}'s SWD probe, "
                "which its swd table asks for)"
            )
        swd = SwdSpec(reading.probe, swd.target, swd.frequency, swd.connect)
    station = replace(
        entry,
        url=reading.url,
        relay=reading.relay,
        supply=reading.supplies[0].name if reading.supplies else None,
        swd=swd,
    )
    return PlaceStation(station, tuple(reading.boards), tuple(reading.supplies))


def resolve_places(rack: Rack, leases: object) -> Rack:
    """The rack with the addresses of every station that takes them from its place (the rack unchanged when
    none does); `leases` must be a backend that reads places (the labgrid one)."""
    wanted = [s for s in rack.stations if from_place(s)]
    if not wanted:
        return rack
    if not isinstance(leases, PlaceReader):
        names = ", ".join(s.name for s in wanted)
        raise PlaceError(
            f"rack {rack.name}: stations {names} take their addresses from labgrid places, but the leases are "
            f"{getattr(leases, 'name', type(leases).__name__)}: use the labgrid lease backend"
        )
    stations: list[Station] = []
    relays, supplies = list(rack.relays), list(rack.supplies)
    for station in rack.stations:
        if from_place(station):
            resolved = place_station(station, place_of(station), leases.place_resources(place_of(station)))
            station = resolved.station
            relays += resolved.relays
            supplies += resolved.supplies
        stations.append(station)
    return replace(rack, stations=tuple(stations), relays=tuple(relays), supplies=tuple(supplies))
