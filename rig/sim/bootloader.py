"""The VESC bootloader (vedderb/bldc-bootloader main.c), run step by step over the flash model.

It has no communication. It reads the header at 0x08080000 (u32 size, u16 CRC-16/XMODEM; 0xCC in the
top byte of the size = heatshrink-compressed), rejects size > 393216, size 0 or a bad CRC without
touching the app, else erases app sectors 0..7 as far as the image reaches (all eight if compressed),
which includes the EEPROM-emulation sectors 1-2 (so the config is wiped), copies the image with byte
programming, blinks green and resets. The pre-2022 bootloader only erased up to sector 6; it is not
modelled (sector 7 matters only to images above 384 KB, which that bootloader could not take).

:meth:`BootloaderRun.steps` yields after each unit of work (one sector erase, one copy chunk), so the
device can advance it one step per poll, a power cut can land between steps, and a test hook can see
the phase and progress.
"""

from __future__ import annotations

import logging
from binascii import crc_hqx
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum

from rig.device.memory import FLASH_BASE, NEW_APP_BASE, SECTORS
from rig.device.update_format import BOOTLOADER_APP_SECTORS as APP_SECTOR_RANGE
from rig.device.update_format import BOOTLOADER_BLINK_S as BLINK_S
from rig.device.update_format import BOOTLOADER_MAX_SIZE, HEADER, heatshrink_decompress, split_size
from rig.sim.flash import Flash

log = logging.getLogger(__name__)

COPY_CHUNK = 16 * 1024  # bytes programmed per step


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
    force_reject: bool = False  # fault bootloader_rejects: refuse as for a bad CRC
    phase: BootPhase = BootPhase.CHECK
    rejection: Rejection | None = None
    erased: tuple[int, ...] = ()
    copied: int = 0
    total: int = 0

    def steps(self) -> Iterator[BootPhase]:
        """Run the bootloader, yielding the phase after each step."""
        field, crc = HEADER.unpack(self.flash.read(NEW_APP_BASE, HEADER.size))
        size, compressed = split_size(field)
        payload = self.flash.read(NEW_APP_BASE + HEADER.size, size) if 0 < size <= BOOTLOADER_MAX_SIZE else b""
        self.rejection = _check(size, crc, payload, self.force_reject)
        if self.rejection is not None:
            log.info("bootloader rejects the image: %s", self.rejection.value)
            self.phase = BootPhase.REJECTED
            self.flash.clock.spend(self.rejection.blinks * BLINK_S)
            yield self.phase
            return
        image = heatshrink_decompress(payload) if compressed else payload
        self.total = len(image)
        self.phase = BootPhase.ERASE
        for index in APP_SECTOR_RANGE:
            if not compressed and FLASH_BASE + size <= SECTORS[index].start:
                break
            self.flash.erase_sector(index)
            self.erased += (index,)
            yield self.phase
        self.phase = BootPhase.COPY
        for at in range(0, len(image), COPY_CHUNK):
            chunk = image[at : at + COPY_CHUNK]
            self.flash.program(FLASH_BASE + at, chunk)
            self.copied = at + len(chunk)
            yield self.phase
        self.phase = BootPhase.DONE
        self.flash.clock.spend(3 * BLINK_S)
        yield self.phase


def _check(size: int, crc: int, payload: bytes, force_reject: bool) -> Rejection | None:
    if size > BOOTLOADER_MAX_SIZE:
        return Rejection.TOO_BIG
    if size == 0:
        return Rejection.EMPTY
    if force_reject or crc_hqx(payload, 0) != crc:
        return Rejection.BAD_CRC
    return None
