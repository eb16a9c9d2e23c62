"""What the simulated firmware keeps in the EEPROM-emulation sectors 1-2: mcconf, appconf, the backup struct.

Not ST's EEPROM emulation byte for byte, only its behaviour: records ``"CF" kind u16-length u32-CRC32 data``
appended after the last one in the record's sector; a full sector is erased and the newest record of every
kind in it written back first. Erased sectors (or the zeros a 0x00-filled .bin leaves there) mean "nothing
stored": the firmware then runs on its defaults, as the real one does after EE_Init formats the pages.
"""

from __future__ import annotations

import struct
import zlib
from enum import IntEnum

from rig.device.memory import EEPROM_SECTORS, SECTORS
from rig.sim.flash import Flash

_HEAD = struct.Struct(">2sBHI")
_MAGIC = b"CF"


class Record(IntEnum):
    """What a record holds, and (by its place in EEPROM_SECTORS) where it lives."""

    MCCONF = 1
    APPCONF = 2
    BACKUP = 3  # conf_general's backup_data (only its CAN group is modelled, rig.sim.backup)


_SECTOR = {Record.MCCONF: EEPROM_SECTORS[0], Record.APPCONF: EEPROM_SECTORS[1], Record.BACKUP: EEPROM_SECTORS[0]}


class EepromStore:
    """The records of the EEPROM emulation, read and written through the flash model."""

    def __init__(self, flash: Flash) -> None:
        self.flash = flash

    def _scan(self, sector_index: int) -> tuple[dict[Record, bytes], int]:
        """The newest valid record of each kind in a sector, and the offset where the next one goes."""
        sector = SECTORS[sector_index]
        raw = self.flash.read(sector.start, sector.size)
        at, newest = 0, {}
        while at + _HEAD.size <= len(raw):
            magic, kind, length, crc = _HEAD.unpack_from(raw, at)
            if magic != _MAGIC:
                break
            data = raw[at + _HEAD.size : at + _HEAD.size + length]
            if kind in Record.__members__.values() and zlib.crc32(data) == crc:
                newest[Record(kind)] = data
            at += _HEAD.size + length
        return newest, at

    def format_if_invalid(self) -> list[int]:
        """EE_Init at boot: a sector that is neither erased nor starts with a record is formatted (erased);
        returns the sectors formatted (a 0x00-filled .bin leaves both page headers "valid", which EE_Init
        takes for a broken state)."""
        formatted = []
        for index in sorted(set(_SECTOR.values())):
            start = SECTORS[index].start
            head = self.flash.read(start, _HEAD.size)
            if head != b"\xff" * _HEAD.size and head[:2] != _MAGIC:
                self.flash.erase_sector(index)
                formatted.append(index)
        return formatted

    def read(self, kind: Record) -> bytes | None:
        return self._scan(_SECTOR[kind])[0].get(kind)

    def write(self, kind: Record, data: bytes) -> None:
        sector = SECTORS[_SECTOR[kind]]
        newest, at = self._scan(sector.index)
        record = _pack(kind, data)
        if at + len(record) > sector.size:
            self.flash.erase_sector(sector.index)
            kept = b"".join(_pack(k, d) for k, d in newest.items() if k != kind)
            self.flash.program(sector.start, kept)
            at = len(kept)
        self.flash.program(sector.start + at, record)


def _pack(kind: Record, data: bytes) -> bytes:
    return _HEAD.pack(_MAGIC, kind, len(data), zlib.crc32(data)) + data
