"""The verdict on a decoded log: frames cut by a disconnect, what each firmware generation made of the bytes
that went to the ESC, requests without a reply, CRC errors and what is wrong with the log itself.

What a firmware made of them is computed, not guessed: the to-ESC bytes of the whole log (every session:
the ESC's decoder does not know about the app's TCP connections) are fed with their times into the
decoder of each generation (:mod:`rig.captures.generations`), and the frames it executes are compared with
the frames the log shows. The log's times are the logger's, not the ESC's: a gap close to a timeout can
go either way, so the gap is always given with the bound.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field

from rig.captures.decode import DecodedTrace, Kind, TraceEvent
from rig.captures.directions import Role
from rig.captures.generations import GENERATIONS, Generation, generation_of
from rig.device.firmware import DecoderKind
from rig.protocol.commands import Cmd
from rig.protocol.framing import BadCrc, Discard, Frame, Garbage

# Requests the firmware always answers with a frame of the same id (bldc commands.c); other requests count
# as answerable only when the log shows an answer to them somewhere (SET_*CONF is not acked on a wrong
# signature, for instance).
ANSWERED: frozenset[Cmd] = frozenset(
    {
        Cmd.FW_VERSION,
        Cmd.GET_VALUES,
        Cmd.GET_VALUES_SELECTIVE,
        Cmd.GET_MCCONF,
        Cmd.GET_MCCONF_DEFAULT,
        Cmd.GET_APPCONF,
        Cmd.GET_APPCONF_DEFAULT,
        Cmd.ERASE_NEW_APP,
        Cmd.WRITE_NEW_APP_DATA,
        Cmd.ERASE_BOOTLOADER,
        Cmd.PING_CAN,
        Cmd.GET_DECODED_PPM,
        Cmd.GET_DECODED_ADC,
        Cmd.GET_DECODED_CHUK,
    }
)


@dataclass(frozen=True)
class CutFrame:
    """A frame whose session ended before its last byte, and when the next byte to the ESC came."""

    row: TraceEvent
    last_byte_line: int | None  # the line that brought its last byte
    next_line: int | None  # the next line with bytes to the ESC (to-ESC cuts only)
    gap_s: float | None  # from its last byte to that line, where the log has times

    @property
    def arrived(self) -> int:
        return self.row.size

    def describe(self) -> str:
        expected = f" of {self.row.expected}" if self.row.expected else ""
        what = f"{self.row.name} ({self.row.role}, session {self.row.session}, line {self.row.line})"
        out = f"{what}: {self.arrived}{expected} bytes arrived, then {self.row.text}"
        if self.next_line is not None:
            gap = f" {self.gap_s:.3f} s later" if self.gap_s is not None else ""
            out += f"; the next bytes to the ESC came{gap} (line {self.next_line})"
        return out


@dataclass
class Simulation:
    """One generation's decoder run over the log's to-ESC bytes: what it executed, discarded and still holds."""

    generation: Generation
    timed: bool
    executed: dict[int, int] = field(default_factory=dict)  # stream offset -> line that completed it
    discarded: list[tuple[int, bytes, Discard, int]] = field(default_factory=list)  # offset, bytes, reason, line
    held: int = 0
    uncertain_from: int | None = None  # a line after which the log misses bytes


@dataclass(frozen=True)
class Fate:
    """What one generation made of the log: a sentence per cut frame, and the frames it lost or ran late."""

    generation: Generation
    timed: bool
    cuts: list[str]
    lost: list[TraceEvent]
    late: list[tuple[TraceEvent, int]]  # frame, line at which the generation executed it
    merged: list[tuple[int, int]]  # frames it executed that the log does not show (offset, line)
    held: int

    def describe(self) -> list[str]:
        lines = list(self.cuts)
        if self.lost:
            lines.append(f"never executed: {grouped(self.lost)}")
        for at, frames in _by_line(self.late).items():
            lines.append(f"executed late, at line {at}: {grouped(frames)}")
        if self.merged:
            where = ", ".join(f"line {n}" for _, n in self.merged)
            lines.append(f"executed frames made of bytes from different frames: {where}")
        if self.held:
            lines.append(f"{self.held} bytes still held by its decoder at the end of the log")
        if not lines:
            lines.append("every frame executed as the log shows it")
        return lines


def _by_line(late: list[tuple[TraceEvent, int]]) -> dict[int, list[TraceEvent]]:
    out: dict[int, list[TraceEvent]] = {}
    for frame, at in late:
        out.setdefault(at, []).append(frame)
    return out


def line_ranges(numbers: list[int]) -> str:
    """21, 22, 23, 25 as "21-23, 25"."""
    out: list[str] = []
    for n in numbers:
        if out and out[-1].split("-")[-1] == str(n - 1):
            out[-1] = f"{out[-1].split('-')[0]}-{n}"
        else:
            out.append(str(n))
    return ", ".join(out)


def grouped(rows: list[TraceEvent]) -> str:
    """Rows by command, in order of first appearance: "FW_VERSION (line 20), GET_DECODED_PPM x10 (lines 21-30)"."""
    by: dict[str, list[int]] = {}
    for row in rows:
        by.setdefault(row.name, []).append(row.line)
    return ", ".join(
        f"{name} (line {lines[0]})" if len(lines) == 1 else f"{name} x{len(lines)} (lines {line_ranges(lines)})"
        for name, lines in by.items()
    )


@dataclass(frozen=True)
class Verdict:
    """The verdict on one log."""

    firmware: str
    firmware_source: str
    generation: Generation
    directions: list[str]
    sessions: int
    frames: dict[str, int]
    cuts: list[CutFrame]
    fates: list[Fate]
    unanswered: list[TraceEvent]
    replies_checked: bool
    crc_errors: list[TraceEvent]
    garbage: list[TraceEvent]
    flushes: int
    problems: list[str]


def simulate(decoded: DecodedTrace, generation: Generation) -> Simulation:
    """Feed the log's to-ESC bytes, with their times, to a generation's decoder."""
    sim = Simulation(generation, decoded.timed)
    decoder = generation.new_decoder(sim.timed)
    offset = 0

    def account(events: list[Frame | Garbage | BadCrc], line: int) -> None:
        nonlocal offset
        for event in events:
            if isinstance(event, Frame):
                sim.executed[offset] = line
                offset += (3 if event.long else 2) + len(event.payload) + 3
            elif isinstance(event, Garbage):
                sim.discarded.append((offset, event.data, event.reason, line))
                offset += len(event.data)

    for chunk in decoded.chunks:
        if decoded.directions.role(chunk.label) != Role.TO_ESC:
            continue
        now = chunk.stamp.seconds if sim.timed and chunk.stamp is not None else None
        account(decoder.feed(chunk.data, now), chunk.line)
        if chunk.elided or chunk.tail:
            sim.uncertain_from = sim.uncertain_from or chunk.line
            offset += decoder.pending + chunk.elided
            decoder = generation.new_decoder(sim.timed)
            account(decoder.feed(chunk.tail, now), chunk.line)
    sim.held = decoder.pending
    return sim


def _cut_fate(cut: CutFrame, sim: Simulation) -> str:
    """What the generation did with one cut frame's bytes."""
    start, arrived = cut.row.offset or 0, cut.arrived
    name = cut.row.name
    if start in sim.executed:
        return f"{name}: completed by the bytes that followed and executed (their CRC matched)"
    covering = [d for d in sim.discarded if d[0] <= start < d[0] + len(d[1])]
    if not covering:
        drop = sim.generation.reset_after_s
        then = f"; dropped {drop:.3f} s after the last byte if nothing followed" if drop and sim.timed else ""
        return f"{name}: still held at the end of the log, waiting for the rest of its {cut.row.expected} bytes{then}"
    at, data, reason, line = covering[0]
    added = at + len(data) - (start + arrived)
    if reason == Discard.TIMEOUT:
        bound = sim.generation.reset_after_s or 0.0
        if added < 0:
            return f"{name}: its first bytes were dropped by the receive timeout (bound {bound:.3f} s) on line {line}"
        if added == 0:
            gap = f"{cut.gap_s:.3f} s idle" if cut.gap_s is not None else "idle"
            return f"{name}: dropped by the receive timeout ({gap}, bound {bound:.3f} s) before the next byte came"
        return (
            f"{name}: kept; {added} more bytes were added to it, then the receive timeout dropped it all (line {line})"
        )
    if sim.generation.decoder == DecoderKind.LEGACY:  # the state machine consumed the whole announced frame
        rest = (cut.row.expected or len(data)) - arrived
        return (
            f"{name}: kept; the next {rest} bytes (up to line {line}) were taken as the rest of its "
            f"{cut.row.expected} bytes, then it failed ({reason.value}) and all of them were lost"
        )
    return (
        f"{name}: kept; once its {cut.row.expected} bytes were in (line {line}) it failed ({reason.value}) and the "
        f"decoder rescanned the bytes after its start byte"
    )


def fate(decoded: DecodedTrace, cuts: list[CutFrame], generation: Generation) -> Fate:
    """Run one generation over the log and compare what it executed with the frames the log shows."""
    sim = simulate(decoded, generation)
    shown = {f.offset: f for f in decoded.frames(Role.TO_ESC) if f.crc_ok and f.offset is not None}
    lost, late = [], []
    for at, frame in shown.items():
        if sim.uncertain_from is not None and frame.line >= sim.uncertain_from:
            continue
        if at not in sim.executed:
            lost.append(frame)
        elif sim.executed[at] > frame.line:
            late.append((frame, sim.executed[at]))
    cut_starts = {c.row.offset for c in cuts}
    merged = sorted((at, line) for at, line in sim.executed.items() if at not in shown and at not in cut_starts)
    sentences = [_cut_fate(cut, sim) for cut in cuts if cut.row.role == Role.TO_ESC]
    return Fate(generation, sim.timed, sentences, lost, late, merged, sim.held)


def _cuts(decoded: DecodedTrace) -> list[CutFrame]:
    out = []
    to_esc = [c for c in decoded.chunks if decoded.directions.role(c.label) == Role.TO_ESC]
    for row in decoded.of_kind(Kind.CUT):
        before = [c for c in to_esc if c.line < row.line] if row.role == Role.TO_ESC else []
        after = [c for c in to_esc if c.line > row.line] if row.role == Role.TO_ESC else []
        last = before[-1] if before else None
        nxt = after[0] if after else None
        gap = None
        if last is not None and nxt is not None and last.stamp is not None and nxt.stamp is not None:
            gap = nxt.stamp.seconds - last.stamp.seconds
        out.append(CutFrame(row, last.line if last else None, nxt.line if nxt else None, gap))
    return out


def _expected_reply(row: TraceEvent) -> int | None:
    """The wire id of the reply a request expects (FORWARD_CAN: its inner command's)."""
    if row.command == Cmd.FORWARD_CAN.name and len(row.data) >= 3:
        return row.data[2]
    return row.cmd_id


def _unanswered(decoded: DecodedTrace) -> list[TraceEvent]:
    """Requests with no reply of their id in their session before the next request of that id (or its end)."""
    table = decoded.firmware.table
    position = {id(e): i for i, e in enumerate(decoded.events)}
    replies: dict[tuple[int, int | None], list[int]] = {}
    for reply in decoded.frames(Role.TO_HOST):
        replies.setdefault((reply.session, reply.cmd_id), []).append(position[id(reply)])
    answerable = {key[1] for key in replies} | {table.to_wire[c] for c in ANSWERED if table.has(c)}
    requests = [f for f in decoded.frames(Role.TO_ESC) if f.crc_ok and _expected_reply(f) in answerable]
    out = []
    next_same: dict[tuple[int, int | None], int] = {}  # walking backwards: the next request of each key
    for request in reversed(requests):
        key = (request.session, _expected_reply(request))
        since = position[id(request)]
        until = next_same.get(key, len(decoded.events))
        next_same[key] = since
        found = replies.get(key, [])
        first = bisect_right(found, since)
        if first == len(found) or found[first] > until:
            out.append(request)
    return out[::-1]


def _problems(decoded: DecodedTrace) -> list[str]:
    out = []
    mismatched = [c for c in decoded.chunks if c.count_mismatch]
    if mismatched:
        out.append(
            "byte count differs from the hex on lines "
            + ", ".join(str(c.line) for c in mismatched[:10])
            + (" …" if len(mismatched) > 10 else "")
        )
    for row in decoded.of_kind(Kind.UNREADABLE):
        out.append(f"line {row.line} looks like data but is not whole hex bytes: {row.text!r}")
    for row in decoded.of_kind(Kind.GAP):
        out.append(f"line {row.line}: {row.text}; frames around them cannot be decoded")
    if not decoded.timed:
        out.append("not every line has a time: receive timeouts were not applied")
    if Role.UNKNOWN in decoded.directions.roles.values():
        out.append("some bytes have no known direction: they are decoded but left out of the firmware outcome")
    return out


def verdict(decoded: DecodedTrace) -> Verdict:
    """Everything the log says went wrong, and what each firmware generation would have done."""
    cuts = _cuts(decoded)
    has_to_esc = any(decoded.directions.role(c.label) == Role.TO_ESC for c in decoded.chunks)
    fates = [fate(decoded, cuts, g) for g in GENERATIONS] if has_to_esc else []
    frames = {role.value: len(decoded.frames(role)) for role in Role if decoded.frames(role)}
    replies_checked = bool(decoded.frames(Role.TO_HOST))
    return Verdict(
        firmware=str(decoded.firmware.version),
        firmware_source=decoded.firmware.source,
        generation=generation_of(decoded.firmware.version),
        directions=decoded.directions.describe(),
        sessions=len(decoded.sessions),
        frames=frames,
        cuts=cuts,
        fates=fates,
        unanswered=_unanswered(decoded) if replies_checked else [],
        replies_checked=replies_checked,
        crc_errors=[f for f in decoded.frames() if not f.crc_ok],
        garbage=decoded.of_kind(Kind.GARBAGE),
        flushes=len(decoded.of_kind(Kind.FLUSH)),
        problems=_problems(decoded),
    )
