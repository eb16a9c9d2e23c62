"""The firmware .bin as built, and the integrity record the firmware keeps in it (research fw-flash.md 1, 2).

Per generation (a :class:`~rig.device.facts.Behaviour`):

- 3.40 to 3.55: no record, no fixed end (the shipped 3.40 bins are 196 780 to 203 948 bytes), gaps
  filled with 0x00 (plain ``objcopy -O binary``);
- 3.56 to 5.03: exactly 393 208 bytes; the last 8 bytes are the record placeholder at 0x0805FFF0
  (``crc_info`` = {0xFFFFFFFF, 0xFFFFFFFF}); gaps 0xFF (``--gap-fill 0xFF``, 023d7867);
- 6.00 on: exactly 524 280 bytes, record at 0x0807FFF0 (APP_MAX_SIZE 512 KiB, f6baa653); gaps 0x00 (the
  fw.mk gap-fill rule never matches the absolute BUILDDIR path, so ChibiOS rules.mk builds the .bin).

The record: u32 flag (0xFFFFFFFF as shipped, 0 once computed), u32 CRC, both little-endian words. On its
first boot the firmware programs the flag to 0, computes the STM32 hardware CRC over sector 0 plus
0x0800C000 up to and including the flag, programs the CRC word and resets once more. Later boots run the
CRC over the same region including the CRC word and expect 0 (the residue of a CRC with no final XOR);
anything else is FAULT_CODE_FLASH_CORRUPTION: the red LED blinks forever, USB never comes up (3.56 to
master; flash_helper_verify_flash_memory). The EEPROM sectors 1-2 are not covered.

The CRC unit: poly 0x04C11DB7, init 0xFFFFFFFF, no reflection, no final XOR, fed 32-bit words read from
flash as little-endian: CRC-32/MPEG-2 over the bytes with every 4-byte group reversed.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from rig.device.facts import Behaviour, facts
from rig.device.memory import FLASH_BASE, SECTORS
from rig.protocol.commands import FirmwareVersion

RECORD_SIZE = 8  # u32 flag, u32 CRC
FLAG_SHIPPED = 0xFFFF_FFFF
FLAG_COMPUTED = 0
RECORD_PLACEHOLDER = b"\xff" * RECORD_SIZE
INITIAL_SP = 0x2000_0800  # every image read: .mstack first in ram0, 0x800 exception stack
RESET_VECTOR = 0x0800_C001  # Reset_Handler at the start of flash2 (0x0800C000), Thumb bit set
VECTOR_TABLE_SIZE = 0x1C0  # 16 system + 96 IRQ vectors
CODE_START = SECTORS[3].start  # 0x0800C000: flash2, after the EEPROM-emulation sectors 1-2


@dataclass(frozen=True)
class ImageLayout:
    """What a generation's firmware .bin looks like."""

    size: int | None  # exact .bin size; None: no fixed end
    record_at: int | None  # absolute address of the integrity record; None: no record
    gap_fill: int  # byte between sections and over the EEPROM sectors
    typical_size: int  # what a generated image of this generation is (= size where fixed)

    @property
    def has_record(self) -> bool:
        return self.record_at is not None

    @property
    def formats_eeprom(self) -> bool:
        """The .bin leaves zeros over the EEPROM sectors: both page headers read VALID, which ST's EE_Init
        takes for a broken state and formats (erases) both sectors at the first boot after an update."""
        return self.gap_fill == 0x00

    @property
    def record_offset(self) -> int | None:
        """Offset of the record in the .bin (its last 8 bytes where the size is fixed)."""
        return None if self.record_at is None else self.record_at - FLASH_BASE


IMAGE_LAYOUT: Behaviour[ImageLayout] = Behaviour(
    "image layout",
    "size of the .bin, where its integrity record sits, and the gap-fill byte",
    facts(
        (
            "3.07",
            ImageLayout(None, None, 0x00, 200_000),
            "tag 3.40 43c3bbaf Makefile (plain objcopy); shipped 3.40 bins 196780-203948 bytes, zero gaps "
            "(vesc_tool 9e3de2a5 res/firmwares); generated images use 200000 bytes (3.48-3.55 unverified)",
        ),
        (
            "3.56",
            ImageLayout(393_208, 0x0805_FFF0, 0xFF, 393_208),
            "1ae05934, fbc7767f, 023d7867 (tag 3.56): crc_info in .crcinfo at APP_MAX_SIZE-8, --gap-fill 0xFF",
        ),
        (
            "6.00",
            ImageLayout(524_280, 0x0807_FFF0, 0x00, 524_280),
            "f6baa653 (APP_MAX_SIZE 4 x 128 KiB); make/fw.mk + ChibiOS rules.mk (no gap fill): scratch builds of "
            "release_6_02, release_6_06, release_7_00, master",
        ),
    ),
)


def layout_for(version: FirmwareVersion) -> ImageLayout:
    return IMAGE_LAYOUT.at(version)


# --- the STM32 hardware CRC ------------------------------------------------------------------------

_BIT_REVERSED = bytes(int(f"{b:08b}"[::-1], 2) for b in range(256))


def _reverse32(value: int) -> int:
    return int(f"{value:032b}"[::-1], 2)


def crc32_mpeg2(data: bytes, crc: int = 0xFFFF_FFFF) -> int:
    """CRC-32/MPEG-2 (non-reflected, no final XOR), continuing from `crc`.

    Computed with zlib: the reflected CRC of the bit-reversed bytes is the bit reversal of the
    non-reflected CRC (zlib adds a final XOR, taken off again).
    """
    reflected = zlib.crc32(data.translate(_BIT_REVERSED), _reverse32(crc) ^ 0xFFFF_FFFF) ^ 0xFFFF_FFFF
    return _reverse32(reflected)


def _word_swapped(data: bytes) -> bytes:
    """Every 4-byte group reversed (little-endian words fed as big-endian)."""
    if len(data) % 4:
        raise ValueError(f"the STM32 CRC unit takes whole 32-bit words, not {len(data)} bytes")
    out = bytearray(len(data))
    out[0::4], out[1::4], out[2::4], out[3::4] = data[3::4], data[2::4], data[1::4], data[0::4]
    return bytes(out)


def stm32_crc(data: bytes, crc: int = 0xFFFF_FFFF) -> int:
    """The STM32F4 CRC unit after reset (init 0xFFFFFFFF) fed `data` as little-endian words."""
    return crc32_mpeg2(_word_swapped(data), crc)


def crc_regions(layout: ImageLayout, *, include_crc_word: bool) -> tuple[tuple[int, int], ...]:
    """The (address, length) ranges the firmware's CRC covers: sector 0, then 0x0800C000 up to and
    including the flag word (computing), or up to and including the CRC word (verifying)."""
    if layout.record_at is None:
        raise ValueError("this generation has no integrity record")
    end = layout.record_at + (RECORD_SIZE if include_crc_word else RECORD_SIZE // 2)
    return ((SECTORS[0].start, SECTORS[0].size), (CODE_START, end - CODE_START))


def _record_offset(layout: ImageLayout) -> int:
    if layout.record_offset is None:
        raise ValueError("this generation has no integrity record")
    return layout.record_offset


def _over(read: bytes, regions: tuple[tuple[int, int], ...]) -> int:
    crc = 0xFFFF_FFFF
    for addr, length in regions:
        crc = stm32_crc(read[addr - FLASH_BASE : addr - FLASH_BASE + length], crc)
    return crc


def app_crc(flash: bytes, layout: ImageLayout) -> int:
    """The CRC the firmware stores on its first boot, over flash contents from 0x08000000 (the flag already 0)."""
    at = _record_offset(layout)
    flagged = bytearray(flash[: at + RECORD_SIZE])
    flagged[at : at + 4] = FLAG_COMPUTED.to_bytes(4, "little")
    return _over(bytes(flagged), crc_regions(layout, include_crc_word=False))


def record_verifies(flash: bytes, layout: ImageLayout) -> bool:
    """The boot check with the flag at 0: the CRC over the region including the stored CRC is 0."""
    return _over(flash, crc_regions(layout, include_crc_word=True)) == 0


def record_of(flash: bytes, layout: ImageLayout) -> tuple[int, int]:
    """(flag, crc) as stored in flash (0x08000000 onward)."""
    at = _record_offset(layout)
    return int.from_bytes(flash[at : at + 4], "little"), int.from_bytes(flash[at + 4 : at + 8], "little")


# --- what a built .bin must look like ------------------------------------------------------------------


def _fixed_sizes() -> str:
    spans = [s for s in IMAGE_LAYOUT.spans() if s.value.size is not None]
    return ", ".join(f"{s.first}{f' until {s.until}' if s.until else ' on'}: {s.value.size}" for s in spans)


def built_image_problem(data: bytes, version: FirmwareVersion | None) -> str | None:
    """Why `data` cannot be a firmware .bin as its build makes it (of `version` when known), or None.

    From 3.56 the .bin has one exact size and ends with the integrity record: a shorter or longer file is
    truncated or padded, and a record that is neither the placeholder nor valid halts the firmware at boot
    (FAULT_CODE_FLASH_CORRUPTION, no USB). Up to 3.55 there is no fixed size to check."""
    if version is not None:
        layout = layout_for(version)
        if layout.size is not None and len(data) != layout.size:
            return (
                f"{len(data)} bytes, but a firmware {version} .bin is exactly {layout.size} bytes: truncated or padded"
            )
        layouts = [layout]
    else:
        fixed = [s.value for s in IMAGE_LAYOUT.spans() if s.value.size is not None]
        layouts = [layout for layout in fixed if layout.size == len(data)]
        if not layouts and len(data) > min(layout.size or 0 for layout in fixed):
            return f"{len(data)} bytes matches no firmware .bin size ({_fixed_sizes()} bytes): truncated or padded"
    for layout in layouts:
        at = layout.record_offset
        if layout.size is None or at is None:
            continue
        flag = int.from_bytes(data[at : at + 4], "little")
        if data[at:] != RECORD_PLACEHOLDER and not (flag == FLAG_COMPUTED and record_verifies(data, layout)):
            return (
                f"its last {RECORD_SIZE} bytes (the integrity record at 0x{layout.record_at:08X}) are neither the "
                "build's placeholder nor a valid record: the firmware would halt at boot with "
                "FAULT_CODE_FLASH_CORRUPTION"
            )
    return None
