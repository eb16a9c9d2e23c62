"""Modbus relay boards over RTU or TCP (pymodbus), in the two dialects sold as "Modbus relay".

- coils: function 05 (write single coil) switches, function 01 reads back; channel = coil address.
- registers: function 06 writes 0x0100 (open: relay on) or 0x0200 (close: relay off) to the
  channel's holding register, registers counted from 1 (register 0 is the boards' "all channels"
  register); function 03 reads the state back as 0x0001 / 0x0000 where the board supports it
  (seller manuals of the cheap 4/8-channel RS485 boards; several open-source drivers document
  "registers 0x0001..0x0008, open = 0x0100, close = 0x0200").

URL: "tcp://HOST:PORT" for Modbus TCP; anything else is a serial path or pyserial URL (RTU framing).
pymodbus >= 3.10 names the unit `device_id=` (earlier 3.x: `slave=`); this module uses device_id.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any
from urllib.parse import urlsplit

from pymodbus.client import ModbusSerialClient, ModbusTcpClient
from pymodbus.client.base import ModbusBaseSyncClient
from pymodbus.exceptions import ModbusException
from pymodbus.pdu import ModbusPDU

from rig.errors import PowerError
from rig.hardware.power.base import check_channel

REG_ON = 0x0100
REG_OFF = 0x0200
_REG_READ = {0x0001: True, 0x0000: False, REG_ON: True, REG_OFF: False}
DIALECTS = ("coils", "registers")


def open_modbus_client(url: str, *, baudrate: int, timeout_s: float, what: str) -> ModbusBaseSyncClient:
    """Connect a pymodbus sync client: TCP for tcp://host:port, RTU for a serial path or URL."""
    client: ModbusBaseSyncClient
    if url.startswith("tcp://"):
        parts = urlsplit(url)
        if not parts.hostname or not parts.port:
            raise PowerError(f"{what}: bad Modbus TCP URL {url!r} (want tcp://HOST:PORT)")
        client = ModbusTcpClient(parts.hostname, port=parts.port, timeout=timeout_s, retries=0)
    else:
        client = ModbusSerialClient(url, baudrate=baudrate, timeout=timeout_s, retries=0)
    if not client.connect():
        client.close()
        raise PowerError(f"{what}: cannot connect to {url} within {timeout_s:.3g} s")
    return client


def modbus_call(what: str, timeout_s: float, request: Callable[..., ModbusPDU], *args: Any, **kw: Any) -> Any:
    """Run one Modbus request; no answer or an exception response -> PowerError naming the bound."""
    try:
        reply = request(*args, **kw)
    except ModbusException as exc:
        raise PowerError(f"{what}: no answer within {timeout_s:.3g} s ({exc})") from exc
    if reply.isError():
        raise PowerError(f"{what}: the device refused the request ({reply})")
    return reply


class ModbusRelayBoard:
    """A Modbus relay board in the "coils" or "registers" dialect."""

    def __init__(
        self,
        url: str,
        *,
        dialect: str,
        unit: int = 1,
        channels: int = 8,
        baudrate: int = 9600,
        timeout_s: float = 0.5,
        readback: bool = True,
    ) -> None:
        if dialect not in DIALECTS:
            raise PowerError(f"Modbus relay at {url}: unknown dialect {dialect!r}; known: {DIALECTS}")
        self.url = url
        self.dialect = dialect
        self.unit = unit
        self.channels = channels
        self.timeout_s = timeout_s
        self.readback = readback
        self._first = 0 if dialect == "coils" else 1
        self._client = open_modbus_client(url, baudrate=baudrate, timeout_s=timeout_s, what=self._what())

    def set(self, channel: int, on: bool) -> None:
        self._check(channel)
        what = self._what(f"switch channel {channel} {'on' if on else 'off'}")
        if self.dialect == "coils":
            modbus_call(what, self.timeout_s, self._client.write_coil, channel, on, device_id=self.unit)
        else:
            value = REG_ON if on else REG_OFF
            modbus_call(what, self.timeout_s, self._client.write_register, channel, value, device_id=self.unit)

    def get(self, channel: int) -> bool | None:
        self._check(channel)
        if not self.readback:
            return None
        what = self._what(f"read channel {channel}")
        if self.dialect == "coils":
            reply = modbus_call(what, self.timeout_s, self._client.read_coils, channel, device_id=self.unit)
            return bool(reply.bits[0])
        reply = modbus_call(what, self.timeout_s, self._client.read_holding_registers, channel, device_id=self.unit)
        value = reply.registers[0]
        if value not in _REG_READ:
            raise PowerError(f"{what}: unexpected register value 0x{value:04x}")
        return _REG_READ[value]

    def close(self) -> None:
        self._client.close()

    def _check(self, channel: int) -> None:
        check_channel(channel, self._first, self._first + self.channels - 1, self._what())

    def _what(self, action: str = "") -> str:
        name = f"Modbus relay ({self.dialect}) at {self.url} unit {self.unit}"
        return f"{name}: {action}" if action else name


# Registry factories (partials keep the signature, so bad rack-file options are caught by name).
open_coil_board = partial(ModbusRelayBoard, dialect="coils")
open_register_board = partial(ModbusRelayBoard, dialect="registers")
