"""Simulated images: descriptor, determinism, realistic sizes, 0xFF regions, update header, CLI."""

from __future__ import annotations

from binascii import crc_hqx
from pathlib import Path

import pytest

from rig.cli import main
from rig.device.firmware import PROFILES, UnknownFirmware
from rig.device.update_format import heatshrink_decompress
from rig.firmware.image import update_header, update_payload
from rig.sim.errors import SimError
from rig.sim.image import (
    DESCRIPTOR_OFFSET,
    EEPROM_WINDOW,
    ImageKind,
    make_bootloader_image,
    make_firmware_image,
    read_descriptor,
)


@pytest.mark.parametrize("version", sorted(PROFILES))
def test_firmware_image_is_deterministic_and_describes_itself(version: str) -> None:
    image = make_firmware_image("410", version)
    assert image == make_firmware_image("410", version) != make_firmware_image("60", version)
    assert len(image) == PROFILES[version].app_size
    descriptor = read_descriptor(image)
    assert descriptor is not None and descriptor.kind == ImageKind.FIRMWARE
    assert (descriptor.hw_name, str(descriptor.version), descriptor.profile) == ("410", version, version)
    assert image[EEPROM_WINDOW.start : EEPROM_WINDOW.stop] == b"\xff" * len(EEPROM_WINDOW)
    assert image.endswith(b"\xff" * 1024)


def test_sizes_follow_the_facts() -> None:
    assert len(make_firmware_image("60", "6.02")) == 524280
    assert len(make_firmware_image("60", "5.02")) == 393208
    assert 5300 <= len(make_bootloader_image()) <= 5800


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


def test_update_header_and_blob() -> None:
    image = make_firmware_image("60", "3.40")
    assert update_header(image) == len(image).to_bytes(4, "big") + crc_hqx(image, 0).to_bytes(2, "big")
    blob = update_payload(image).payload
    assert blob[6:] == image
    chunks = [blob[n : n + 384] for n in range(0, len(blob), 384)]
    assert any(chunk == b"\xff" * len(chunk) for chunk in chunks)  # the uploader's skip path is exercised
    big = make_firmware_image("60", "6.02")
    packed = update_payload(big).payload
    size = int.from_bytes(packed[:4], "big")
    assert size >> 24 == 0xCC and (size & 0xFFFFFF) == len(packed) - 6 < 393216
    assert heatshrink_decompress(packed[6:]) == big


def test_bad_arguments() -> None:
    with pytest.raises(UnknownFirmware, match="no simulated firmware profile 4.01"):
        make_firmware_image("60", "4.01")
    with pytest.raises(SimError, match="longer than 16"):
        make_firmware_image("x" * 17, "6.02")


def test_cli_writes_the_images(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "fw.bin"
    assert main(["sim", "image", "--hw", "60", "--version", "6.02", "-o", str(out)]) == 0
    assert out.read_bytes() == make_firmware_image("60", "6.02")
    assert main(["sim", "image", "--bootloader", "-o", str(tmp_path / "bl.bin")]) == 0
    assert (tmp_path / "bl.bin").read_bytes() == make_bootloader_image()
    assert main(["sim", "image", "--hw", "60", "-o", str(out)]) == 1
    assert "--version" in capsys.readouterr().err
