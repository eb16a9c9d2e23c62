"""Firmware and bootloader images: loading (.bin, .hex, desktop-tool folders), checks, upload form.

Everything here runs before anything is erased on a board, so a bad image (empty, truncated,
corrupt hex, too large, for other hardware) is refused while the board is still untouched.

Facts (facts sheet sections 5, 6, 8; VESC Tool vescinterface.cpp fwUpload):
- the upload is a 6-byte header (u32 size, u16 CRC-16/XMODEM of the image) followed by the image,
  written from offset 0 of the new-app buffer (0x08080000, 3 x 128 KB);
- images of 393209..699999 bytes are heatshrink-compressed (window 13, lookahead 5) and the size
  field becomes 0xCC << 24 | compressed size, the CRC being over the compressed bytes;
- the bootloader rejects a size above 393216, so an image that does not fit even compressed is refused;
- a bootloader image is written without header at offset 0x60000 (= 0x080E0000, sector 11).
"""

from __future__ import annotations

import hashlib
import logging
import struct
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import heatshrink2
from intelhex import IntelHex, IntelHexError

from rig.errors import ImageError, WrongHardware
from rig.protocol.commands import FirmwareVersion
from rig.protocol.framing import crc16

log = logging.getLogger(__name__)

FLASH_BASE = 0x0800_0000
APP_LIMIT = 0x0808_0000  # the app may reach the start of the new-app buffer
BOOTLOADER_BASE = 0x080E_0000
BOOTLOADER_LIMIT = 0x0810_0000
BOOTLOADER_OFFSET = BOOTLOADER_BASE - 0x0808_0000  # 0x60000 in WRITE_NEW_APP_DATA offsets
NEW_APP_BUFFER = 3 * 128 * 1024  # what the bootloader accepts (393216)
COMPRESS_ABOVE = 393208  # VESC Tool compresses if COMPRESS_ABOVE < size < COMPRESS_BELOW
COMPRESS_BELOW = 700000
COMPRESSED_FLAG = 0xCC
HEATSHRINK_WINDOW = 13  # vesc_tool heatshrink/heatshrink_config.h
HEATSHRINK_LOOKAHEAD = 5
HEADER = struct.Struct(">IH")
SRAM = range(0x2000_0000, 0x2002_0001)  # initial stack pointer must point into (or just past) SRAM
CCM = range(0x1000_0000, 0x1001_0001)
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


def _read_hex(path: Path, lo: int, hi: int, what: str) -> bytes:
    text = path.read_text(errors="replace")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise ImageError(f"{path}: empty hex file")
    if lines[-1].upper() != ":00000001FF":
        raise ImageError(f"{path}: no end-of-file record, the hex file is truncated")
    try:
        ih = IntelHex(str(path))
    except (IntelHexError, ValueError) as exc:
        raise ImageError(f"{path}: corrupt hex file: {exc}") from exc
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


def load_firmware(path: Path, *, hw_names: tuple[str, ...] = (), version: FirmwareVersion | None = None) -> Image:
    """Load a firmware image from .bin or .hex and check it; refuse what cannot be uploaded."""
    data = _load(path, FLASH_BASE, APP_LIMIT, "firmware")
    _check_vectors(data, str(path), FLASH_BASE)
    folder_hw = hw_names_of_folder(path.parent.name) if path.name == FIRMWARE_FILE else ()
    image = Image(ImageKind.FIRMWARE, data, str(path), hw_names or folder_hw, version)
    upload_form(image)  # refuses what does not fit the buffer even compressed
    return image


def load_bootloader(path: Path, *, hw_names: tuple[str, ...] = ()) -> Image:
    """Load a bootloader image (.bin or .hex at 0x080E0000) and check it."""
    data = _load(path, BOOTLOADER_BASE, BOOTLOADER_LIMIT, "bootloader")
    _check_vectors(data, str(path), BOOTLOADER_BASE)
    return Image(ImageKind.BOOTLOADER, data, str(path), hw_names)


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


def needs_compression(size: int) -> bool:
    """VESC Tool's rule: heatshrink an image if 393208 < size < 700000."""
    return COMPRESS_ABOVE < size < COMPRESS_BELOW


def heatshrink_compress(data: bytes) -> bytes:
    return heatshrink2.compress(data, window_sz2=HEATSHRINK_WINDOW, lookahead_sz2=HEATSHRINK_LOOKAHEAD)


def heatshrink_decompress(data: bytes) -> bytes:
    return heatshrink2.decompress(data, window_sz2=HEATSHRINK_WINDOW, lookahead_sz2=HEATSHRINK_LOOKAHEAD)


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
            f"the {NEW_APP_BUFFER}-byte update buffer"
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
            f"cannot tell which hardware {image.source} is for; put it in a desktop-tool folder named after "
            f"the hardware, name the hardware explicitly, or allow it explicitly"
        )
    raise WrongHardware(f"refusing {image.describe()}: the board reports hardware {hw_name!r}")


def base_address(image: Image) -> int:
    """Where an image lives in flash (SWD): firmware at 0x08000000, bootloader at 0x080E0000."""
    return FLASH_BASE if image.kind == ImageKind.FIRMWARE else BOOTLOADER_BASE


def write_merged_hex(path: Path, *images: Image) -> Path:
    """One .hex holding each image at its flash address (e.g. bootloader + firmware for SWD bring-up)."""
    merged = IntelHex()
    for image in images:
        merged.frombytes(image.data, offset=base_address(image))
    path.parent.mkdir(parents=True, exist_ok=True)
    merged.write_hex_file(str(path))
    return path
