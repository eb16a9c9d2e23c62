"""What an update writes to the new-app buffer, and what the bootloader does with it.

Facts (vesc-protocol-facts.md section 5; VESC Tool vescinterface.cpp fwUpload; vedderb/bldc-bootloader
main.c, research fw-flash.md section 5): the buffer starts with a 6-byte header (u32 size, u16
CRC-16/XMODEM of what follows), then the image. Images of 393209..699999 bytes are heatshrink-compressed
(window 13, lookahead 5); the size field is then 0xCC << 24 | compressed size and the CRC covers the
compressed bytes. The bootloader refuses a size above 393216, a size of 0 or a bad CRC (3, 4, 5 red
blinks) without touching the app; otherwise it erases app sectors as far as the image reaches (all of
sectors 0-7 if compressed), which includes the EEPROM emulation, copies, blinks green three times and
resets.

Two generations of the bootloader are in the field: before 1de52ea (2022-01-18) it knew no compression
(a 0xCC size field is just too big: 3 red blinks, the old firmware boots again) and erased at most sectors
0-6 (APP_SECTORS 7); from 1de52ea it decompresses and erases sectors 0-7 for a compressed image. So a
6.x image (524 280 bytes, always compressed) needs the 2022 bootloader. The decompressed output is
programmed linearly from 0x08000000 and nothing bounds it: past 512 KiB it runs into the input at
0x08080000 (it is not in place; the output region merely ends where the input begins).
"""

from __future__ import annotations

import struct
from enum import StrEnum
from functools import lru_cache
from typing import Protocol

import heatshrink2
import heatshrink2.core

from rig.device.memory import NEW_APP_SIZE

HEADER = struct.Struct(">IH")  # u32 size (0xCC in the top byte: compressed), u16 CRC-16/XMODEM
BOOTLOADER_MAX_SIZE = NEW_APP_SIZE  # 393216: the bootloader refuses a larger size field
COMPRESS_ABOVE = 393208  # VESC Tool compresses if COMPRESS_ABOVE < size < COMPRESS_BELOW
COMPRESS_BELOW = 700000
COMPRESSED_FLAG = 0xCC
HEATSHRINK_WINDOW = 13  # vesc_tool heatshrink/heatshrink_config.h
HEATSHRINK_LOOKAHEAD = 5

BOOTLOADER_APP_SECTORS = range(0, 8)  # L: main.c APP_BASE 0, APP_SECTORS 8 (sectors 1-2 are the EEPROM)
BOOTLOADER_BLINK_S = 0.4  # 200 + 200 "ms" per blink, an uncalibrated NOP loop (unverified)
BOOTLOADER_HEADER_OFFSET = HEADER.size  # the image starts at 0x08080006
BOOTLOADER_TRIES = 5  # write_new_app() is retried on a flash error (not on a rejected header)
COMPRESSED_SINCE_DATE = "2022-01-18"  # L: 1de52ea; firmware released before it shipped with the old bootloader


class BootloaderGeneration(StrEnum):
    """The two bootloaders in the field (L: main.c before and after 1de52ea)."""

    OLD = "2015"  # f507a7e .. 2cdb167^: no heatshrink, APP_SECTORS 7
    CURRENT = "2022"  # 1de52ea: heatshrink, APP_SECTORS 8; 47e8b61 erase voltage from PVDO

    @property
    def decompresses(self) -> bool:
        return self == BootloaderGeneration.CURRENT

    @property
    def app_sectors(self) -> range:
        """The sectors it may erase for an image (uncompressed: as far as the image reaches)."""
        return BOOTLOADER_APP_SECTORS if self == BootloaderGeneration.CURRENT else range(0, 7)


def shipped_bootloader(release_date: str) -> BootloaderGeneration:
    """The bootloader a board leaving the factory with firmware of this release date carries (an assumption:
    the one current at the time)."""
    return BootloaderGeneration.OLD if release_date < COMPRESSED_SINCE_DATE else BootloaderGeneration.CURRENT


def needs_compression(size: int) -> bool:
    """VESC Tool's rule: heatshrink an image if 393208 < size < 700000."""
    return COMPRESS_ABOVE < size < COMPRESS_BELOW


@lru_cache(maxsize=8)
def heatshrink_compress(data: bytes) -> bytes:
    """Heatshrink with VESC Tool's parameters; the same image is compressed once per process (0.1 s each)."""
    return heatshrink2.compress(data, window_sz2=HEATSHRINK_WINDOW, lookahead_sz2=HEATSHRINK_LOOKAHEAD)


def heatshrink_decompress(data: bytes) -> bytes:
    return heatshrink2.decompress(data, window_sz2=HEATSHRINK_WINDOW, lookahead_sz2=HEATSHRINK_LOOKAHEAD)


class HeatshrinkStream(Protocol):
    """A streaming decoder: fill() takes compressed bytes and returns what they decompress to so far."""

    def fill(self, data: bytes) -> bytes: ...
    def finish(self) -> bytes: ...


def heatshrink_stream() -> HeatshrinkStream:
    """A streaming heatshrink decoder with the bootloader's parameters."""
    reader = heatshrink2.core.Reader(window_sz2=HEATSHRINK_WINDOW, lookahead_sz2=HEATSHRINK_LOOKAHEAD)
    stream: HeatshrinkStream = heatshrink2.core.Encoder(reader)
    return stream


def split_size(field: int) -> tuple[int, bool]:
    """The header's size field as (size, compressed)."""
    compressed = field >> 24 == COMPRESSED_FLAG
    return (field & 0x00FF_FFFF if compressed else field), compressed
