"""rig.factory.records and `rig records`: durable per-board records, filters, CSV/JSON export, and no check lost
when the writing process is killed mid-run."""

from __future__ import annotations

import csv
import io
import json
import os
import select
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rig.cli import main
from rig.factory.records import FAIL, INCOMPLETE, PASS, Record, RecordError, RecordStore, judge, write_csv, write_json

KILL_AFTER_CHECKS = 40
READ_BOUND_S = 20.0

WRITER = """
import sys, time
from rig.factory.records import RecordStore

store = RecordStore(sys.argv[1])
record = store.open_record("esc-602", "0011aabb", "60", "6.02", "bl-1", "run-kill")
print("open", record.id, flush=True)
for i in range(1_000_000):
    record.check(f"current {i}", 0.5 + i, 0.0, 1e9, "A")
    print(i, flush=True)  # only after check() returned: the check is committed
    time.sleep(0.002)
"""


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RecordStore]:
    with RecordStore(tmp_path / "records.sqlite") as opened:
        yield opened


def _board(store: RecordStore, station: str = "esc-602", uid: str = "aa01", run_id: str = "run-1") -> Record:
    return store.open_record(station, uid, "60", "6.02", "bl-1", run_id)


# --- verdicts -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "low", "high", "expected"),
    [
        (24.1, 22.0, 26.0, True),
        (21.9, 22.0, 26.0, False),
        (26.0, 22.0, 26.0, True),  # limits are inclusive
        (5, None, 10, True),
        (11, None, 10, False),
        (5, 6, None, False),
        (True, None, None, True),
        (False, None, None, False),
        ("6.02", None, None, True),  # a plain measurement
        (None, None, None, False),  # nothing measured
        ("6.02", 1.0, 2.0, False),  # limits need a number
        (True, 0, 1, False),
    ],
)
def test_judge(value: object, low: float | None, high: float | None, expected: bool) -> None:
    assert judge(value, low, high) is expected  # type: ignore[arg-type]


def test_checks_and_a_computed_verdict(store: RecordStore) -> None:
    record = _board(store)
    assert record.check("supply voltage", 24.1, 22.0, 26.0, "V")
    assert not record.check("idle current", 0.9, None, 0.5, "A")
    assert record.check("operator says ok", "no", passed=True)
    assert record.finish() == FAIL
    stored = record.read()
    assert stored.status == FAIL and stored.finished is not None
    assert [(c.name, c.value, c.low, c.high, c.unit, c.passed) for c in stored.checks] == [
        ("supply voltage", 24.1, 22.0, 26.0, "V", True),
        ("idle current", 0.9, None, 0.5, "A", False),
        ("operator says ok", "no", None, None, "", True),
    ]


def test_all_checks_passing_is_pass_and_a_given_verdict_wins(store: RecordStore) -> None:
    first = _board(store)
    first.check("ok", True)
    assert first.finish() == PASS
    second = _board(store)
    second.check("ok", True)
    assert second.finish(FAIL) == FAIL  # e.g. the test failed after its checks
    with pytest.raises(ValueError, match="PASS or FAIL"):
        _board(store).finish("MAYBE")


def test_new_firmware_is_noted(store: RecordStore) -> None:
    record = _board(store)
    record.note_firmware("6.05")
    assert (record.read().fw, record.read().bootloader) == ("6.05", "bl-1")
    record.note_firmware("6.05", "bl-2")
    assert record.read().bootloader == "bl-2"


def test_the_store_is_wal_with_full_sync(store: RecordStore) -> None:
    assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_filters(store: RecordStore) -> None:
    a = _board(store, "esc-602", "aa01")
    a.finish()
    b = _board(store, "esc-340", "bb02")
    b.check("bad", False)
    b.finish()
    _board(store, "esc-602", "cc03")  # never finished
    assert [r.uid for r in store.records()] == ["aa01", "bb02", "cc03"]
    assert [r.uid for r in store.records(station="esc-602")] == ["aa01", "cc03"]
    assert [r.uid for r in store.records(uid="bb02")] == ["bb02"]
    assert [r.uid for r in store.records(verdict=PASS)] == ["aa01"]
    assert [r.uid for r in store.records(verdict=FAIL)] == ["bb02"]
    assert [r.uid for r in store.records(verdict=INCOMPLETE)] == ["cc03"]
    assert [r.uid for r in store.records(since="2000-01-01")] == ["aa01", "bb02", "cc03"]
    assert store.records(since="2999-01-01") == []
    with pytest.raises(RecordError, match="no record 99"):
        store.record(99)


def test_two_writers_share_one_file(tmp_path: Path) -> None:
    """pytest-xdist workers each open the store: their records interleave, none is lost."""
    path = tmp_path / "shared.sqlite"
    with RecordStore(path) as one, RecordStore(path) as two:
        r1, r2 = _board(one, uid="w1"), _board(two, uid="w2")
        for i in range(5):
            r1.check(f"c{i}", i)
            r2.check(f"c{i}", i)
        r1.finish()
        r2.finish()
    with RecordStore(path) as store:
        assert [(r.uid, len(r.checks), r.status) for r in store.records()] == [("w1", 5, PASS), ("w2", 5, PASS)]


# --- export ---------------------------------------------------------------------------------------


def test_csv_has_one_row_per_check_and_one_for_a_record_without_checks(store: RecordStore) -> None:
    record = _board(store)
    record.check("supply voltage", 24.1, 22.0, 26.0, "V")
    record.check("idle current", 0.9, None, 0.5, "A")
    record.finish()
    _board(store, uid="bb02")
    out = io.StringIO()
    write_csv(store.records(), out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [(r["uid"], r["check"], r["passed"], r["status"]) for r in rows] == [
        ("aa01", "supply voltage", PASS, FAIL),
        ("aa01", "idle current", FAIL, FAIL),
        ("bb02", "", "", INCOMPLETE),
    ]
    assert (rows[0]["value"], rows[0]["low"], rows[0]["high"], rows[0]["unit"]) == ("24.1", "22.0", "26.0", "V")
    assert rows[1]["low"] == ""


def test_json_holds_records_with_their_checks(store: RecordStore) -> None:
    record = _board(store)
    record.check("supply voltage", 24.1, 22.0, 26.0, "V")
    out = io.StringIO()
    write_json(store.records(), out)
    (doc,) = json.loads(out.getvalue())
    assert doc["uid"] == "aa01" and doc["status"] == INCOMPLETE and doc["verdict"] is None
    assert doc["checks"][0] | {"at": None} == {
        "name": "supply voltage",
        "value": 24.1,
        "low": 22.0,
        "high": 26.0,
        "unit": "V",
        "passed": True,
        "at": None,
    }


# --- the command line -----------------------------------------------------------------------------


@pytest.fixture
def filled(tmp_path: Path) -> Path:
    path = tmp_path / "records.sqlite"
    with RecordStore(path) as store:
        good = _board(store, "esc-602", "aa01")
        good.check("supply voltage", 24.1, 22.0, 26.0, "V")
        good.finish()
        bad = _board(store, "esc-340", "bb02")
        bad.check("supply voltage", 30.0, 22.0, 26.0, "V")
        bad.finish()
    return path


def test_cli_list_filters(filled: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["records", "list", "--db", str(filled), "--verdict", "fail", "--json"]) == 0
    assert [r["uid"] for r in json.loads(capsys.readouterr().out)] == ["bb02"]
    assert main(["records", "list", "--db", str(filled), "--station", "esc-602"]) == 0
    table = capsys.readouterr().out
    assert "aa01" in table and "bb02" not in table


def test_cli_show(filled: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["records", "show", "2", "--db", str(filled)]) == 0
    out = capsys.readouterr().out
    assert "bb02" in out and "supply voltage" in out and "FAIL" in out
    assert main(["records", "show", "1", "--db", str(filled), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == PASS


def test_cli_export_csv_and_json(filled: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "out" / "records.csv"
    assert main(["records", "export", "--db", str(filled), "--uid", "aa01", "-o", str(target)]) == 0
    rows = list(csv.DictReader(target.open()))
    assert [(r["uid"], r["check"], r["value"]) for r in rows] == [("aa01", "supply voltage", "24.1")]
    assert main(["records", "export", "--db", str(filled), "--format", "json", "--since", "2000-01-01T00:00"]) == 0
    assert [r["uid"] for r in json.loads(capsys.readouterr().out)] == ["aa01", "bb02"]


def test_cli_without_a_store_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["records", "list", "--db", str(tmp_path / "none.sqlite")]) == 1
    assert "no record store" in capsys.readouterr().err
    assert not (tmp_path / "none.sqlite").exists(), "reading must not create a store"


def test_cli_rejects_a_bad_date(filled: Path) -> None:
    with pytest.raises(SystemExit):
        main(["records", "list", "--db", str(filled), "--since", "yesterday"])


# --- a kill mid-run -------------------------------------------------------------------------------


def _read_line(proc: subprocess.Popen[str], deadline: float) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
    if not ready:
        raise AssertionError(f"the writer printed nothing within {READ_BOUND_S:g} s")
    line = proc.stdout.readline()
    assert line, f"the writer ended early: {proc.stderr.read() if proc.stderr else ''}"
    return line.strip()


def test_sigkill_mid_run_loses_no_check(tmp_path: Path) -> None:
    """Every check whose check() returned before SIGKILL is in the store afterwards."""
    path = tmp_path / "records.sqlite"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + READ_BOUND_S
        assert _read_line(proc, deadline).startswith("open")
        confirmed = [int(_read_line(proc, deadline)) for _ in range(KILL_AFTER_CHECKS)]
        os.kill(proc.pid, signal.SIGKILL)  # mid-run: the writer is still checking
    finally:
        proc.kill()
        proc.wait(timeout=10)
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()
    assert proc.returncode == -signal.SIGKILL
    assert (tmp_path / "records.sqlite-wal").exists(), "the checks were in the WAL when the writer died"

    with RecordStore(path) as store:
        (record,) = store.records(run_id="run-kill")
    stored = [c.name for c in record.checks]
    assert stored[: len(confirmed)] == [f"current {i}" for i in confirmed]
    assert record.status == INCOMPLETE and record.finished is None
    assert all(c.passed and c.unit == "A" for c in record.checks)
    # the file passes SQLite's own consistency check after the kill
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
