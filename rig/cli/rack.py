"""`rig rack check --rack FILE [--json] [--serve]`: preflight of every station of a rack.

Per station: the port is there (found by path or USB serial number), the firmware answers
FW_VERSION (and every CAN node the rack lists behind it), the relay board opens and reads the
channel back where it can, the supply reads its voltage, the SWD probe opens a session. Every check
is bounded. A table (or one JSON document) shows the result; exit 1 when anything is missing.

A simulated rack file must be served first (`rig sim serve`, then check the resolved rack it writes),
or served in-process for the check with --serve.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from rig.cli.output import emit_json, make_console
from rig.cli.sim import served
from rig.client.esc import Timeouts
from rig.errors import RigError
from rig.hardware.swd import ConnectMode
from rig.station.bench import Bounds
from rig.station.leases import LeaseBusy
from rig.station.rack import Rack, Station, load_rack
from rig.station.session import StationSession
from rig.station.state import StateDir
from rig.transport.presence import PortLocator

log = logging.getLogger(__name__)

CHECKS = ("port", "firmware", "relay", "supply", "swd")  # and "lease", "broken" when they fail
DEFAULT_BOUND_S = 2.0


@dataclass(frozen=True)
class Check:
    """One item of a station: ok, missing (ok False), or not part of this station (ok None)."""

    ok: bool | None
    detail: str


@dataclass
class StationCheck:
    station: str
    checks: dict[str, Check] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(c.ok is not False for c in self.checks.values())

    def failures(self) -> list[str]:
        return [name for name, c in self.checks.items() if c.ok is False]


def _run(check: Callable[[], str]) -> Check:
    try:
        return Check(True, check())
    except (RigError, OSError) as exc:
        return Check(False, str(exc))


def check_station(rack: Rack, spec: Station, bound_s: float, state: StateDir) -> StationCheck:
    """Every check of one station, each bounded by about `bound_s`, through a session holding its lease
    (a station another run holds is reported as in use, not touched)."""
    result = StationCheck(spec.name)
    session = StationSession(
        rack,
        spec.name,
        state=state,
        bounds=replace(Bounds(), connect_s=bound_s),
        timeouts=replace(Timeouts(), reply=min(bound_s, 0.5), ping_can=bound_s),
    )
    try:
        session.open()
    except LeaseBusy as exc:
        result.checks["lease"] = Check(False, f"in use: {exc}")
    else:
        try:
            _check_parts(session, result, bound_s)
        finally:
            session.close()
    mark = state.broken(session.key)
    if mark is not None:
        result.checks["broken"] = Check(False, f"marked broken {mark.at_text}: {mark.diagnosis}: {mark.detail}")
    for name in CHECKS:
        result.checks.setdefault(name, Check(None, "none"))
    return result


def _check_parts(session: StationSession, result: StationCheck, bound_s: float) -> None:
    spec = session.spec
    if spec.link_url is None:
        result.checks["port"] = Check(False, "no port, url or usb_serial in the rack file")
        result.checks["firmware"] = Check(False, "no port to ask")
    else:
        result.checks["port"] = _port(spec)
        result.checks["firmware"] = _run(lambda: _firmware(session, bound_s))
    result.checks["relay"] = _run(lambda: _relay(session)) if spec.relay else Check(None, "none")
    result.checks["supply"] = _run(lambda: _supply(session)) if spec.supply else Check(None, "none")
    result.checks["swd"] = _run(lambda: _swd(session, bound_s)) if spec.swd else Check(None, "none")


def _port(spec: Station) -> Check:
    locator = PortLocator(spec.link_url or "", spec.usb_serial)
    if not locator.observable:
        return Check(None, f"{locator.url} (network: proven by the firmware answering)")
    device = locator.current()
    if device is None:
        serial = f" (USB serial {spec.usb_serial})" if spec.usb_serial else ""
        return Check(False, f"{locator.url} absent{serial}")
    return Check(True, device)


def _firmware(session: StationSession, bound_s: float) -> str:
    with session.connect(bound_s=bound_s) as esc:
        assert esc.info is not None
        text = f"{esc.info.version} hw {esc.info.hw_name}"
        for node, client in session.nodes(esc)[1:]:
            text += f", CAN {node}: {client.fw_version().version}"
    return text


def _relay(session: StationSession) -> str:
    state = session.bench.power_channel().state()
    return f"{session.spec.relay} " + ("(no read-back)" if state is None else "on" if state else "off")


def _supply(session: StationSession) -> str:
    supply = session.bench.supply()
    assert supply is not None
    return f"{session.spec.supply}: {supply.read_voltage():.2f} V, output {'on' if supply.output() else 'off'}"


def _swd(session: StationSession, bound_s: float) -> str:
    """Attach without halting or resetting the MCU (a board running its firmware keeps running)."""
    swd = session.swd()
    swd.config = replace(swd.config, connect_attempts=1, attempt_bound_s=bound_s, connect_mode=ConnectMode.ATTACH)
    with swd:
        return f"{swd.config.probe_id} ({swd.config.target}, attached)"


def check_rack(rack: Rack, stations: tuple[Station, ...], bound_s: float, state: StateDir) -> list[StationCheck]:
    return [check_station(rack, spec, bound_s, state) for spec in stations]


# --- the command -----------------------------------------------------------------------------------


def register(subparsers: argparse._SubParsersAction) -> None:
    rack = subparsers.add_parser("rack", help="rack files")
    sub = rack.add_subparsers(dest="rack_command", required=True, metavar="ACTION")
    check = sub.add_parser(
        "check",
        help="preflight: every station's port, firmware, relay, supply and SWD probe",
        description="Check that every station of a rack is ready: port present, firmware answering, relay "
        "board, supply and SWD probe reachable. Exit 1 when anything is missing.",
    )
    check.add_argument("--rack", type=Path, required=True, help="rack file (a resolved one for a simulated rack)")
    check.add_argument("--station", action="append", default=[], help="only these stations or tags (repeatable)")
    check.add_argument("--serve", action="store_true", help="serve a simulated rack in-process for the check")
    check.add_argument("--bound", type=float, default=DEFAULT_BOUND_S, help="seconds per check (default %(default)s)")
    check.add_argument("--json", action="store_true", help="one JSON document on stdout")
    check.add_argument("--state-dir", type=Path, help="leases and broken marks (default: the rack's, else per user)")
    check.set_defaults(func=run_check)
    clear = sub.add_parser(
        "clear-broken",
        help="forget that a station is broken (after the board was repaired)",
        description="A transition that could not bring a board back marks its station broken, and tests skip it "
        "with that diagnosis. Once the board is repaired, clear the mark.",
    )
    clear.add_argument("--rack", type=Path, required=True, help="rack file")
    clear.add_argument("station", nargs="+", help="station names")
    clear.add_argument("--state-dir", type=Path, help="where the marks are (default: the rack's, else per user)")
    clear.set_defaults(func=run_clear_broken)


def run_check(args: argparse.Namespace) -> int:
    spec = load_rack(args.rack)
    state = StateDir.at(args.state_dir or spec.state_dir)
    with served(spec, args.rack, args.serve) as rack:
        results = check_rack(rack, rack.select(args.station), args.bound, state)
    ok = all(r.ok for r in results)
    if args.json:
        emit_json({"rack": rack.name, "file": str(args.rack), "ok": ok, "stations": [_json(r) for r in results]})
    else:
        make_console().print(_table(rack.name, results))
    for r in results:
        if not r.ok:
            print(f"rig rack check: station {r.station}: {', '.join(r.failures())} not ready", file=sys.stderr)
    return 0 if ok else 1


def _json(result: StationCheck) -> dict[str, object]:
    checks = {name: {"ok": c.ok, "detail": c.detail} for name, c in result.checks.items()}
    return {"station": result.station, "ok": result.ok, "checks": checks}


def _table(name: str, results: list[StationCheck]) -> Table:
    table = Table(title=f"rack {name}: preflight")
    table.add_column("station", style="bold", overflow="fold")
    for column in CHECKS:
        table.add_column(column, overflow="fold")
    table.add_column("ready")
    for r in results:
        cells = [_cell(r.checks[c]) for c in CHECKS]
        table.add_row(r.station, *cells, "[green]yes[/]" if r.ok else "[red]NO[/]")
    return table


def _cell(check: Check) -> str:
    if check.ok is None:
        return f"[dim]{escape(check.detail)}[/]"
    if check.ok:
        return f"[green]✓[/] {escape(check.detail)}"
    return f"[red]✗ {escape(check.detail)}[/]"


def run_clear_broken(args: argparse.Namespace) -> int:
    rack = load_rack(args.rack)
    state = StateDir.at(args.state_dir or rack.state_dir)
    for name in args.station:
        station = rack.station(name)
        cleared = state.clear_broken(f"{rack.name}/{station.name}")
        print(f"{name}: " + ("broken mark cleared" if cleared else "was not marked broken"))
    return 0
