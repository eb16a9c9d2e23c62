"""`rig trace decode FILE [--json] [--plain] [--fw 3.40]`: show the frames of a captured byte log."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from rig.captures.decode import DecodedTrace, TraceError, TraceEvent, decode_log
from rig.cli.args import firmware_version
from rig.protocol.commands import LATEST, command_table

PREVIEW_BYTES = 16


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `trace decode` to the `rig` command line."""
    trace = subparsers.add_parser("trace", help="captured byte logs")
    sub = trace.add_subparsers(dest="trace_command", required=True, metavar="ACTION")
    decode = sub.add_parser(
        "decode",
        help="decode a hex byte log into VESC frames",
        description="Decode a captured byte log (hex per line; optional timestamps and tx:/rx:, write:/read:, >/< "
        "prefixes) into frames per direction: command, payload length, CRC, and garbage between frames.",
    )
    decode.add_argument("file", help="the log file ('-' for standard input)")
    decode.add_argument(
        "--fw", type=firmware_version, default=None, help=f"firmware version (default {LATEST.version})"
    )
    out = decode.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="one JSON object per frame or garbage run")
    out.add_argument("--plain", action="store_true", help="plain text, one line per frame or garbage run")
    decode.set_defaults(func=run_decode)


def _read(name: str) -> str:
    if name == "-":
        return sys.stdin.read()
    try:
        return Path(name).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise TraceError(f"cannot read {name}: {exc}") from exc


def run_decode(args: argparse.Namespace) -> int:
    table = command_table(args.fw) if args.fw else LATEST
    decoded = decode_log(_read(args.file), table)
    for bad in decoded.bad_lines:
        print(f"{args.file}:{bad.line}: not hex, skipped: {bad.text[:60]!r}", file=sys.stderr)
    if args.json:
        for event in decoded.events:
            print(json.dumps(event.as_json()))
    elif args.plain:
        print(format_plain(decoded), end="")
    else:
        Console().print(rich_table(decoded, str(table.version)))
    return 0


def _time(event: TraceEvent) -> str:
    return "" if event.t is None else f"{event.t:.6f}"


def _what(event: TraceEvent) -> str:
    if event.kind == "garbage":
        return "garbage"
    return event.command if event.command is not None else f"id {event.cmd_id}"


def _detail(event: TraceEvent) -> str:
    if event.kind == "frame":
        return "CRC ok" if event.crc_ok else "CRC bad"
    more = " …" if len(event.data) > PREVIEW_BYTES else ""
    return f"{event.reason}: {event.data[:PREVIEW_BYTES].hex(' ')}{more}"


def _length(event: TraceEvent) -> str:
    return f"{event.payload_len}" if event.kind == "frame" else f"{event.size} B"


def format_plain(decoded: DecodedTrace) -> str:
    """One line per event: line, time, direction, offset, what, payload length or size, CRC or reason."""
    rows = (
        f"L{e.line:<5} {_time(e):>12} {e.direction:>2} @{e.offset:<6} {_what(e):<24} {_length(e):>7}  {_detail(e)}\n"
        for e in decoded.events
    )
    return "".join(rows)


def rich_table(decoded: DecodedTrace, fw: str) -> Table:
    table = Table(title=f"VESC frames (command ids of firmware {fw})")
    for name, justify in (("line", "right"), ("time", "right"), ("dir", "center"), ("offset", "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    table.add_column("command")
    table.add_column("payload", justify="right")
    table.add_column("CRC / discard reason")
    for e in decoded.events:
        style = "red" if e.kind == "garbage" or not e.crc_ok else None
        table.add_row(str(e.line), _time(e), e.direction, str(e.offset), _what(e), _length(e), _detail(e), style=style)
    return table
