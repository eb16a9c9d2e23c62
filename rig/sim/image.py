"""Simulated firmware and bootloader images, and the 6-byte update header.

An image starts with a Cortex-M vector table (initial SP, reset vector) and carries a descriptor at
:data:`DESCRIPTOR_OFFSET`: what the simulator reads to "run" it. Like a real .bin, a firmware image
is 0xFF over the EEPROM-emulation sectors 1-2 (offsets 0x4000-0xBFFF) and after its code, so an
upload meets all-0xFF chunks. The descriptor holds its own CRC and
a CRC-32 of the rest of the image, so erased flash, garbage or a half-copied image reads as "no
firmware" (the board is dead, as it would be on garbage). Images are deterministic: the same
hardware and version always give the same bytes.

The update header and its compression are device facts (:mod:`rig.device.update_format`), shared with the host.
"""

from __future__ import annotations

import random
import struct
import zlib
from dataclasses import dataclass
from enum import IntEnum

from rig.device.firmware import profile_for
from rig.device.memory import BOOTLOADER_BASE, EEPROM_SECTORS, FLASH_BASE, SECTORS, SRAM
from rig.protocol.commands import FirmwareVersion
from rig.sim.errors import SimError

DESCRIPTOR_OFFSET = 0x200  # right after the vector table
_MAGIC = b"VESCSIM1"
_DESCRIPTOR = struct.Struct(">8sBBB16s8sII")  # magic kind major minor hw profile size image_crc
_DESCRIPTOR_CRC = struct.Struct(">I")
DESCRIPTOR_SIZE = _DESCRIPTOR.size + _DESCRIPTOR_CRC.size
# sectors 1-2 as image offsets: 0xFF in every firmware .bin (facts sheet section 6)
EEPROM_WINDOW = range(SECTORS[EEPROM_SECTORS[0]].start - FLASH_BASE, SECTORS[EEPROM_SECTORS[-1]].end - FLASH_BASE)
BOOTLOADER_IMAGE_SIZE = 5632  # bootloaders are 5.3-5.8 KB (facts sheet section 5)
CODE_SHARE = 80  # percent of a generated firmware image (outside the EEPROM window) that is code, the rest 0xFF
_INITIAL_SP = SRAM.stop - 1  # top of SRAM


class ImageKind(IntEnum):
    FIRMWARE = 1
    BOOTLOADER = 2


@dataclass(frozen=True)
class Descriptor:
    """What a simulated image says about itself."""

    kind: ImageKind
    hw_name: str
    version: FirmwareVersion
    profile: str
    size: int
    image_crc: int


def _image_crc(image: bytes) -> int:
    """CRC-32 of everything except the descriptor and the EEPROM-emulation window (written at run time)."""
    head = DESCRIPTOR_OFFSET + DESCRIPTOR_SIZE
    crc = zlib.crc32(image[:DESCRIPTOR_OFFSET])
    crc = zlib.crc32(image[head : EEPROM_WINDOW.start], crc)
    return zlib.crc32(image[EEPROM_WINDOW.stop :], crc)


def _pack_descriptor(d: Descriptor) -> bytes:
    body = _DESCRIPTOR.pack(
        _MAGIC,
        d.kind,
        d.version.major,
        d.version.minor,
        d.hw_name.encode("ascii"),
        d.profile.encode("ascii"),
        d.size,
        d.image_crc,
    )
    return body + _DESCRIPTOR_CRC.pack(zlib.crc32(body))


def read_descriptor(data: bytes) -> Descriptor | None:
    """The descriptor of an image starting at data[0], or None for garbage, erased or damaged images.

    `data` must reach the end of the image (read the whole region the image may occupy).
    """
    end = DESCRIPTOR_OFFSET + DESCRIPTOR_SIZE
    if len(data) < end:
        return None
    raw = data[DESCRIPTOR_OFFSET:end]
    (crc,) = _DESCRIPTOR_CRC.unpack_from(raw, _DESCRIPTOR.size)
    if zlib.crc32(raw[: _DESCRIPTOR.size]) != crc:
        return None
    magic, kind, major, minor, hw, profile, size, image_crc = _DESCRIPTOR.unpack_from(raw)
    if magic != _MAGIC or kind not in ImageKind.__members__.values() or not end <= size <= len(data):
        return None
    if _image_crc(data[:size]) != image_crc:
        return None
    return Descriptor(
        ImageKind(kind),
        hw.rstrip(b"\0").decode("ascii"),
        FirmwareVersion(major, minor),
        profile.rstrip(b"\0").decode("ascii"),
        size,
        image_crc,
    )


def _code(rng: random.Random, size: int) -> bytes:
    """Code-like bytes: repeated snippets plus literals, so heatshrink finds matches as in real code."""
    snippets = rng.randbytes(4096)
    out = bytearray()
    while len(out) < size:
        if rng.random() < 0.7:
            at = rng.randrange(0, len(snippets) - 64)
            out += snippets[at : at + rng.randrange(6, 64)]
        else:
            out += rng.randbytes(rng.randrange(1, 12))
    return bytes(out[:size])


def _build(
    kind: ImageKind, hw: str, version: FirmwareVersion, profile: str, size: int, code_size: int, base: int
) -> bytes:
    """Vector table, descriptor and code, 0xFF in the EEPROM window (sectors 1-2) and up to `size`."""
    if len(hw.encode("ascii")) > 16:
        raise SimError(f"hardware name {hw!r} is longer than 16 characters")
    head = DESCRIPTOR_OFFSET + DESCRIPTOR_SIZE
    if size < head + 64:
        raise SimError(f"an image must be at least {head + 64} bytes, not {size}")
    rng = random.Random(f"{kind.name}/{hw}/{version}/{size}")
    image = bytearray(b"\xff" * size)
    vectors = struct.pack("<II", _INITIAL_SP, (base + head) | 1)  # the reset vector is a Thumb address: odd
    image[:DESCRIPTOR_OFFSET] = vectors + rng.randbytes(DESCRIPTOR_OFFSET - 8)
    left = code_size
    for start, stop in ((head, EEPROM_WINDOW.start), (EEPROM_WINDOW.stop, size)):
        stop = min(stop, size)
        n = max(0, min(left, stop - start))
        image[start : start + n] = _code(rng, n)
        left -= n
    descriptor = Descriptor(kind, hw, version, profile, size, _image_crc(bytes(image)))
    image[DESCRIPTOR_OFFSET:head] = _pack_descriptor(descriptor)
    return bytes(image)


def make_firmware_image(hw: str, version: str, size: int | None = None) -> bytes:
    """A deterministic simulated firmware image for hardware `hw` (e.g. "60") and a version the simulator runs."""
    profile = profile_for(version)
    total = profile.app_size if size is None else size
    code = (total - len(EEPROM_WINDOW)) * CODE_SHARE // 100
    return _build(ImageKind.FIRMWARE, hw, FirmwareVersion.parse(version), profile.name, total, code, FLASH_BASE)


def make_bootloader_image(hw: str = "generic") -> bytes:
    """A deterministic simulated bootloader image (5.5 KB) for sector 11."""
    return _build(
        ImageKind.BOOTLOADER,
        hw,
        FirmwareVersion(0, 0),
        "",
        BOOTLOADER_IMAGE_SIZE,
        BOOTLOADER_IMAGE_SIZE,
        BOOTLOADER_BASE,
    )
