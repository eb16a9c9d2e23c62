"""Factory records as the panel shows them: a board's outcome in plain words, the day's counts, a failed board's
step log and decoded trace excerpt.

Everything here is derived from the stored record (rig.factory.records), never from what a run remembers in
memory, so a panel restarted after a bring-up shows exactly what it showed before.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, time
from typing import Any

from rig.captures.decode import Kind, TraceError, TraceEvent, decode_log
from rig.device.firmware import UnknownFirmware
from rig.factory.flow import TRACE_EVIDENCE
from rig.factory.records import FAIL, INCOMPLETE, PASS, BoardRecord, CheckResult
from rig.panel.words import NO_VERDICT, TECHNICIAN, Words, plain
from rig.protocol.commands import FirmwareVersion

_STEP_FAILURE = re.compile(r"^\[(?P<diagnosis>[^\]]+)\] (?P<message>.*)$", re.DOTALL)  # rig.factory.flow's form
CHECK_NAMES = {
    "v_in": "input voltage",
    "temp_fet": "FET temperature",
    "temp_motor": "motor temperature",
    "fault": "fault code",
    "fw_version": "firmware version",
    "hw_name": "hardware name",
    "uid": "serial number (UID)",
}
PREVIEW_BYTES = 16


@dataclass(frozen=True)
class Outcome:
    """How a board's bring-up ended: its status, why (a diagnosis to count by), and what to do."""

    status: str  # PASS, FAIL, INCOMPLETE
    diagnosis: str | None = None  # a Diagnosis value, "check failed: NAME", or "no verdict"
    step: str | None = None  # the step or check that failed
    detail: str | None = None  # the rig's own message
    words: Words | None = None
    left: str | None = None  # the state the board was left in

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["what"], out["remedy"] = (self.words.what, self.words.remedy) if self.words else (None, None)
        del out["words"]
        return out


def outcome(record: BoardRecord) -> Outcome:
    """The outcome of a stored record: its first failed check says why it failed."""
    left = next((str(c.value) for c in record.checks if c.name == "left"), None)
    if record.status == PASS:
        return Outcome(PASS)
    if record.status == INCOMPLETE:
        return Outcome(INCOMPLETE, "no verdict", words=NO_VERDICT, left=left)
    failed = next((c for c in record.checks if not c.passed), None)
    if failed is None:  # a verdict given without a failed check (not done by the factory flow)
        return Outcome(FAIL, left=left)
    found = _STEP_FAILURE.match(str(failed.value)) if isinstance(failed.value, str) else None
    if found is not None:
        diagnosis = found["diagnosis"]
        return Outcome(FAIL, diagnosis, failed.name, found["message"], plain(diagnosis), left)
    return Outcome(FAIL, f"check failed: {failed.name}", failed.name, _check_text(failed), _check_words(failed), left)


def _limits(check: CheckResult) -> str | None:
    """`LOW..HIGH UNIT` of a check with limits, else None."""
    if check.low is None and check.high is None:
        return None
    low = "" if check.low is None else f"{check.low:g}"
    high = "" if check.high is None else f"{check.high:g}"
    return f"{low}..{high} {check.unit}".strip()


def _check_text(check: CheckResult) -> str:
    limits = _limits(check)
    value = f"{check.value} {check.unit}".strip()
    return f"{check.name} = {value}" + (f", limits {limits}" if limits else "")


def _check_words(check: CheckResult) -> Words:
    name = CHECK_NAMES.get(check.name, check.name)
    limits = _limits(check)
    value = f"{check.value} {check.unit}".strip()
    if limits:
        return Words(f"The {name} is out of its limits: {value} (allowed {limits}).", TECHNICIAN)
    return Words(f"The {name} is wrong: {value}.", TECHNICIAN)


def seconds_between(started: str, finished: str | None) -> float | None:
    if finished is None:
        return None
    return (datetime.fromisoformat(finished) - datetime.fromisoformat(started)).total_seconds()


def summary(record: BoardRecord) -> dict[str, Any]:
    """One line of the records list."""
    ended = outcome(record)
    return {
        "id": record.id,
        "run_id": record.run_id,
        "station": record.station,
        "label": record.label,
        "uid": record.uid,
        "hw": record.hw,
        "fw": record.fw,
        "started": record.started,
        "finished": record.finished,
        "seconds": seconds_between(record.started, record.finished),
        "status": record.status,
        "diagnosis": ended.diagnosis,
    }


def detail(record: BoardRecord, evidence: dict[str, str]) -> dict[str, Any]:
    """One record in full: its outcome, every check in order (the step log) and the decoded trace excerpt."""
    trace = evidence.get(TRACE_EVIDENCE)
    return {
        **summary(record),
        "bootloader": record.bootloader,
        "outcome": outcome(record).as_json(),
        "checks": [asdict(c) for c in record.checks],
        "trace": None if trace is None else decoded_trace(trace, record.fw),
    }


def decoded_trace(text: str, fw: str) -> dict[str, Any]:
    """A trace excerpt decoded with the command ids of the board's firmware (rig.captures): frames, garbage, cut
    frames and the rig's flush; connects, gaps and notes stay out of an operator's view."""
    try:
        version: FirmwareVersion | None = FirmwareVersion.parse(fw)
    except ValueError:
        version = None  # the decoder takes the firmware from the log's FW_VERSION reply, else the newest
    try:
        decoded = decode_log(text, version)
    except (TraceError, UnknownFirmware) as exc:
        return {"fw": fw, "events": [], "error": str(exc), "lines": len(text.splitlines())}
    return {
        "fw": str(decoded.firmware.version),
        "events": [_event(e) for e in decoded.events if e.kind in SHOWN],
        "error": None,
        "lines": len(text.splitlines()),
    }


SHOWN = (Kind.FRAME, Kind.GARBAGE, Kind.CUT, Kind.FLUSH)
_NOTES = {Kind.FLUSH: "the rig's zero bytes on connect (end any partial frame)"}


def _event(event: TraceEvent) -> dict[str, Any]:
    more = " …" if len(event.data) > PREVIEW_BYTES else ""
    if event.kind == Kind.FRAME:
        what, note = event.name, "CRC ok" if event.crc_ok else "CRC bad"
    elif event.kind == Kind.CUT:
        what, note = f"{event.name} (cut)", event.text or ""
    else:
        what, note = event.kind.value, _NOTES.get(event.kind, event.text or "")
    return {
        "t": event.t,
        "dir": event.label or (event.role.value if event.role else ""),
        "what": what,
        "bytes": event.size,
        "note": note,
        "data": event.data[:PREVIEW_BYTES].hex(" ") + more,
    }


@dataclass
class DailyCounts:
    """A day's boards: passed, failed, without a verdict, and the failures by diagnosis (most first)."""

    passed: int = 0
    failed: int = 0
    incomplete: int = 0
    by_diagnosis: list[tuple[str, int]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["by_diagnosis"] = [{"diagnosis": d, "count": n} for d, n in self.by_diagnosis]
        return out


def daily_counts(records: list[BoardRecord]) -> DailyCounts:
    statuses = Counter(r.status for r in records)
    reasons = Counter(outcome(r).diagnosis or "unknown" for r in records if r.status != PASS)
    return DailyCounts(statuses[PASS], statuses[FAIL], statuses[INCOMPLETE], reasons.most_common())


def start_of_today() -> str:
    """Local midnight today, as the record store's UTC text (records started at or after it are today's)."""
    midnight = datetime.combine(datetime.now().date(), time()).astimezone()
    return midnight.astimezone(UTC).isoformat(timespec="milliseconds")
