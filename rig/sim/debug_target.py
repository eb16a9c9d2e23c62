"""The STM32F405 as its debug port sees it: memory bus, Cortex-M4 debug registers, and the flash algorithm.

The AHB-AP of rig.sim.swd_probe reads and writes through `SimTarget.read`/`write`. The memory map holds the
flash (rig.sim.flash, also at its boot alias 0), SRAM, CCM RAM, the flash interface registers, DBGMCU, and
the private peripheral bus with a CoreSight ROM table (SCS, DWT, FPB) so that pyocd discovers a Cortex-M4.

The core does not execute instructions. When pyocd resumes it at an entry point of the flash algorithm it
loaded into SRAM (Init, UnInit, EraseSector, ProgramPage, EraseAll, or pyocd's CRC analyzer), the effect of
that routine is applied to the Flash (spending its modelled time) and the core halts on the algorithm's
breakpoint with the result in R0, as the real routine would. This keeps the simulation fast and exact for
pyocd's own STM32F4 algorithm (rig.hardware.swd_target); the algorithm blob in SRAM must match it byte for byte,
so any other algorithm (e.g. one from a CMSIS pack) simply never returns and pyocd times out. Resuming
anywhere else means "running firmware".
"""

from __future__ import annotations

import logging
import struct
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

from pyocd.core import exceptions
from pyocd.flash.flash import _ANALYZER_CODE  # the blob pyocd loads for its CRC32 page analyzer

from rig.device.memory import FLASH_BASE, FLASH_SIZE
from rig.hardware.swd_target import FLASH_ALGO
from rig.sim.flash import Flash, FlashError

LOG = logging.getLogger(__name__)

SRAM_BASE, SRAM_SIZE = 0x2000_0000, 0x2_0000
CCM_BASE, CCM_SIZE = 0x1000_0000, 0x1_0000
FLASH_IF_BASE = 0x4002_3C00  # FLASH_ACR .. FLASH_OPTCR
DBGMCU_BASE = 0xE004_2000
PPB_BASE, PPB_END = 0xE000_0000, 0xE010_0000
ROM_TABLE = 0xE00F_F000

# Cortex-M4 r0p1 identification as pyocd reads it (ARMv7-M ARM, Cortex-M4 TRM; values from memory).
_READ_ONLY: dict[int, int] = {
    0xE000_E004: 0x0000_0002,  # ICTR: up to 96 interrupts (the F405 has 82)
    0xE000_ED00: 0x410F_C241,  # CPUID: Arm Cortex-M4 r0p1
    0xE000_ED6C: 0x0111_1131,  # ID_ISAR3: DSP extension
    0xE000_ED78: 0x0000_0000,  # CLIDR: no cache
    0xE000_ED90: 0x0000_0800,  # MPU_TYPE: 8 regions
    0xE000_EF40: 0x1011_0021,  # MVFR0: single precision FPU
    0xE000_EF44: 0x1100_0011,  # MVFR1
    0xE000_EF48: 0x0000_0000,  # MVFR2: not implemented on v7-M
    DBGMCU_BASE: 0x1007_6413,  # DBGMCU_IDCODE: DEV_ID 0x413 (STM32F405/407/415/417)
}
# Registers with read-only fields: address -> (mask of the read-only bits, their value).
_FIELDS: dict[int, tuple[int, int]] = {
    0xE000_1000: (0xF000_0000, 0x4000_0000),  # DWT_CTRL.NUMCOMP = 4
    0xE000_2000: (0x0000_7FF0, 0x0000_0260),  # FP_CTRL: 6 code, 2 literal comparators
}
_ARM, _ST = 0x43B, 0x020  # JEP106 designer codes
_COMPONENTS = {  # base -> (designer, part, CIDR class)
    ROM_TABLE: (_ST, 0x413, 0x1),
    0xE000_E000: (_ARM, 0x00C, 0xE),  # SCS-M4
    0xE000_1000: (_ARM, 0x002, 0xE),  # DWT
    0xE000_2000: (_ARM, 0x003, 0xE),  # FPB
}

DHCSR, DCRSR, DCRDR, DEMCR = 0xE000_EDF0, 0xE000_EDF4, 0xE000_EDF8, 0xE000_EDFC
AIRCR, DFSR = 0xE000_ED0C, 0xE000_ED30
_DBGKEY, _VECTKEY = 0xA05F, 0x05FA
C_DEBUGEN, C_HALT = 1 << 0, 1 << 1
S_REGRDY, S_HALT, S_RETIRE_ST, S_RESET_ST = 1 << 16, 1 << 17, 1 << 24, 1 << 25
DFSR_HALTED, DFSR_BKPT, DFSR_VCATCH = 1 << 0, 1 << 1, 1 << 3
VC_CORERESET = 1 << 0
R0, SP, LR, PC, XPSR = 0, 13, 14, 15, 16
FLASH_OPTCR = FLASH_IF_BASE + 0x14
_OPTCR_RESET = 0x0FFF_AAED  # RDP byte 0xAA = level 0; any other value but 0xCC = level 1
_RDP_LEVEL1 = 0x55


def _id_registers(base: int) -> dict[int, int]:
    """PIDR4..7, PIDR0..3, CIDR0..3 of the CoreSight component at `base`."""
    designer, part, klass = _COMPONENTS[base]
    pidr = [
        part & 0xFF,
        (part >> 8) | ((designer & 0xF) << 4),
        ((designer >> 4) & 0x7) | 0x8,  # JEDEC bit set
        0,
    ]
    regs = dict.fromkeys(range(base + 0xFD0, base + 0xFE0, 4), 0)
    regs[base + 0xFD0] = designer >> 8  # PIDR4: JEP106 continuation code
    regs.update({base + 0xFE0 + 4 * i: v for i, v in enumerate(pidr)})
    regs.update({base + 0xFF0 + 4 * i: v for i, v in enumerate((0x0D, klass << 4, 0x05, 0xB1))})
    return regs


def _rom_table() -> dict[int, int]:
    entries = [((base - ROM_TABLE) & 0xFFFF_F000) | 0x3 for base in _COMPONENTS if base != ROM_TABLE]
    regs = {ROM_TABLE + 4 * i: e for i, e in enumerate([*entries, 0])}
    regs[ROM_TABLE + 0xFCC] = 0x1  # MEMTYPE: system memory present
    return regs


def _is_register(addr: int) -> bool:
    return (
        PPB_BASE <= addr < PPB_END
        or DBGMCU_BASE <= addr < DBGMCU_BASE + 0x10
        or FLASH_IF_BASE <= addr < FLASH_IF_BASE + 0x18
    )


def _words(blob: list[int] | tuple[int, ...]) -> bytes:
    return struct.pack(f"<{len(blob)}I", *blob)


@dataclass
class SimTarget:
    """Debug-visible state of the simulated STM32F405. Thread-safe; every access raises pyocd exceptions."""

    flash: Flash
    # Fault: address -> mask of bits that stay 1 whatever is programmed (a worn cell; verify then mismatches).
    stuck_bits: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._lock = threading.RLock()
        self._sram = bytearray(SRAM_SIZE)
        self._ccm = bytearray(CCM_SIZE)
        self._ids = _rom_table()  # read-only CoreSight identification
        for base in _COMPONENTS:
            self._ids.update(_id_registers(base))
        self._regs: dict[int, int] = dict.fromkeys(_FIELDS, 0)
        self._core = [0] * 128  # core registers by DCRSR.REGSEL
        self.halted = False
        self.reset_asserted = False
        self._reset_seen = False
        self._dhcsr_ctrl = 0
        self._algo = _words(FLASH_ALGO["instructions"])
        self._analyzer = _words(_ANALYZER_CODE)
        self._entries: dict[int, Callable[[int, int, int], int]] = {
            FLASH_ALGO["pc_init"] & ~1: lambda *_: 0,
            FLASH_ALGO["pc_unInit"] & ~1: lambda *_: 0,
            FLASH_ALGO["pc_erase_sector"] & ~1: self._algo_erase_sector,
            FLASH_ALGO["pc_program_page"] & ~1: self._algo_program_page,
            FLASH_ALGO["pc_eraseAll"] & ~1: self._algo_erase_all,
        }

    # -- memory bus -------------------------------------------------------------------------------

    def read(self, addr: int, size: int) -> int:
        """Read `size` (1, 2, 4) bytes at `addr` as the AHB-AP does."""
        with self._lock:
            if _is_register(addr):
                word = self._read_register(addr & ~3)
                return (word >> (8 * (addr & 3))) & ((1 << (8 * size)) - 1)
            return int.from_bytes(self._read_bytes(addr, size, debug=True), "little")

    def write(self, addr: int, size: int, value: int) -> None:
        """Write `size` (1, 2, 4) bytes at `addr` as the AHB-AP does."""
        with self._lock:
            if FLASH_IF_BASE <= addr < FLASH_IF_BASE + 0x18:
                return  # the flash interface is driven by the emulated algorithm, not by the debugger
            if _is_register(addr):
                if size != 4:
                    raise exceptions.TransferFaultError(f"sub-word write to register {addr:#010x}")
                self._write_register(addr, value)
                return
            ram, offset = self._ram_at(addr, size)
            ram[offset : offset + size] = value.to_bytes(size, "little")

    def _read_bytes(self, addr: int, length: int, *, debug: bool) -> bytes:
        flash_addr = addr + FLASH_BASE if addr < FLASH_SIZE else addr  # boot alias at 0
        if FLASH_BASE <= flash_addr < FLASH_BASE + FLASH_SIZE:
            try:
                return self.flash.read(flash_addr, length, debug=debug)
            except FlashError as exc:
                raise exceptions.TransferFaultError(str(exc), flash_addr, length) from exc
        ram, offset = self._ram_at(addr, length)
        return bytes(ram[offset : offset + length])

    def _ram_at(self, addr: int, length: int) -> tuple[bytearray, int]:
        for base, ram in ((SRAM_BASE, self._sram), (CCM_BASE, self._ccm)):
            if base <= addr and addr + length <= base + len(ram):
                return ram, addr - base
        raise exceptions.TransferFaultError(f"bus fault at {addr:#010x}", addr, length)

    # -- registers --------------------------------------------------------------------------------

    def _read_register(self, addr: int) -> int:
        if addr in _READ_ONLY:
            return _READ_ONLY[addr]
        if addr in self._ids:
            return self._ids[addr]
        if addr in _FIELDS:
            mask, value = _FIELDS[addr]
            return (self._regs[addr] & ~mask) | value
        if addr == FLASH_OPTCR:
            rdp = _RDP_LEVEL1 if self.flash.locked else 0xAA
            return (_OPTCR_RESET & ~0xFF00) | (rdp << 8)
        if addr == DHCSR:
            return self._read_dhcsr()
        if addr == AIRCR:
            return 0xFA05_0000
        return self._regs.get(addr, 0)

    def _write_register(self, addr: int, value: int) -> None:
        if addr == DHCSR:
            self._write_dhcsr(value)
        elif addr == DCRSR:
            regsel = value & 0x7F
            if value & (1 << 16):
                self._core[regsel] = self._regs.get(DCRDR, 0)
            else:
                self._regs[DCRDR] = self._core[regsel]
        elif addr == AIRCR:
            if value >> 16 == _VECTKEY and value & 0b101:  # SYSRESETREQ or VECTRESET
                self._reset()
        elif addr == DFSR:
            self._regs[DFSR] = self._regs.get(DFSR, 0) & ~value  # write one to clear
        elif addr not in _READ_ONLY and addr not in self._ids:
            self._regs[addr] = value

    # -- core -------------------------------------------------------------------------------------

    @property
    def running_firmware(self) -> bool:
        """Whether the core runs code (not halted, not held in reset)."""
        with self._lock:
            return not self.halted and not self.reset_asserted

    def set_reset(self, asserted: bool) -> None:
        """Drive nRESET; releasing it starts the core from the reset vector (or halts it on vector catch)."""
        with self._lock:
            was_asserted, self.reset_asserted = self.reset_asserted, asserted
            if was_asserted and not asserted:
                self._reset()

    def _reset(self) -> None:
        self._core = [0] * 128
        vectors = self._read_bytes(FLASH_BASE, 8, debug=False)
        self._core[SP], reset_vector = struct.unpack("<II", vectors)
        self._core[PC] = reset_vector & ~1
        self._core[XPSR] = 0x0100_0000 if reset_vector & 1 else 0
        self._reset_seen = True
        self.halted = bool(self._regs.get(DEMCR, 0) & VC_CORERESET)
        self._regs[DFSR] = DFSR_VCATCH if self.halted else 0

    def _read_dhcsr(self) -> int:
        value = self._dhcsr_ctrl | S_REGRDY
        value |= S_HALT if self.halted else 0
        value |= S_RETIRE_ST if self.running_firmware else 0
        value |= S_RESET_ST if (self._reset_seen or self.reset_asserted) else 0
        self._reset_seen = False
        return value

    def _write_dhcsr(self, value: int) -> None:
        if value >> 16 != _DBGKEY:
            return
        self._dhcsr_ctrl = value & 0xF
        if value & C_HALT:
            self.halted = True
            self._regs[DFSR] = self._regs.get(DFSR, 0) | DFSR_HALTED
        elif self.halted:
            self.halted = False
            if value & C_DEBUGEN:
                self._run()

    def _run(self) -> None:
        """Resume: run a flash algorithm routine to its breakpoint, or let the firmware run."""
        pc = self._core[PC] & ~1
        routine = self._routine_at(pc)
        if routine is None:
            return
        self._core[R0] = routine(*self._core[R0:3]) & 0xFFFF_FFFF
        self._core[PC] = self._core[LR] & ~1
        self.halted = True
        self._regs[DFSR] = self._regs.get(DFSR, 0) | DFSR_BKPT

    def _routine_at(self, pc: int) -> Callable[[int, int, int], int] | None:
        if pc == FLASH_ALGO["analyzer_address"] & ~1 and self._loaded(pc, self._analyzer):
            return self._analyzer_crc
        if pc in self._entries and self._loaded(FLASH_ALGO["load_address"], self._algo):
            return self._entries[pc]
        if pc in self._entries or SRAM_BASE <= pc < SRAM_BASE + SRAM_SIZE:
            LOG.debug("core resumed at %#010x in SRAM code the simulator does not know; it never returns", pc)
        return None

    def _loaded(self, addr: int, blob: bytes) -> bool:
        offset = addr - SRAM_BASE
        return self._sram[offset : offset + len(blob)] == blob

    # -- flash algorithm routines (results as the STM32F4 algorithm: 0 = OK, 1 = error flag in FLASH_SR) --

    def _algo_erase_sector(self, addr: int, *_: int) -> int:
        try:
            index = self.flash.sector_at(addr).index
            self.flash.erase_sector(index, parallelism=8, debug=True)  # the algorithm erases at PSIZE x8
        except FlashError as exc:
            LOG.info("EraseSector(%#010x) failed: %s", addr, exc)
            return 1
        return 0

    def _algo_program_page(self, addr: int, size: int, buffer: int) -> int:
        size = (size + 3) & ~3  # the algorithm writes whole words
        data = bytearray(self._read_bytes(buffer, size, debug=False))
        for stuck_addr, mask in self.stuck_bits.items():
            if addr <= stuck_addr < addr + size:
                data[stuck_addr - addr] |= mask
        try:
            self.flash.program(addr, bytes(data), width=4, debug=True)
        except FlashError as exc:
            LOG.info("ProgramPage(%#010x, %d) failed: %s", addr, size, exc)
            return 1
        return 0

    def _algo_erase_all(self, *_: int) -> int:
        self.flash.mass_erase(parallelism=8)
        return 0

    def _analyzer_crc(self, table: int, count: int, _: int) -> int:
        """pyocd's analyzer: each word is log2(size) | (addr / size) << 16; replaced by the CRC32 of that range."""
        for i in range(count):
            slot = table + 4 * i
            (entry,) = struct.unpack("<I", self._read_bytes(slot, 4, debug=False))
            size = 1 << (entry & 0xFFFF)
            crc = zlib.crc32(self._read_bytes((entry >> 16) * size, size, debug=False))
            self.write(slot, 4, crc)
        return 0
