"""A simulated SWD probe wired to a simulated STM32F405, served by pyocd's own remote-probe server.

`SimSwdProbe` is a pyocd `DebugProbe` at the DAP register level: an ADIv5 SW-DP (DPIDR, CTRL/STAT power-up
handshake, SELECT, RDBUFF, ABORT and sticky errors) and one AHB-AP (CSW, TAR with auto-increment, DRW, BD0-3,
CFG, BASE, IDR) in front of rig.sim.debug_target.SimTarget. Unmodified pyocd drives it end to end: DP
connect, AP and ROM-table discovery, Cortex-M4 halt/reset/register access, and its STM32F4 flash algorithm
(see debug_target for how the algorithm's effect is applied).

`SimSwdServer` serves the probe with pyocd's `DebugProbeServer` on 127.0.0.1, so that
`pyocd flash -u remote:127.0.0.1:PORT -t stm32f405rg ...` and rig.hardware.swd reach it like a probe on a network
host. Like a USB probe, it is used by one client at a time.

Faults (attributes of SimSwdProbe, or by name through `set_fault`): `not_answering` (no SWD ACK: the target
is unpowered or miswired), `busy` (the probe is held by another program), `swd_disabled_by_firmware` (the
running firmware took the SWD pins: only a connect under reset gets through), and `stuck_bits` (cells that
stay 1, so verify mismatches; `target.stuck_bits`). Read-out protection is the flash's own state,
`flash.locked`. With `powered` given, an unpowered board does not answer either, whatever the faults say.

Wire time: every DP/AP transfer spends 46 SWD clock cycles (8 request, 1 turnaround, 3 ACK, 32 data,
1 parity, 1 turnaround) at the frequency pyocd sets, through the flash's DeviceClock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from pyocd.core import exceptions
from pyocd.core.session import Session
from pyocd.probe.debug_probe import DebugProbe
from pyocd.probe.shared_probe_proxy import SharedDebugProbeProxy
from pyocd.probe.tcp_probe_server import DebugProbeServer

from rig.errors import RigTimeout
from rig.sim.debug_target import ROM_TABLE, SimTarget
from rig.sim.errors import SimError
from rig.sim.flash import Flash

_DPIDR = 0x2BA0_1477  # Arm SW-DP v1 of the Cortex-M4 (STM32F4 reference manual, DBG chapter)
_AHB_AP_IDR = 0x2477_0011  # AHB-AP of the Cortex-M4
_CSYSPWRUPREQ, _CDBGPWRUPREQ = 1 << 30, 1 << 28
_STICKYERR = 1 << 5
_CSW_DEVICEEN = 1 << 6
_CSW_SIZE = {0: 1, 1: 2, 2: 4}
_CSW_ADDRINC_SINGLE = 1 << 4
_SWD_CYCLES_PER_TRANSFER = 46
_START_BOUND_S = 2.0
SWD_FAULTS = ("not_answering", "busy", "swd_disabled_by_firmware", "stuck_bits")

DP_ABORT_OR_IDR, DP_CTRL_STAT, DP_SELECT, DP_RDBUFF = 0x0, 0x4, 0x8, 0xC
AP_CSW, AP_TAR, AP_DRW, AP_CFG, AP_BASE, AP_IDR = 0x00, 0x04, 0x0C, 0xF4, 0xF8, 0xFC


class SimSwdProbe(DebugProbe):
    """A debug probe whose cable ends at a simulated STM32F405."""

    def __init__(
        self, flash: Flash, unique_id: str = "vesc-sim-swd", powered: Callable[[], bool] | None = None
    ) -> None:
        super().__init__()
        self.target = SimTarget(flash)
        self.powered = powered  # the board's power: an unpowered target gives no ACK
        self.not_answering = False
        self.busy = False
        self.swd_disabled_by_firmware = False
        self._uid = unique_id
        self._is_open = False
        self._protocol: DebugProbe.Protocol | None = None
        self._frequency_hz = 1_000_000.0
        self._state = threading.Lock()
        self._reset_dap()

    def _reset_dap(self) -> None:
        self._select = 0
        self._ctrl_stat = 0
        self._rdbuff = 0
        self._csw = _CSW_DEVICEEN | 0x2  # 32-bit, no increment
        self._tar = 0

    def set_fault(self, name: str, on: bool = True, *, address: int = 0, mask: int = 0) -> None:
        """Set or clear a fault by name (SWD_FAULTS). `stuck_bits` takes the cell `address` and the `mask` of
        bits that stay 1; clearing it frees every stuck cell."""
        if name not in SWD_FAULTS:
            raise SimError(f"unknown SWD probe fault {name!r}; known: {', '.join(SWD_FAULTS)}")
        if name != "stuck_bits":
            setattr(self, name, on)
        elif on:
            self.target.stuck_bits[address] = mask
        else:
            self.target.stuck_bits.clear()

    # -- identity ---------------------------------------------------------------------------------

    @property
    def vendor_name(self) -> str:
        return "vesc-rig"

    @property
    def product_name(self) -> str:
        return "simulated SWD probe (STM32F405)"

    @property
    def supported_wire_protocols(self) -> Sequence[DebugProbe.Protocol]:
        return [DebugProbe.Protocol.DEFAULT, DebugProbe.Protocol.SWD]

    @property
    def unique_id(self) -> str:
        return self._uid

    @property
    def wire_protocol(self) -> DebugProbe.Protocol | None:
        return self._protocol

    @property
    def is_open(self) -> bool:
        return self._is_open

    @property
    def capabilities(self) -> set[DebugProbe.Capability]:
        return set()  # no SWJ sequences needed: the probe selects SWD itself

    # -- probe control ----------------------------------------------------------------------------

    def open(self) -> None:
        if self.busy:
            raise exceptions.ProbeError(f"probe {self._uid} is busy: held by another program")
        with self._state:
            self._reset_dap()
            self._is_open = True

    def close(self) -> None:
        self._is_open = False
        self._protocol = None

    def connect(self, protocol: DebugProbe.Protocol | None = None) -> None:
        if protocol not in (None, DebugProbe.Protocol.DEFAULT, DebugProbe.Protocol.SWD):
            raise exceptions.ProbeError(f"{self._uid} speaks SWD only, not {protocol.name}")
        self._protocol = DebugProbe.Protocol.SWD

    def disconnect(self) -> None:
        self._protocol = None

    def set_clock(self, frequency: float) -> None:
        self._frequency_hz = float(frequency)

    def reset(self) -> None:
        self.target.set_reset(True)
        self.target.set_reset(False)

    def assert_reset(self, asserted: bool) -> None:
        self.target.set_reset(bool(asserted))

    def is_reset_asserted(self) -> bool:
        return self.target.reset_asserted

    # -- DAP access -------------------------------------------------------------------------------

    def read_dp(self, addr: int, now: bool = True) -> int | Callable[[], int]:
        with self._state:
            self._transfer(1)
            if addr == DP_ABORT_OR_IDR:
                value = _DPIDR
            elif addr == DP_CTRL_STAT:
                acks = (self._ctrl_stat & (_CSYSPWRUPREQ | _CDBGPWRUPREQ)) << 1  # ACK bits mirror REQ bits
                value = self._ctrl_stat | acks
            elif addr == DP_RDBUFF:
                value = self._rdbuff
            else:
                value = 0
        return _result(value, now)

    def write_dp(self, addr: int, data: int) -> None:
        with self._state:
            self._transfer(1)
            if addr == DP_ABORT_OR_IDR:
                self._ctrl_stat &= ~_STICKYERR
            elif addr == DP_CTRL_STAT:
                self._ctrl_stat = (self._ctrl_stat & _STICKYERR) | (data & ~_STICKYERR)
            elif addr == DP_SELECT:
                self._select = data

    def read_ap(self, addr: int, now: bool = True) -> int | Callable[[], int]:
        with self._state:
            self._transfer(1)
            value = self._read_ap(addr)
        return _result(value, now)

    def write_ap(self, addr: int, data: int) -> None:
        with self._state:
            self._transfer(1)
            self._write_ap(addr, data)

    def read_ap_multiple(
        self, addr: int, count: int = 1, now: bool = True
    ) -> Sequence[int] | Callable[[], Sequence[int]]:
        with self._state:
            self._transfer(count)
            values = [self._read_ap(addr) for _ in range(count)]
        return _result(values, now)

    def write_ap_multiple(self, addr: int, values: Sequence[int]) -> None:
        with self._state:
            self._transfer(len(values))
            for value in values:
                self._write_ap(addr, value)

    def _transfer(self, count: int) -> None:
        """Check that the target answers, and spend the wire time of `count` transfers."""
        if self._protocol is None:
            raise exceptions.ProbeError(f"probe {self._uid} is not connected")
        if self.not_answering:
            raise exceptions.TransferError("no ACK from the target (SWD)")
        if self.powered is not None and not self.powered():
            raise exceptions.TransferError("no ACK from the target (SWD): the board is not powered")
        if self.swd_disabled_by_firmware and self.target.running_firmware:
            raise exceptions.TransferError("no ACK from the target: its firmware uses the SWD pins")
        self.target.flash.clock.spend(count * _SWD_CYCLES_PER_TRANSFER / self._frequency_hz)

    def _ap_register(self, addr: int) -> tuple[int, int]:
        """(APSEL, register offset) from SELECT and the A[3:2] bits of the request, as on the wire."""
        return self._select >> 24, (self._select & 0xF0) | (addr & 0x0C)

    def _read_ap(self, addr: int) -> int:
        apsel, reg = self._ap_register(addr)
        if apsel != 0:
            return 0  # no such AP: IDR reads as zero
        if reg == AP_CSW:
            return self._csw
        if reg == AP_TAR:
            return self._tar
        if reg == AP_DRW:
            value = self._bus(self.target.read, self._tar, self._size())
            self._rdbuff = value << (8 * (self._tar & 3))
            self._advance()
            return self._rdbuff
        if 0x10 <= reg < 0x20:  # BD0-3
            return self._bus(self.target.read, (self._tar & ~0xF) | (reg & 0xC), 4)
        return {AP_CFG: 0, AP_BASE: ROM_TABLE | 0x3, AP_IDR: _AHB_AP_IDR}.get(reg, 0)

    def _write_ap(self, addr: int, data: int) -> None:
        apsel, reg = self._ap_register(addr)
        if apsel != 0:
            return
        if reg == AP_CSW:
            self._csw = data | _CSW_DEVICEEN
        elif reg == AP_TAR:
            self._tar = data
        elif reg == AP_DRW:
            size = self._size()
            lane_value = (data >> (8 * (self._tar & 3))) & ((1 << (8 * size)) - 1)
            self._bus(self.target.write, self._tar, size, lane_value)
            self._advance()
        elif 0x10 <= reg < 0x20:
            self._bus(self.target.write, (self._tar & ~0xF) | (reg & 0xC), 4, data)

    def _size(self) -> int:
        size = _CSW_SIZE.get(self._csw & 0x7)
        if size is None:
            raise exceptions.TransferFaultError(f"unsupported CSW size {self._csw & 0x7}")
        return size

    def _advance(self) -> None:
        if self._csw & 0x30 == _CSW_ADDRINC_SINGLE:
            size = self._size()
            self._tar = (self._tar & ~0xFFF) | ((self._tar + size) & 0xFFF)  # the M4 AHB-AP wraps at 4 KB

    def _bus(self, access: Callable[..., int | None], addr: int, *args: int) -> int:
        try:
            return access(addr, *args) or 0
        except exceptions.TransferFaultError:
            self._ctrl_stat |= _STICKYERR
            raise


T = TypeVar("T")


def _result(value: T, now: bool) -> T | Callable[[], T]:
    return value if now else (lambda: value)


class _ExclusiveProbeProxy(SharedDebugProbeProxy):
    """Lets one client at a time open the probe, as a USB probe does. A client is one server connection
    (one server thread); a client that vanished without closing gives the probe up."""

    def __init__(self, probe: SimSwdProbe) -> None:
        super().__init__(probe)
        self._owner: threading.Thread | None = None
        self._guard = threading.Lock()

    def open(self) -> None:
        me = threading.current_thread()
        with self._guard:
            owner = self._owner
            if owner is not None and owner is not me and owner.is_alive():
                raise exceptions.ProbeError(f"probe {self.probe.unique_id} is busy: in use by another client")
            if owner is not me:
                self.probe.open()
                self._owner = me

    def close(self) -> None:
        with self._guard:
            if self._owner is threading.current_thread():
                self.probe.close()
                self._owner = None

    def connect(self, protocol: DebugProbe.Protocol | None = None) -> None:
        self.probe.connect(protocol)

    def disconnect(self) -> None:
        self.probe.disconnect()

    def lock(self) -> None:
        """Not needed with one client at a time; a client that dropped while holding pyocd's probe lock
        (it does not unlock when a connect fails) would otherwise wedge every later client."""

    def unlock(self) -> None:
        """See lock()."""


class SimSwdServer:
    """pyocd's DebugProbeServer serving a SimSwdProbe on 127.0.0.1 (port 0 = an ephemeral port)."""

    def __init__(self, probe: SimSwdProbe, port: int = 0) -> None:
        self.probe = probe
        session = Session(None, no_config=True)
        self._server = DebugProbeServer(session, _ExclusiveProbeProxy(probe), port=port, serve_local_only=True)
        # stop() must not wait for clients that never hang up (pyocd's TCPProbeServer is private API here).
        self._server._server.daemon_threads = True
        self._server._server.block_on_close = False
        self._started = False

    def start(self) -> str:
        """Start serving; returns the pyocd probe id, `remote:127.0.0.1:PORT`."""
        self._server.start()
        self._started = True
        deadline = time.monotonic() + _START_BOUND_S
        while self._server.port == 0:  # the server thread reads back the ephemeral port as it starts
            if time.monotonic() > deadline:
                raise RigTimeout("simulated SWD probe server start", _START_BOUND_S)
            time.sleep(0.001)
        return self.address

    def stop(self) -> None:
        """Stop serving and drop any client."""
        if self._started:
            self._server.stop()
            self._server._server.server_close()  # DebugProbeServer.stop() leaves the listener open
            self._started = False

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def address(self) -> str:
        """The unique id to give pyocd (`-u`) or rig.hardware.swd."""
        return f"remote:127.0.0.1:{self.port}"

    def __enter__(self) -> SimSwdServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
