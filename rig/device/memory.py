"""The STM32F405 memory map of a VESC, the one place that knows sector addresses.

Facts (vesc-protocol-facts.md section 6; vedderb/bldc flash_helper.c, ld_eeprom_emu.ld): 1 MiB of flash
in 12 sectors: 0-3 are 16 KB, 4 is 64 KB, 5-11 are 128 KB. The firmware occupies sector 0 (vectors)
and sectors 3-7, the EEPROM emulation (the configs) sectors 1-2, the new-app buffer that updates are
written to sectors 8-10, and the bootloader sector 11.
"""

from __future__ import annotations

from dataclasses import dataclass

FLASH_BASE = 0x0800_0000
FLASH_SIZE = 0x10_0000
FLASH_END = FLASH_BASE + FLASH_SIZE
SECTOR_SIZES = (0x4000,) * 4 + (0x1_0000,) + (0x2_0000,) * 7

APP_SECTORS = (0, 3, 4, 5, 6, 7)
EEPROM_SECTORS = (1, 2)  # mcconf, appconf
NEW_APP_SECTORS = (8, 9, 10)
BOOTLOADER_SECTOR = 11

UID_BASE = 0x1FFF_7A10  # the STM32F4's 96-bit unique device ID, which FW_VERSION carries from 3.09
UID_BYTES = 12
SRAM = range(0x2000_0000, 0x2002_0001)  # SRAM1 + SRAM2; an initial stack pointer may point just past it
CCM = range(0x1000_0000, 0x1001_0001)
# Reserved in the STM32F405 memory map (RM0090 2.3): a CPU store there is a bus fault. The rest outside
# flash and CCM (system memory, OTP, SRAM, peripherals) takes a store without a fault.
RESERVED = (range(FLASH_END, 0x1000_0000), range(0x1001_0000, 0x1FFF_0000), range(0x2002_0000, 0x4000_0000))
ADDRESS_SPACE = 1 << 32


@dataclass(frozen=True)
class Sector:
    """One erase sector (absolute addresses)."""

    index: int
    start: int
    size: int

    @property
    def end(self) -> int:
        """First address after the sector."""
        return self.start + self.size


def _build() -> tuple[Sector, ...]:
    sectors, start = [], FLASH_BASE
    for index, size in enumerate(SECTOR_SIZES):
        sectors.append(Sector(index, start, size))
        start += size
    return tuple(sectors)


SECTORS: tuple[Sector, ...] = _build()

NEW_APP_BASE = SECTORS[NEW_APP_SECTORS[0]].start  # 0x08080000: WRITE_NEW_APP_DATA offsets count from here
NEW_APP_SIZE = SECTORS[NEW_APP_SECTORS[-1]].end - NEW_APP_BASE  # 3 x 128 KB
APP_LIMIT = NEW_APP_BASE  # a firmware image may reach up to the new-app buffer
BOOTLOADER_BASE = SECTORS[BOOTLOADER_SECTOR].start  # 0x080E0000
BOOTLOADER_SIZE = SECTORS[BOOTLOADER_SECTOR].size
BOOTLOADER_OFFSET = BOOTLOADER_BASE - NEW_APP_BASE  # 0x60000: the bootloader in WRITE_NEW_APP_DATA offsets


def contains(addr: int, length: int = 1) -> bool:
    """Whether [addr, addr+length) lies inside the flash."""
    return length >= 0 and addr >= FLASH_BASE and addr + length <= FLASH_END


def sector_at(addr: int) -> Sector | None:
    """The sector holding `addr`, or None outside the flash."""
    return next((s for s in SECTORS if s.start <= addr < s.end), None)


def sectors_touching(start: int, length: int) -> list[Sector]:
    """The sectors that [start, start+length) touches (empty for length 0)."""
    if length <= 0:
        return []
    return [s for s in SECTORS if s.start < start + length and start < s.end]


def region_of(sector: Sector) -> str:
    """What a sector holds: "app", "eeprom", "new-app buffer" or "bootloader"."""
    if sector.index in EEPROM_SECTORS:
        return "eeprom"
    if sector.index in NEW_APP_SECTORS:
        return "new-app buffer"
    if sector.index == BOOTLOADER_SECTOR:
        return "bootloader"
    return "app"
