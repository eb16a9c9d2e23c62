"""conf_general's ``g_backup`` in CCM RAM: the CAN id and baud carried across an update (6.06+ builds with
6fe2d789, 7.00, 7.01; research fw-flash.md section 6).

``backup_data`` sits at 0x10000000 in ``.ram4``, which crt0 does not initialise, so it survives a reset,
the jump to the bootloader and the bootloader's own reset, and is lost only without power. Its CAN group:
u32 flag at offset 521 (valid = BACKUP_VAR_INIT_CODE 0x05896B1E, little-endian), ``can_baud`` (a CAN_BAUD
enum index) at 525, ``can_id`` at 526; 528 bytes in all. Only that group is modelled; the odometer,
runtime, hw_config and encoder groups are not. At power-on the RAM holds noise, so the flag is invalid.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from rig.device.memory import CCM

BACKUP_VAR_INIT_CODE = 92_891_934
BACKUP_SIZE = 528
CAN_FLAG_AT = 521
CAN_BAUD_AT = 525
CAN_ID_AT = 526
CCM_BASE = CCM.start


@dataclass(frozen=True)
class CanIdentity:
    """A CAN id and a CAN_BAUD enum index (0 = 125K, 1 = 250K, 2 = 500K, 3 = 1M, ...)."""

    can_id: int
    baud: int

    def pack(self) -> bytes:
        return BACKUP_VAR_INIT_CODE.to_bytes(4, "little") + bytes((self.baud, self.can_id))

    @classmethod
    def unpack(cls, data: bytes) -> CanIdentity | None:
        """The identity in a packed backup group, or None when its flag is not valid."""
        if len(data) < 6 or int.from_bytes(data[:4], "little") != BACKUP_VAR_INIT_CODE:
            return None
        return cls(data[5], data[4])


class CcmBackup:
    """The first BACKUP_SIZE bytes of CCM RAM, where g_backup lives."""

    def __init__(self, seed: str) -> None:
        self._rng = random.Random(seed)
        self.ram = bytearray(BACKUP_SIZE)
        self.power_lost()

    def power_lost(self) -> None:
        """Power off and on: SRAM cells come up as noise."""
        self.ram[:] = self._rng.randbytes(BACKUP_SIZE)

    def can(self) -> CanIdentity | None:
        return CanIdentity.unpack(bytes(self.ram[CAN_FLAG_AT : CAN_ID_AT + 1]))

    def set_can(self, identity: CanIdentity) -> None:
        self.ram[CAN_FLAG_AT : CAN_ID_AT + 1] = identity.pack()

    def bus_write(self, offset: int, data: bytes) -> None:
        """A CPU store into CCM (e.g. WRITE_NEW_APP_DATA at offset 0x07F80000 wraps here); only g_backup kept."""
        end = min(BACKUP_SIZE, offset + len(data))
        if offset < end:
            self.ram[offset:end] = data[: end - offset]
