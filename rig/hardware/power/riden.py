"""Riden RD60xx bench supplies over Modbus (RTU over the USB serial link at 115200 8N1, or TCP through
a Wi-Fi/serial bridge): enough to power ESCs and prove a power cycle by the output current.

Holding registers (Baldanos/rd6006 registers.md, ShayBox/Riden riden.py, kbralten RD6xxx notes):
0 model ID, 8 V-SET, 9 I-SET, 10 V-OUT, 11 I-OUT, 18 output enable (1 on, 0 off). Scales depend on
the model ID: RD6006 (60060-60064) V x100, I x1000; RD6006P (60065) V x1000, I x10000;
RD6012 (6012x), RD6018 (6018x), RD6024 (6024x) V x100, I x100.
"""

from __future__ import annotations

from dataclasses import dataclass

from rig.errors import PowerError
from rig.hardware.power.modbus_relay import modbus_call, open_modbus_client

REG_ID = 0
REG_V_SET = 8
REG_I_SET = 9
REG_V_OUT = 10
REG_I_OUT = 11
REG_OUTPUT = 18
BAUDRATE = 115200


@dataclass(frozen=True)
class RidenModel:
    """A model's name and register scales (raw = value * scale)."""

    name: str
    v_scale: int
    i_scale: int


def model_for_id(model_id: int) -> RidenModel | None:
    """The model behind an ID register value, or None when it is not a known RD60xx."""
    if 60060 <= model_id <= 60064:
        return RidenModel("RD6006", 100, 1000)
    if model_id == 60065:
        return RidenModel("RD6006P", 1000, 10000)
    for series in (6012, 6018, 6024):
        if model_id // 10 == series:
            return RidenModel(f"RD{series}", 100, 100)
    return None


class RidenSupply:
    """A Riden RD60xx supply; the model (and so the scales) is read from register 0 at open."""

    def __init__(self, url: str, *, unit: int = 1, baudrate: int = BAUDRATE, timeout_s: float = 0.5) -> None:
        self.url = url
        self.unit = unit
        self.timeout_s = timeout_s
        self._client = open_modbus_client(url, baudrate=baudrate, timeout_s=timeout_s, what=self._what())
        model_id = self._read(REG_ID, "read model ID")
        model = model_for_id(model_id)
        if model is None:
            self._client.close()
            raise PowerError(f"{self._what()}: not a Riden RD60xx (ID register reads {model_id})")
        self.model = model

    def set_voltage(self, volts: float) -> None:
        self._write(REG_V_SET, round(volts * self.model.v_scale), f"set voltage {volts} V")

    def set_current(self, amps: float) -> None:
        self._write(REG_I_SET, round(amps * self.model.i_scale), f"set current limit {amps} A")

    def set_output(self, on: bool) -> None:
        self._write(REG_OUTPUT, 1 if on else 0, f"switch output {'on' if on else 'off'}")

    def output(self) -> bool:
        return bool(self._read(REG_OUTPUT, "read output enable"))

    def read_voltage(self) -> float:
        return self._read(REG_V_OUT, "read output voltage") / self.model.v_scale

    def read_current(self) -> float:
        return self._read(REG_I_OUT, "read output current") / self.model.i_scale

    def close(self) -> None:
        self._client.close()

    def _read(self, register: int, action: str) -> int:
        request = self._client.read_holding_registers
        reply = modbus_call(self._what(action), self.timeout_s, request, register, device_id=self.unit)
        return reply.registers[0]

    def _write(self, register: int, value: int, action: str) -> None:
        if not 0 <= value <= 0xFFFF:
            raise PowerError(f"{self._what(action)}: out of range")
        request = self._client.write_register
        modbus_call(self._what(action), self.timeout_s, request, register, value, device_id=self.unit)

    def _what(self, action: str = "") -> str:
        name = f"Riden supply at {self.url} unit {self.unit}"
        return f"{name}: {action}" if action else name
