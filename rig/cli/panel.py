"""`rig panel [--rack FILE] [--host HOST] [--port PORT]`: the factory operator panel, a local web page.

The page (rig.panel) shows every station of the rack, lets an operator scan a board's label, start its
bring-up (the factory flow of `rig factory`, with the images and limits of the rack file), stop a station at
its next safe point, acknowledge a failed board, and read and export today's records.

Without --rack it serves the embedded simulated rack (the one `rig sim serve` serves) in this process, with its
state (records, leases) in the "demo" folder of the state directory, so anyone can try it. A simulated rack
file that is not served is served in this process too. What the bring-ups may erase is the factory's permit
from the rack file ([factory] erase_answering_boards); the page cannot widen it.

It listens on 127.0.0.1; --host elsewhere warns that the panel has no login. Ctrl-C (or SIGTERM) stops it:
running bring-ups stop at their next safe point and clean up (a failed board is powered off) before it exits
with status 0; a second Ctrl-C while they do stops at once (status 130).
"""

from __future__ import annotations

import argparse
import signal
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from rig.cli.factory import factory_permit, plans, rack_only_options
from rig.cli.sim import DEFAULT_RACK, served
from rig.panel import DEFAULT_HOST, DEFAULT_PORT, EXTRA, check_web_stack
from rig.station.rack import load_rack
from rig.station.state import StateDir, default_state_dir

DEMO_STATE = "demo"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `panel` to the `rig` command line."""
    panel = subparsers.add_parser(
        "panel",
        help="the factory operator panel: a local web page to label, start, stop and check bring-ups",
        description="Serve the operator panel for the stations of a rack: labels, bring-ups (as `rig factory`, "
        "with the rack file's images and limits), safe stops, acknowledgements, today's records and their export. "
        f"Needs the extra: pip install '{EXTRA}'. Without --rack: the embedded simulated rack ({DEFAULT_RACK.name}).",
    )
    panel.add_argument("--rack", type=Path, help="rack file (default: the embedded simulated rack, served here)")
    panel.add_argument("--host", default=DEFAULT_HOST, help="listen here (default %(default)s; elsewhere: a warning)")
    panel.add_argument("--port", type=_port, default=DEFAULT_PORT, help="port (default %(default)s; 0: any free port)")
    panel.add_argument(
        "--state-dir", type=Path, help="records, leases, panel state (default: the rack's, else per user)"
    )
    panel.add_argument("--records", type=Path, help="record store (default: records.sqlite3 in the state dir)")
    panel.set_defaults(func=run_panel)


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0..65535, not {value}")
    return value


def run_panel(args: argparse.Namespace) -> int:
    check_web_stack()  # before anything is served: say what to install
    from rig.panel.server import PanelServer, exposure_warning  # the web stack, now known to be there
    from rig.panel.stations import Panel

    path = args.rack or DEFAULT_RACK
    spec = load_rack(path)
    state_dir = args.state_dir or spec.state_dir or (None if args.rack else default_state_dir() / DEMO_STATE)
    state = StateDir.at(state_dir)
    records = args.records or state.records
    options = rack_only_options(path)
    run_id = f"panel-{spec.name}-{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    warning = exposure_warning(args.host)
    if warning:
        print(f"rig panel: WARNING: {warning}", file=sys.stderr)
    with served(spec, path, serve=True) as rack:
        panel = Panel(
            rack,
            plans(options, rack, rack.stations),
            state=state,
            permit=factory_permit(options, rack),
            records=records,
            run_id=run_id,
        )
        with _stopped_by_signals():
            try:
                server = PanelServer(panel, args.host, args.port)
                if rack is not spec:
                    print(f"rig panel: simulated rack {rack.name} served in this process", flush=True)
                print(f"rig panel: {server.url} (rack {rack.name}, {len(rack.stations)} stations; records {records})")
                print(f"rig panel: {panel.permit.by}; Ctrl-C to stop", flush=True)
                server.run()
            finally:
                still = panel.close()
        if still:
            print(f"rig panel: still running when it stopped: {', '.join(still)}", file=sys.stderr)
    return 0


@contextmanager
def _stopped_by_signals() -> Iterator[None]:
    """SIGINT/SIGTERM end the server (uvicorn's own handlers while it serves, which hand the signal on here);
    the panel then stops each bring-up at its safe point, itself. The process-wide stop (rig.interrupts) is kept
    out of it: its flag would also refuse the clean-up (powering a failed board off). A second signal stops at
    once (KeyboardInterrupt: status 130)."""
    seen: list[int] = []

    def on_signal(signum: int, frame: object) -> None:
        if seen:
            raise KeyboardInterrupt(f"second {signal.Signals(signum).name}: stopping at once")
        seen.append(signum)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
