"""Firmware and bootloader images: loading (.bin, .hex, desktop-tool folders), checks, upload form.

Everything here runs before anything is erased on a board, so a bad image (empty, truncated or padded,
corrupt hex, too large, for other hardware) is refused while the board is still untouched. A firmware .bin
of 3.56 on has one exact size per generation and ends with its integrity record
(rig.device.app_image.built_image_problem): anything else would halt the firmware at boot.

Facts (facts sheet sections 5, 6, 8; VESC Tool vescinterface.cpp fwUpload):
- the upload is a 6-byte header (u32 size, u16 CRC-16/XMODEM of the image) followed by the image,
  written from offset 0 of the new-app buffer (3 x 128 KB);
- images of 393209..699999 bytes are heatshrink-compressed (window 13, lookahead 5) and the size
  field becomes 0xCC << 24 | compressed size, the CRC being over the compressed bytes;
- the bootloader rejects a size above 393216, so an image that does not fit even compressed is refused;
- a bootloader image is written without header into the bootloader sector (rig.device.memory).
"""

from __future__ import annotations

import hashlib
import logging
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from intelhex import IntelHex, IntelHexError

from rig.device.app_image import built_image_problem
from rig.device.memory import APP_LIMIT, BOOTLOADER_BASE, CCM, FLASH_BASE, FLASH_END, NEW_APP_SIZE, SRAM
from rig.device.update_format import (
    COMPRESS_ABOVE,
    COMPRESSED_FLAG,
    HEADER,
    heatshrink_compress,
    needs_compression,
)
from rig.errors import ImageError, WrongHardware
from rig.protocol.commands import FirmwareVersion
from rig.protocol.framing import crc16

log = logging.getLogger(__name__)

BOOTLOADER_LIMIT = FLASH_END
FIRMWARE_FILE = "VESC_default.bin"  # desktop-tool folder layout
GENERIC_BOOTLOADER = "generic.bin"


class ImageKind(StrEnum):
    FIRMWARE = "firmware"
    BOOTLOADER = "bootloader"


@dataclass(frozen=True)
class Image:
    """An image as it goes to flash, with what is known about it."""

    kind: ImageKind
    data: bytes
    source: str
    hw_names: tuple[str, ...] = ()  # empty: the hardware is not known
    version: FirmwareVersion | None = None

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    def fits_hw(self, hw_name: str) -> bool | None:
        """True/False when the image's hardware is known, None when it is not."""
        if not self.hw_names:
            return None
        return hw_name.lower() in (h.lower() for h in self.hw_names)

    def describe(self) -> str:
        hw = "/".join(self.hw_names) or "unknown hardware"
        ver = f" {self.version}" if self.version else ""
        return f"{self.kind.value}{ver} for {hw} ({len(self.data)} bytes, {self.source})"


@dataclass(frozen=True)
class Upload:
    """What goes over the wire for a firmware image: erase size and the bytes from offset 0."""

    erase_size: int  # the raw image size, as VESC Tool sends it to ERASE_NEW_APP
    payload: bytes  # header + (compressed) image
    compressed: bool


def hw_names_of_folder(name: str) -> tuple[str, ...]:
    """Hardware names of a desktop-tool folder name: `410_o_411_o_412` -> ("410", "411", "412")."""
    return tuple(part for part in name.split("_o_") if part)


def _parse_hex(path: Path) -> IntelHex:
    """A hex file that ends with its end-of-file record (else it is truncated) and parses."""
    if not path.is_file():
        raise ImageError(f"{path}: no such hex file")
    text = path.read_text(errors="replace")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise ImageError(f"{path}: empty hex file")
    if lines[-1].upper() != ":00000001FF":
        raise ImageError(f"{path}: no end-of-file record, the hex file is truncated")
    try:
        return IntelHex(str(path))
    except (IntelHexError, ValueError) as exc:
        raise ImageError(f"{path}: corrupt hex file: {exc}") from exc


def _read_hex(path: Path, lo: int, hi: int, what: str) -> bytes:
    ih = _parse_hex(path)
    start, end = ih.minaddr(), ih.maxaddr()
    if start is None or end is None:
        raise ImageError(f"{path}: hex file holds no data")
    if start < lo or end >= hi:
        raise ImageError(
            f"{path}: {what} data must lie in 0x{lo:08X}..0x{hi - 1:08X}, the file covers 0x{start:08X}..0x{end:08X}"
        )
    if start != lo:
        raise ImageError(f"{path}: {what} must start at 0x{lo:08X}, the file starts at 0x{start:08X}")
    return ih.tobinstr(start=start, end=end)


def _check_vectors(data: bytes, source: str, base: int) -> None:
    """A Cortex-M image starts with the initial stack pointer and the reset vector (Thumb, odd)."""
    if len(data) < 8:
        raise ImageError(f"{source}: {len(data)} bytes is too short to hold a vector table")
    sp, reset = struct.unpack_from("<II", data)
    if sp not in SRAM and sp not in CCM:
        raise ImageError(f"{source}: initial stack pointer 0x{sp:08X} is not in RAM: not an image for this MCU")
    if not reset & 1 or not base <= reset - 1 < base + len(data):
        raise ImageError(
            f"{source}: reset vector 0x{reset:08X} points outside the {len(data)}-byte image "
            "(truncated, or not an image for this address)"
        )


def _checked(
    kind: ImageKind, data: bytes, source: str, hw_names: tuple[str, ...], version: FirmwareVersion | None = None
) -> Image:
    """An image of `kind` made of `data`, after every check that can be made before anything is erased."""
    _check_vectors(data, source, FLASH_BASE if kind == ImageKind.FIRMWARE else BOOTLOADER_BASE)
    image = Image(kind, data, source, hw_names, version)
    if kind == ImageKind.FIRMWARE:
        problem = built_image_problem(data, version)
        if problem is not None:
            raise ImageError(f"{source}: {problem}")
        upload_form(image)  # refuses what does not fit the buffer even compressed
    return image


def load_firmware(path: Path, *, hw_names: tuple[str, ...] = (), version: FirmwareVersion | None = None) -> Image:
    """Load a firmware image from .bin or .hex and check it; refuse what cannot be uploaded."""
    data = _load(path, FLASH_BASE, APP_LIMIT, "firmware")
    folder_hw = hw_names_of_folder(path.parent.name) if path.name == FIRMWARE_FILE else ()
    if hw_names and folder_hw and not {h.lower() for h in hw_names} & {h.lower() for h in folder_hw}:
        raise WrongHardware(
            f"{path}: its desktop-tool folder says hardware {'/'.join(folder_hw)}, but it was named as an image "
            f"for {'/'.join(hw_names)} (--hw): refusing an image whose hardware is in doubt"
        )
    return _checked(ImageKind.FIRMWARE, data, str(path), folder_hw or hw_names, version)


def load_bootloader(path: Path, *, hw_names: tuple[str, ...] = ()) -> Image:
    """Load a bootloader image (.bin, or .hex at the bootloader sector) and check it."""
    return _checked(
        ImageKind.BOOTLOADER, _load(path, BOOTLOADER_BASE, BOOTLOADER_LIMIT, "bootloader"), str(path), hw_names
    )


def _load(path: Path, lo: int, hi: int, what: str) -> bytes:
    if not path.is_file():
        raise ImageError(f"{path}: no such {what} file")
    is_hex = path.suffix.lower() in (".hex", ".ihex")
    data = _read_hex(path, lo, hi, what) if is_hex else path.read_bytes()
    if not data:
        raise ImageError(f"{path}: empty {what} image")
    if len(data) > hi - lo:
        raise ImageError(f"{path}: {len(data)} bytes is larger than the {what} region ({hi - lo} bytes)")
    return data


def update_header(payload: bytes, *, compressed: bool = False) -> bytes:
    """The 6-byte header for `payload` (the image, or its heatshrink form with `compressed`)."""
    size = (COMPRESSED_FLAG << 24 | len(payload)) if compressed else len(payload)
    return HEADER.pack(size, crc16(payload))


def update_payload(data: bytes, source: str = "image") -> Upload:
    """Header + (compressed) image as VESC Tool writes it to the new-app buffer; refuses what cannot fit."""
    compressed = needs_compression(len(data))
    packed = heatshrink_compress(data) if compressed else data
    if compressed:
        log.info("%s: heatshrink %d -> %d bytes", source, len(data), len(packed))
    if len(packed) > COMPRESS_ABOVE:
        raise ImageError(
            f"{source}: {len(packed)} bytes{' after compression' if compressed else ''} does not fit "
            f"the {NEW_APP_SIZE}-byte update buffer"
        )
    return Upload(len(data), update_header(packed, compressed=compressed) + packed, compressed)


def upload_form(image: Image) -> Upload:
    """The bytes VESC Tool would send for a firmware image (header, compression when needed)."""
    return update_payload(image.data, image.source)


def load_from_folder(
    folder: Path, hw_name: str, kind: ImageKind = ImageKind.FIRMWARE, *, version: FirmwareVersion | None = None
) -> Image:
    """Load the image for `hw_name` from a desktop-tool folder (sub-folders named `hw_o_hw`)."""
    path, names = find_in_folder(folder, hw_name, kind)
    if kind == ImageKind.FIRMWARE:
        return load_firmware(path, hw_names=names, version=version)
    return load_bootloader(path, hw_names=names)


def load_image(
    path: Path,
    kind: ImageKind,
    hw_name: str = "",
    *,
    hw_names: tuple[str, ...] = (),
    version: FirmwareVersion | None = None,
) -> Image:
    """An image from a file (as it is) or a desktop-tool folder (the sub-folder for `hw_name`)."""
    if path.is_dir():
        return load_from_folder(path, hw_name, kind, version=version)
    if kind == ImageKind.BOOTLOADER:
        return load_bootloader(path, hw_names=hw_names)
    return load_firmware(path, hw_names=hw_names, version=version)


def find_in_folder(folder: Path, hw_name: str, kind: ImageKind = ImageKind.FIRMWARE) -> tuple[Path, tuple[str, ...]]:
    """The file for `hw_name` in a desktop-tool folder, with the hardware names of its sub-folder.

    Bootloaders fall back to `generic.bin` where no folder matches, as VESC Tool does.
    """
    if not folder.is_dir():
        raise ImageError(f"{folder}: not a folder")
    want = hw_name.lower()
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        if want in (h.lower() for h in hw_names_of_folder(sub.name)):
            candidates = [sub / FIRMWARE_FILE] if kind == ImageKind.FIRMWARE else sorted(sub.glob("*.bin"))
            for candidate in candidates:
                if candidate.is_file():
                    return candidate, hw_names_of_folder(sub.name)
    if kind == ImageKind.BOOTLOADER and (folder / GENERIC_BOOTLOADER).is_file():
        return folder / GENERIC_BOOTLOADER, ()
    raise WrongHardware(f"{folder} has no {kind.value} for hardware {hw_name!r}")


def check_hardware(image: Image, hw_name: str, *, allow_wrong_hw: bool = False) -> None:
    """Refuse an image for another (or unknown) hardware unless explicitly allowed (F6)."""
    fits = image.fits_hw(hw_name)
    if fits or allow_wrong_hw or (fits is None and image.kind == ImageKind.BOOTLOADER):
        if fits is False:
            log.warning("uploading %s to hardware %s because it was forced", image.describe(), hw_name)
        return
    if fits is None:
        raise WrongHardware(
            f"cannot tell which hardware {image.source} is for: name it with --hw, put the image in a "
            "desktop-tool folder named after the hardware, or upload it to any hardware with --allow-wrong-hw"
        )
    raise WrongHardware(
        f"refusing {image.describe()}: the board reports hardware {hw_name!r} (--allow-wrong-hw to force it)"
    )


def base_address(image: Image) -> int:
    """Where an image lives in flash (SWD): firmware at the flash base, a bootloader in its sector."""
    return FLASH_BASE if image.kind == ImageKind.FIRMWARE else BOOTLOADER_BASE


def flash_segments(images: Sequence[Image]) -> tuple[tuple[int, bytes], ...]:
    """Where each image goes in flash, for SWD: (address, bytes) in address order."""
    return tuple(sorted((base_address(image), image.data) for image in images))


def load_for_swd(path: Path, address: int | None = None, *, hw_names: tuple[str, ...] = ()) -> tuple[Image, ...]:
    """The images an SWD file holds: a .hex (firmware, bootloader, or both merged; anything else is refused),
    or a .bin at `address` (the firmware's base or the bootloader sector's). Every part is
    checked as an image of its kind, before anything is erased."""
    if path.suffix.lower() in (".hex", ".ihex"):
        if address is not None:
            raise ImageError(f"{path}: a .hex carries its own addresses; give an address only for a .bin")
        return _split_hex(path, hw_names)
    if address == FLASH_BASE:
        return (load_firmware(path, hw_names=hw_names),)
    if address == BOOTLOADER_BASE:
        return (load_bootloader(path, hw_names=hw_names),)
    where = "no address" if address is None else f"address {address:#010x}"
    raise ImageError(
        f"{path}: a .bin goes to the firmware ({FLASH_BASE:#010x}) or the bootloader ({BOOTLOADER_BASE:#010x}), "
        f"not to {where}"
    )


def _split_hex(path: Path, hw_names: tuple[str, ...]) -> tuple[Image, ...]:
    ih = _parse_hex(path)
    parts: list[Image] = []
    for kind, lo, hi in (
        (ImageKind.FIRMWARE, FLASH_BASE, APP_LIMIT),
        (ImageKind.BOOTLOADER, BOOTLOADER_BASE, FLASH_END),
    ):
        inside = [(s, e) for s, e in ih.segments() if lo <= s < hi]
        if not inside:
            continue
        if inside[0][0] != lo:
            raise ImageError(
                f"{path}: the {kind.value} part must start at {lo:#010x}, it starts at {inside[0][0]:#010x}"
            )
        end = max(e for _, e in inside)
        if end > hi:
            raise ImageError(f"{path}: the {kind.value} part reaches {end:#010x}, past its region's end {hi:#010x}")
        data = ih.tobinstr(start=lo, end=end - 1)
        parts.append(_checked(kind, data, f"{path} ({kind.value} part)", hw_names))
    stray = [(s, e) for s, e in ih.segments() if not (FLASH_BASE <= s < APP_LIMIT or BOOTLOADER_BASE <= s < FLASH_END)]
    if stray:
        s, e = stray[0]
        raise ImageError(f"{path}: data at {s:#010x}..{e - 1:#010x} is neither firmware nor bootloader")
    if not parts:
        raise ImageError(f"{path}: hex file holds no data")
    return tuple(parts)


def write_merged_hex(path: Path, *images: Image) -> Path:
    """One .hex holding each image at its flash address (e.g. bootloader + firmware for SWD bring-up)."""
    merged = IntelHex()
    for image in images:
        merged.frombytes(image.data, offset=base_address(image))
    path.parent.mkdir(parents=True, exist_ok=True)
    merged.write_hex_file(str(path))
    return path
