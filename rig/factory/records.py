"""Per-board records for the factory: one record per board and run, every check with its value and limits.

Storage: SQLite (stdlib sqlite3) in WAL mode with ``synchronous=FULL``, one transaction per record
opened, per check and per verdict. Chosen over append-only JSON lines because

- a commit is atomic and durable: with WAL and FULL, the WAL is fsynced at every commit, so a check
  whose ``check()`` returned survives a crash, a SIGKILL or a power cut, and a torn write is rolled
  back on the next open instead of leaving half a line to skip;
- several pytest-xdist workers can write the same file (one writer at a time, each waiting up to
  ``busy_s``), and readers (``rig records``) never block the writers;
- filtering by station, UID, verdict and date is a query, not a scan of years of text.

A record whose run died before ``finish()`` keeps every check written so far and has no verdict
(shown as INCOMPLETE).
"""

from __future__ import annotations

import csv
import json
import logging
import sqlite3
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from rig.errors import Diagnosis, RigError

log = logging.getLogger(__name__)

PASS = "PASS"
FAIL = "FAIL"
INCOMPLETE = "INCOMPLETE"  # the run ended before finish(): no verdict
VERDICTS = (PASS, FAIL, INCOMPLETE)
BUSY_S = 10.0

Value = float | int | str | bool

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL,
    station TEXT NOT NULL,
    uid TEXT NOT NULL,
    hw TEXT NOT NULL,
    fw TEXT NOT NULL,
    bootloader TEXT NOT NULL,
    started TEXT NOT NULL,
    finished TEXT,
    verdict TEXT,
    label TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS records_uid ON records (uid);
CREATE INDEX IF NOT EXISTS records_started ON records (started);
CREATE TABLE IF NOT EXISTS checks (
    id INTEGER PRIMARY KEY,
    record_id INTEGER NOT NULL REFERENCES records (id),
    name TEXT NOT NULL,
    value,
    low REAL,
    high REAL,
    unit TEXT NOT NULL,
    passed INTEGER NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS checks_record ON checks (record_id);
CREATE TABLE IF NOT EXISTS evidence (
    record_id INTEGER NOT NULL REFERENCES records (id),
    name TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (record_id, name)
);
"""
# Columns added to `records` after stores were first written: added to an older store when it is opened.
_ADDED_COLUMNS = {"label": "label TEXT NOT NULL DEFAULT ''"}
_RECORD_COLUMNS = "id, run_id, station, uid, hw, fw, bootloader, started, finished, verdict, label"  # BoardRecord's


class RecordError(RigError):
    """The record store cannot be opened, written or read (the message names the file)."""

    diagnosis = Diagnosis.RECORDS


class RecordNotFound(RecordError):
    """The store has no record of that number."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class CheckResult:
    """One measured check: value, limits (None: no limit on that side), unit, verdict, time (UTC)."""

    name: str
    value: Value | None
    low: float | None
    high: float | None
    unit: str
    passed: bool
    at: str


@dataclass(frozen=True)
class BoardRecord:
    """One board in one run, as stored."""

    id: int
    run_id: str
    station: str
    uid: str
    hw: str
    fw: str
    bootloader: str
    started: str
    finished: str | None
    verdict: str | None
    label: str = ""  # the board's label as the operator entered or scanned it (rig panel)
    checks: list[CheckResult] = field(default_factory=list)

    @property
    def status(self) -> str:
        """PASS, FAIL, or INCOMPLETE when the run ended before a verdict."""
        return self.verdict or INCOMPLETE

    def as_json(self) -> dict[str, object]:
        out = asdict(self)
        out["status"] = self.status
        return out


def judge(value: Value | None, low: float | None, high: float | None) -> bool:
    """A check passes when its value lies within its limits; without limits a bool is its own verdict
    and any other value is a passing measurement."""
    if low is None and high is None:
        return value if isinstance(value, bool) else value is not None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return (low is None or value >= low) and (high is None or value <= high)


class Record:
    """The open record of one board; every call is committed before it returns."""

    def __init__(self, store: RecordStore, record_id: int) -> None:
        self.store = store
        self.id = record_id

    def check(
        self,
        name: str,
        value: Value | None,
        low: float | None = None,
        high: float | None = None,
        unit: str = "",
        *,
        passed: bool | None = None,
    ) -> bool:
        """Store one check (its verdict from the limits unless `passed` is given) and return the verdict."""
        verdict = judge(value, low, high) if passed is None else passed
        self.store._execute(
            "INSERT INTO checks (record_id, name, value, low, high, unit, passed, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (self.id, name, value, low, high, unit, int(verdict), _now()),
        )
        log.debug("record %d: %s = %r %s -> %s", self.id, name, value, unit, PASS if verdict else FAIL)
        return verdict

    def note_identity(self, uid: str, hw: str | None = None) -> None:
        """The board's UID (and hardware name) as soon as it is first read: the record is findable by UID."""
        self.store._execute("UPDATE records SET uid = ?, hw = COALESCE(?, hw) WHERE id = ?", (uid, hw or None, self.id))

    def attach(self, name: str, body: str) -> None:
        """Evidence kept with the record (a trace excerpt, say), by name; attaching a name again replaces it."""
        self.store._execute(
            "INSERT OR REPLACE INTO evidence (record_id, name, body) VALUES (?, ?, ?)", (self.id, name, body)
        )

    def note_firmware(self, fw: str, bootloader: str | None = None) -> None:
        """The board now runs other firmware (or bootloader) than when the record was opened."""
        self.store._execute(
            "UPDATE records SET fw = ?, bootloader = COALESCE(?, bootloader) WHERE id = ?", (fw, bootloader, self.id)
        )

    def finish(self, verdict: str | None = None) -> str:
        """Close the record: `verdict`, or PASS when every check passed, FAIL otherwise."""
        if verdict is None:
            failed = self.store._scalar("SELECT COUNT(*) FROM checks WHERE record_id = ? AND passed = 0", (self.id,))
            verdict = FAIL if failed else PASS
        if verdict not in (PASS, FAIL):
            raise ValueError(f"a verdict is {PASS} or {FAIL}, not {verdict!r}")
        self.store._execute("UPDATE records SET finished = ?, verdict = ? WHERE id = ?", (_now(), verdict, self.id))
        return verdict

    def read(self) -> BoardRecord:
        return self.store.record(self.id)


class RecordStore:
    """A SQLite file of board records (created on first use)."""

    def __init__(self, path: Path | str, *, busy_s: float = BUSY_S) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # autocommit mode: every statement of _execute is its own durable transaction
            self._db = sqlite3.connect(self.path, timeout=busy_s, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.executescript(_SCHEMA)
            self._add_columns()
        except (sqlite3.Error, OSError) as exc:
            raise RecordError(f"cannot open the record store {self.path} (waited up to {busy_s:g} s): {exc}") from exc
        self.busy_s = busy_s

    def _add_columns(self) -> None:
        """Bring a store written by an older rig up to the columns of this one (another connection may race)."""
        for name, definition in _ADDED_COLUMNS.items():
            if name in self._columns():
                continue
            try:
                self._db.execute(f"ALTER TABLE records ADD COLUMN {definition}")
            except sqlite3.OperationalError:
                if name not in self._columns():
                    raise

    def _columns(self) -> set[str]:
        return {row[1] for row in self._db.execute("PRAGMA table_info(records)")}

    def _execute(self, sql: str, params: tuple[object, ...]) -> sqlite3.Cursor:
        try:
            return self._db.execute(sql, params)
        except sqlite3.Error as exc:
            raise RecordError(f"record store {self.path} (waited up to {self.busy_s:g} s): {exc}") from exc

    def _scalar(self, sql: str, params: tuple[object, ...]) -> int:
        return int(self._execute(sql, params).fetchone()[0])

    def open_record(
        self, station: str, uid: str, hw: str, fw: str, bootloader: str, run_id: str, *, label: str = ""
    ) -> Record:
        """Start the record of one board in one run (committed at once)."""
        cursor = self._execute(
            "INSERT INTO records (run_id, station, uid, hw, fw, bootloader, started, label) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (run_id, station, uid, hw, fw, bootloader, _now(), label),
        )
        assert cursor.lastrowid is not None
        return Record(self, cursor.lastrowid)

    def records(
        self,
        *,
        station: str | None = None,
        uid: str | None = None,
        verdict: str | None = None,
        since: str | None = None,
        run_id: str | None = None,
        label: str | None = None,
    ) -> list[BoardRecord]:
        """Records matching every filter given, oldest first; `since` is an ISO date or time (UTC)."""
        where, params = [], []
        for column, wanted in (("station", station), ("uid", uid), ("run_id", run_id), ("label", label)):
            if wanted is not None:
                where.append(f"{column} = ?")
                params.append(wanted)
        if verdict == INCOMPLETE:
            where.append("verdict IS NULL")
        elif verdict is not None:
            where.append("verdict = ?")
            params.append(verdict)
        if since is not None:
            where.append("started >= ?")
            params.append(since)
        matching = f" WHERE {' AND '.join(where)}" if where else ""
        sql = f"SELECT {_RECORD_COLUMNS} FROM records{matching} ORDER BY id"
        return self._with_checks(self._execute(sql, tuple(params)).fetchall())

    def record(self, record_id: int) -> BoardRecord:
        rows = self._execute(f"SELECT {_RECORD_COLUMNS} FROM records WHERE id = ?", (record_id,)).fetchall()
        found = self._with_checks(rows)
        if not found:
            raise RecordNotFound(f"record store {self.path} has no record {record_id}")
        return found[0]

    def evidence(self, record_id: int) -> dict[str, str]:
        """The evidence attached to a record, by name."""
        rows = self._execute("SELECT name, body FROM evidence WHERE record_id = ? ORDER BY name", (record_id,))
        return dict(rows.fetchall())

    def _with_checks(self, rows: list[tuple[object, ...]]) -> list[BoardRecord]:
        out = []
        for row in rows:
            checks = self._execute(
                "SELECT name, value, low, high, unit, passed, at FROM checks WHERE record_id = ? ORDER BY id",
                (row[0],),
            ).fetchall()
            board = BoardRecord(*row)  # type: ignore[arg-type]  # the columns, in the dataclass's order
            found = [CheckResult(n, v, lo, hi, u, bool(p), at) for n, v, lo, hi, u, p, at in checks]
            out.append(replace(board, checks=found))
        return out

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> RecordStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- export ------------------------------------------------------------------------------------------

CSV_COLUMNS = (
    "record",
    "run_id",
    "station",
    "label",
    "uid",
    "hw",
    "fw",
    "bootloader",
    "started",
    "finished",
    "status",
    "check",
    "value",
    "low",
    "high",
    "unit",
    "passed",
    "at",
)


def write_csv(records: Iterable[BoardRecord], out: IO[str]) -> None:
    """One row per check (the record's columns repeated); a record without checks gets one row."""
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for r in records:
        board = [
            r.id,
            r.run_id,
            r.station,
            r.label,
            r.uid,
            r.hw,
            r.fw,
            r.bootloader,
            r.started,
            r.finished or "",
            r.status,
        ]
        if not r.checks:
            writer.writerow([*board, *[""] * 7])
        for c in r.checks:
            limits = ["" if x is None else x for x in (c.value, c.low, c.high)]
            writer.writerow([*board, c.name, *limits, c.unit, PASS if c.passed else FAIL, c.at])


def write_json(records: Iterable[BoardRecord], out: IO[str]) -> None:
    """A JSON array of records, each with its checks."""
    json.dump([r.as_json() for r in records], out, indent=1)
    out.write("\n")
