"""The record the firmware keeps Lisp code (and QML) in, one per flash sector (6.00+; research fw-flash.md 3).

``u32 length`` (big-endian), ``u16 CRC-16/XMODEM`` over the two flag bytes and the data, ``u16 flags``,
then the data from offset 8. A length above 128 KiB - 8 or a CRC mismatch means "no code"
(flash_helper.c qmlui_check). The host writes the whole record with LISP_WRITE_CODE at offsets from the
sector start, after LISP_ERASE_CODE; LISP_READ_CODE reads the data part back.
"""

from __future__ import annotations

import struct
from binascii import crc_hqx
from dataclasses import dataclass

from rig.errors import PayloadError

HEADER = struct.Struct(">IHH")  # length, CRC-16 (flags + data), flags
MAX_DATA = 128 * 1024 - HEADER.size  # QMLUI_MAX_SIZE


@dataclass(frozen=True)
class CodeRecord:
    data: bytes
    flags: int = 0

    def pack(self) -> bytes:
        if len(self.data) > MAX_DATA:
            raise PayloadError(f"a code record holds at most {MAX_DATA} bytes, not {len(self.data)}")
        flags = struct.pack(">H", self.flags)
        return HEADER.pack(len(self.data), crc_hqx(flags + self.data, 0), self.flags) + self.data


def parse_code_record(sector: bytes) -> CodeRecord | None:
    """The record at the start of a sector, or None where the firmware finds no code."""
    if len(sector) < HEADER.size:
        return None
    length, crc, flags = HEADER.unpack_from(sector)
    if length > MAX_DATA or HEADER.size + length > len(sector):
        return None
    if crc_hqx(sector[6 : HEADER.size + length], 0) != crc:
        return None
    return CodeRecord(bytes(sector[HEADER.size : HEADER.size + length]), flags)
