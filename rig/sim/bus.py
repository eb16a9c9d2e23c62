"""Where a CPU store lands: the firmware computes flash addresses in 32 bits and never checks them.

WRITE_NEW_APP_DATA programs ``0x08080000 + offset`` (u32) byte by byte (flash_helper.c, 3.40 .. master), and
LISP_WRITE_CODE ``sector start + offset`` the same way. So an offset wraps around the 4 GiB address space:
0xFFF80000 reaches sector 0 of the running app, 0x07F80000 CCM RAM (where g_backup lives), 0x17F80000
SRAM, 0x37F80000 the peripherals; 0x80000 and up reach past the 1 MiB flash into reserved space, a bus
fault (research fw-flash.md 4.2). Stores outside flash and CCM that do not fault (SRAM, OTP, system memory,
peripherals) are not modelled: the simulator logs them and goes on as the firmware would.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from rig.device.memory import ADDRESS_SPACE, CCM, FLASH_BASE, FLASH_END, RESERVED


class Region(StrEnum):
    FLASH = "flash"
    CCM = "CCM RAM"
    FAULT = "reserved: bus fault"
    UNMODELLED = "SRAM, OTP, system memory or peripherals (not modelled)"


@dataclass(frozen=True)
class Store:
    """One contiguous part of a CPU store: where it lands, its address and its bytes."""

    region: Region
    addr: int
    data: bytes


def _region(addr: int) -> Region:
    if FLASH_BASE <= addr < FLASH_END:
        return Region.FLASH
    if CCM.start <= addr < CCM.stop - 1:
        return Region.CCM
    if any(addr in r for r in RESERVED):
        return Region.FAULT
    return Region.UNMODELLED


def _boundaries() -> list[int]:
    points = {FLASH_BASE, FLASH_END, CCM.start, CCM.stop - 1, ADDRESS_SPACE}
    for r in RESERVED:
        points |= {r.start, r.stop}
    return sorted(points)


_BOUNDARIES = _boundaries()


def split_store(base: int, offset: int, data: bytes) -> list[Store]:
    """The store of `data` at ``(base + offset) mod 2**32``, split where the region changes or the address
    wraps; the parts come in program order, up to and including the first that faults."""
    out: list[Store] = []
    addr, rest = (base + offset) % ADDRESS_SPACE, data
    while rest:
        limit = next(b for b in _BOUNDARIES if b > addr)
        part, rest = rest[: limit - addr], rest[limit - addr :]
        region = _region(addr)
        out.append(Store(region, addr, part))
        if region == Region.FAULT:
            break
        addr = (addr + len(part)) % ADDRESS_SPACE
    return out
