"""Modelled time of the simulated STM32F405: a clock that can run instantly or in real time."""

from __future__ import annotations

import threading
import time

# Real sleeps shorter than this are accumulated and slept in one go: time.sleep() cannot do microseconds.
_MIN_SLEEP_S = 0.001


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
