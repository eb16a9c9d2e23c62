"""VESC packet framing: encoder and streaming decoders (facts sheet section 1).

Short frames are ``02 LEN payload CRChi CRClo 03``, long frames ``03 LENhi LENlo ...``. The CRC is
CRC-16/XMODEM over the payload, which is exactly ``binascii.crc_hqx(payload, 0)``.

Two decoders model the two generations of firmware:

* :class:`FrameDecoder` buffers bytes and, on a bad start byte, length, stop byte or CRC, skips ONE
  byte and rescans (firmware 3.48+ and VESC Tool), so bytes after garbage are never lost.
* :class:`LegacyFrameDecoder` is the state machine of firmware up to 3.40: on a failure it resumes at
  the next byte, so the bytes it consumed for the broken frame are lost.

Both take an optional receive timeout: a partial frame is dropped once ``rx_timeout_s`` has passed
without a byte. The firmware counts 1 ms timer ticks: PACKET_RX_TIMEOUT 1000 (3.29 to 5.02; 2 up to 3.28;
none from 5.03) survive, and the 1001st resets the decoder, so a firmware profile passes 1.001 s
(rig.device.firmware). In the 3.48-5.02 buffered decoder that reset drops everything held, including
complete frames waiting behind a stray header.

A flush of zeros (rig.client.esc: 1032 bytes) completes or kills any partial frame of any generation
(the worst case needs 1027 bytes on <= 3.40, 515 on 3.48+) and can itself never form a valid frame, but
on 3.48+ the frames it releases from behind a stray header ARE executed, late, and answered on that port
(research fw-protocol.md 3.3): a flush is not a pure discard.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from binascii import crc_hqx
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from rig.errors import ProtocolError

START_SHORT = 0x02
START_LONG = 0x03
STOP = 0x03
MAX_PAYLOAD_3_40 = 1024
MAX_PAYLOAD_3_48 = 512
MAX_PAYLOAD_VESC_TOOL = 10000
MAX_FRAMED = 0xFFFF  # the 24-bit 0x04 frame is only compiled in above this; the STM32 firmware never is


def crc16(payload: bytes) -> int:
    """CRC-16/XMODEM of a payload, as the firmware computes it."""
    return crc_hqx(payload, 0)


def encode_frame(payload: bytes) -> bytes:
    """Frame one payload (short frame up to 255 bytes, long frame up to 65535)."""
    n = len(payload)
    if n == 0:
        raise ProtocolError("a VESC frame cannot carry an empty payload")
    if n > MAX_FRAMED:
        raise ProtocolError(f"payload of {n} bytes exceeds the 65535-byte frame limit")
    crc = crc_hqx(payload, 0)
    head = bytes((START_SHORT, n)) if n <= 0xFF else bytes((START_LONG, n >> 8, n & 0xFF))
    return b"".join((head, payload, bytes((crc >> 8, crc & 0xFF, STOP))))


def encode_frame_legacy(payload: bytes) -> bytes:
    """Frame as firmware <= 3.40 did: a 256-byte payload is wrongly framed ``02 00`` (fixed in 3.48)."""
    if len(payload) == 256:
        crc = crc_hqx(payload, 0)
        return b"".join((b"\x02\x00", payload, bytes((crc >> 8, crc & 0xFF, STOP))))
    return encode_frame(payload)


class Discard(StrEnum):
    """Why bytes were discarded by a decoder."""

    START = "bad start byte"
    LENGTH = "bad length"
    CRC = "bad CRC"
    STOP = "bad stop byte"
    TIMEOUT = "receive timeout"
    TRUNCATED = "incomplete at end of stream"


@dataclass
class DecoderStats:
    """Counters a decoder keeps: frames accepted and bytes discarded per reason."""

    frames: int = 0
    discarded: dict[Discard, int] = field(default_factory=lambda: dict.fromkeys(Discard, 0))

    @property
    def discarded_total(self) -> int:
        return sum(self.discarded.values())


@dataclass(frozen=True)
class Garbage:
    """Bytes a decoder threw away, with the reason for the first of them."""

    data: bytes
    reason: Discard


@dataclass(frozen=True)
class Frame:
    """One decoded frame: the payload plus whether it was a long (03) frame."""

    payload: bytes
    long: bool = False


@dataclass(frozen=True)
class BadCrc:
    """A complete, well-formed frame (start, length and stop byte right) whose CRC does not match.

    Only :class:`FrameDecoder` with ``report_bad_crc=True`` emits it, for trace viewers that want to
    show such a frame. It is information, not a decision: the decoder still skips ONE byte and
    rescans as the firmware does, so the next event is the Garbage that starts with this frame's
    first byte, and frames found inside the frame's extent are still reported.
    """

    payload: bytes
    long: bool
    crc: int  # the CRC the frame carried


Event = Frame | Garbage | BadCrc
Clock = Callable[[], float]


class _TimedDecoder(ABC):
    """Shared part of both decoders: stats, events and the optional receive timeout."""

    def __init__(self, max_payload: int, rx_timeout_s: float | None, clock: Clock) -> None:
        if max_payload < 1 or max_payload > MAX_FRAMED:
            raise ProtocolError(f"max_payload must be 1..{MAX_FRAMED}, not {max_payload}")
        self.max_payload = max_payload
        self.rx_timeout_s = rx_timeout_s
        self.stats = DecoderStats()
        self._clock = clock
        self._last_byte_at = 0.0
        self._events: list[Event] = []

    def _discard(self, data: bytes, reason: Discard) -> None:
        if not data:
            return
        self.stats.discarded[reason] += len(data)
        last = self._events[-1] if self._events else None
        if isinstance(last, Garbage):
            self._events[-1] = Garbage(last.data + data, last.reason)
        else:
            self._events.append(Garbage(data, reason))

    def _accept(self, payload: bytes, long: bool) -> None:
        self.stats.frames += 1
        self._events.append(Frame(payload, long))

    def _expire(self, now: float | None) -> None:
        if self.rx_timeout_s is None or not self.pending:
            return
        t = self._clock() if now is None else now
        if t - self._last_byte_at >= self.rx_timeout_s:
            self._drop_partial()

    @property
    def last_byte_at(self) -> float:
        """Clock time of the last byte fed (the receive timeout counts from it)."""
        return self._last_byte_at

    def poll(self, now: float | None = None) -> list[Event]:
        """Let the receive timeout act without new bytes (the firmware's 1 ms timer)."""
        self._expire(now)
        return self._take_events()

    def feed(self, data: bytes, now: float | None = None) -> list[Event]:
        """Feed received bytes; return the frames and garbage runs that are now complete."""
        self._expire(now)
        if data:
            if self.rx_timeout_s is not None:
                self._last_byte_at = self._clock() if now is None else now
            self._consume(data)
        return self._take_events()

    def finish(self) -> list[Event]:
        """End of stream: resolve held bytes as if no more will come (for logs and traces)."""
        self._end_of_stream()
        return self._take_events()

    def frames(self, data: bytes, now: float | None = None) -> list[bytes]:
        """Feed bytes and return only the payloads of complete, valid frames."""
        return [e.payload for e in self.feed(data, now) if isinstance(e, Frame)]

    def _take_events(self) -> list[Event]:
        events, self._events = self._events, []
        return events

    @property
    @abstractmethod
    def pending(self) -> int:
        """Bytes held for a frame that is not complete yet."""

    @abstractmethod
    def _drop_partial(self) -> None:
        """Discard the partial frame (receive timeout)."""

    @abstractmethod
    def _consume(self, data: bytes) -> None:
        """Run the decoder over new bytes."""

    @abstractmethod
    def _end_of_stream(self) -> None:
        """Resolve the bytes still held when the stream ends."""


class FrameDecoder(_TimedDecoder):
    """Streaming decoder that resynchronises as firmware 3.48+ and VESC Tool do.

    With ``report_bad_crc=True`` it also emits a :class:`BadCrc` event for each well-formed frame
    whose CRC is wrong (for trace viewers); decoding itself is unchanged.
    """

    def __init__(
        self,
        max_payload: int = MAX_PAYLOAD_VESC_TOOL,
        rx_timeout_s: float | None = None,
        clock: Clock = time.monotonic,
        report_bad_crc: bool = False,
    ) -> None:
        super().__init__(max_payload, rx_timeout_s, clock)
        self.report_bad_crc = report_bad_crc
        self._buf = bytearray()

    @property
    def pending(self) -> int:
        return len(self._buf)

    def _drop_partial(self) -> None:
        self._discard(bytes(self._buf), Discard.TIMEOUT)
        self._buf.clear()

    def _skip(self, pos: int, reason: Discard) -> int:
        """Discard one byte at pos (the firmware's rescan) and return the next position."""
        self._discard(bytes(self._buf[pos : pos + 1]), reason)
        return pos + 1

    def _end_of_stream(self) -> None:
        self._scan(eof=True)

    def _consume(self, data: bytes) -> None:
        self._buf += data
        self._scan(eof=False)

    def _scan(self, eof: bool) -> None:
        """Accept every complete frame in the buffer; at end of stream an incomplete one is skipped."""
        buf = self._buf
        pos, end, limit = 0, len(buf), self.max_payload
        while pos < end:
            start = buf[pos]
            if start not in (START_SHORT, START_LONG):
                nxt = _next_start(buf, pos + 1, end)
                self._discard(bytes(buf[pos:nxt]), Discard.START)
                pos = nxt
                continue
            head = 2 if start == START_SHORT else 3
            total = head  # until the length is known
            if end - pos >= head:
                length = buf[pos + 1] if head == 2 else (buf[pos + 1] << 8) | buf[pos + 2]
                # facts: 8-bit length 0, 16-bit length < 255, or above the maximum are bad
                if length == 0 or length > limit or (head == 3 and length < 0xFF):
                    pos = self._skip(pos, Discard.LENGTH)
                    continue
                total = head + length + 3
            if end - pos < total:
                if not eof:
                    break
                pos = self._skip(pos, Discard.TRUNCATED)
                continue
            tail = pos + total - 3
            if buf[tail + 2] != STOP:
                pos = self._skip(pos, Discard.STOP)
                continue
            payload = bytes(buf[pos + head : tail])
            crc = (buf[tail] << 8) | buf[tail + 1]
            if crc_hqx(payload, 0) != crc:
                if self.report_bad_crc:
                    self._events.append(BadCrc(payload, head == 3, crc))
                pos = self._skip(pos, Discard.CRC)
                continue
            self._accept(payload, head == 3)
            pos += total
        del buf[:pos]


def _next_start(buf: bytearray, pos: int, end: int) -> int:
    """Index of the next byte that could start a frame (02 or 03), or end."""
    candidates = [i for i in (buf.find(START_SHORT, pos, end), buf.find(START_LONG, pos, end)) if i >= 0]
    return min(candidates) if candidates else end


class LegacyFrameDecoder(_TimedDecoder):
    """The state machine of firmware <= 3.40: a failed frame's consumed bytes are lost.

    States follow packet.c of 3.40: start, length byte(s), payload, CRC high, CRC low, stop. A length
    of 0 or above the maximum, a stop byte other than 03 or a bad CRC return it to the start state.
    """

    def __init__(
        self,
        max_payload: int = MAX_PAYLOAD_3_40,
        rx_timeout_s: float | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        super().__init__(max_payload, rx_timeout_s, clock)
        self._held = bytearray()  # bytes of the frame in progress, start byte included
        self._need = 0  # payload length once known

    @property
    def pending(self) -> int:
        return len(self._held)

    def _drop_partial(self) -> None:
        self._discard(bytes(self._held), Discard.TIMEOUT)
        self._reset()

    def _end_of_stream(self) -> None:
        self._fail(Discard.TRUNCATED)

    def _reset(self) -> None:
        self._held.clear()
        self._need = 0

    def _fail(self, reason: Discard) -> None:
        self._discard(bytes(self._held), reason)
        self._reset()

    def _consume(self, data: bytes) -> None:
        held = self._held
        for byte in data:
            if not held:
                if byte in (START_SHORT, START_LONG):
                    held.append(byte)
                else:
                    self._discard(bytes((byte,)), Discard.START)
                continue
            held.append(byte)
            head = 2 if held[0] == START_SHORT else 3
            n = len(held)
            if n == head:
                length = held[1] if head == 2 else (held[1] << 8) | held[2]
                if length == 0 or length > self.max_payload:
                    self._fail(Discard.LENGTH)
                else:
                    self._need = length
            elif n == head + self._need + 3:
                payload = bytes(held[head : head + self._need])
                crc = (held[-3] << 8) | held[-2]
                if held[-1] != STOP:
                    self._fail(Discard.STOP)
                elif crc_hqx(payload, 0) != crc:
                    self._fail(Discard.CRC)
                else:
                    self._accept(payload, head == 3)
                    self._reset()
