"""Simulated relay boards, served where hardware would be: LCUS and Numato protocols each on their own
pseudo-terminal, and a Modbus relay (coils or registers dialect) served by pymodbus on 127.0.0.1 or
over RTU on a pty pair. Each channel is wired to a power input (`Callable[[bool], None]`, the
simulated ESC's power); a channel wired to nothing switches nothing. Fault: `responding = False`
makes a board ignore commands and stay silent, as a dead or unplugged board would.
"""

from __future__ import annotations

import asyncio
import logging
import os
import select
import threading
import tty
from collections.abc import Awaitable, Callable, Mapping

from pymodbus.constants import ExcCodes
from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from rig.errors import Diagnosis, RigError

log = logging.getLogger(__name__)

PowerInput = Callable[[bool], None]
_POLL_S = 0.05
_JOIN_S = 2.0


class Wiring:
    """Relay channels and the power inputs they feed; state changes reach the wired input only."""

    def __init__(self, wiring: Mapping[int, PowerInput] | None = None) -> None:
        self._inputs: dict[int, PowerInput] = dict(wiring or {})
        self.states: dict[int, bool] = {}
        self._lock = threading.Lock()

    def wire(self, channel: int, power_input: PowerInput) -> None:
        with self._lock:
            self._inputs[channel] = power_input

    def switch(self, channel: int, on: bool) -> None:
        with self._lock:
            changed = self.states.get(channel, False) != on
            self.states[channel] = on
            power_input = self._inputs.get(channel)
        if changed:
            log.debug("sim relay channel %d -> %s (%s)", channel, on, "wired" if power_input else "unwired")
            if power_input is not None:
                power_input(on)


class _RawPty:
    """A raw pseudo-terminal: the slave stays open (its path is `.port`), the master is ours."""

    def __init__(self) -> None:
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.port = os.ttyname(self._slave)

    def close(self) -> None:
        for fd in (self.master, self._slave):
            os.close(fd)


class PtyBoard:
    """Base of the serial-protocol boards: a daemon thread reads the pty and answers."""

    def __init__(self, channels: int, wiring: Mapping[int, PowerInput] | None) -> None:
        self.channels = channels
        self.wiring = Wiring(wiring)
        self.responding = True
        self._pty = _RawPty()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=type(self).__name__, daemon=True)
        self._thread.start()

    @property
    def port(self) -> str:
        return self._pty.port

    def wire(self, channel: int, power_input: PowerInput) -> None:
        self.wiring.wire(channel, power_input)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(_JOIN_S)
        self._pty.close()

    def __enter__(self) -> PtyBoard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def handle(self, data: bytes) -> bytes:
        """Take received bytes, act on complete commands, return the reply bytes."""
        raise NotImplementedError

    def _serve(self) -> None:
        while not self._stop.is_set():
            readable, _, _ = select.select([self._pty.master], [], [], _POLL_S)
            if not readable:
                continue
            try:
                data = os.read(self._pty.master, 4096)
            except OSError:
                continue
            if not self.responding:
                continue
            reply = self.handle(data)
            if reply:
                os.write(self._pty.master, reply)


class SimLcusBoard(PtyBoard):
    """LCUS relay: 4-byte frames A0 ch state sum, channels from 1, never answers (rig.hardware.power.lcus)."""

    def __init__(self, channels: int = 4, wiring: Mapping[int, PowerInput] | None = None) -> None:
        self._buffer = bytearray()
        super().__init__(channels, wiring)

    def handle(self, data: bytes) -> bytes:
        self._buffer += data
        while len(self._buffer) >= 4:
            start, channel, state, check = self._buffer[:4]
            if start != 0xA0 or check != (start + channel + state) & 0xFF:
                del self._buffer[0]  # resynchronise on the next start byte
                continue
            del self._buffer[:4]
            if 1 <= channel <= self.channels and state in (0, 1):
                self.wiring.switch(channel, bool(state))
        return b""


class SimNumatoBoard(PtyBoard):
    """Numato relay module console: echo, "relay on|off|read N", "\\n\\r" line ends, ">" prompt."""

    def __init__(self, channels: int = 8, wiring: Mapping[int, PowerInput] | None = None) -> None:
        self._line = bytearray()
        super().__init__(channels, wiring)

    def handle(self, data: bytes) -> bytes:
        reply = bytearray()
        for byte in data:
            if byte == 0x0D:
                reply += b"\n\r" + self._execute(self._line.decode("ascii", errors="replace")) + b">"
                self._line.clear()
            elif byte != 0x0A:
                self._line.append(byte)
                reply.append(byte)  # the console echoes what it is sent
        return bytes(reply)

    def _execute(self, line: str) -> bytes:
        words = line.split()
        if len(words) != 3 or words[0] != "relay" or len(words[2]) != 1:
            return b""
        index = words[2]
        channel = int(index) if index.isdigit() else ord(index) - ord("A") + 10
        if not 0 <= channel < self.channels:
            return b""
        if words[1] in ("on", "off"):
            self.wiring.switch(channel, words[1] == "on")
            return b""
        if words[1] == "read":
            return (b"on" if self.wiring.states.get(channel, False) else b"off") + b"\n\r"
        return b""


class _NullModem:
    """Two ptys joined back to back, for serving Modbus RTU: the server opens one end, a client the other."""

    def __init__(self) -> None:
        self.server_end = _RawPty()
        self.client_end = _RawPty()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._pump, name="sim-null-modem", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        ends = {self.server_end.master: self.client_end.master, self.client_end.master: self.server_end.master}
        while not self._stop.is_set():
            readable, _, _ = select.select(list(ends), [], [], _POLL_S)
            for fd in readable:
                try:
                    os.write(ends[fd], os.read(fd, 4096))
                except OSError:
                    continue

    def close(self) -> None:
        self._stop.set()
        self._thread.join(_JOIN_S)
        self.server_end.close()
        self.client_end.close()


ModbusAction = Callable[[int, int, int, int, list[int], list[int] | list[bool] | None], Awaitable[ExcCodes | None]]


class ModbusSimServer:
    """One simulated Modbus device served by pymodbus in its own thread and event loop.

    transport "tcp": 127.0.0.1 on an ephemeral port, `.address` = "tcp://127.0.0.1:PORT";
    transport "rtu": RTU framing on a pty pair, `.address` = the client end's pty path.
    While `responding` is False, requests change nothing and no reply is sent.
    """

    def __init__(
        self,
        simdata: tuple[list[SimData], list[SimData], list[SimData], list[SimData]],
        action: ModbusAction,
        *,
        unit: int = 1,
        transport: str = "tcp",
        baudrate: int = 9600,
    ) -> None:
        if transport not in ("tcp", "rtu"):
            raise RigError(f"sim Modbus: unknown transport {transport!r} (tcp or rtu)", diagnosis=Diagnosis.SIM)
        self.responding = True
        self._action = action
        self._device = SimDevice(unit, simdata=simdata, action=self._gated)
        self._null_modem = _NullModem() if transport == "rtu" else None
        self._baudrate = baudrate
        self._loop = asyncio.new_event_loop()
        self._server: ModbusTcpServer | ModbusSerialServer | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        self.address = ""
        self._thread = threading.Thread(target=self._run, name="sim-modbus", daemon=True)
        self._thread.start()
        if not self._started.wait(_JOIN_S) or self._error is not None:
            raise RigError(
                f"sim Modbus server did not start within {_JOIN_S} s: {self._error}", diagnosis=Diagnosis.SIM
            )

    async def _gated(self, *args: object) -> ExcCodes | None:
        if not self.responding:
            return ExcCodes.DEVICE_FAILURE  # the write is refused; _trace drops the reply
        return await self._action(*args)  # type: ignore[arg-type]

    def _trace(self, sending: bool, packet: bytes) -> bytes:
        return b"" if sending and not self.responding else packet

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._start())
        except Exception as exc:  # reported to the constructor, which raises
            self._error = exc
            self._started.set()
            return
        self._started.set()
        self._loop.run_forever()

    async def _start(self) -> None:
        server: ModbusTcpServer | ModbusSerialServer
        if self._null_modem is None:
            server = ModbusTcpServer(self._device, address=("127.0.0.1", 0), trace_packet=self._trace)
            await server.serve_forever(background=True)
            listening = server.transport
            assert isinstance(listening, asyncio.Server), "pymodbus listens with an asyncio server"
            port = listening.sockets[0].getsockname()[1]
            self.address = f"tcp://127.0.0.1:{port}"
        else:
            server = ModbusSerialServer(
                self._device,
                framer=FramerType.RTU,
                port=self._null_modem.server_end.port,
                baudrate=self._baudrate,
                trace_packet=self._trace,
            )
            await server.serve_forever(background=True)
            self.address = self._null_modem.client_end.port
        self._server = server

    def close(self) -> None:
        if self._server is not None and self._loop.is_running():
            asyncio.run_coroutine_threadsafe(self._server.shutdown(), self._loop).result(_JOIN_S)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(_JOIN_S)
        self._loop.close()
        if self._null_modem is not None:
            self._null_modem.close()


def bits(address: int, count: int) -> list[SimData]:
    """A block of `count` coils or discrete inputs from `address`."""
    return [SimData(address, count=count, values=False, datatype=DataType.BITS)]


def registers(address: int, count: int) -> list[SimData]:
    """A block of `count` 16-bit registers from `address`."""
    return [SimData(address, count=count, values=0, datatype=DataType.REGISTERS)]


class SimModbusRelay:
    """A Modbus relay board: dialect "coils" (05/01, channel = coil address from 0) or "registers"
    (06 with 0x0100 on / 0x0200 off, 03 reads 1/0; channel = register address from 1)."""

    def __init__(
        self,
        *,
        dialect: str = "coils",
        channels: int = 8,
        unit: int = 1,
        wiring: Mapping[int, PowerInput] | None = None,
        transport: str = "tcp",
    ) -> None:
        if dialect not in ("coils", "registers"):
            raise RigError(f"sim Modbus relay: unknown dialect {dialect!r}", diagnosis=Diagnosis.SIM)
        self.dialect = dialect
        self.channels = channels
        self.wiring = Wiring(wiring)
        simdata = (bits(0, channels), bits(0, 1), registers(0, channels + 1), registers(0, 1))
        self._server = ModbusSimServer(simdata, self._action, unit=unit, transport=transport)

    @property
    def address(self) -> str:
        return self._server.address

    @property
    def responding(self) -> bool:
        return self._server.responding

    @responding.setter
    def responding(self, value: bool) -> None:
        self._server.responding = value

    def wire(self, channel: int, power_input: PowerInput) -> None:
        self.wiring.wire(channel, power_input)

    def close(self) -> None:
        self._server.close()

    def __enter__(self) -> SimModbusRelay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def _action(
        self,
        function_code: int,
        start: int,
        address: int,
        _count: int,
        registers_: list[int],
        values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        allowed = (1, 5) if self.dialect == "coils" else (3, 6)
        if function_code not in allowed:
            return ExcCodes.ILLEGAL_FUNCTION
        if function_code == 3:  # the status registers read 1 (on) / 0 (off)
            for channel in range(1, self.channels + 1):
                registers_[channel - start] = int(self.wiring.states.get(channel, False))
            return None
        if values is None:
            return None
        if self.dialect == "coils":
            if address >= self.channels:
                return ExcCodes.ILLEGAL_ADDRESS
            self.wiring.switch(address, bool(values[0]))
            return None
        if address == 0 or values[0] not in (0x0100, 0x0200):
            return ExcCodes.ILLEGAL_VALUE
        self.wiring.switch(address, values[0] == 0x0100)
        return None
