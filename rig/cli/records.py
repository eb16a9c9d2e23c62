"""`rig records list|show|export`: the per-board factory records (rig.factory.records), filtered and exported.

rig records list   [--db PATH] [--station S] [--uid U] [--label L] [--verdict PASS|FAIL|INCOMPLETE] [--since DATE]
                   [--json]
rig records show   ID [--db PATH] [--json]
rig records export [filters] [--format csv|json] [-o FILE]
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, date, datetime
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from rig.cli.output import emit_json, make_console
from rig.factory.records import FAIL, PASS, VERDICTS, BoardRecord, RecordError, RecordStore, write_csv, write_json
from rig.station.state import StateDir


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `records list|show|export` to the `rig` command line."""
    records = subparsers.add_parser("records", help="per-board factory records: list, show, export")
    sub = records.add_subparsers(dest="records_command", required=True, metavar="ACTION")

    db = argparse.ArgumentParser(add_help=False)
    db.add_argument("--db", type=Path, help="the record store (default: records.sqlite3 in the state dir)")
    db.add_argument("--state-dir", type=Path, help="the state dir (default: $VESC_RIG_STATE_DIR, else per user)")
    filters = argparse.ArgumentParser(add_help=False, parents=[db])
    filters.add_argument("--station", help="only this station")
    filters.add_argument("--uid", help="only this board (USB UID, hex as FW_VERSION gives it)")
    filters.add_argument("--label", help="only this board (its label as entered on the panel)")
    filters.add_argument("--verdict", type=str.upper, choices=VERDICTS, help="only this verdict")
    filters.add_argument("--since", type=_since, help="only records started at or after this date/time (UTC)")

    listing = sub.add_parser("list", parents=[filters], help="one line per record")
    listing.add_argument("--json", action="store_true", help="the records as one JSON document")
    listing.set_defaults(func=run_list)

    show = sub.add_parser("show", parents=[db], help="one record with every check")
    show.add_argument("id", type=int, help="the record number (first column of `list`)")
    show.add_argument("--json", action="store_true", help="the record as one JSON document")
    show.set_defaults(func=run_show)

    export = sub.add_parser("export", parents=[filters], help="records and checks as CSV or JSON")
    export.add_argument("--format", choices=("csv", "json"), default="csv", help="csv: one row per check (default)")
    export.add_argument("-o", "--output", type=Path, help="write here instead of standard output")
    export.set_defaults(func=run_export)


def _since(text: str) -> str:
    """An ISO date or date-time as the store's UTC text (a time without zone is taken as UTC)."""
    try:
        if len(text) == 10:
            return date.fromisoformat(text).isoformat()
        when = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO date or date-time: {text!r}") from None
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    return when.isoformat(timespec="milliseconds")


def _store(path: Path) -> RecordStore:
    if not path.is_file():
        raise RecordError(f"no record store at {path} (give --db)")
    return RecordStore(path)


def _select(args: argparse.Namespace) -> list[BoardRecord]:
    with _store(_db(args)) as store:
        return store.records(
            station=args.station, uid=args.uid, verdict=args.verdict, since=args.since, label=args.label
        )


def _styled(status: str) -> str:
    colour = {PASS: "green", FAIL: "red"}.get(status, "yellow")
    return f"[{colour}]{status}[/{colour}]"


def run_list(args: argparse.Namespace) -> int:
    found = _select(args)
    if args.json:
        emit_json([r.as_json() for r in found])
        return 0
    table = Table(title=f"{len(found)} board records in {_db(args)}")
    for column in ("id", "started (UTC)", "station", "label", "uid", "hw", "fw", "bootloader", "checks", "verdict"):
        table.add_column(column, justify="right" if column in ("id", "checks") else "left")
    for r in found:
        failed = sum(not c.passed for c in r.checks)
        checks = f"{len(r.checks)}" + (f" ({failed} failed)" if failed else "")
        row = (str(r.id), r.started[:19], r.station, r.label, r.uid, r.hw, r.fw, r.bootloader, checks)
        table.add_row(*map(escape, row), _styled(r.status))
    make_console().print(table)
    return 0


def run_show(args: argparse.Namespace) -> int:
    with _store(_db(args)) as store:
        r = store.record(args.id)
    if args.json:
        emit_json(r.as_json())
        return 0
    console = make_console()
    console.print(
        f"record {r.id} (run {escape(r.run_id)}): station {escape(r.station)}, board {escape(r.label or '-')} "
        f"(UID {escape(r.uid)}), "
        f"hw {escape(r.hw)}, firmware {escape(r.fw)}, bootloader {escape(r.bootloader or '-')}"
    )
    console.print(f"started {r.started}, finished {r.finished or '-'}: {_styled(r.status)}")
    table = Table()
    for column in ("check", "value", "low", "high", "unit", "result", "at (UTC)"):
        table.add_column(column, justify="right" if column in ("value", "low", "high") else "left")
    for c in r.checks:
        values = ("" if x is None else str(x) for x in (c.value, c.low, c.high))
        table.add_row(escape(c.name), *map(escape, values), escape(c.unit), _styled(PASS if c.passed else FAIL), c.at)
    console.print(table)
    return 0


def run_export(args: argparse.Namespace) -> int:
    found = _select(args)
    write = write_csv if args.format == "csv" else write_json
    if args.output is None:
        write(found, sys.stdout)
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with open(args.output, "w", newline="", encoding="utf-8") as out:
        write(found, out)
    print(f"{len(found)} records written to {args.output}", file=sys.stderr)
    return 0


def _db(args: argparse.Namespace) -> Path:
    return args.db or StateDir.at(args.state_dir).records
