"""What an update writes to the new-app buffer, and what the bootloader does with it.

Facts (vesc-protocol-facts.md section 5; VESC Tool vescinterface.cpp fwUpload; vedderb/bldc-bootloader
main.c): the buffer starts with a 6-byte header (u32 size, u16 CRC-16/XMODEM of what follows), then
the image. Images of 393209..699999 bytes are heatshrink-compressed (window 13, lookahead 5); the size
field is then 0xCC << 24 | compressed size and the CRC covers the compressed bytes. The bootloader
refuses a size above 393216, a size of 0 or a bad CRC (3, 4, 5 red blinks) without touching the app;
otherwise it erases app sectors 0..7 as far as the image reaches (all eight if compressed), which
includes the EEPROM emulation, copies, blinks green three times and resets.
"""

from __future__ import annotations

import struct

import heatshrink2

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


def needs_compression(size: int) -> bool:
    """VESC Tool's rule: heatshrink an image if 393208 < size < 700000."""
    return COMPRESS_ABOVE < size < COMPRESS_BELOW


def heatshrink_compress(data: bytes) -> bytes:
    return heatshrink2.compress(data, window_sz2=HEATSHRINK_WINDOW, lookahead_sz2=HEATSHRINK_LOOKAHEAD)


def heatshrink_decompress(data: bytes) -> bytes:
    return heatshrink2.decompress(data, window_sz2=HEATSHRINK_WINDOW, lookahead_sz2=HEATSHRINK_LOOKAHEAD)


def split_size(field: int) -> tuple[int, bool]:
    """The header's size field as (size, compressed)."""
    compressed = field >> 24 == COMPRESSED_FLAG
    return (field & 0x00FF_FFFF if compressed else field), compressed
