"""A decoded log and its verdict as text (the CLI and the Allure attachments) and as one JSON document."""

from __future__ import annotations

from collections.abc import Iterable

from rig.captures.decode import DecodedTrace, Kind, TraceEvent
from rig.captures.directions import Role
from rig.captures.verdict import Verdict, grouped

PREVIEW_BYTES = 12
ARROWS = {Role.TO_ESC: "->ESC", Role.TO_HOST: "<-ESC", Role.UNKNOWN: "?"}
HEADER = f"{'line':<10} {'time':>12} {'s':>2} {'dir':<5} {'offset':>7}  {'what':<24} {'bytes':>6}  detail"


def _preview(data: bytes) -> str:
    more = " …" if len(data) > PREVIEW_BYTES else ""
    return f"{data[:PREVIEW_BYTES].hex(' ')}{more}"


def what(row: TraceEvent) -> str:
    """The row's name: the command of a frame, or what kind of row it is."""
    if row.kind == Kind.FRAME:
        return row.name
    if row.kind == Kind.CUT:
        return f"cut {row.name}"
    if row.kind == Kind.FLUSH:
        return "rig flush"
    return row.kind.value


def detail(row: TraceEvent) -> str:
    """What the row says: a frame's decoded payload, why bytes were discarded, a note's text."""
    match row.kind:
        case Kind.FRAME if not row.crc_ok:
            return f"BAD CRC: {_preview(row.data)}"
        case Kind.FRAME:
            described = row.described
            return described.summary if described is not None else ""
        case Kind.GARBAGE:
            return f"{row.text}: {_preview(row.data)}"
        case Kind.CUT:
            expected = f" of {row.expected}" if row.expected else ""
            return f"{row.size}{expected} bytes arrived; {row.text}"
    return row.text or ""


def row_text(row: TraceEvent) -> str:
    """One row as a line of text (the columns of HEADER)."""
    time = row.stamp.text if row.stamp is not None else ""
    arrow = ARROWS.get(row.role, "") if row.role is not None else ""
    offset = f"@{row.offset}" if row.offset is not None else ""
    size = str(row.size) if row.kind in (Kind.FRAME, Kind.GARBAGE, Kind.CUT, Kind.FLUSH, Kind.GAP) else ""
    lines = f"L{row.first_line}-{row.line}" if row.first_line not in (None, row.line) else f"L{row.line}"
    where = f"{lines:<10} {time[-12:]:>12} {row.session:>2} {arrow:<5} {offset:>7}"
    return f"{where}  {what(row):<24} {size:>6}  {detail(row)}"


def rows_text(rows: Iterable[TraceEvent]) -> str:
    return "".join(row_text(row) + "\n" for row in rows)


def verdict_lines(v: Verdict) -> list[str]:
    """The verdict in plain sentences, one per line."""
    out = [
        f"firmware {v.firmware} ({v.firmware_source}): command ids and payloads of {v.firmware}; "
        f"its decoder: {v.generation.name}, {v.generation.summary}",
        "directions: " + "; ".join(v.directions),
        f"{v.sessions} session(s), frames: "
        + (", ".join(f"{n} {role}" for role, n in v.frames.items()) or "none")
        + (f", {v.flushes} rig flush(es)" if v.flushes else ""),
    ]
    if v.cuts:
        out.append("frames cut short:")
        out += [f"  {cut.describe()}" for cut in v.cuts]
    else:
        out.append("frames cut short: none")
    if v.fates:
        out.append("what each firmware generation would have done with the bytes sent to the ESC:")
        for fate in v.fates:
            timed = "" if fate.timed else " (no times in the log: timeout not applied)"
            out.append(f"  {fate.generation.name} ({fate.generation.summary}){timed}:")
            out += [f"    {line}" for line in fate.describe()]
    if not v.replies_checked:
        out.append("unanswered requests: not checked (no bytes from the ESC in the log)")
    elif v.unanswered:
        out.append(f"unanswered requests: {grouped(v.unanswered)}")
    else:
        out.append("unanswered requests: none")
    out.append(f"CRC errors: {grouped(v.crc_errors) or 'none'}")
    if v.garbage:
        out.append(f"garbage: {sum(g.size for g in v.garbage)} bytes in {len(v.garbage)} run(s)")
    out += [f"log: {problem}" for problem in v.problems]
    return out


def report_text(decoded: DecodedTrace, v: Verdict, rows: list[TraceEvent] | None = None) -> str:
    """The rows (all by default) with a session line before each session's first row, then the verdict."""
    out = [HEADER]
    session = 0
    for row in decoded.events if rows is None else rows:
        if row.session != session:
            session = row.session
            started = decoded.sessions[session - 1].started_by
            cause = f": {started.text} (line {started.line})" if started is not None else ""
            out.append(f"-- session {session}{cause}")
        out.append(row_text(row))
    out.append("")
    out.append("verdict")
    out += [f"  {line}" for line in verdict_lines(v)]
    return "\n".join(out) + "\n"


def _row_json(row: TraceEvent) -> dict[str, object]:
    out: dict[str, object] = {
        "kind": row.kind.value,
        "line": row.line,
        "time": row.stamp.text if row.stamp else None,
        "t": row.t,
        "session": row.session,
    }
    if row.role is not None:
        out |= {"direction": row.role.value, "word": row.label, "offset": row.offset, "size": row.size}
    if row.first_line is not None:
        out["first_line"] = row.first_line
    if row.kind == Kind.FRAME:
        out |= {"command": row.command, "cmd_id": row.cmd_id, "crc_ok": row.crc_ok, "payload": row.data.hex(" ")}
        if row.described is not None:
            out |= {"message": row.described.message, "summary": row.described.summary, "fields": row.described.fields}
    elif row.kind in (Kind.GARBAGE, Kind.CUT):
        out |= {"bytes": row.data.hex(" "), "reason": row.text}
        if row.kind == Kind.CUT:
            out |= {"command": row.command, "cmd_id": row.cmd_id, "expected": row.expected}
    else:
        out["text"] = row.text
    return out


def _ref(row: TraceEvent) -> dict[str, object]:
    return {"command": row.name, "line": row.line, "session": row.session}


def json_document(decoded: DecodedTrace, v: Verdict) -> dict[str, object]:
    """The rows and the verdict as one JSON-ready document."""
    return {
        "firmware": {
            "version": v.firmware,
            "source": v.firmware_source,
            "generation": v.generation.name,
            "decoder": v.generation.summary,
        },
        "directions": {
            label: {"direction": role.value, "why": decoded.directions.reasons[label]}
            for label, role in decoded.directions.roles.items()
        },
        "sessions": [
            {
                "number": s.number,
                "started_by": s.started_by.text if s.started_by else None,
                "start_line": s.started_by.line if s.started_by else None,
                "ended_by": s.ended_by.text if s.ended_by else None,
                "end_line": s.ended_by.line if s.ended_by else None,
            }
            for s in decoded.sessions
        ],
        "events": [_row_json(row) for row in decoded.events],
        "verdict": {
            "frames": v.frames,
            "flushes": v.flushes,
            "cuts": [
                {
                    **_ref(c.row),
                    "direction": c.row.role.value if c.row.role else None,
                    "arrived": c.arrived,
                    "expected": c.row.expected,
                    "by": c.row.text,
                    "next_line": c.next_line,
                    "gap_s": None if c.gap_s is None else round(c.gap_s, 6),
                }
                for c in v.cuts
            ],
            "generations": [
                {
                    "generation": f.generation.name,
                    "decoder": f.generation.summary,
                    "reset_after_s": f.generation.reset_after_s,
                    "timed": f.timed,
                    "cuts": f.cuts,
                    "never_executed": [_ref(r) for r in f.lost],
                    "executed_late": [{**_ref(r), "at_line": at} for r, at in f.late],
                    "merged_frames_at_lines": [line for _, line in f.merged],
                    "held_at_end": f.held,
                }
                for f in v.fates
            ],
            "unanswered": [_ref(r) for r in v.unanswered] if v.replies_checked else None,
            "crc_errors": [_ref(r) for r in v.crc_errors],
            "garbage_bytes": sum(g.size for g in v.garbage),
            "problems": v.problems,
        },
    }
