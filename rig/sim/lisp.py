"""LispBM code storage of the simulated firmware (6.00+): the code record in its sector, and what the
LISP_* commands do to it (B: comm/commands.c, flash_helper.c; research fw-flash.md 3, 7).

No Lisp runs: "running" is a flag. A program starts when LISP_SET_RUNNING 1 finds valid code (and at boot
when valid code is stored); it stops on LISP_ERASE_CODE, on ERASE_NEW_APP (6.00+) and on a reset. The
sector is in the new-app buffer (10; 6.06+ also the LBM image in 8), so every firmware update erases it.
"""

from __future__ import annotations

from dataclasses import dataclass

from rig.device.code_record import CodeRecord, parse_code_record
from rig.device.firmware import FirmwareProfile
from rig.device.memory import SECTORS
from rig.protocol import codecs as c
from rig.protocol.framing import MAX_PAYLOAD_3_48
from rig.sim.flash import Flash

READ_MAX = MAX_PAYLOAD_3_48 - 10  # LISP_READ_CODE: len > PACKET_MAX_PL_LEN - 10 gets no reply


@dataclass
class LispCode:
    """The Lisp code sector(s) of one firmware, over the flash."""

    flash: Flash
    profile: FirmwareProfile

    @property
    def base(self) -> int:
        assert self.profile.lisp_code_sector is not None
        return SECTORS[self.profile.lisp_code_sector].start

    def record(self) -> CodeRecord | None:
        sector = self.profile.lisp_code_sector
        if sector is None:
            return None
        return parse_code_record(self.flash.read(self.base, SECTORS[sector].size))

    def erase(self) -> bool:
        """LISP_ERASE_CODE: the LBM image / const heap (6.06+: its own sector 8) and the code sector."""
        const = self.profile.lisp_const_sector
        sectors = [const] if const is not None and const != self.profile.lisp_code_sector else []
        for index in [*sectors, self.profile.lisp_code_sector]:
            assert index is not None
            first = self.flash.read(SECTORS[index].start, 1)
            if self.profile.erase_code_checks_first_byte_only and first == b"\xff":
                continue  # the "already empty" check tests the first byte 131072 times
            self.flash.erase_sector(index)
        return True

    def read(self, request: c.LispReadCode) -> c.LispCodeReply | None:
        """The reply to LISP_READ_CODE, or None where the firmware sends none."""
        record = self.record()
        if record is None:
            return c.LispCodeReply(0, 0)
        if request.length + request.offset > len(record.data) or request.length > READ_MAX:
            return None
        data = record.data[request.offset : request.offset + request.length]
        return c.LispCodeReply(len(record.data), request.offset, data)
