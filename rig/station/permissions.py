"""Explicit permission for steps that can brick a board or bypass a guard.

A :class:`Permit` is made once, where the user's intent is known (a command line flag, a rack file key,
a simulated rack whose boards cannot be harmed), and handed to the station session; the session's
guards ask it. Nothing else carries permission: no boolean travels through call sites.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from rig.errors import NotPermitted


class Permission(StrEnum):
    """What a permit may allow; the value says it in words."""

    MASS_ERASE = "mass erase the whole flash (bootloader and configs included)"
    BOOTLOADER_ERASE = "erase or reprogram the bootloader sector"
    UNERASED_BOOTLOADER_WRITE = (
        "write a bootloader without erasing its sector (firmware < 3.59; only safe if it is blank)"
    )
    BRICK = "leave a board without working firmware on purpose"
    ERASE_ANSWERING_BOARD = "mass erase a board that answers over USB (it holds firmware and settings)"
    WRONG_HARDWARE = "write an image made for other hardware"


DESTRUCTIVE = frozenset(
    {
        Permission.MASS_ERASE,
        Permission.BOOTLOADER_ERASE,
        Permission.UNERASED_BOOTLOADER_WRITE,
        Permission.BRICK,
        Permission.ERASE_ANSWERING_BOARD,
    }
)
# What a simulated rack allows without being asked: its boards cannot be harmed, but a bootloader written
# over an unerased sector corrupts it in the simulator exactly as on a board, so that stays refused.
SIMULATED = DESTRUCTIVE - {Permission.UNERASED_BOOTLOADER_WRITE}
FLAGS = {Permission.WRONG_HARDWARE: "--allow-wrong-hw"}  # the command line flag that grants each; default below
DEFAULT_FLAG = "--allow-destructive"


@dataclass(frozen=True)
class Permit:
    """The permissions one session has, and who granted them (for messages and reports)."""

    granted: frozenset[Permission] = frozenset()
    by: str = "nobody"

    @classmethod
    def of(cls, *, destructive: bool = False, wrong_hw: bool = False, by: str) -> Permit:
        """The permit a command line or rack file grants with its two switches."""
        granted = set(DESTRUCTIVE if destructive else ()) | ({Permission.WRONG_HARDWARE} if wrong_hw else set())
        return cls(frozenset(granted), by if granted else "nobody")

    @classmethod
    def simulated(cls, *, wrong_hw: bool = False) -> Permit:
        """A simulated board cannot be harmed: the destructive steps are allowed (not a bootloader written over
        an unerased sector, which corrupts it there as on a board); other hardware only if asked."""
        granted = SIMULATED | ({Permission.WRONG_HARDWARE} if wrong_hw else set())
        return cls(frozenset(granted), "a simulated rack")

    def allows(self, what: Permission) -> bool:
        return what in self.granted

    def require(self, what: Permission, action: str) -> None:
        """NotPermitted naming the action, the permission and the flag that grants it, unless granted."""
        if what not in self.granted:
            flag = FLAGS.get(what, DEFAULT_FLAG)
            raise NotPermitted(f"refusing to {action}: that would {what.value}; pass {flag} if you mean it")
