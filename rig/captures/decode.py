"""Decode a captured log into sessions of frames, cut frames, garbage and notes (what `rig trace decode` shows).

The lines are read by :mod:`rig.captures.lines`; each direction word is given a role (to the ESC or to the
host) by :mod:`rig.captures.directions`; each role's bytes are decoded by its own
:class:`~rig.protocol.framing.FrameDecoder` (the 3.48+ / VESC Tool resync, so that nothing is silently
dropped); each frame's payload is described by :mod:`rig.captures.payloads`.

A connection event (``new TCP connection …``, ``disconnected``) ends a session: a frame still incomplete
then is reported as **cut**, with its command and how many of its bytes arrived. The rig's own trace has
no such lines, but every connect of the rig starts with its flush (:meth:`rig.client.esc.Esc.flush_device_decoder`:
1032 zero bytes); that chunk is labelled as the flush and starts a session. A frame with a bad CRC is
reported with ``crc_ok=False``; the decoder then rescans as the firmware does, so the bytes it discarded
follow as garbage (with overlapping offsets). Offsets count bytes per role over the whole log.

Firmware version: the one given, else the one the log's first FW_VERSION reply reports, else the latest
profiled one (6.02); its command table names the ids and its codecs decode the payloads.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field, replace
from enum import StrEnum

from rig.captures.directions import Directions, Role, assign
from rig.captures.lines import Chunk, LogLine, Note, NoteKind, Stamp, parse_lines
from rig.captures.payloads import Described, describe
from rig.client.esc import FLUSH_BYTES
from rig.errors import PayloadError, ProtocolError
from rig.protocol.codecs import FwVersionReply
from rig.protocol.commands import LATEST, CommandTable, FirmwareVersion, command_table
from rig.protocol.framing import (
    START_LONG,
    START_SHORT,
    BadCrc,
    Discard,
    Event,
    Frame,
    FrameDecoder,
    Garbage,
)

FLUSH = bytes(FLUSH_BYTES)


class TraceError(ProtocolError):
    """A capture that cannot be read or holds no hex bytes at all."""


class Kind(StrEnum):
    """What a row of a decoded log is."""

    FRAME = "frame"
    GARBAGE = "garbage"
    CUT = "cut"  # a frame whose session (or the log) ended before its last byte
    FLUSH = "flush"  # the rig's flush at a connect
    GAP = "gap"  # bytes the log left out
    CONNECT = "connect"
    DISCONNECT = "disconnect"
    NOTE = "note"
    UNREADABLE = "unreadable"  # a line that looks like data but is not whole bytes


_NOTE_KINDS = {
    NoteKind.CONNECT: Kind.CONNECT,
    NoteKind.DISCONNECT: Kind.DISCONNECT,
    NoteKind.UNREADABLE: Kind.UNREADABLE,
    NoteKind.OTHER: Kind.NOTE,
}


@dataclass(frozen=True)
class TraceEvent:
    """One row: a frame, garbage, a cut frame, the rig's flush, or a note, at the line that resolved it.

    `offset` counts bytes in its role's stream. For a frame `data` is the payload; for garbage and cut
    frames the bytes; for notes `text` is the line. A cut frame's `expected` is the wire size its header
    announced.
    """

    kind: Kind
    line: int
    stamp: Stamp | None
    session: int
    role: Role | None = None
    label: str | None = None
    offset: int | None = None
    size: int = 0
    data: bytes = b""
    command: str | None = None
    cmd_id: int | None = None
    crc_ok: bool | None = None
    text: str | None = None  # garbage or cut: the reason; notes: the line
    expected: int | None = None
    described: Described | None = None
    first_line: int | None = None  # a frame or cut frame: the line that brought its first byte

    @property
    def t(self) -> float | None:
        return None if self.stamp is None else self.stamp.seconds

    @property
    def is_frame(self) -> bool:
        return self.kind == Kind.FRAME

    @property
    def name(self) -> str:
        """The command's name, or its id when the firmware version does not know it."""
        if self.command is not None:
            return self.command
        return f"id {self.cmd_id}" if self.cmd_id is not None else "frame"


@dataclass(frozen=True)
class Session:
    """One connection: the line that started it and the one that ended it (None: the log's start or end)."""

    number: int
    started_by: TraceEvent | None
    ended_by: TraceEvent | None = None


@dataclass(frozen=True)
class Firmware:
    """The firmware version the decoding assumes, and where that assumption comes from."""

    version: FirmwareVersion
    source: str

    @property
    def table(self) -> CommandTable:
        return command_table(self.version)


@dataclass
class DecodedTrace:
    """Everything decoded from one log, in log order."""

    firmware: Firmware
    directions: Directions
    events: list[TraceEvent] = field(default_factory=list)
    sessions: list[Session] = field(default_factory=list)
    chunks: list[Chunk] = field(default_factory=list)

    def frames(self, role: Role | None = None) -> list[TraceEvent]:
        """The frames, or those of one role (a direction word such as "tx" is not a role: TypeError)."""
        if role is not None and not isinstance(role, Role):
            raise TypeError(f"frames() takes a Role, not {role!r}")
        return [e for e in self.events if e.kind == Kind.FRAME and role in (None, e.role)]

    def of_kind(self, kind: Kind) -> list[TraceEvent]:
        return [e for e in self.events if e.kind == kind]

    @property
    def timed(self) -> bool:
        """Whether every chunk of the log has a time."""
        return all(chunk.stamp is not None for chunk in self.chunks)


def _wire_size(payload: bytes, long: bool) -> int:
    return (3 if long else 2) + len(payload) + 3


def announced(data: bytes) -> tuple[int | None, int | None]:
    """From the first bytes of a frame: the wire size its header announces and its command id, where present."""
    if not data or data[0] not in (START_SHORT, START_LONG):
        return None, None
    head = 2 if data[0] == START_SHORT else 3
    if len(data) < head:
        return None, None
    length = data[1] if head == 2 else (data[1] << 8) | data[2]
    return head + length + 3, (data[head] if len(data) > head else None)


class _Decoder:
    """Turns the lines of a log into rows, session by session."""

    def __init__(self, firmware: Firmware, directions: Directions) -> None:
        self.table = firmware.table
        self.directions = directions
        self.events: list[TraceEvent] = []
        self.sessions: list[Session] = [Session(1, None)]
        self.streams: dict[Role, FrameDecoder] = {}  # per role, for the current session
        self.offsets: dict[Role, int] = dict.fromkeys(Role, 0)
        self.arrivals: dict[Role, tuple[list[int], list[int]]] = {r: ([], []) for r in Role}  # offsets, lines
        self._fed: dict[Role, int] = dict.fromkeys(Role, 0)  # bytes of each role given to a decoder (or skipped)
        self._after_garbage: dict[Role, bool] = dict.fromkeys(Role, False)  # a held frame start there is no cut
        self.open = True  # False after a disconnect, until the next line that is data or a connect
        self.quiet = True  # no bytes in the session yet

    @property
    def session(self) -> int:
        return self.sessions[-1].number

    def add(self, item: LogLine) -> None:
        if isinstance(item, Note):
            self._note(item)
        elif self.directions.role(item.label) == Role.TO_ESC and item.data == FLUSH and not item.tail:
            self._flush(item)
        else:
            self._chunk(item)

    def end(self, last_line: int) -> None:
        self._close_streams(TraceEvent(Kind.NOTE, last_line, None, self.session, text="end of the log"))

    # --- sessions --------------------------------------------------------------------------------

    def _note(self, note: Note) -> None:
        event = TraceEvent(_NOTE_KINDS[note.kind], note.line, note.stamp, self.session, text=note.text)
        if note.kind == NoteKind.CONNECT:
            event = self._new_session(event)
        elif note.kind == NoteKind.DISCONNECT and self.open:
            self._close_streams(event)
            self.sessions[-1] = replace(self.sessions[-1], ended_by=event)
            self.open = False
        self.events.append(event)

    def _new_session(self, cause: TraceEvent) -> TraceEvent:
        """End the session (unless nothing happened in it yet) and start one; the cause, in the new session."""
        if self.open and not self.quiet:
            self._close_streams(cause)
            self.sessions[-1] = replace(self.sessions[-1], ended_by=cause)
        if self.open and self.quiet:
            cause = replace(cause, session=self.session)
            self.sessions[-1] = replace(self.sessions[-1], started_by=cause)
        else:
            cause = replace(cause, session=self.session + 1)
            self.sessions.append(Session(self.session + 1, cause))
        self.open, self.quiet = True, True
        return cause

    def _reopen(self, chunk: Chunk) -> None:
        """Data after a disconnect and no connect line: a new session all the same."""
        if not self.open:
            self._new_session(TraceEvent(Kind.CONNECT, chunk.line, chunk.stamp, 0, text="data after the disconnect"))
        self.quiet = False

    def _flush(self, chunk: Chunk) -> None:
        role = Role.TO_ESC
        text = f"the rig's flush at a connect ({len(chunk.data)} zero bytes)"
        event = TraceEvent(
            Kind.FLUSH, chunk.line, chunk.stamp, 0, role, chunk.label, self.offsets[role], len(chunk.data), text=text
        )
        self.events.append(self._new_session(event))
        self.offsets[role] += len(chunk.data)
        self._fed[role] += len(chunk.data)
        self.quiet = False

    def _close_streams(self, cause: TraceEvent) -> None:
        for role, stream in self.streams.items():
            self._rows(role, None, cause, stream.finish(), cut=cause.text or "")
        self.streams.clear()

    # --- bytes -----------------------------------------------------------------------------------

    def _arrived(self, role: Role, at: int, line: int) -> None:
        """Bytes of `role` from stream offset `at` on came on `line` (offsets are fed in order)."""
        offsets, lines = self.arrivals[role]
        offsets.append(at)
        lines.append(line)

    def _line_of(self, role: Role, at: int) -> int | None:
        offsets, lines = self.arrivals[role]
        index = bisect_right(offsets, at) - 1
        return lines[index] if index >= 0 else None

    def _stream(self, role: Role) -> FrameDecoder:
        if role not in self.streams:
            self.streams[role] = FrameDecoder(report_bad_crc=True)
            self._after_garbage[role] = False
        return self.streams[role]

    def _chunk(self, chunk: Chunk) -> None:
        self._reopen(chunk)
        role = self.directions.role(chunk.label)
        self._arrived(role, self._fed[role], chunk.line)
        self._fed[role] += len(chunk.data)
        self._rows(role, chunk, None, self._stream(role).feed(chunk.data))
        if chunk.elided or chunk.tail:
            self._gap(role, chunk)

    def _gap(self, role: Role, chunk: Chunk) -> None:
        """Bytes the log left out: frames around them cannot be decoded; the tail starts afresh."""
        stream = self.streams.pop(role)
        reason = f"{chunk.elided} bytes left out of the log"
        where = TraceEvent(Kind.GAP, chunk.line, chunk.stamp, self.session, role, chunk.label, text=reason)
        self._rows(role, None, where, stream.finish(), cut=reason)
        self.events.append(replace(where, offset=self.offsets[role], size=chunk.elided))
        self.offsets[role] += chunk.elided
        self._fed[role] += chunk.elided
        self._arrived(role, self._fed[role], chunk.line)
        self._fed[role] += len(chunk.tail)
        self._rows(role, chunk, None, self._stream(role).feed(chunk.tail))

    def _rows(
        self,
        role: Role,
        chunk: Chunk | None,
        cause: TraceEvent | None,
        events: list[Event],
        cut: str | None = None,
    ) -> None:
        """Rows for decoder events; `cut` (the reason) when the stream ends: its first garbage is the cut frame,
        unless garbage came just before it (then it is a start byte inside garbage, not a frame that was cut)."""
        line = chunk.line if chunk is not None else cause.line if cause is not None else 0
        stamp = chunk.stamp if chunk is not None else cause.stamp if cause is not None else None
        label = chunk.label if chunk is not None else None
        for event in events:
            at = self.offsets[role]
            if isinstance(event, Garbage):
                self.offsets[role] += len(event.data)
                if cut is not None and event.reason == Discard.TRUNCATED and not self._after_garbage[role]:
                    self.events.append(self._cut(role, line, stamp, at, event.data, cut))
                    cut = None
                    continue
                cut = None
                self._after_garbage[role] = True
                self.events.append(
                    TraceEvent(
                        Kind.GARBAGE, line, stamp, self.session, role, label, at, len(event.data), event.data,
                        text=event.reason.value,
                    )
                )  # fmt: skip
                continue
            if isinstance(event, Frame):  # a BadCrc does not consume: the Garbage after it starts with its first byte
                self.offsets[role] += _wire_size(event.payload, event.long)
                self._after_garbage[role] = False
            self.events.append(self._frame(role, line, stamp, label, at, event))

    def _cut(self, role: Role, line: int, stamp: Stamp | None, at: int, data: bytes, reason: str) -> TraceEvent:
        expected, cmd_id = announced(data)
        cmd = self.table.cmd(cmd_id) if cmd_id is not None else None
        return TraceEvent(
            Kind.CUT, line, stamp, self.session, role, None, at, len(data), data,
            command=cmd.name if cmd is not None else None, cmd_id=cmd_id, text=reason, expected=expected,
            first_line=self._line_of(role, at),
        )  # fmt: skip

    def _frame(
        self, role: Role, line: int, stamp: Stamp | None, label: str | None, at: int, event: Frame | BadCrc
    ) -> TraceEvent:
        cmd = self.table.cmd(event.payload[0])
        ok = isinstance(event, Frame)
        to_esc = {Role.TO_ESC: True, Role.TO_HOST: False}.get(role)
        return TraceEvent(
            Kind.FRAME, line, stamp, self.session, role, label, at, _wire_size(event.payload, event.long),
            event.payload, cmd.name if cmd is not None else None, event.payload[0], ok,
            described=describe(event.payload, self.table, to_esc) if ok else None,
            first_line=self._line_of(role, at),
        )  # fmt: skip


def firmware_of(chunks: list[Chunk], given: FirmwareVersion | None) -> Firmware:
    """The version given, else the first FW_VERSION reply's (id 0 in every version), else the latest profiled."""
    if given is not None:
        return Firmware(given, "given")
    decoders: dict[str, FrameDecoder] = {}
    for chunk in chunks:
        for event in decoders.setdefault(chunk.label, FrameDecoder()).feed(chunk.data):
            if isinstance(event, Frame) and event.payload[0] == 0 and len(event.payload) >= 3:
                try:
                    reply = FwVersionReply.unpack(event.payload[1:])
                except PayloadError:
                    continue
                return Firmware(reply.version, f"the FW_VERSION reply on line {chunk.line}")
    return Firmware(LATEST.version, "no FW_VERSION reply in the log: the latest profiled version assumed")


def decode_lines(
    items: list[LogLine], version: FirmwareVersion | None = None, to_esc: str | None = None
) -> DecodedTrace:
    """Decode parsed log lines; TraceError if no line holds bytes."""
    chunks = [item for item in items if isinstance(item, Chunk)]
    if not chunks:
        notes = ", ".join(str(item.line) for item in items[:10])
        raise TraceError("no hex bytes found in the log" + (f" (text on lines {notes})" if notes else ""))
    firmware = firmware_of(chunks, version)
    directions = assign(items, firmware.table, to_esc)
    decoder = _Decoder(firmware, directions)
    for item in items:
        decoder.add(item)
    decoder.end(items[-1].line)
    return DecodedTrace(firmware, directions, decoder.events, decoder.sessions, chunks)


def decode_log(text: str, version: FirmwareVersion | None = None, to_esc: str | None = None) -> DecodedTrace:
    """Parse and decode a whole log."""
    return decode_lines(parse_lines(text.splitlines()), version, to_esc)
