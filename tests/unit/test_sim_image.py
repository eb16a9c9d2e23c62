"""Simulated images: descriptor, determinism, realistic sizes, 0xFF regions, update header, CLI."""

from __future__ import annotations

import struct
from binascii import crc_hqx
from pathlib import Path

import pytest

from rig.cli import main
from rig.device.app_image import RECORD_PLACEHOLDER
from rig.device.firmware import PROFILES, UnknownFirmware
from rig.device.update_format import BootloaderGeneration, heatshrink_decompress
from rig.firmware.image import update_header, update_payload
from rig.sim.errors import SimError
from rig.sim.image import (
    DESCRIPTOR_OFFSET,
    EEPROM_WINDOW,
    ImageKind,
    SectorBootloader,
    bootloader_in,
    make_bootloader_image,
    make_firmware_image,
    read_descriptor,
)


@pytest.mark.parametrize("version", sorted(PROFILES))
def test_firmware_image_is_deterministic_and_laid_out_as_its_generation(version: str) -> None:
    image = make_firmware_image("410", version)
    assert image == make_firmware_image("410", version) != make_firmware_image("60", version)
    layout = PROFILES[version].image
    assert len(image) == layout.typical_size
    descriptor = read_descriptor(image)
    assert descriptor is not None and descriptor.kind == ImageKind.FIRMWARE
    assert (descriptor.hw_name, str(descriptor.version), descriptor.variant) == ("410", version, version)
    assert image[:8] == struct.pack("<II", 0x2000_0800, 0x0800_C001)  # SP in SRAM, Reset_Handler at flash2
    fill = bytes((layout.gap_fill,)) * len(EEPROM_WINDOW)
    assert image[EEPROM_WINDOW.start : EEPROM_WINDOW.stop] == fill
    if layout.size is not None:  # 3.56+: the placeholder record is the last 8 bytes, at its fixed address
        assert len(image) == layout.size and image[-8:] == RECORD_PLACEHOLDER
        assert layout.record_offset == len(image) - 8
    else:
        assert image[-8:] != RECORD_PLACEHOLDER  # no record: the .bin ends with its last section


def test_sizes_gap_fill_and_records_follow_the_facts() -> None:
    v340, v502, v602 = (PROFILES[v].image for v in ("3.40", "5.02", "6.02"))
    assert (v502.size, v502.record_at, v502.gap_fill) == (393208, 0x0805FFF0, 0xFF)
    assert (v602.size, v602.record_at, v602.gap_fill) == (524280, 0x0807FFF0, 0x00)
    assert (v340.size, v340.record_at, v340.gap_fill) == (None, None, 0x00)
    assert 196_780 <= len(make_firmware_image("60", "3.40")) <= 203_948  # the shipped 3.40 bins
    assert PROFILES["3.55"].image.record_at is None and PROFILES["3.56"].image.record_at == 0x0805FFF0
    assert len(make_bootloader_image()) == 5280  # VESC Tool's generic.bin since 2022
    assert len(make_bootloader_image(generation=BootloaderGeneration.OLD)) == 3792
    assert len(make_bootloader_image("60")) == 5776


def test_generated_6_x_images_compress_like_a_real_build() -> None:
    """A 6.06 build: 524280 -> 352549 bytes with heatshrink W13/L5 (research fw-flash.md 2)."""
    packed = update_payload(make_firmware_image("60", "6.06")).payload
    assert 0.62 < (len(packed) - 6) / 524280 < 0.72


def test_garbage_erased_or_damaged_images_have_no_descriptor() -> None:
    image = bytearray(make_firmware_image("60", "3.40"))
    assert read_descriptor(b"\xff" * len(image)) is None
    assert read_descriptor(bytes(len(image))) is None
    image[0x20000] ^= 1
    assert read_descriptor(bytes(image)) is None
    image[0x20000] ^= 1
    image[EEPROM_WINDOW.start] = 0  # config written at run time does not matter
    assert read_descriptor(bytes(image)) is not None
    image[DESCRIPTOR_OFFSET + 9] ^= 1
    assert read_descriptor(bytes(image)) is None


def test_bootloader_image_descriptor() -> None:
    descriptor = read_descriptor(make_bootloader_image())
    assert descriptor is not None and descriptor.kind == ImageKind.BOOTLOADER
    assert descriptor.variant == BootloaderGeneration.CURRENT.value


def _sector(image: bytes) -> bytes:
    return image + b"\xff" * (0x20000 - len(image))


def test_what_sector_11_holds_as_the_jump_sees_it() -> None:
    current, old = make_bootloader_image(), make_bootloader_image(generation=BootloaderGeneration.OLD)
    assert bootloader_in(_sector(current)) == SectorBootloader(BootloaderGeneration.CURRENT)
    assert bootloader_in(_sector(old)) == SectorBootloader(BootloaderGeneration.OLD)
    assert bootloader_in(b"\xff" * 0x20000).generation is None  # erased (wipe_nvm, ERASE_BOOTLOADER)
    damaged = bytearray(_sector(current))
    damaged[0x800:0x840] = bytes(64)  # write_nvm ANDed zeros into the code
    assert bootloader_in(bytes(damaged)) == SectorBootloader(BootloaderGeneration.CURRENT, damaged=True)
    # a real bootloader (VESC Tool's generic.bin): plausible vectors, no descriptor: taken for the 2022 one
    foreign = bytearray(_sector(bytes(range(256)) * 20))
    foreign[:8] = struct.pack("<II", 0x2000_0800, 0x080E_04F1)
    assert bootloader_in(bytes(foreign)) == SectorBootloader(BootloaderGeneration.CURRENT, simulated=False)
    foreign[:4] = bytes(4)  # SP 0: the vector table itself is gone
    assert bootloader_in(bytes(foreign)).generation is None


def test_update_header_and_blob() -> None:
    image = make_firmware_image("60", "3.40")
    assert update_header(image) == len(image).to_bytes(4, "big") + crc_hqx(image, 0).to_bytes(2, "big")
    blob = update_payload(image).payload
    assert blob[6:] == image
    chunks = [blob[n : n + 384] for n in range(0, len(blob), 384)]
    assert not any(chunk == b"\xff" * len(chunk) for chunk in chunks)  # 3.40 fills its gaps with zeros
    plain = update_payload(make_firmware_image("60", "5.02")).payload
    chunks = [plain[n : n + 384] for n in range(0, len(plain), 384)]
    assert any(chunk == b"\xff" * len(chunk) for chunk in chunks)  # 3.56-5.03 fill with 0xFF: the skip path
    big = make_firmware_image("60", "6.02")
    packed = update_payload(big).payload
    size = int.from_bytes(packed[:4], "big")
    assert size >> 24 == 0xCC and (size & 0xFFFFFF) == len(packed) - 6 < 393216
    assert heatshrink_decompress(packed[6:]) == big


def test_bad_arguments() -> None:
    with pytest.raises(UnknownFirmware, match="no firmware 4.03 was released"):
        make_firmware_image("60", "4.03")
    with pytest.raises(UnknownFirmware, match="3.41-3.47 never existed"):
        make_firmware_image("60", "3.45")
    with pytest.raises(SimError, match="longer than 16"):
        make_firmware_image("x" * 17, "6.02")


def test_cli_writes_the_images(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "fw.bin"
    assert main(["sim", "image", "--hw", "60", "--version", "6.02", "-o", str(out)]) == 0
    assert out.read_bytes() == make_firmware_image("60", "6.02")
    assert main(["sim", "image", "--bootloader", "-o", str(tmp_path / "bl.bin")]) == 0
    assert (tmp_path / "bl.bin").read_bytes() == make_bootloader_image()
    assert main(["sim", "image", "--bootloader", "--generation", "2015", "-o", str(tmp_path / "old.bin")]) == 0
    assert (tmp_path / "old.bin").read_bytes() == make_bootloader_image(generation=BootloaderGeneration.OLD)
    for version in ("3.48", "6.05", "7.01"):  # any release
        assert main(["sim", "image", "--hw", "60", "--version", version, "-o", str(out)]) == 0
        assert out.read_bytes() == make_firmware_image("60", version)
    assert main(["sim", "image", "--hw", "60", "-o", str(out)]) == 1
    assert "--version" in capsys.readouterr().err
