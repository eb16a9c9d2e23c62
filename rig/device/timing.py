"""Timing figures of the device: STM32F405 flash and the USB turn-around.

The simulator spends these in modelled time and the throughput floor (rig.report.floor) adds them up,
so both read one set of figures.
"""

from __future__ import annotations

from dataclasses import dataclass

USB_PACKET_S = 0.001  # one 1 ms USB full-speed frame per request/response turn-around (an assumed figure)


@dataclass(frozen=True)
class FlashTiming:
    """STM32F405 flash timings, DS8626 typical values.

    From memory, unverified against the datasheet PDF (see vesc-protocol-facts.md section 6): sector erase
    at x32 parallelism 16 KB 250 ms, 64 KB 550 ms, 128 KB 1 s; x8 128 KB 2 s (hence the x8 factor, assumed
    for every sector size); tprog 16 us per write, one figure for byte, half-word and word writes.
    """

    erase_16k_s: float = 0.25
    erase_64k_s: float = 0.55
    erase_128k_s: float = 1.0
    program_byte_s: float = 16e-6  # tprog: one write operation (a byte, or a word at x32)
    x8_erase_factor: float = 2.0  # erase at x8 parallelism (PSIZE=0) takes this much longer than at x32

    def erase_time(self, sector_size: int, parallelism: int = 32) -> float:
        """Seconds to erase one sector of `sector_size` bytes at x32 (default) or x8 parallelism."""
        by_size = {0x4000: self.erase_16k_s, 0x1_0000: self.erase_64k_s, 0x2_0000: self.erase_128k_s}
        if sector_size not in by_size:
            raise ValueError(f"no STM32F405 sector is {sector_size} bytes")
        if parallelism not in (8, 32):
            raise ValueError(f"parallelism must be 8 or 32, not {parallelism}")
        return by_size[sector_size] * (self.x8_erase_factor if parallelism == 8 else 1.0)
