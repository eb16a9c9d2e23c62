"""The packet decoders of the firmware generations, for telling what an ESC made of a captured byte stream.

Research notes fw-protocol.md section 3 (bldc packet.c per tag): up to 3.40 a state machine that loses
the bytes of a failed frame, from 3.48 a buffered decoder that skips one byte and rescans. Every received
byte reloads a counter that the firmware's 1 ms timer counts down; the partial frame is reset on the tick
after it reached zero: the 3rd idle millisecond up to 3.28, the 1001st from 3.29 to 5.02. 5.03 removed the
timer: a partial frame waits for bytes for ever. Each row names its first version; a version belongs to the
last row that starts at or below it.
"""

from __future__ import annotations

from dataclasses import dataclass

from rig.device.firmware import DecoderKind
from rig.protocol.commands import FirmwareVersion, fw
from rig.protocol.framing import MAX_PAYLOAD_3_40, MAX_PAYLOAD_3_48, FrameDecoder, LegacyFrameDecoder

TICK_S = 0.001  # the packet timer runs once per millisecond (the msec_timer thread of main.c)
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
        return None if self.timeout_ticks is None else round((self.timeout_ticks + 1) * TICK_S, 6)

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


GENERATIONS: tuple[Generation, ...] = (
    Generation("up to 3.28", fw("0.00"), DecoderKind.LEGACY, 2, MAX_PAYLOAD_3_40),
    Generation("3.29-3.40", fw("3.29"), DecoderKind.LEGACY, 1000, MAX_PAYLOAD_3_40),
    Generation("3.48-5.02", fw("3.48"), DecoderKind.RESYNC, 1000, MAX_PAYLOAD_3_48),
    Generation("5.03 and later", fw("5.03"), DecoderKind.RESYNC, None, MAX_PAYLOAD_3_48),
)


def generation_of(version: FirmwareVersion) -> Generation:
    """The decoder generation a firmware version runs."""
    return [g for g in GENERATIONS if g.first <= version][-1]
