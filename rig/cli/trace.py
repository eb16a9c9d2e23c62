"""`rig trace decode FILE [--firmware 3.40] [--to-esc WORD] [--json]`: read a captured log, decode it, judge it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rig.captures.decode import TraceError, decode_log
from rig.captures.render import json_document, report_text
from rig.captures.verdict import verdict
from rig.cli.args import firmware_version
from rig.cli.esc import emit_json


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `trace decode` to the `rig` command line."""
    trace = subparsers.add_parser("trace", help="captured byte logs")
    sub = trace.add_subparsers(dest="trace_command", required=True, metavar="ACTION")
    decode = sub.add_parser(
        "decode",
        help="decode a captured log (phone app, bridge, logcat, nRF Connect, the rig's trace) into frames",
        description="Decode a captured byte log: sessions split by connection lines, frames with their payloads "
        "decoded, cut frames, garbage, the rig's flush; then a verdict: frames cut by a disconnect, what each "
        "firmware generation's decoder would have done with the bytes sent to the ESC, unanswered requests, CRC "
        "errors. Text lines between the data are kept as events.",
    )
    decode.add_argument("file", help="the log file ('-' for standard input)")
    decode.add_argument(
        "--firmware",
        "--fw",
        dest="firmware",
        type=firmware_version,
        default=None,
        metavar="X.YY",
        help="the board's firmware version: command ids, payload layouts (default: the version of the log's "
        "FW_VERSION reply, else the latest profiled one)",
    )
    decode.add_argument(
        "--to-esc",
        metavar="WORD",
        help="the direction word of the bytes going to the ESC, such as 'read' in a bridge's log (default: "
        "inferred from the frames, else the word's usual meaning)",
    )
    decode.add_argument("--json", action="store_true", help="one JSON document: rows, sessions and verdict")
    decode.set_defaults(func=run_decode)


def _read(name: str) -> str:
    if name == "-":
        return sys.stdin.read()
    try:
        return Path(name).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise TraceError(f"cannot read {name}: {exc}") from exc


def run_decode(args: argparse.Namespace) -> int:
    decoded = decode_log(_read(args.file), args.firmware, args.to_esc)
    judged = verdict(decoded)
    if args.json:
        emit_json(json_document(decoded, judged))
    else:
        sys.stdout.write(report_text(decoded, judged))
    return 0
