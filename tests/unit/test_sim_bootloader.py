"""The bootloader model: header checks, erase and copy, and what JUMP does with and without one."""

from __future__ import annotations

import struct

import pytest
from simhost import CHUNK, Host, make, update

from rig.device.memory import BOOTLOADER_BASE, BOOTLOADER_SECTOR, FLASH_BASE, NEW_APP_BASE
from rig.device.update_format import BootloaderGeneration
from rig.firmware.image import update_header, update_payload
from rig.protocol import codecs as c
from rig.protocol.commands import Cmd
from rig.protocol.framing import encode_frame
from rig.sim.bootloader import BootloaderRun, BootPhase, Rejection
from rig.sim.flash import Flash
from rig.sim.image import (
    ImageKind,
    bootloader_in,
    make_bootloader_image,
    make_firmware_image,
    read_descriptor,
)


def _run(flash: Flash, blob: bytes, **options: object) -> BootloaderRun:
    flash.program(NEW_APP_BASE, blob)
    run = BootloaderRun(flash, **options)  # type: ignore[arg-type]
    for _ in run.steps():
        pass
    return run


@pytest.mark.parametrize(
    ("blob", "rejection"),
    [
        (update_header(b"\0" * 393217) + b"\0" * 16, Rejection.TOO_BIG),
        (update_header(b""), Rejection.EMPTY),
        (update_header(b"abc")[:4] + b"\0\0abc", Rejection.BAD_CRC),
    ],
)
def test_rejected_header_touches_nothing(blob: bytes, rejection: Rejection) -> None:
    flash = Flash()
    flash.program(FLASH_BASE, b"old firmware")
    run = _run(flash, blob)
    assert run.phase == BootPhase.REJECTED and run.rejection == rejection and run.erased == ()
    assert flash.read(FLASH_BASE, 12) == b"old firmware"


def test_uncompressed_image_erases_as_far_as_it_reaches_including_the_eeprom() -> None:
    flash = Flash()
    flash.program(0x0800_4000, b"config")
    image = make_firmware_image("60", "3.40")
    run = _run(flash, update_payload(image).payload)
    assert run.phase == BootPhase.DONE and run.erased == (0, 1, 2, 3, 4, 5)  # 200 KB (research section 8)
    assert flash.read(FLASH_BASE, len(image)) == image
    assert flash.read(0x0800_4000, 6) == bytes(6)  # the config is gone: the 3.40 .bin has zeros there


def test_compressed_image_erases_all_eight_sectors() -> None:
    flash = Flash()
    blob = update_payload(make_firmware_image("60", "6.02")).payload
    assert blob[0] == 0xCC
    run = _run(flash, blob)
    assert run.erased == tuple(range(8)) and run.copied == run.total == 524280
    descriptor = read_descriptor(flash.read(FLASH_BASE, 0x80000))
    assert descriptor is not None and str(descriptor.version) == "6.02"


def test_a_5_02_board_needs_the_2022_bootloader_for_6_02() -> None:
    """A board shipped with 5.02 (2021) has the bootloader without heatshrink: the compressed 6.02 upload is
    "too big" for it (3 red blinks) and the old firmware boots again; after a bootloader refresh it takes."""
    device = make("5.02")
    host = Host(device, "5.02")
    assert bootloader_in(device.flash.read(BOOTLOADER_BASE, 0x20000)).generation == BootloaderGeneration.OLD
    update(host, make_firmware_image("60", "6.02"))
    device.run_pending()
    assert device.boot_run is not None and device.boot_run.rejection == Rejection.TOO_BIG
    assert host.version() == "5.02"
    _upload_bootloader(host)  # 5.02 has ERASE_BOOTLOADER: the sector is erased first
    update(host, make_firmware_image("60", "6.02"))
    device.run_pending()
    assert host.version() == "6.02" and device.boot_run.phase == BootPhase.DONE


def test_the_old_bootloader_erases_at_most_sector_6() -> None:
    flash = Flash()
    flash.program(0x0806_0000, b"QML in sector 7")  # 5.03 keeps the QML UI there
    run = _run(flash, update_payload(make_firmware_image("60", "5.03")).payload, generation=BootloaderGeneration.OLD)
    assert run.phase == BootPhase.DONE and run.erased == tuple(range(7))
    assert flash.read(0x0806_0000, 15) == b"QML in sector 7"


def test_output_past_512_kib_runs_into_the_input() -> None:
    """Nothing bounds the decompressed length: a 600 000-byte image (compressed, so VESC Tool sends it)
    programs its last 75 720 bytes over the header and compressed stream at 0x08080000; it still reports
    done (research fw-flash.md 5.4). The first 512 KiB are right."""
    image = make_firmware_image("60", "6.02", size=600_000)
    flash = Flash()
    run = _run(flash, update_payload(image).payload)
    assert run.phase == BootPhase.DONE and run.copied == 600_000
    assert flash.read(FLASH_BASE, 0x80000) == image[:0x80000]
    spilled = flash.read(NEW_APP_BASE, 64)
    assert spilled != update_payload(image).payload[:64]  # the header was ANDed with image bytes


def test_bad_crc_keeps_the_old_firmware_and_its_config() -> None:
    device = make("6.02")
    host = Host(device, "6.02")
    config = host.one(c.GetConfig(c.ConfigKind.MCCONF))
    blob = bytearray(update_payload(make_firmware_image("60", "5.02")).payload)
    blob[100] ^= 0xFF
    host.one(c.EraseNewApp(len(blob) - 6))
    for offset in range(0, len(blob), CHUNK):
        host.one(c.WriteNewAppData(offset, bytes(blob[offset : offset + CHUNK])))
    host.send(c.JumpToBootloader())
    device.run_pending()
    assert device.boot_run is not None and device.boot_run.rejection == Rejection.BAD_CRC
    assert host.version() == "6.02" and host.one(c.GetConfig(c.ConfigKind.MCCONF)) == config


def test_bootloader_rejects_fault() -> None:
    device = make("6.02", faults=("bootloader_rejects",))
    host = Host(device, "6.02")
    update(host, make_firmware_image("60", "5.02"))
    device.run_pending()
    assert host.version() == "6.02"


def test_f1_no_bootloader_old_firmware_returns_after_the_watchdog() -> None:
    device = make("6.02", faults=("no_bootloader_returns",))
    host = Host(device, "6.02")
    update(host, make_firmware_image("60", "5.02"))
    before = device.clock.modelled_s
    device.run_pending()
    assert host.version() == "6.02" and device.clock.modelled_s - before >= 32.0


def test_f2_no_bootloader_nothing_answers_until_power_cycle() -> None:
    device = make("6.02", faults=("no_bootloader_hangs",))
    host = Host(device, "6.02")
    update(host, make_firmware_image("60", "5.02"))
    device.run_pending()
    assert device.mode == "hung" and not device.usb_up
    device.set_power(False)
    device.set_power(True)
    device.run_pending()
    assert host.version() == "6.02"


@pytest.mark.parametrize(("version", "mode"), [("3.40", "hung"), ("5.02", "running")])
def test_board_shipped_without_bootloader_behaves_per_profile(version: str, mode: str) -> None:
    device = make(version, bootloader=False)
    host = Host(device, version)
    update(host, make_firmware_image("60", "6.02"))
    device.run_pending()
    assert device.mode == mode  # 3.40 arms no IWDG before the jump (research section 8)


def _upload_bootloader(host: Host) -> None:
    assert host.one(c.EraseBootloader()) == c.StatusReply(Cmd.ERASE_BOOTLOADER, True)
    image = make_bootloader_image()
    for n in range(0, len(image), CHUNK):
        reply = host.one(c.WriteNewAppData(0x60000 + n, image[n : n + CHUNK]))
        assert isinstance(reply, c.WriteNewAppDataReply) and reply.ok


def test_f1_fix_upload_the_bootloader_over_usb_then_update() -> None:
    device = make("6.02", faults=("no_bootloader_returns",))
    host = Host(device, "6.02")
    assert device.flash.is_erased(BOOTLOADER_BASE, 0x20000)
    _upload_bootloader(host)
    descriptor = read_descriptor(device.flash.read(BOOTLOADER_BASE, 0x20000))
    assert descriptor is not None and descriptor.kind == ImageKind.BOOTLOADER
    update(host, make_firmware_image("60", "5.02"))
    device.run_pending()
    assert host.version() == "5.02"


def test_a_real_bootloader_in_sector_11_is_run_like_the_simulated_one() -> None:
    """Bytes the simulator did not make (VESC Tool's generic.bin, say) with a plausible vector table are taken
    for the 2022 bootloader, so an update through them works (they used to be ignored: vesc-tool.md)."""
    device = make("6.02")
    host = Host(device, "6.02")
    foreign = bytearray(bytes(range(256)) * 21)
    foreign[:8] = struct.pack("<II", 0x2000_0800, 0x080E_04F1)
    assert host.one(c.EraseBootloader()) == c.StatusReply(Cmd.ERASE_BOOTLOADER, True)
    for n in range(0, len(foreign), CHUNK):
        assert host.one(c.WriteNewAppData(0x60000 + n, bytes(foreign[n : n + CHUNK]))).ok  # type: ignore[union-attr]
    update(host, make_firmware_image("60", "6.05"))
    device.run_pending()
    assert host.version() == "6.05"


def test_a_damaged_bootloader_bricks_the_board_on_the_next_update() -> None:
    """A plausible vector table in front of damaged code (write_nvm ANDed into it on 6.06+): assumed to
    erase the app and crash, which leaves the board dead until SWD."""
    device = make("6.06")
    host = Host(device, "6.06")
    device.flash.program(BOOTLOADER_BASE + 0x800, bytes(64))
    update(host, make_firmware_image("60", "7.00"))
    device.run_pending()
    assert device.mode == "dead" and not device.usb_up
    device.set_power(False)
    device.set_power(True)
    device.run_pending()
    assert device.mode == "dead"


def test_3_40_has_no_erase_bootloader_and_writes_only_and_bits() -> None:
    device = make("3.40")
    host = Host(device, "3.40")
    device.receive(encode_frame(bytes((73,))))  # ERASE_BOOTLOADER's id does not exist before 3.59: ignored
    assert host.replies() == []
    before = device.flash.read(BOOTLOADER_BASE, 64)
    assert host.one(c.WriteNewAppData(0x60000, b"\xf0" * 64)) == c.WriteNewAppDataReply(True)
    assert device.flash.read(BOOTLOADER_BASE, 64) == bytes(b & 0xF0 for b in before)


def _brick(device_faults: tuple[str, ...], cut_power: bool) -> Host:
    device = make("6.02", faults=device_faults)
    host = Host(device, "6.02")
    seen: list[BootPhase] = []

    def hook(run: BootloaderRun) -> None:
        seen.append(run.phase)
        if cut_power and run.phase == BootPhase.COPY and run.copied >= run.total // 2:
            device.set_power(False)

    device.on_bootloader_step = hook
    update(host, make_firmware_image("60", "6.05"))
    device.run_pending()
    assert BootPhase.COPY in seen and BootPhase.DONE not in seen
    device.set_power(False)
    device.set_power(True)
    device.run_pending()
    assert device.mode == "dead" and not device.usb_up
    return host


@pytest.mark.parametrize(("faults", "cut_power"), [((), True), (("reset_during_copy",), False)])
def test_power_lost_during_the_copy_bricks_until_swd(faults: tuple[str, ...], cut_power: bool) -> None:
    host = _brick(faults, cut_power)
    device = host.device
    for sector in range(8):  # what an SWD reflash does
        device.flash.erase_sector(sector)
    device.flash.program(FLASH_BASE, make_firmware_image("60", "6.02"))
    device.reset()
    device.run_pending()
    assert host.version() == "6.02"
    assert device.flash.read(BOOTLOADER_BASE, 8) != b"\xff" * 8 and BOOTLOADER_SECTOR == 11
