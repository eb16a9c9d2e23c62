"""The STM32F405 flash of a simulated VESC: 1 MiB in 12 sectors, erased to 0xFF, programmed by clearing bits.

The sector map is rig.device.memory's (the one place that knows it).

Read-out protection level 1 (`locked`) blocks debug (SWD) access only, as on the chip: the CPU's own
reads and writes go through. A mass erase clears it (on the chip, regressing RDP to level 0 mass-erases).
"""

from __future__ import annotations

import os
import struct
import threading
from pathlib import Path

from rig.device.memory import FLASH_BASE, FLASH_SIZE, SECTORS, Sector, sectors_touching
from rig.device.memory import sector_at as _sector_at
from rig.device.timing import FlashTiming
from rig.errors import Diagnosis, RigError
from rig.sim.clock import DeviceClock

_FILE_MAGIC = b"RIGFLSH1"
_FILE_HEADER = struct.Struct("<8sB7x")  # magic, flags (bit 0: locked), padding to 16 bytes
_ERASED = 0xFF
_DEFAULT_TIMING = FlashTiming()


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
        sector = _sector_at(addr)
        if sector is None:
            raise FlashError(f"address {addr:#010x} is outside the flash")
        return sector

    @staticmethod
    def sectors_in(start: int, length: int) -> list[Sector]:
        """The sectors touched by [start, start+length)."""
        _check_range(start, length)
        return sectors_touching(start, length)

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
