"""Where the forced-disconnect scenarios cut a link, and how the cut is made.

Cut points are positions in one frame (first byte, inside the header, mid-payload, inside the CRC,
just before the stop byte); a nightly sweep takes many more byte offsets. The old firmware keeps a
partial frame for 1000 ms of silence (3.29-5.02), so reconnecting at once lands inside that window
and reconnecting after 1.1 s outside it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

RX_WINDOW_S = 1.0  # PACKET_RX_TIMEOUT of firmware 3.29-5.02
# Each method as a parameter with what it needs of a station, so the plugin skips a station that lacks it
# before the config backup (no flash write is spent on a case that cannot run).
METHODS = (
    pytest.param("host close", id="host close"),
    pytest.param("tcp drop", marks=pytest.mark.tcp_bridge, id="tcp drop"),
    pytest.param("power cut", marks=pytest.mark.relay, id="power cut"),
)


@dataclass(frozen=True)
class FrameCut:
    """A position in a frame of n bytes: cut after offset(n) bytes have gone out."""

    name: str
    offset: Callable[[int], int]

    def __str__(self) -> str:
        return self.name


NAMED_CUTS = (
    FrameCut("first-byte", lambda n: 1),
    FrameCut("in-header", lambda n: 2),
    FrameCut("mid-payload", lambda n: n // 2),
    FrameCut("in-crc", lambda n: n - 2),
    FrameCut("before-stop", lambda n: n - 1),
)


def _fraction(k: int, of: int) -> FrameCut:
    return FrameCut(f"byte-{k}of{of}", lambda n: max(1, min(n - 1, n * k // of)))


def frame_cuts(sweep: str) -> tuple[FrameCut, ...]:
    if sweep == "nightly":
        return NAMED_CUTS + tuple(_fraction(k, 24) for k in range(1, 24))
    return NAMED_CUTS


def cut_plan(sweep: str) -> list[tuple[FrameCut, float]]:
    """(cut, seconds before reconnecting): every cut at once (inside the partial-frame window); after
    the window for every cut nightly, for mid-payload only in CI (each costs a real second)."""
    after = RX_WINDOW_S + 0.1
    cuts = frame_cuts(sweep)
    later = cuts if sweep == "nightly" else tuple(c for c in cuts if c.name == "mid-payload")
    return [(cut, 0.0) for cut in cuts] + [(cut, after) for cut in later]


UPDATE_PHASES = ("erase", "first-chunk", "middle-chunk", "last-chunk", "before-jump")


def update_phases(sweep: str) -> tuple[str, ...]:
    return UPDATE_PHASES
