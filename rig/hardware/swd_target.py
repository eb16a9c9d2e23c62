"""The VESC MCU (STM32F405RG) as a pyocd target type, usable without a CMSIS pack.

pyocd has no built-in STM32F405 and no entry point for target plugins (pyocd 0.46 loads plugins only for
the `pyocd.probe` and `pyocd.rtos` groups), so the target is added to pyocd's target table `pyocd.target.TARGET`
by `register()`. rig.hardware.swd calls it itself; for the `pyocd` command line use a user script (pyocd runs it
before it looks the target type up), e.g. a file `pyocd_user.py` in the project directory or passed with
`--script`, containing:

    import rig.hardware.swd_target
    rig.hardware.swd_target.register()

The memory map is the real one (vesc-protocol-facts.md section 6). The flash algorithm is pyocd's built-in one
for the STM32F412 (target_STM32F412xx.py): the same single-bank 1 MB STM32F4 flash controller, sector layout
and register interface as the F405 (the STM32F429/439 algorithm differs only in also setting the second bank's
mass erase bit). It programs 32-bit words (PSIZE x32) and erases sectors at PSIZE x8.
"""

from __future__ import annotations

from itertools import groupby

from pyocd.core.memory_map import FlashRegion, MemoryMap, RamRegion
from pyocd.coresight.coresight_target import CoreSightTarget
from pyocd.target import TARGET
from pyocd.target.builtin.target_STM32F412xx import DBGMCU, FLASH_ALGO

from rig.device.memory import CCM, SECTORS, SRAM

TARGET_NAME = "stm32f405rg"

# Weight (~seconds) pyocd uses to choose chip erase over sector erase: DS8626 mass erase is 16 s typ at x8
# (from memory, unverified), and the algorithm erases at x8.
_CHIP_ERASE_WEIGHT = 16.0


def _flash(start: int, length: int, sector_size: int, **kwargs: object) -> FlashRegion:
    return FlashRegion(
        start=start,
        length=length,
        sector_size=sector_size,
        page_size=0x1000,
        erase_all_weight=_CHIP_ERASE_WEIGHT,
        algo=FLASH_ALGO,
        **kwargs,
    )


def _flash_regions() -> list[FlashRegion]:
    """One pyocd flash region per run of equal-sized sectors of rig.device.memory."""
    regions = []
    for n, (size, run) in enumerate(groupby(SECTORS, key=lambda s: s.size)):
        sectors = list(run)
        extra: dict[str, object] = {"is_boot_memory": True} if n == 0 else {"name": f"flash_{n}"}
        regions.append(_flash(sectors[0].start, sectors[-1].end - sectors[0].start, size, **extra))
    return regions


class STM32F405xG(CoreSightTarget):
    """STM32F405xG: 1 MB flash (4x16 KB, 64 KB, 7x128 KB), 128 KB SRAM, 64 KB CCM RAM."""

    VENDOR = "STMicroelectronics"

    MEMORY_MAP = MemoryMap(
        *_flash_regions(),  # sectors 0-3 (16 KB), 4 (64 KB), 5-11 (128 KB)
        RamRegion(start=SRAM.start, length=len(SRAM) - 1),  # SRAM1 112 KB + SRAM2 16 KB
        RamRegion(start=CCM.start, length=len(CCM) - 1, name="ccmram"),
    )

    def __init__(self, session) -> None:  # noqa: ANN001 - pyocd Session
        super().__init__(session, self.MEMORY_MAP)

    def post_connect_hook(self) -> None:
        """Keep the debug clocks running in low-power modes and freeze timers while halted (as the F4 built-ins)."""
        self.write32(DBGMCU.CR, DBGMCU.CR_VALUE)
        self.write32(DBGMCU.APB1_FZ, DBGMCU.APB1_FZ_VALUE)
        self.write32(DBGMCU.APB2_FZ, DBGMCU.APB2_FZ_VALUE)

    def mass_erase(self) -> None:
        """One EraseAll (FLASH_CR.MER) erases the whole bank; pyocd's default would run it once per region."""
        flash = self.memory_map.get_boot_memory().flash
        flash.init(flash.Operation.ERASE)
        flash.erase_all()
        flash.cleanup()


def register() -> str:
    """Add the target to pyocd's target table (idempotent); returns its name."""
    TARGET[TARGET_NAME] = STM32F405xG
    return TARGET_NAME
