"""The packet decoders of the firmware generations, for telling what an ESC made of a captured byte stream.

The generations are read off the firmware facts (rig.device.firmware: DECODER, RX_TIMEOUT_TICKS,
MAX_PAYLOAD): up to 3.40 a state machine that loses the bytes of a failed frame, from 3.48 a buffered
decoder that skips one byte and rescans. Every received byte reloads a counter that the firmware's 1 ms
timer counts down; the partial frame is reset on the tick after it reached zero: the 3rd idle millisecond
up to 3.28, the 1001st from 3.29 to 5.02. 5.03 removed the timer: a partial frame waits for bytes for ever.
A new generation starts wherever one of those three behaviours changes.
"""

from __future__ import annotations

from dataclasses import dataclass

from rig.device.firmware import DECODER, MAX_PAYLOAD, RELEASES, RX_TICK_S, RX_TIMEOUT_TICKS, DecoderKind
from rig.protocol.commands import FirmwareVersion
from rig.protocol.framing import FrameDecoder, LegacyFrameDecoder

# Log times have at most microseconds; differences of them in floating point are off by far less than this.
TIME_TOLERANCE_S = 5e-7


def _never() -> float:
    """The decoders' clock when the log has no times: the receive timeout never fires."""
    return 0.0


@dataclass(frozen=True)
class Generation:
    """One generation of the firmware's packet decoder."""

    name: str
    first: FirmwareVersion
    decoder: DecoderKind
    timeout_ticks: int | None  # PACKET_RX_TIMEOUT, the counter each byte reloads; None: no timer
    max_payload: int

    @property
    def reset_after_s(self) -> float | None:
        """Idle time after the last byte at which the partial frame is gone (the tick after the count-down)."""
        return None if self.timeout_ticks is None else round((self.timeout_ticks + 1) * RX_TICK_S, 6)

    @property
    def summary(self) -> str:
        kind = "state machine" if self.decoder == DecoderKind.LEGACY else "buffered decoder that rescans"
        if self.timeout_ticks is None:
            return f"{kind}, no receive timeout"
        return f"{kind}, partial frame dropped on idle millisecond {self.timeout_ticks + 1}"

    def new_decoder(self, timed: bool) -> FrameDecoder | LegacyFrameDecoder:
        """A fresh decoder of this generation; `timed` when the log's times let the receive timeout act."""
        timeout = self.reset_after_s - TIME_TOLERANCE_S if timed and self.reset_after_s is not None else None
        if self.decoder == DecoderKind.LEGACY:
            return LegacyFrameDecoder(self.max_payload, timeout, clock=_never)
        return FrameDecoder(self.max_payload, timeout, clock=_never)


def _generations() -> tuple[Generation, ...]:
    firsts = sorted({f.since for b in (DECODER, RX_TIMEOUT_TICKS, MAX_PAYLOAD) for f in b.facts})
    out = []
    for first, until in zip(firsts, [*firsts[1:], None], strict=True):
        if until is None:
            name = f"{first} and later"
        else:
            released = [r.version for r in RELEASES if first <= r.version < until]
            last = released[-1] if released else FirmwareVersion(until.major, until.minor - 1)
            name = f"{first}-{last}" if released else f"up to {last}"
        out.append(Generation(name, first, DECODER.at(first), RX_TIMEOUT_TICKS.at(first), MAX_PAYLOAD.at(first)))
    return tuple(out)


GENERATIONS: tuple[Generation, ...] = _generations()


def generation_of(version: FirmwareVersion) -> Generation:
    """The decoder generation a firmware version runs (the oldest one for a version older than the facts)."""
    return ([g for g in GENERATIONS if g.first <= version] or [GENERATIONS[0]])[-1]
