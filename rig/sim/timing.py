"""Modelled time of the simulated STM32F405: flash timings and a clock that can run instantly or in real time."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

# Real sleeps shorter than this are accumulated and slept in one go: time.sleep() cannot do microseconds.
_MIN_SLEEP_S = 0.001


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


class DeviceClock:
    """Modelled time. speed 0 = instant (CI), 1 = modelled real time (benchmarks)."""

    def __init__(self, speed: float = 0.0) -> None:
        if speed < 0:
            raise ValueError("speed must be >= 0")
        self.speed = speed
        self.modelled_s = 0.0
        self._debt_s = 0.0
        self._lock = threading.Lock()

    def spend(self, seconds: float) -> None:
        """Add `seconds` to the modelled time and sleep seconds*speed of real time."""
        if seconds < 0:
            raise ValueError("cannot spend negative time")
        with self._lock:
            self.modelled_s += seconds
            self._debt_s += seconds * self.speed
            if self._debt_s < _MIN_SLEEP_S:
                return
            nap, self._debt_s = self._debt_s, 0.0
        start = time.monotonic()
        time.sleep(nap)
        overslept = time.monotonic() - start - nap
        with self._lock:  # an oversleep is paid back by the next sleeps, so real time tracks the model
            self._debt_s -= overslept
