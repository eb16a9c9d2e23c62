"""The physical floor of an update: the time the modelled device itself needs, computed, not run.

The numbers come from the device facts the simulator spends its modelled time from (rig.device.timing
flash timings and per-frame USB cost, rig.device.firmware boot times, rig.device.update_format bootloader
blinks), applied to the same flash layout (facts sheet sections 5, 6; research notes section 8):

- erase: one USB frame, then ERASE_NEW_APP erases sectors 8, 9, 10 (128 KB each) while
  0x08080000 + raw size reaches past the sector's start (VESC Tool sends the raw image size);
- write: one USB frame per WRITE_NEW_APP_DATA chunk plus tprog per byte (byte-wide programming);
- copy: the JUMP frame, then the bootloader erases app sectors 0..7 as far as the raw image reaches
  (all eight when the upload is heatshrink-compressed), programs every byte of the raw image, and
  blinks green three times;
- boot: reset to USB enumeration of the new firmware (per release), plus what its first boot adds: EE_Init
  formatting both EEPROM sectors where the .bin left zeros there (3.40-3.55, 6.00+), and from 3.56 the
  integrity record (the boot up to the check, two word writes) and one more reset (rig.device.app_image);
- ready: one FW_VERSION frame.

A host can at best reach this floor; the rig's phase times are compared with it. The ``copy`` and
``boot`` floors together correspond to the rig's ``boot_s`` phase (jump until the port is back).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from rig.device.firmware import FIRST_BOOT_S, FirmwareProfile, profile_for
from rig.device.memory import BOOTLOADER_SECTOR, EEPROM_SECTORS, FLASH_BASE, NEW_APP_BASE, NEW_APP_SECTORS, SECTORS
from rig.device.timing import USB_PACKET_S, FlashTiming
from rig.device.update_format import BOOTLOADER_APP_SECTORS as APP_SECTOR_RANGE
from rig.device.update_format import BOOTLOADER_BLINK_S as BLINK_S
from rig.device.update_format import needs_compression
from rig.firmware.update import CHUNK
from rig.protocol.commands import FirmwareVersion

DONE_BLINKS = 3  # the bootloader blinks green three times after a good copy (L: main.c)
_TIMING = FlashTiming()  # DS8626 typical values, as the simulator uses them


@dataclass(frozen=True)
class Floor:
    """Seconds the modelled device needs for each phase of an update or upload."""

    erase_s: float
    write_s: float
    copy_s: float = 0.0
    boot_s: float = 0.0
    ready_s: float = 0.0

    @property
    def upload_s(self) -> float:
        """Erase and write: what a host-side upload strategy can influence."""
        return self.erase_s + self.write_s

    @property
    def reboot_s(self) -> float:
        """Jump until the new firmware's USB is up (the rig's ``boot_s`` phase)."""
        return self.copy_s + self.boot_s

    @property
    def total_s(self) -> float:
        return self.erase_s + self.write_s + self.copy_s + self.boot_s + self.ready_s

    def as_dict(self) -> dict[str, float]:
        return {**asdict(self), "upload_s": self.upload_s, "reboot_s": self.reboot_s, "total_s": self.total_s}


def _profile(profile: FirmwareProfile | FirmwareVersion | str) -> FirmwareProfile:
    return profile if isinstance(profile, FirmwareProfile) else profile_for(profile)


def _erase_s(indices: list[int], timing: FlashTiming) -> float:
    return sum(timing.erase_time(SECTORS[i].size) for i in indices)


def buffer_sectors(raw_size: int) -> list[int]:
    """New-app buffer sectors ERASE_NEW_APP erases for an image of `raw_size` bytes."""
    return [i for i in NEW_APP_SECTORS if NEW_APP_BASE + raw_size > SECTORS[i].start]


def app_sectors(raw_size: int, *, compressed: bool) -> list[int]:
    """App sectors the bootloader erases before copying (all of them for a compressed upload)."""
    if compressed:
        return list(APP_SECTOR_RANGE)
    return [i for i in APP_SECTOR_RANGE if FLASH_BASE + raw_size > SECTORS[i].start]


def first_boot_s(profile: FirmwareProfile, timing: FlashTiming = _TIMING) -> float:
    """Reset until USB of a release's first boot after an update (see the module docstring)."""
    seconds = profile.boot_s
    if profile.image.formats_eeprom:
        seconds += _erase_s(list(EEPROM_SECTORS), timing)
    if profile.image.has_record:
        seconds += FIRST_BOOT_S + 2 * timing.program_byte_s  # flag and CRC, one word write each
    return seconds


def write_floor(bytes_sent: int, frames: int | None = None, timing: FlashTiming = _TIMING) -> float:
    """Chunked WRITE_NEW_APP_DATA: one USB frame per chunk plus byte programming of every byte sent.

    `frames` defaults to 384-byte chunks; pass the real chunk count when all-0xFF chunks were skipped.
    """
    if bytes_sent < 0 or (frames is not None and frames < 0):
        raise ValueError("bytes and frames cannot be negative")
    count = -(-bytes_sent // CHUNK) if frames is None else frames
    return count * USB_PACKET_S + bytes_sent * timing.program_byte_s


def update_floor(
    image_bytes_uploaded: int,
    raw_image_size: int,
    profile: FirmwareProfile | FirmwareVersion | str,
    timing: FlashTiming = _TIMING,
    *,
    frames: int | None = None,
) -> Floor:
    """Floor of a USB firmware update: `image_bytes_uploaded` bytes written (header included, 0xFF
    chunks skipped) in `frames` chunks, for an image of `raw_image_size` bytes on firmware `profile`
    (the profile of the NEW image decides its boot time)."""
    if raw_image_size <= 0:
        raise ValueError("the raw image size must be positive")
    compressed = needs_compression(raw_image_size)
    return Floor(
        erase_s=USB_PACKET_S + _erase_s(buffer_sectors(raw_image_size), timing),
        write_s=write_floor(image_bytes_uploaded, frames, timing),
        copy_s=USB_PACKET_S
        + _erase_s(app_sectors(raw_image_size, compressed=compressed), timing)
        + raw_image_size * timing.program_byte_s
        + DONE_BLINKS * BLINK_S,
        boot_s=first_boot_s(_profile(profile), timing),
        ready_s=USB_PACKET_S,
    )


def bootloader_floor(
    bytes_sent: int, timing: FlashTiming = _TIMING, *, frames: int | None = None, erase: bool = True
) -> Floor:
    """Floor of a bootloader upload over USB: ERASE_BOOTLOADER (sector 11; 3.59+) then the writes."""
    erase_s = USB_PACKET_S + _erase_s([BOOTLOADER_SECTOR], timing) if erase else 0.0
    return Floor(erase_s=erase_s, write_s=write_floor(bytes_sent, frames, timing))
