"""Decode a captured byte log into VESC frames per direction (what `rig trace decode` shows).

A log is text, one chunk of hex bytes per line, each line optionally starting with a timestamp
(seconds such as ``0.001234`` or a clock time such as ``12:34:56.789``, optionally in brackets) and
a direction: ``tx:``/``write:``/``>`` for host to ESC, ``rx:``/``read:``/``<`` for ESC to host
(``>`` and ``<`` as phone apps print them). That covers :meth:`rig.transport.link.Trace.text`. Lines without
a direction form their own stream. Blank lines and ``#`` or ``//`` comments are skipped; any other
line that is not hex is reported with its line number.

Each direction is decoded by its own :class:`~rig.protocol.framing.FrameDecoder` (the 3.48+ /
VESC Tool resync), finished at the end of the log so that nothing is silently dropped. A frame
with a bad CRC is reported as a frame with ``crc_ok=False``; the decoder then rescans as the
firmware does, so the bytes it discarded follow as garbage (with overlapping offsets).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Literal

from rig.errors import ProtocolError
from rig.protocol.commands import LATEST, CommandTable
from rig.protocol.framing import BadCrc, Event, Frame, FrameDecoder, Garbage

NO_DIRECTION = "-"

_DIRECTIONS = {"tx": "tx", "write": "tx", ">": "tx", "rx": "rx", "read": "rx", "<": "rx"}
_LINE = re.compile(
    r"""^\s*
    (?:\[?(?P<time>(?:\d{4}-\d\d-\d\d[ T])?\d{1,2}:\d\d:\d\d(?:[.,]\d+)? | \d+\.\d+)\]?\s+)?
    (?:(?P<dir>tx|rx|read|write)\s*:|(?P<arrow>[<>]))?
    (?P<hex>.*)$""",
    re.IGNORECASE | re.VERBOSE,
)
_HEX_PREFIX = re.compile(r"\b0x", re.IGNORECASE)
_SEPARATORS = re.compile(r"[\s:,\-]+")
_HEX = re.compile(r"(?:[0-9a-fA-F]{2})+")


class TraceError(ProtocolError):
    """A capture that cannot be read or holds no decodable line at all."""


@dataclass(frozen=True)
class Chunk:
    """One parsed log line: its number, time (seconds, if given), direction and bytes."""

    line: int
    t: float | None
    direction: str
    data: bytes


@dataclass(frozen=True)
class BadLine:
    """A log line that is neither hex data nor a comment."""

    line: int
    text: str


@dataclass(frozen=True)
class TraceEvent:
    """A frame or a garbage run, at the chunk (line, time) in which the decoder resolved it.

    `offset` counts bytes in its direction's stream. For a frame, `data` is the payload; for
    garbage, the discarded bytes and `reason` the decoder's discard reason.
    """

    kind: Literal["frame", "garbage"]
    line: int
    t: float | None
    direction: str
    offset: int
    size: int  # bytes on the wire
    data: bytes
    command: str | None = None  # name of the command id, None if unknown to the firmware version
    cmd_id: int | None = None
    crc_ok: bool | None = None
    reason: str | None = None

    @property
    def payload_len(self) -> int | None:
        return len(self.data) if self.kind == "frame" else None

    def as_json(self) -> dict[str, object]:
        out = asdict(self)
        out["data"] = self.data.hex(" ")
        out["payload_len"] = self.payload_len
        return out


@dataclass
class DecodedTrace:
    """Everything decoded from one log, in log order, plus the lines that could not be parsed."""

    events: list[TraceEvent] = field(default_factory=list)
    bad_lines: list[BadLine] = field(default_factory=list)

    def frames(self, direction: str | None = None) -> list[TraceEvent]:
        return [e for e in self.events if e.kind == "frame" and direction in (None, e.direction)]

    def garbage(self, direction: str | None = None) -> list[TraceEvent]:
        return [e for e in self.events if e.kind == "garbage" and direction in (None, e.direction)]


def _parse_time(text: str) -> float:
    if ":" not in text:
        return float(text)
    clock = text.replace(",", ".").replace("T", " ").split(" ")[-1]
    hours, minutes, seconds = clock.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def parse_line(number: int, text: str) -> Chunk | BadLine | None:
    """Parse one log line: a Chunk, a BadLine, or None for a blank line or comment."""
    stripped = text.strip()
    if not stripped or stripped.startswith(("#", "//")):
        return None
    m = _LINE.match(stripped.split("#", 1)[0])
    assert m is not None  # the pattern matches any line
    raw = _SEPARATORS.sub("", _HEX_PREFIX.sub("", m["hex"]))
    if not _HEX.fullmatch(raw):
        return BadLine(number, stripped)
    direction = (m["dir"] or m["arrow"] or NO_DIRECTION).lower()
    t = _parse_time(m["time"]) if m["time"] else None
    return Chunk(number, t, _DIRECTIONS.get(direction, NO_DIRECTION), bytes.fromhex(raw))


def parse_log(lines: Iterable[str]) -> tuple[list[Chunk], list[BadLine]]:
    """Parse a whole log; TraceError if no line at all holds bytes."""
    chunks: list[Chunk] = []
    bad: list[BadLine] = []
    for number, text in enumerate(lines, start=1):
        parsed = parse_line(number, text)
        if isinstance(parsed, Chunk):
            chunks.append(parsed)
        elif isinstance(parsed, BadLine):
            bad.append(parsed)
    if not chunks:
        where = f" (unparsable lines: {', '.join(str(b.line) for b in bad[:10])})" if bad else ""
        raise TraceError(f"no hex bytes found in the log{where}")
    return chunks, bad


class _Stream:
    """One direction: its decoder and the byte offset of the next undecided byte."""

    def __init__(self, direction: str) -> None:
        self.direction = direction
        self.decoder = FrameDecoder(report_bad_crc=True)
        self.offset = 0


class TraceDecoder:
    """Turns parsed chunks into TraceEvents, one FrameDecoder per direction."""

    def __init__(self, table: CommandTable = LATEST) -> None:
        self.table = table
        self.streams: dict[str, _Stream] = {}

    def decode(self, chunks: Iterable[Chunk]) -> list[TraceEvent]:
        out: list[TraceEvent] = []
        last: dict[str, Chunk] = {}
        for chunk in chunks:
            if chunk.direction not in self.streams:
                self.streams[chunk.direction] = _Stream(chunk.direction)
            stream = self.streams[chunk.direction]
            last[chunk.direction] = chunk
            out += self._events(stream, chunk, stream.decoder.feed(chunk.data))
        for direction, stream in self.streams.items():
            out += self._events(stream, last[direction], stream.decoder.finish())
        return out

    def _events(self, stream: _Stream, chunk: Chunk, events: list[Event]) -> list[TraceEvent]:
        out: list[TraceEvent] = []
        for event in events:
            at = stream.offset
            if isinstance(event, Garbage):
                stream.offset += len(event.data)
                size = len(event.data)
                reason = event.reason.value
                out.append(
                    TraceEvent("garbage", chunk.line, chunk.t, stream.direction, at, size, event.data, reason=reason)
                )
                continue
            # a BadCrc does not consume: the Garbage that follows starts with its first byte
            if isinstance(event, Frame):
                stream.offset += _wire_size(event.payload, event.long)
            out.append(self._frame(stream, chunk, at, event))
        return out

    def _frame(self, stream: _Stream, chunk: Chunk, at: int, event: Frame | BadCrc) -> TraceEvent:
        cmd = self.table.cmd(event.payload[0])
        return TraceEvent(
            "frame",
            chunk.line,
            chunk.t,
            stream.direction,
            at,
            _wire_size(event.payload, event.long),
            event.payload,
            command=cmd.name if cmd is not None else None,
            cmd_id=event.payload[0],
            crc_ok=isinstance(event, Frame),
        )


def _wire_size(payload: bytes, long: bool) -> int:
    return (3 if long else 2) + len(payload) + 3


def decode_log(text: str, table: CommandTable = LATEST) -> DecodedTrace:
    """Parse and decode a whole log."""
    chunks, bad = parse_log(text.splitlines())
    return DecodedTrace(TraceDecoder(table).decode(chunks), bad)
