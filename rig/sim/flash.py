"""The STM32F405 flash of a simulated VESC: 1 MiB in 12 sectors, erased to 0xFF, programmed by clearing bits.

Layout from vesc-protocol-facts.md section 6 (vedderb/bldc flash_helper.c, ld_eeprom_emu.ld): sectors 0-3
are 16 KB, sector 4 is 64 KB, sectors 5-11 are 128 KB. The firmware occupies sector 0 and sectors 3-7, the
EEPROM emulation sectors 1-2, the new-app buffer sectors 8-10 and the bootloader sector 11.

Read-out protection level 1 (`locked`) blocks debug (SWD) access only, as on the chip: the CPU's own
reads and writes go through. A mass erase clears it (on the chip, regressing RDP to level 0 mass-erases).
"""

from __future__ import annotations

import os
import struct
import threading
from dataclasses import dataclass
from pathlib import Path

from rig.errors import Diagnosis, RigError
from rig.sim.timing import DeviceClock, FlashTiming

FLASH_BASE = 0x0800_0000
FLASH_SIZE = 0x10_0000
NEW_APP_BASE = 0x0808_0000
BOOTLOADER_BASE = 0x080E_0000

APP_SECTORS = (0, 3, 4, 5, 6, 7)
EEPROM_SECTORS = (1, 2)
NEW_APP_SECTORS = (8, 9, 10)
BOOTLOADER_SECTOR = 11

_FILE_MAGIC = b"RIGFLSH1"
_FILE_HEADER = struct.Struct("<8sB7x")  # magic, flags (bit 0: locked), padding to 16 bytes
_ERASED = 0xFF
_DEFAULT_TIMING = FlashTiming()


@dataclass(frozen=True)
class Sector:
    """One erase sector of the flash (absolute addresses)."""

    index: int
    start: int
    size: int

    @property
    def end(self) -> int:
        """First address after the sector."""
        return self.start + self.size


def _build_sectors() -> tuple[Sector, ...]:
    sizes = [0x4000] * 4 + [0x1_0000] + [0x2_0000] * 7
    sectors, start = [], FLASH_BASE
    for index, size in enumerate(sizes):
        sectors.append(Sector(index, start, size))
        start += size
    return tuple(sectors)


SECTORS: tuple[Sector, ...] = _build_sectors()


class FlashError(RigError):
    """A flash access outside the flash, or a debug access to a read-out protected chip."""

    diagnosis = Diagnosis.SIM


class Flash:
    """The flash array and its controller, as the firmware and the debug port see it. Thread-safe."""

    def __init__(self, clock: DeviceClock | None = None, timing: FlashTiming = _DEFAULT_TIMING) -> None:
        self.clock = clock if clock is not None else DeviceClock()
        self.timing = timing
        self.locked = False
        self._data = bytearray(b"\xff" * FLASH_SIZE)
        self._lock = threading.Lock()

    # -- geometry ---------------------------------------------------------------------------------

    @staticmethod
    def sector_at(addr: int) -> Sector:
        """The sector holding `addr`."""
        for sector in SECTORS:
            if sector.start <= addr < sector.end:
                return sector
        raise FlashError(f"address {addr:#010x} is outside the flash")

    @staticmethod
    def sectors_in(start: int, length: int) -> list[Sector]:
        """The sectors touched by [start, start+length)."""
        _check_range(start, length)
        if length == 0:
            return []
        return [s for s in SECTORS if s.start < start + length and start < s.end]

    # -- access -----------------------------------------------------------------------------------

    def read(self, addr: int, length: int, *, debug: bool = False) -> bytes:
        """Bytes at absolute `addr`; `debug` marks an SWD access, refused while locked."""
        _check_range(addr, length)
        with self._lock:
            self._check_debug(debug, "read")
            offset = addr - FLASH_BASE
            return bytes(self._data[offset : offset + length])

    def program(self, addr: int, data: bytes, *, width: int = 1, debug: bool = False) -> None:
        """Program `data` at `addr`: bits can only go from 1 to 0 (AND), and it reports OK like the chip.

        Spends tprog per write of `width` bytes (1 = byte-wide as the VESC firmware, 4 = x32 words).
        """
        _check_range(addr, len(data))
        if width not in (1, 2, 4):
            raise ValueError("width must be 1, 2 or 4")
        with self._lock:
            self._check_debug(debug, "program")
            offset = addr - FLASH_BASE
            old = int.from_bytes(self._data[offset : offset + len(data)], "little")
            new = old & int.from_bytes(data, "little")
            self._data[offset : offset + len(data)] = new.to_bytes(len(data), "little")
        self.clock.spend(self.timing.program_byte_s * -(-len(data) // width))

    def erase_sector(self, index: int, *, parallelism: int = 32, debug: bool = False) -> None:
        """Erase one sector back to 0xFF, spending its erase time."""
        if not 0 <= index < len(SECTORS):
            raise FlashError(f"no sector {index}; the STM32F405 has sectors 0-{len(SECTORS) - 1}")
        sector = SECTORS[index]
        with self._lock:
            self._check_debug(debug, "erase")
            offset = sector.start - FLASH_BASE
            self._data[offset : offset + sector.size] = b"\xff" * sector.size
        self.clock.spend(self.timing.erase_time(sector.size, parallelism))

    def mass_erase(self, *, parallelism: int = 32) -> None:
        """Erase every sector and clear read-out protection; takes the sum of the sector erase times."""
        with self._lock:
            self._data[:] = b"\xff" * FLASH_SIZE
            self.locked = False
        self.clock.spend(sum(self.timing.erase_time(s.size, parallelism) for s in SECTORS))

    def is_erased(self, addr: int, length: int) -> bool:
        """Whether [addr, addr+length) reads all 0xFF."""
        return self.read(addr, length).count(_ERASED) == length

    # -- persistence ------------------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the flash (and its protection state) to `path`, atomically."""
        with self._lock:
            blob = _FILE_HEADER.pack(_FILE_MAGIC, int(self.locked)) + bytes(self._data)
        target = Path(path)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_bytes(blob)
        tmp.replace(target)

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], clock: DeviceClock | None = None, timing: FlashTiming = _DEFAULT_TIMING
    ) -> Flash:
        """A Flash restored from a file written by save()."""
        blob = Path(path).read_bytes()
        if len(blob) != _FILE_HEADER.size + FLASH_SIZE:
            raise FlashError(f"{path}: not a saved flash ({len(blob)} bytes)")
        magic, flags = _FILE_HEADER.unpack_from(blob)
        if magic != _FILE_MAGIC:
            raise FlashError(f"{path}: not a saved flash (bad magic)")
        flash = cls(clock, timing)
        flash._data[:] = blob[_FILE_HEADER.size :]
        flash.locked = bool(flags & 1)
        return flash

    def _check_debug(self, debug: bool, what: str) -> None:
        if debug and self.locked:
            raise FlashError(f"debug {what} refused: read-out protection level 1 is set")


def _check_range(addr: int, length: int) -> None:
    if length < 0 or addr < FLASH_BASE or addr + length > FLASH_BASE + FLASH_SIZE:
        raise FlashError(f"{length} bytes at {addr:#010x} are not inside the flash")
