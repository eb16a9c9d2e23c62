"""Read the lines of a captured log: hex chunks with their time and direction word, and everything else as notes.

The formats met in the field, and any mix of them in one file (CRLF or LF):

- the rig's own trace (:meth:`rig.transport.link.Trace.text`): ``  0.001234 tx: 02 01 00``;
- phone apps and TCP/BLE bridges: ``[I 14:05:45.550] read: 02a31000000003e8…466a(20)``: a level and a clock
  time in brackets, a direction word, hex, and the byte count in parentheses;
- "TX:/RX:" logs: ``2024-05-01 14:05:45,550 TX: 02 01 00 00 00 03``, ``14:05:45.550 > 02 01 00``;
- Android logcat: ``05-14 14:05:45.550  4321  4390 D VescBle : RX: 02 01 …``;
- nRF Connect: ``I	14:05:45.550	Notification received from 6e400003-…, value: (0x) 02-01-…``;
- bare hex, with or without a time: ``02 a3 10``, ``[14:05:45] 0x02, 0x01``.

A line is data only when hex runs to its end (an optional byte count after it) and a direction word or
nothing but a time precedes it, so ``TCP disconnected 0xbf0bb198`` is a note, not four bytes. Notes are kept
(``new TCP connection 0xdd92e340`` starts a session); blank lines and ``#``/``//`` comments are skipped.
An ellipsis inside the hex (``02a310…466a(20)``) means the log left bytes out: the chunk says how many.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

NO_LABEL = ""
DAY_S = 86400.0

_BYTE = r"(?:0x[0-9a-f]{2}(?![0-9a-f])|[0-9a-f]{2})"  # "0x" marks one byte: 0xbf0bb198 is a number, not bytes
_HEXRUN = rf"{_BYTE}(?:[ \t:,\-]*{_BYTE})*(?![0-9a-z])"
_ELLIPSIS = r"\s*(?:\.{2,}|…)\s*"
_COUNT = r"\s*(?:\((?P<c1>\d+)(?:\s*bytes?)?\)|\[(?P<c2>\d+)(?:\s*bytes?)?\]|,?\s*(?:len=)?(?P<c3>\d+)\s*bytes?)?\s*$"
_PAYLOAD = rf"(?P<hex>{_HEXRUN})(?:{_ELLIPSIS}(?P<tail>{_HEXRUN})?)?{_COUNT}"
_WORDS = r"tx|rx|read|write|written|send|sent|recv|receive|received|sending|receiving"
_ARROWS = r"-->|<--|->|<-|>>|<<|>|<"
# a direction word (or arrow) right before the hex, with an optional colon or equals sign
_DIRECTED = re.compile(
    rf"(?:(?<![\w.])(?P<word>{_WORDS})\b|(?<![<>\-\w])(?P<arrow>{_ARROWS})(?![<>\-]))\s*[:=]?\s*{_PAYLOAD}",
    re.IGNORECASE,
)
# nRF Connect: "Data written to <uuid>, value: (0x) 02-A3-…" and "Notification received from <uuid>, value: …"
_NRF = re.compile(
    rf"(?P<word>data written to|notification received from|indication received from)\s+\S+?,?\s*value:\s*"
    rf"(?:\(0x\)\s*)?{_PAYLOAD}",
    re.IGNORECASE,
)
_BARE = re.compile(rf"^\s*{_PAYLOAD}", re.IGNORECASE)
_CLOCK = re.compile(
    r"(?:(?P<ymd>\d{4}-\d\d-\d\d)[ T]|(?P<md>\d\d-\d\d)\s+)?"
    r"(?P<h>\d{1,2}):(?P<m>\d\d):(?P<s>\d\d(?:[.,]\d{1,9})?)(?:Z|[+-]\d\d:?\d\d)?(?![\d:])"
)
_SECONDS = re.compile(r"^\s*\[?\s*(?P<sec>\d+\.\d+)\s*\]?(?=\s)")
_PREFIX_JUNK = re.compile(r"^[\s\]\)|:-]+")
_PREFIX_WINDOW = 48  # a time further into the line is part of the message, not the line's time
_NRF_WORDS = {"data written to": "written", "notification received from": "notification"}


class NoteKind(StrEnum):
    """What a text line says about the connection."""

    CONNECT = "connect"
    DISCONNECT = "disconnect"
    UNREADABLE = "unreadable data"  # a direction word and something hex-like that is not whole bytes
    OTHER = "note"


_DISCONNECT = re.compile(
    r"\b(?:disconnect(?:ed|ing)?|connection\s+(?:lost|closed|dropped|reset|terminated|timed out)"
    r"|link\s+(?:lost|down)|socket\s+closed|closed\s+connection|client\s+gone)\b",
    re.IGNORECASE,
)
_CONNECT = re.compile(
    r"\b(?:new\s+(?:\w+\s+)?connection|(?<!not )(?:re)?connected|connection\s+(?:opened|established|accepted)"
    r"|accepted\s+(?:\w+\s+)?connection|client\s+connected)\b",
    re.IGNORECASE,
)


_BROKEN_DATA = re.compile(rf"^(?:{_WORDS}|{_ARROWS})\s*[:=]?\s*(?:0x)?[0-9a-f]{{1,2}}(?:[\s,:\-]|$)", re.IGNORECASE)


def note_kind(text: str) -> NoteKind:
    """Whether a text line (after its time) reports a new connection, a lost one, broken data, or none of these."""
    if _BROKEN_DATA.match(text):
        return NoteKind.UNREADABLE
    if _DISCONNECT.search(text):
        return NoteKind.DISCONNECT
    if _CONNECT.search(text):
        return NoteKind.CONNECT
    return NoteKind.OTHER


@dataclass(frozen=True)
class Stamp:
    """A line's time as written, and in seconds (from midnight, plus whole days when the log gives dates)."""

    text: str
    seconds: float


@dataclass(frozen=True)
class Chunk:
    """Bytes on one line: the direction word as written (lower case, "" if none) and what the log left out."""

    line: int
    stamp: Stamp | None
    label: str
    data: bytes
    elided: int = 0  # bytes the log replaced by an ellipsis (known from the byte count)
    tail: bytes = b""  # bytes after the ellipsis
    declared: int | None = None  # the byte count the line states, if any

    @property
    def size(self) -> int:
        """Bytes that crossed the link on this line (the elided ones included)."""
        return len(self.data) + self.elided + len(self.tail)

    @property
    def count_mismatch(self) -> bool:
        """The line states a byte count its hex does not have (and no ellipsis explains it)."""
        return self.declared is not None and not self.elided and self.declared != len(self.data) + len(self.tail)


@dataclass(frozen=True)
class Note:
    """A line that is not data: kept as an event of the log."""

    line: int
    stamp: Stamp | None
    text: str
    kind: NoteKind


LogLine = Chunk | Note


def _stamp(text: str) -> tuple[Stamp | None, int]:
    """The line's time and where it ends; a bare number of seconds only at the start (the rig's trace)."""
    seconds = _SECONDS.match(text)
    if seconds:
        return Stamp(seconds["sec"], float(seconds["sec"])), seconds.end()
    clock = _CLOCK.search(text, 0, _PREFIX_WINDOW + 30)
    if clock is None or clock.start() > _PREFIX_WINDOW:
        return None, 0
    value = int(clock["h"]) * 3600 + int(clock["m"]) * 60 + float(clock["s"].replace(",", "."))
    if clock["ymd"]:
        value += date.fromisoformat(clock["ymd"]).toordinal() * DAY_S
    elif clock["md"]:
        month, day = (int(part) for part in clock["md"].split("-"))
        if 1 <= month <= 12 and 1 <= day <= 31:
            value += date(2000, month, day).toordinal() * DAY_S
    return Stamp(clock.group(0).strip(), value), clock.end()


def _hex(run: str | None) -> bytes:
    if not run:
        return b""
    return bytes.fromhex(re.sub(r"0x|[^0-9a-f]", "", run, flags=re.IGNORECASE))


def _count(match: re.Match[str]) -> int | None:
    text = match["c1"] or match["c2"] or match["c3"]
    return int(text) if text else None


def _chunk(number: int, stamp: Stamp | None, label: str, match: re.Match[str]) -> Chunk:
    data, tail, declared = _hex(match["hex"]), _hex(match["tail"]), _count(match)
    ellipsis = match.group(0)[match.end("hex") - match.start() :].lstrip()[:1] in (".", "…")
    elided = max(0, declared - len(data) - len(tail)) if ellipsis and declared is not None else 0
    return Chunk(number, stamp, label, data, elided, tail, declared)


def _label(match: re.Match[str]) -> str:
    word = (match["word"] or match["arrow"] or "").lower()
    return _NRF_WORDS.get(word, word)


def parse_line(number: int, text: str) -> LogLine | None:
    """One log line as a Chunk or a Note; None for a blank line or a comment."""
    stripped = text.strip().lstrip("\ufeff")
    if not stripped or stripped.startswith(("#", "//")):
        return None
    stamp, at = _stamp(stripped)
    rest = _PREFIX_JUNK.sub("", stripped[at:])
    for pattern in (_NRF, _DIRECTED):
        for found in pattern.finditer(rest):
            if _whole_tail(rest, found):
                return _chunk(number, stamp, _label(found), found)
    bare = _BARE.match(_without_level(rest))
    if bare and _whole_tail(_without_level(rest), bare):
        return _chunk(number, stamp, NO_LABEL, bare)
    return Note(number, stamp, rest or stripped, note_kind(rest or stripped))


def _whole_tail(text: str, match: re.Match[str]) -> bool:
    """The match runs to the end of the line (the hex is the line's last thing)."""
    return match.end() == len(text.rstrip())


_LEVEL = re.compile(r"^(?:[VDIWEAF]|INFO|DEBUG|WARN(?:ING)?|ERROR|TRACE)\b[\s:\]]*", re.IGNORECASE)


def _without_level(text: str) -> str:
    """A bare hex line after its time may still carry a level letter (``[I 12:00:01] 02 01 00`` keeps none)."""
    level = _LEVEL.match(text)
    if level is None or _BARE.match(text):
        return text
    return text[level.end() :]


def parse_lines(lines: Iterable[str]) -> list[LogLine]:
    """Every chunk and note of a log, in order; the times of a log that passes midnight keep growing."""
    parsed: list[LogLine] = []
    day = 0.0
    last: float | None = None
    for number, text in enumerate(lines, start=1):
        item = parse_line(number, text)
        if item is None:
            continue
        if item.stamp is not None:
            if last is not None and item.stamp.seconds + day < last - DAY_S / 2:
                day += DAY_S  # a clock time without a date went past midnight
            seconds = item.stamp.seconds + day
            last = seconds
            item = _restamp(item, Stamp(item.stamp.text, seconds))
        parsed.append(item)
    return parsed


def _restamp(item: LogLine, stamp: Stamp) -> LogLine:
    if isinstance(item, Chunk):
        return Chunk(item.line, stamp, item.label, item.data, item.elided, item.tail, item.declared)
    return Note(item.line, stamp, item.text, item.kind)
