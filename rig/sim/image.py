"""Simulated firmware and bootloader images, laid out as the real .bin files are.

A firmware image has the real size and shape of its generation (rig.device.app_image): the vector table
(initial SP 0x20000800, reset vector 0x0800C001), sector 0 filled after it (from 6.06 with ``.text2``
code), the EEPROM-emulation sectors 1-2 and every gap in the generation's gap-fill byte (0x00 up to 3.55
and from 6.00, 0xFF for 3.56-5.03), code from 0x0800C000, and from 3.56 the integrity-record placeholder
(eight 0xFF bytes at 0x0805FFF0 / 0x0807FFF0) as its last bytes. Generated code compresses with heatshrink
about as a real build does (a 6.06 build: 524 280 -> 352 549 bytes, 67 %).

The simulator recognises its own images by a descriptor at :data:`DESCRIPTOR_OFFSET` (inside the sector-0
fill): kind, hardware, version, size and a CRC-32 over the image except the descriptor, the EEPROM
window and the integrity record (the firmware writes both at run time). So erased flash, garbage or a
half-copied image reads as "no firmware". Images are deterministic (the same arguments give the same
bytes), so they are made once per process.

Bootloader images exist in two generations (rig.device.update_format): the 2022 one with heatshrink support
and the older one without. A bootloader the simulator did not make (VESC Tool's real ``generic.bin``, say)
is taken for a 2022 bootloader when its vector table is plausible (:func:`bootloader_in`).
"""

from __future__ import annotations

import random
import struct
import zlib
from dataclasses import dataclass
from enum import IntEnum
from functools import lru_cache

from rig.device.app_image import CODE_START, INITIAL_SP, RECORD_SIZE, RESET_VECTOR, VECTOR_TABLE_SIZE
from rig.device.firmware import profile_for
from rig.device.memory import BOOTLOADER_BASE, BOOTLOADER_SIZE, EEPROM_SECTORS, FLASH_BASE, SECTORS, SRAM
from rig.device.update_format import BootloaderGeneration
from rig.protocol.commands import FirmwareVersion
from rig.sim.errors import SimError

DESCRIPTOR_OFFSET = 0x200  # after the 0x1C0-byte vector table
_MAGIC = b"VESCSIM1"
_DESCRIPTOR = struct.Struct(">8sBBB16s8sII")  # magic kind major minor hw variant size image_crc
_DESCRIPTOR_CRC = struct.Struct(">I")
DESCRIPTOR_SIZE = _DESCRIPTOR.size + _DESCRIPTOR_CRC.size
# sectors 1-2 as image offsets: the generation's gap fill in every firmware .bin
EEPROM_WINDOW = range(SECTORS[EEPROM_SECTORS[0]].start - FLASH_BASE, SECTORS[EEPROM_SECTORS[-1]].end - FLASH_BASE)
TEXT2_SINCE = FirmwareVersion(6, 6)  # 964d9172: .text2 code in sector 0 after the vectors
TEXT2_SIZE = 0x3AEC  # a 6.06 build's .text2
CODE_SHARE = 86  # percent of the space from 0x0800C000 to the record that is code, the rest gap fill
BOOTLOADER_SIZES = {  # VESC Tool res/bootloaders (generic, and the hardware-specific builds)
    BootloaderGeneration.CURRENT: (5280, 5776),
    BootloaderGeneration.OLD: (3792, 4288),
}
BOOTLOADER_IMAGE_SIZE = BOOTLOADER_SIZES[BootloaderGeneration.CURRENT][0]
_BOOTLOADER_RESET_OFFSET = 0x4F0  # the 2022 generic build's reset vector is 0x080E04F1


class ImageKind(IntEnum):
    FIRMWARE = 1
    BOOTLOADER = 2


@dataclass(frozen=True)
class Descriptor:
    """What a simulated image says about itself."""

    kind: ImageKind
    hw_name: str
    version: FirmwareVersion
    variant: str  # firmware: its version; bootloader: its generation
    size: int
    image_crc: int


def _record_window(size: int, version: FirmwareVersion, kind: ImageKind) -> range:
    """The integrity record's bytes in an image of this size (empty when it has none or ends before it)."""
    if kind != ImageKind.FIRMWARE:
        return range(0)
    offset = profile_for(version).image.record_offset
    return range(0) if offset is None or offset + RECORD_SIZE > size else range(offset, offset + RECORD_SIZE)


def _image_crc(image: bytes, record: range) -> int:
    """CRC-32 of everything except the descriptor, the EEPROM window and the integrity record."""
    head = DESCRIPTOR_OFFSET + DESCRIPTOR_SIZE
    parts = (
        (0, DESCRIPTOR_OFFSET),
        (head, EEPROM_WINDOW.start),
        (EEPROM_WINDOW.stop, record.start if record else len(image)),
        (record.stop if record else len(image), len(image)),
    )
    crc = 0
    for start, stop in parts:
        crc = zlib.crc32(image[start:stop], crc)
    return crc


def _pack_descriptor(d: Descriptor) -> bytes:
    body = _DESCRIPTOR.pack(
        _MAGIC,
        d.kind,
        d.version.major,
        d.version.minor,
        d.hw_name.encode("ascii"),
        d.variant.encode("ascii"),
        d.size,
        d.image_crc,
    )
    return body + _DESCRIPTOR_CRC.pack(zlib.crc32(body))


def descriptor_at(data: bytes) -> Descriptor | None:
    """The descriptor of an image starting at data[0] if its own CRC holds (the image itself unchecked)."""
    end = DESCRIPTOR_OFFSET + DESCRIPTOR_SIZE
    if len(data) < end:
        return None
    raw = data[DESCRIPTOR_OFFSET:end]
    (crc,) = _DESCRIPTOR_CRC.unpack_from(raw, _DESCRIPTOR.size)
    if zlib.crc32(raw[: _DESCRIPTOR.size]) != crc:
        return None
    magic, kind, major, minor, hw, variant, size, image_crc = _DESCRIPTOR.unpack_from(raw)
    if magic != _MAGIC or kind not in ImageKind.__members__.values() or not end <= size <= len(data):
        return None
    return Descriptor(
        ImageKind(kind),
        hw.rstrip(b"\0").decode("ascii"),
        FirmwareVersion(major, minor),
        variant.rstrip(b"\0").decode("ascii"),
        size,
        image_crc,
    )


def image_intact(data: bytes, descriptor: Descriptor) -> bool:
    """Whether the image the descriptor describes is complete and unchanged (outside the run-time areas)."""
    image = data[: descriptor.size]
    return _image_crc(image, _record_window(descriptor.size, descriptor.version, descriptor.kind)) == (
        descriptor.image_crc
    )


def read_descriptor(data: bytes) -> Descriptor | None:
    """The descriptor of an intact image starting at data[0], or None for garbage, erased or damaged images.

    `data` must reach the end of the image (read the whole region the image may occupy).
    """
    descriptor = descriptor_at(data)
    return descriptor if descriptor is not None and image_intact(data, descriptor) else None


def _code(rng: random.Random, size: int) -> bytes:
    """Code-like bytes: repeated snippets plus literals, compressing with heatshrink (W13/L5) about as real
    Cortex-M4 code does."""
    snippets = rng.randbytes(8192)
    out = bytearray()
    while len(out) < size:
        if rng.random() < 0.45:
            at = rng.randrange(0, len(snippets) - 48)
            out += snippets[at : at + rng.randrange(6, 48)]
        else:
            out += rng.randbytes(rng.randrange(2, 20))
    return bytes(out[:size])


def _check_hw(hw: str) -> None:
    if len(hw.encode("ascii")) > 16:
        raise SimError(f"hardware name {hw!r} is longer than 16 characters")


def _firmware(hw: str, version: FirmwareVersion, size: int) -> bytes:
    _check_hw(hw)
    layout = profile_for(version).image
    head = DESCRIPTOR_OFFSET + DESCRIPTOR_SIZE
    if size < CODE_START - FLASH_BASE + 64:
        raise SimError(
            f"a firmware image reaches past 0x{CODE_START:08X}: at least {CODE_START - FLASH_BASE + 64} bytes"
        )
    rng = random.Random(f"FIRMWARE/{hw}/{version}/{size}")
    image = bytearray(bytes((layout.gap_fill,)) * size)
    image[:8] = struct.pack("<II", INITIAL_SP, RESET_VECTOR)
    image[8:VECTOR_TABLE_SIZE] = struct.pack("<I", RESET_VECTOR + 0x40) * ((VECTOR_TABLE_SIZE - 8) // 4)
    if version >= TEXT2_SINCE:
        image[head : VECTOR_TABLE_SIZE + TEXT2_SIZE] = _code(rng, VECTOR_TABLE_SIZE + TEXT2_SIZE - head)
    record = _record_window(size, version, ImageKind.FIRMWARE)
    code_start = CODE_START - FLASH_BASE
    end = record.start if record else size
    code = (end - code_start) * CODE_SHARE // 100 if layout.size is not None else end - code_start
    image[code_start : code_start + code] = _code(rng, code)
    if record:
        image[record.start : record.stop] = b"\xff" * RECORD_SIZE
    return _describe(image, ImageKind.FIRMWARE, hw, version, str(version), record)


def _describe(
    image: bytearray, kind: ImageKind, hw: str, version: FirmwareVersion, variant: str, record: range
) -> bytes:
    _check_hw(hw)
    head = DESCRIPTOR_OFFSET + DESCRIPTOR_SIZE
    image[DESCRIPTOR_OFFSET:head] = bytes(DESCRIPTOR_SIZE)
    descriptor = Descriptor(kind, hw, version, variant, len(image), _image_crc(bytes(image), record))
    image[DESCRIPTOR_OFFSET:head] = _pack_descriptor(descriptor)
    return bytes(image)


@lru_cache(maxsize=32)
def make_firmware_image(hw: str, version: str, size: int | None = None) -> bytes:
    """A deterministic simulated firmware image for hardware `hw` (e.g. "60") and a released version, of the
    generation's real size (or `size` bytes, for small test images)."""
    profile = profile_for(version)
    return _firmware(hw, profile.version, profile.image.typical_size if size is None else size)


@lru_cache(maxsize=8)
def make_bootloader_image(
    hw: str = "generic", generation: BootloaderGeneration = BootloaderGeneration.CURRENT
) -> bytes:
    """A deterministic simulated bootloader for sector 11: the generic build's size, or the hardware builds'."""
    generic, specific = BOOTLOADER_SIZES[generation]
    size = generic if hw == "generic" else specific
    rng = random.Random(f"BOOTLOADER/{hw}/{generation.value}")
    image = bytearray(rng.randbytes(size))
    image[:8] = struct.pack("<II", INITIAL_SP, (BOOTLOADER_BASE + _BOOTLOADER_RESET_OFFSET) | 1)
    return _describe(image, ImageKind.BOOTLOADER, hw, FirmwareVersion(0, 0), generation.value, range(0))


# --- what sits in sector 11 ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SectorBootloader:
    """What the jump to 0x080E0000 finds: `generation` None = nothing runnable (erased or garbage vectors);
    `damaged` = a plausible vector table in front of code that is not the image it was."""

    generation: BootloaderGeneration | None
    damaged: bool = False
    simulated: bool = True  # one of the simulator's own images (else: foreign bytes, e.g. VESC Tool's)


def _plausible_vectors(sector: bytes) -> bool:
    sp, reset = struct.unpack_from("<II", sector)
    offset = (reset & ~1) - BOOTLOADER_BASE
    return (
        SRAM.start < sp < SRAM.stop
        and reset & 1 == 1
        and 8 <= offset < BOOTLOADER_SIZE - 2
        and sector[offset : offset + 2] != b"\xff\xff"
    )


def bootloader_in(sector: bytes) -> SectorBootloader:
    """Judge the contents of sector 11 as the MCU would run them (see :class:`SectorBootloader`)."""
    if not _plausible_vectors(sector):
        return SectorBootloader(None)
    descriptor = descriptor_at(sector)
    if descriptor is None or descriptor.kind != ImageKind.BOOTLOADER:
        return SectorBootloader(BootloaderGeneration.CURRENT, simulated=False)
    return SectorBootloader(BootloaderGeneration(descriptor.variant), damaged=not image_intact(sector, descriptor))
