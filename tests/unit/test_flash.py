"""The STM32F405 flash model and the device clock."""

from __future__ import annotations

import time

import pytest

from rig.device.memory import (
    APP_SECTORS,
    BOOTLOADER_BASE,
    BOOTLOADER_SECTOR,
    EEPROM_SECTORS,
    FLASH_BASE,
    FLASH_SIZE,
    NEW_APP_BASE,
    NEW_APP_SECTORS,
    SECTORS,
)
from rig.device.timing import FlashTiming
from rig.sim.clock import DeviceClock
from rig.sim.flash import Flash, FlashError


def test_sector_map_matches_the_facts_sheet() -> None:
    assert [s.size for s in SECTORS] == [0x4000] * 4 + [0x10000] + [0x20000] * 7
    assert SECTORS[0].start == FLASH_BASE and SECTORS[-1].end == FLASH_BASE + FLASH_SIZE
    assert all(a.end == b.start for a, b in zip(SECTORS, SECTORS[1:], strict=False))
    assert SECTORS[4].start == 0x0801_0000 and SECTORS[5].start == 0x0802_0000
    assert (SECTORS[EEPROM_SECTORS[0]].start, SECTORS[EEPROM_SECTORS[-1]].end) == (0x0800_4000, 0x0800_C000)
    assert SECTORS[NEW_APP_SECTORS[0]].start == NEW_APP_BASE and SECTORS[NEW_APP_SECTORS[-1]].end == 0x080E_0000
    assert SECTORS[BOOTLOADER_SECTOR].start == BOOTLOADER_BASE
    assert set(APP_SECTORS) | set(EEPROM_SECTORS) | set(NEW_APP_SECTORS) | {BOOTLOADER_SECTOR} == set(range(12))


def test_sector_lookup() -> None:
    flash = Flash()
    assert flash.sector_at(0x0800_3FFF).index == 0
    assert flash.sector_at(0x0801_0000).index == 4
    assert flash.sector_at(0x080F_FFFF).index == 11
    assert [s.index for s in flash.sectors_in(0x0800_3000, 0x2000)] == [0, 1]
    assert flash.sectors_in(FLASH_BASE, 0) == []
    with pytest.raises(FlashError):
        flash.sector_at(0x0810_0000)


def test_erased_flash_reads_ff() -> None:
    flash = Flash()
    assert flash.read(FLASH_BASE, 16) == b"\xff" * 16
    assert flash.is_erased(FLASH_BASE, FLASH_SIZE)


def test_program_only_clears_bits_and_reports_ok() -> None:
    flash = Flash()
    assert flash.program(0x0800_0010, b"\xf0\x3c") is None
    flash.program(0x0800_0010, b"\x0f\xff")
    assert flash.read(0x0800_000F, 4) == b"\xff\x00\x3c\xff"


def test_erase_sector_restores_only_that_sector() -> None:
    flash = Flash()
    flash.program(0x0800_3FFE, b"\x00" * 4)  # straddles sectors 0 and 1
    flash.erase_sector(1)
    assert flash.read(0x0800_3FFE, 4) == b"\x00\x00\xff\xff"


def test_out_of_range_access_is_refused() -> None:
    flash = Flash()
    with pytest.raises(FlashError):
        flash.read(FLASH_BASE + FLASH_SIZE - 2, 4)
    with pytest.raises(FlashError):
        flash.program(FLASH_BASE - 1, b"\x00")
    with pytest.raises(FlashError):
        flash.erase_sector(12)


def test_modelled_time_accumulates() -> None:
    clock = DeviceClock()
    flash = Flash(clock)
    flash.program(FLASH_BASE, bytes(1000))
    assert clock.modelled_s == pytest.approx(1000 * 16e-6)
    flash.program(FLASH_BASE, bytes(1000), width=4)
    assert clock.modelled_s == pytest.approx(1250 * 16e-6)
    flash.erase_sector(11)
    flash.erase_sector(0, parallelism=8)
    assert clock.modelled_s == pytest.approx(1250 * 16e-6 + 1.0 + 0.5)
    before = clock.modelled_s
    flash.mass_erase()
    assert clock.modelled_s - before == pytest.approx(4 * 0.25 + 0.55 + 7 * 1.0)


def test_timing_rejects_unknown_sizes() -> None:
    with pytest.raises(ValueError):
        FlashTiming().erase_time(0x8000)


def test_clock_speed_zero_is_instant_and_one_is_real_time() -> None:
    clock = DeviceClock()
    started = time.monotonic()
    clock.spend(5.0)
    assert time.monotonic() - started < 0.5 and clock.modelled_s == 5.0
    clock.speed = 1.0
    started = time.monotonic()
    for _ in range(50):
        clock.spend(0.0004)  # below one sleep each: accumulated
    assert time.monotonic() - started >= 0.015


def test_lock_blocks_debug_access_only_and_mass_erase_clears_it() -> None:
    flash = Flash()
    flash.program(FLASH_BASE, b"\x12")
    flash.locked = True
    assert flash.read(FLASH_BASE, 1) == b"\x12"  # the CPU still reads its own flash
    with pytest.raises(FlashError, match="protection"):
        flash.read(FLASH_BASE, 1, debug=True)
    with pytest.raises(FlashError):
        flash.erase_sector(0, debug=True)
    flash.mass_erase()
    assert not flash.locked and flash.read(FLASH_BASE, 1, debug=True) == b"\xff"


def test_save_and_load_round_trip(tmp_path) -> None:
    flash = Flash()
    flash.program(BOOTLOADER_BASE, b"boot")
    flash.locked = True
    path = tmp_path / "board.flash"
    flash.save(path)
    clock = DeviceClock()
    again = Flash.load(path, clock)
    assert again.read(BOOTLOADER_BASE, 4) == b"boot" and again.locked and again.clock is clock
    path.write_bytes(b"nonsense")
    with pytest.raises(FlashError):
        Flash.load(path)
