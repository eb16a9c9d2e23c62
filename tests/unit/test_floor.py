"""rig.report.floor against numbers computed by hand from the facts (sections 5, 6; research notes section 8).

Timing data (rig.sim.clock.FlashTiming, DS8626 typical, unverified): sector erase 16 KB 0.25 s,
64 KB 0.55 s, 128 KB 1 s; tprog 16 us per byte. The simulator charges 1 ms per USB frame, the
bootloader blinks green 3 x 0.4 s after a copy, and 5.x/6.x boot in 5 s, 3.40 in 1.6 s. The first boot
after an update adds, from 3.56, 0.2 s up to the flash check and two word writes (the integrity record)
before one more reset; where the .bin leaves zeros over the EEPROM (3.40-3.55, 6.00+) EE_Init erases both
16 KB sectors (0.5 s).
"""

from __future__ import annotations

import pytest

from rig.device.timing import FlashTiming
from rig.report.floor import Floor, app_sectors, bootloader_floor, buffer_sectors, update_floor, write_floor

FRAME = 0.001
TPROG = 16e-6
BLINKS = 3 * 0.4


def test_small_502_image() -> None:
    # 64 KB raw image, 30336 bytes sent in 79 chunks (the 0xFF chunks over sectors 1-2 skipped)
    floor = update_floor(30336, 65536, "5.02", frames=79)
    assert floor.erase_s == pytest.approx(FRAME + 1.0)  # 0x08080000 + 64 KB stays inside sector 8
    assert floor.write_s == pytest.approx(79 * FRAME + 30336 * TPROG)  # 0.564376 s
    # 0x08000000 + 64 KB ends where sector 4 starts: sectors 0-3 (4 x 16 KB) are erased
    assert floor.copy_s == pytest.approx(FRAME + 4 * 0.25 + 65536 * TPROG + BLINKS)  # 3.249576 s
    assert floor.boot_s == pytest.approx(5.0 + 0.2 + 2 * TPROG)  # 5.02: record, 0xFF over the EEPROM
    assert floor.ready_s == FRAME
    assert floor.total_s == pytest.approx(9.815952 + 0.2 + 2 * TPROG)
    assert floor.reboot_s == pytest.approx(floor.copy_s + floor.boot_s)
    assert floor.upload_s == pytest.approx(floor.erase_s + floor.write_s)


def test_full_602_image_is_compressed_so_all_app_sectors_are_erased() -> None:
    # 524280 bytes > 393208: heatshrink, so the bootloader erases all of sectors 0-7 (facts 5)
    floor = update_floor(157654, 524280, "6.02", frames=411)
    assert floor.erase_s == pytest.approx(FRAME + 3 * 1.0)  # the raw size reaches into sector 10
    assert floor.copy_s == pytest.approx(FRAME + (4 * 0.25 + 0.55 + 3 * 1.0) + 524280 * TPROG + BLINKS)
    assert floor.copy_s == pytest.approx(14.13948)  # "about 4.5 s erase + 8.4 s programming" (research 8)
    assert floor.boot_s == pytest.approx(5.0 + 2 * 0.25 + 0.2 + 2 * TPROG)  # EEPROM format and the record


def test_full_502_image_erases_sectors_0_to_6() -> None:
    # 393208 bytes: not compressed; 0x08000000 + 393208 ends inside sector 6 (research 8: "erases 0-6")
    assert app_sectors(393208, compressed=False) == [0, 1, 2, 3, 4, 5, 6]
    assert buffer_sectors(393208) == [8, 9, 10]
    floor = update_floor(393214, 393208, "5.02")
    assert floor.write_s == pytest.approx(1024 * FRAME + 393214 * TPROG)  # ceil(393214 / 384) = 1024 chunks
    assert floor.copy_s == pytest.approx(FRAME + 3.55 + 393208 * TPROG + BLINKS)


def test_340_image_erases_sectors_0_to_5_and_boots_faster() -> None:
    assert app_sectors(200 * 1024, compressed=False) == [0, 1, 2, 3, 4, 5]  # research 8: "erases 0-5"
    assert update_floor(1000, 200 * 1024, "3.40").boot_s == pytest.approx(1.6 + 2 * 0.25)  # no record; format


def test_buffer_sectors_follow_the_raw_size() -> None:
    assert buffer_sectors(0) == []  # size 0 erases nothing (facts 5)
    assert buffer_sectors(128 * 1024) == [8]
    assert buffer_sectors(128 * 1024 + 1) == [8, 9]


def test_bootloader_upload() -> None:
    floor = bootloader_floor(5632, frames=15)  # 5.5 KB in 15 chunks after erasing sector 11 (128 KB)
    assert floor.erase_s == pytest.approx(FRAME + 1.0)
    assert floor.write_s == pytest.approx(15 * FRAME + 5632 * TPROG)
    assert floor.copy_s == floor.boot_s == floor.ready_s == 0.0
    assert bootloader_floor(5632, erase=False).erase_s == 0.0  # FW < 3.59 has no ERASE_BOOTLOADER


def test_other_timing_changes_the_floor() -> None:
    slow = FlashTiming(program_byte_s=100e-6)  # DS8626 max tprog
    assert write_floor(384, timing=slow) == pytest.approx(FRAME + 384 * 100e-6)


def test_nonsense_is_refused() -> None:
    with pytest.raises(ValueError):
        update_floor(10, 0, "6.02")
    with pytest.raises(ValueError):
        write_floor(-1)


def test_as_dict_carries_the_sums() -> None:
    floor = Floor(erase_s=1.0, write_s=2.0, copy_s=3.0, boot_s=4.0, ready_s=0.5)
    assert floor.as_dict() == {
        "erase_s": 1.0,
        "write_s": 2.0,
        "copy_s": 3.0,
        "boot_s": 4.0,
        "ready_s": 0.5,
        "upload_s": 3.0,
        "reboot_s": 7.0,
        "total_s": 10.5,
    }
