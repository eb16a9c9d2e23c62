"""A simulated Riden RD6006 bench supply, served by pymodbus (TCP on 127.0.0.1, or RTU on a pty pair).

Registers as in rig.hardware.power.riden (0 ID, 8 V-SET, 9 I-SET, 10 V-OUT, 11 I-OUT, 18 output enable).
Loads on the output are simulated ESC power inputs: wired straight to the output (`wire`) or through
a relay channel (`branch`). The output current is `amps_per_load` for each powered load, limited by
I-SET; switching the output off powers every load off. Fault: `responding = False`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from pymodbus.constants import ExcCodes

from rig.sim.relay_boards import ModbusSimServer, PowerInput, bits, registers

REG_ID, REG_V_SET, REG_I_SET, REG_V_OUT, REG_I_OUT, REG_OUTPUT = 0, 8, 9, 10, 11, 18
_WRITABLE = (REG_V_SET, REG_I_SET, REG_OUTPUT)


@dataclass
class _Load:
    power_input: PowerInput
    switch_closed: bool
    powered: bool = False


class SimRd6006:
    """A Riden supply (RD6006 by default: ID 60062, V x100, I x1000)."""

    def __init__(
        self,
        *,
        model_id: int = 60062,
        v_scale: int = 100,
        i_scale: int = 1000,
        amps_per_load: float = 0.08,
        volts: float = 12.0,
        amps_limit: float = 2.0,
        unit: int = 1,
        transport: str = "tcp",
    ) -> None:
        self.v_scale = v_scale
        self.i_scale = i_scale
        self.amps_per_load = amps_per_load
        self._loads: list[_Load] = []
        self._lock = threading.Lock()
        self._regs = {REG_ID: model_id, REG_V_SET: round(volts * v_scale), REG_I_SET: round(amps_limit * i_scale)}
        self._regs[REG_OUTPUT] = 0
        simdata = (bits(0, 1), bits(0, 1), registers(0, 20), registers(0, 1))
        self._server = ModbusSimServer(simdata, self._action, unit=unit, transport=transport, baudrate=115200)

    @property
    def address(self) -> str:
        return self._server.address

    @property
    def responding(self) -> bool:
        return self._server.responding

    @responding.setter
    def responding(self, value: bool) -> None:
        self._server.responding = value

    @property
    def output(self) -> bool:
        return bool(self._regs[REG_OUTPUT])

    def current(self) -> float:
        """The output current: amps_per_load per powered load, limited by I-SET."""
        with self._lock:
            powered = sum(load.powered for load in self._loads)
        return min(powered * self.amps_per_load, self._regs[REG_I_SET] / self.i_scale)

    def wire(self, power_input: PowerInput) -> None:
        """A load fed straight from the output."""
        self._add(_Load(power_input, switch_closed=True))

    def branch(self, power_input: PowerInput) -> PowerInput:
        """A load fed from the output through a relay channel: wire the returned input to that channel."""
        load = _Load(power_input, switch_closed=False)
        self._add(load)

        def switch(on: bool) -> None:
            with self._lock:
                load.switch_closed = on
            self._update()

        return switch

    def set_output(self, on: bool) -> None:
        """The front-panel ON/OFF key."""
        self._regs[REG_OUTPUT] = int(on)
        self._update()

    def close(self) -> None:
        self._server.close()

    def __enter__(self) -> SimRd6006:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _add(self, load: _Load) -> None:
        with self._lock:
            self._loads.append(load)
        self._update()

    def _update(self) -> None:
        """Power each load that the output and its switch feed; tell loads whose power changed."""
        changed = []
        with self._lock:
            for load in self._loads:
                powered = self.output and load.switch_closed
                if powered != load.powered:
                    load.powered = powered
                    changed.append(load)
        for load in changed:
            load.power_input(load.powered)

    async def _action(
        self,
        function_code: int,
        start: int,
        address: int,
        _count: int,
        regs: list[int],
        values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        if function_code == 3:
            on = self.output
            self._regs[REG_V_OUT] = self._regs[REG_V_SET] if on else 0
            self._regs[REG_I_OUT] = round(self.current() * self.i_scale)
            for register, value in self._regs.items():
                regs[register - start] = value
            return None
        if function_code != 6:
            return ExcCodes.ILLEGAL_FUNCTION
        if values is None:
            return None
        if address not in _WRITABLE:
            return ExcCodes.ILLEGAL_ADDRESS
        self._regs[address] = int(values[0])
        if address == REG_OUTPUT:
            self._update()
        return None
