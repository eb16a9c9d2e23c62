"""`rig power on|off|cycle STATION --rack FILE [--json]`: switch a station's power, or power-cycle it with proof.

The station's relay channel (or supply output) comes from the rack file, through a station session, so the
command works the same against hardware and against a simulated rack served by `rig sim serve` (give it the
resolved rack, `<run dir>/rack.toml`). `off` waits (bounded) until the ESC's port has gone, `on` until it is
back and the firmware answers FW_VERSION (`--no-wait` only switches); `cycle` runs rig.hardware.power.cycle and prints
every phase's time and what proved it (F9).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from rig.cli.leases import leases_of
from rig.cli.session import add_state_options
from rig.errors import PowerError, RigTimeout
from rig.station.bench import Bounds
from rig.station.rack import load_rack
from rig.station.session import StationSession
from rig.station.state import StateDir
from rig.transport.presence import wait_back, wait_gone

_DEFAULT = Bounds()
_PHASES = ("switch", "off", "gone", "settle", "on", "back", "answer")  # in the order they happen


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `power on|off|cycle` to the `rig` command line."""
    power = subparsers.add_parser("power", help="switch a station's power through its relay board or supply")
    sub = power.add_subparsers(dest="power_command", required=True, metavar="ACTION")
    actions = {
        "on": "switch on, then wait until the port is back and the firmware answers",
        "off": "switch off, then wait until the port has gone",
        "cycle": "off, port gone, settle, on, port back, firmware answers: every phase timed, with proof",
    }
    for action, text in actions.items():
        parser = sub.add_parser(action, help=text, description=f"{action.capitalize()}: {text}.")
        parser.add_argument("station", help="station name in the rack file")
        parser.add_argument("--rack", type=Path, required=True, help="rack file (a simulated rack: its rack.toml)")
        parser.add_argument("--json", action="store_true", help="print one JSON object")
        parser.add_argument(
            "--timeout",
            type=_seconds,
            metavar="S",
            help=f"bound on each wait (default: port gone {_DEFAULT.gone_s:g} s, back {_DEFAULT.back_s:g} s, "
            f"firmware answers {_DEFAULT.answer_s:g} s)",
        )
        if action != "cycle":
            parser.add_argument("--no-wait", action="store_true", help="only switch; do not wait for the port")
        add_state_options(parser)
        parser.set_defaults(func=run_power)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return value


def run_power(args: argparse.Namespace) -> int:
    rack = load_rack(args.rack)
    bounds = _DEFAULT
    if args.timeout is not None:
        bounds = replace(_DEFAULT, gone_s=args.timeout, back_s=args.timeout, answer_s=args.timeout)
    state = StateDir.at(args.state_dir or rack.state_dir)
    session = StationSession(
        rack,
        rack.station(args.station).name,
        state=state,
        leases=leases_of(args, rack, state),
        lease_wait_s=args.lease_wait,
        bounds=bounds,
    )
    with session:
        if args.power_command == "cycle":
            report = cycle(session)
        else:
            report = switch(session, on=args.power_command == "on", wait=not args.no_wait)
    print(json.dumps(report) if args.json else _text(report))
    return 0


def cycle(session: StationSession) -> dict[str, Any]:
    """Power-cycle the station with proof; the report holds every phase's time (seconds)."""
    channel = str(session.bench.power_channel())
    result = session.power_cycle()
    return {"station": session.name, "action": "cycle", "channel": channel, **asdict(result), "total_s": result.total_s}


def switch(session: StationSession, *, on: bool, wait: bool) -> dict[str, Any]:
    """Switch the station's power; with `wait`, also wait (bounded) until its port has gone or is back."""
    station = session.bench
    channel = station.power_channel()
    locator, bounds = station.locator, station.bounds
    before = locator.identity()
    started = time.monotonic()
    session.power(on)
    report: dict[str, Any] = {
        "station": station.name,
        "action": "on" if on else "off",
        "channel": str(channel),
        "switch_s": time.monotonic() - started,
        "readback": channel.state(),
        "port_before": before.device if before else None,
    }
    if not wait:
        return report
    try:
        if on:
            report["back_s"], report["answer_s"] = wait_back(locator, station.answers, bounds.back_s, bounds.answer_s)
        else:
            # already gone (powered off before): nothing to wait for
            report["gone_s"] = wait_gone(locator, before, station.answers, bounds.gone_s) if before else 0.0
    except RigTimeout as exc:
        raise PowerError(f"{channel} switched {report['action']}, but {exc}", diagnosis=exc.diagnosis) from exc
    report["port_after"] = locator.current()
    return report


def _text(report: dict[str, Any]) -> str:
    lines = [f"{report['station']}: power {report['action']} through {report['channel']}"]
    for phase in _PHASES:
        if f"{phase}_s" in report:
            lines.append(f"  {phase:<8}{report[f'{phase}_s']:8.3f} s")
    if "total_s" in report:
        lines.append(f"  {'total':<8}{report['total_s']:8.3f} s")
    if report.get("readback") is not None:
        lines.append(f"  board reads back {'on' if report['readback'] else 'off'}")
    if "port_after" in report:
        lines.append(f"  port    {report['port_before'] or '-'} -> {report['port_after'] or '-'}")
    if report.get("proof"):
        lines.append(f"  proof   {report['proof']}")
    if report.get("supply_current_off") is not None:
        lines.append(f"  supply  {report['supply_current_off']:.3f} A off, {report['supply_current_on']:.3f} A on")
    return "\n".join(lines)
