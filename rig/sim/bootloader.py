"""The VESC bootloader (vedderb/bldc-bootloader main.c), run step by step over the flash model.

It has no communication. It reads the header at 0x08080000 (u32 size, u16 CRC-16/XMODEM; 0xCC in the
top byte of the size = heatshrink-compressed), rejects size > 393216, size 0 or a bad CRC without
touching the app, else erases the app sectors as far as the image reaches (sectors 0-7 if compressed),
which includes the EEPROM-emulation sectors 1-2 (so the config is wiped), copies with byte programming,
blinks green and resets. The pre-2022 generation (:class:`BootloaderGeneration`) knows no compression: a
0xCC size field is simply too big for it.

Decompression streams as the real one does: the input is read from the live flash at 0x08080006 as it
is consumed, and the output is programmed linearly from 0x08000000. Nothing bounds the output, so an
image that decompresses past 512 KiB programs into the input area (old AND new bits) and, if the output
overtakes the read position, the rest of the input is read corrupted (research fw-flash.md 5.4). The
input is sunk 1 KiB at a time, 32 bytes once the output comes within 4 KiB of the input.

:meth:`BootloaderRun.steps` yields after each unit of work (one sector erase, about 16 KB of output), so
the device can advance it one step per poll, a power cut can land between steps, and a test hook can
see the phase and progress.
"""

from __future__ import annotations

import logging
from binascii import crc_hqx
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum

from rig.device.memory import FLASH_BASE, FLASH_END, NEW_APP_BASE, SECTORS
from rig.device.update_format import BOOTLOADER_BLINK_S as BLINK_S
from rig.device.update_format import (
    BOOTLOADER_MAX_SIZE,
    HEADER,
    BootloaderGeneration,
    heatshrink_stream,
    split_size,
)
from rig.sim.flash import Flash

log = logging.getLogger(__name__)

COPY_CHUNK = 16 * 1024  # bytes programmed per step
_SINK = 1024  # compressed bytes read from flash per decoder fill
_SINK_NEAR = 32  # ... once the output is within _NEAR of the input (the real decoder's buffer)
_NEAR = 4096
_INPUT = NEW_APP_BASE + HEADER.size


class BootPhase(StrEnum):
    CHECK = "check"
    ERASE = "erase"
    COPY = "copy"
    DONE = "done"  # copied; the bootloader resets into the new firmware
    REJECTED = "rejected"  # header refused; the app is untouched


class Rejection(StrEnum):
    """Why the bootloader refused the header, with its red-blink count (L: main.c)."""

    TOO_BIG = "size > 393216"
    EMPTY = "size 0"
    BAD_CRC = "bad CRC"

    @property
    def blinks(self) -> int:
        return {Rejection.TOO_BIG: 3, Rejection.EMPTY: 4, Rejection.BAD_CRC: 5}[self]


@dataclass
class BootloaderRun:
    """One run of the bootloader; read `phase`, `copied` and `total` to watch its progress."""

    flash: Flash
    generation: BootloaderGeneration = BootloaderGeneration.CURRENT
    force_reject: bool = False  # fault bootloader_rejects: refuse as for a bad CRC
    phase: BootPhase = BootPhase.CHECK
    rejection: Rejection | None = None
    erased: tuple[int, ...] = ()
    copied: int = 0  # bytes programmed from 0x08000000
    total: int = 0  # bytes it will program (the raw size; for a compressed image known only at the end)
    fraction: float = 0.0  # how far the copy is: of the image copied, or of the compressed input consumed
    compressed: bool = False

    def steps(self) -> Iterator[BootPhase]:
        """Run the bootloader, yielding the phase after each step."""
        field, crc = HEADER.unpack(self.flash.read(NEW_APP_BASE, HEADER.size))
        size, compressed = split_size(field)
        if compressed and not self.generation.decompresses:
            size = field  # the old bootloader reads the whole word as the size
        self.compressed = compressed and self.generation.decompresses
        payload = self.flash.read(_INPUT, size) if 0 < size <= BOOTLOADER_MAX_SIZE else b""
        self.rejection = _check(size, crc, payload, self.force_reject)
        if self.rejection is not None:
            log.info("bootloader (%s) rejects the image: %s", self.generation.value, self.rejection.value)
            self.phase = BootPhase.REJECTED
            self.flash.clock.spend(self.rejection.blinks * BLINK_S)
            yield self.phase
            return
        self.phase = BootPhase.ERASE
        for index in self.generation.app_sectors:
            if not self.compressed and FLASH_BASE + size <= SECTORS[index].start:
                break
            self.flash.erase_sector(index)
            self.erased += (index,)
            yield self.phase
        self.phase = BootPhase.COPY
        if self.compressed:
            yield from self._decompress(size)
        else:
            self.total = size
            for at in range(0, size, COPY_CHUNK):
                chunk = self.flash.read(_INPUT + at, min(COPY_CHUNK, size - at))
                self._program(chunk)
                self.fraction = self.copied / size
                yield self.phase
        self.phase = BootPhase.DONE
        self.flash.clock.spend(3 * BLINK_S)
        yield self.phase

    def _program(self, data: bytes) -> None:
        """Program output at 0x08000000 + copied; what would fall past the flash is dropped (not modelled)."""
        at = FLASH_BASE + self.copied
        room = max(0, min(len(data), FLASH_END - at))
        if room < len(data):
            log.warning("bootloader output reaches past the end of flash: %d bytes not modelled", len(data) - room)
        if room:
            self.flash.program(at, data[:room])
        self.copied += len(data)

    def _decompress(self, size: int) -> Iterator[BootPhase]:
        decoder = heatshrink_stream()
        consumed, stepped = 0, 0
        while consumed < size:
            near = FLASH_BASE + self.copied + _NEAR >= _INPUT + consumed
            take = min(_SINK_NEAR if near else _SINK, size - consumed)
            self._program(decoder.fill(self.flash.read(_INPUT + consumed, take)))
            consumed += take
            self.fraction = consumed / size
            if self.copied - stepped >= COPY_CHUNK:
                stepped = self.copied
                yield self.phase
        self._program(decoder.finish())
        self.total = self.copied
        if self.copied > _INPUT - FLASH_BASE:
            log.warning("bootloader output of %d bytes ran into its own input at 0x%08X", self.copied, _INPUT)
        yield self.phase


def _check(size: int, crc: int, payload: bytes, force_reject: bool) -> Rejection | None:
    if size > BOOTLOADER_MAX_SIZE:
        return Rejection.TOO_BIG
    if size == 0:
        return Rejection.EMPTY
    if force_reject or crc_hqx(payload, 0) != crc:
        return Rejection.BAD_CRC
    return None
