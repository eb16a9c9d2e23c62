"""The power-control interface: relay boards, bench supplies, a station's channel, and the registry.

Channel numbers are always the numbers the board's own protocol puts on the wire, so a rack file
matches the board's documentation: LCUS 1.., Numato 0.. (relay 10 and up sent as A, B, ...), Modbus
coils 0.. (coil address; "CH1" is usually coil 0), Modbus registers 1.. (register address), dcttech
HID 1.., command: whatever the program expects.
"""

from __future__ import annotations

import importlib
import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, cast, runtime_checkable

import serial

from rig.errors import PowerError

log = logging.getLogger(__name__)


@runtime_checkable
class RelayBoard(Protocol):
    """A board that switches numbered channels on and off."""

    def set(self, channel: int, on: bool) -> None:
        """Switch one channel; raise PowerError when the board does not take the command."""

    def get(self, channel: int) -> bool | None:
        """Read one channel back; None where the board cannot read back."""

    def close(self) -> None:
        """Release the port or connection."""


@runtime_checkable
class PowerSupply(Protocol):
    """A programmable bench supply (Riden RD60xx type)."""

    def set_voltage(self, volts: float) -> None: ...
    def set_current(self, amps: float) -> None: ...
    def set_output(self, on: bool) -> None: ...
    def output(self) -> bool: ...
    def read_voltage(self) -> float: ...
    def read_current(self) -> float: ...
    def close(self) -> None: ...


@dataclass
class PowerChannel:
    """One station's power: a channel of a relay board."""

    board: RelayBoard
    channel: int
    name: str = ""

    def switch(self, on: bool) -> None:
        """Switch, then check the board's read-back where it has one."""
        self.board.set(self.channel, on)
        state = self.board.get(self.channel)
        if state is not None and state != on:
            raise PowerError(f"{self}: switched {'on' if on else 'off'} but the board reads back {state}")

    def state(self) -> bool | None:
        """The board's read-back of this channel, or None where it cannot read back."""
        return self.board.get(self.channel)

    def __str__(self) -> str:
        return f"power channel {self.name or type(self.board).__name__}:{self.channel}"


class SupplyOutput:
    """A supply's output used as a one-channel relay board (channel 1), for ESCs fed straight from it."""

    def __init__(self, supply: PowerSupply) -> None:
        self.supply = supply

    def set(self, channel: int, on: bool) -> None:
        check_channel(channel, 1, 1, "supply output")
        self.supply.set_output(on)

    def get(self, channel: int) -> bool | None:
        check_channel(channel, 1, 1, "supply output")
        return self.supply.output()

    def close(self) -> None:
        self.supply.close()


def check_channel(channel: int, first: int, last: int, what: str) -> None:
    """Refuse a channel the board does not have."""
    if not first <= channel <= last:
        raise PowerError(f"{what}: channel {channel} out of range {first}..{last}")


def open_serial(url: str, *, baudrate: int, timeout_s: float, what: str) -> serial.Serial:
    """Open a serial port from a path or pyserial URL (socket://, /dev/serial/by-path/...)."""
    try:
        port = serial.serial_for_url(url, baudrate=baudrate, timeout=timeout_s, write_timeout=timeout_s)
        return cast(serial.Serial, port)  # every URL handler's port has serial.Serial's interface
    except (serial.SerialException, ValueError, OSError) as exc:
        raise PowerError(f"{what}: cannot open {url}: {exc}") from exc


# kind -> "module:factory"; modules are imported on use so optional extras (hidapi) stay optional.
_BOARD_KINDS = {
    "lcus": "rig.hardware.power.lcus:LcusBoard",
    "numato": "rig.hardware.power.numato:NumatoBoard",
    "modbus-coils": "rig.hardware.power.modbus_relay:open_coil_board",
    "modbus-registers": "rig.hardware.power.modbus_relay:open_register_board",
    "hid": "rig.hardware.power.hid_relay:open_hid_relay",
    "command": "rig.hardware.power.command:CommandBoard",
}
_SUPPLY_KINDS = {"rd6006": "rig.hardware.power.riden:RidenSupply"}

BOARD_KINDS = tuple(_BOARD_KINDS)
SUPPLY_KINDS = tuple(_SUPPLY_KINDS)


def _factory(table: dict[str, str], kind: str, what: str) -> Callable[..., Any]:
    if kind not in table:
        raise PowerError(f"unknown {what} kind {kind!r}; known: {', '.join(table)}")
    module, name = table[kind].split(":")
    return getattr(importlib.import_module(module), name)


def _call(factory: Callable[..., Any], kind: str, url: str, options: dict[str, Any]) -> Any:
    try:
        inspect.signature(factory).bind(url, **options)
    except TypeError as exc:
        raise PowerError(f"{kind} at {url!r}: bad options {sorted(options)}: {exc}") from exc
    return factory(url, **options)


def open_relay_board(kind: str, url: str = "", **options: Any) -> RelayBoard:
    """Open a relay board of one of BOARD_KINDS (url: serial path/URL, or tcp://host:port for Modbus TCP)."""
    board = _call(_factory(_BOARD_KINDS, kind, "relay board"), kind, url, options)
    log.debug("opened %s relay board at %s", kind, url)
    return board


def open_supply(kind: str = "rd6006", url: str = "", *, unit: int = 1, **options: Any) -> PowerSupply:
    """Open a bench supply of one of SUPPLY_KINDS (url: serial path/URL, or tcp://host:port)."""
    supply = _call(_factory(_SUPPLY_KINDS, kind, "supply"), kind, url, {"unit": unit, **options})
    log.debug("opened %s supply at %s", kind, url)
    return supply
