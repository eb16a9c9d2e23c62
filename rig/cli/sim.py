"""`rig sim serve [--rack FILE] [--json] [--dir DIR] [--speed S]`: serve a simulated rack until interrupted.

Prints one line per station's ESC, one per relay board and supply, then one for the rack itself
(resolved rack file, control socket, run directory), and keeps serving. With ``--json`` every line is
a JSON object with a ``type`` of "esc", "relay", "supply" or "rack". SIGINT or SIGTERM stop it
cleanly: ports, symlinks and sockets are removed (and the run directory, when it was a fresh one).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import rig
from rig.errors import RackFileError
from rig.sim.serve import SimRack
from rig.station.rack import Rack, Station, load_rack

DEFAULT_RACK = Path(rig.__file__).resolve().parent.parent / "fixtures" / "racks" / "sim.toml"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `sim` group (`sim serve`, and `sim image` where rig.cli.sim_image provides it)."""
    sim = subparsers.add_parser("sim", help="the simulated ESC rack")
    sub = sim.add_subparsers(dest="sim_command", required=True, metavar="ACTION")
    serve = sub.add_parser(
        "serve",
        help="serve a simulated rack in the foreground",
        description="Serve the ESCs, relay boards, supplies and SWD probes of a simulated rack where hardware "
        "would be, print where (one line each), and keep serving until interrupted.",
    )
    serve.add_argument("--rack", type=Path, default=DEFAULT_RACK, help="simulated rack file (default: %(default)s)")
    serve.add_argument("--json", action="store_true", help="one JSON object per line")
    serve.add_argument("--dir", type=Path, default=None, help="run directory (default: a fresh temporary one)")
    serve.add_argument("--speed", type=float, default=0.0, help="modelled time factor: 0 instant, 1 real time")
    serve.add_argument(
        "--schemas",
        type=Path,
        help="VESC Tool source folder (or exported schema files): boards hold their version's defaults by field "
        "(default: the rack file's schemas, else $VESC_TOOL_SRC, else opaque configs)",
    )
    serve.set_defaults(func=run_serve)
    if importlib.util.find_spec("rig.cli.sim_image") is not None:
        importlib.import_module("rig.cli.sim_image").add_image_command(sub)


def station_line(station: Station) -> dict[str, Any]:
    """The JSON line of one served station (its USB node; CAN peers listed under `peers`)."""
    assert station.sim is not None
    node = station.sim.node
    return {
        "type": "esc",
        "name": station.name,
        "port": station.port,
        "tcp": station.bridge.removeprefix("socket://") if station.bridge else None,
        "usb_serial": station.usb_serial,
        "uid": node.uid.hex(),
        "hw": node.hw,
        "fw": node.fw,
        "can_id": node.can_id,
        "can_ids": list(station.can_ids),
        "peers": [{"can_id": p.can_id, "hw": p.hw, "fw": p.fw, "uid": p.uid.hex()} for p in station.sim.peers],
        "relay": str(station.relay) if station.relay else None,
        "supply": station.supply,
        "swd": station.swd.probe if station.swd else None,
        "swd_target": station.swd.target if station.swd else None,
        "faults": list(node.faults),
    }


def lines(rack: Rack, sim: SimRack) -> list[dict[str, Any]]:
    """Every line `rig sim serve` prints for a resolved rack."""
    out = [station_line(s) for s in rack.stations]
    out += [{"type": "relay", "name": b.name, "kind": b.kind, "port": b.port, "tcp": b.tcp} for b in rack.relays]
    out += [{"type": "supply", "name": s.name, "kind": s.kind, "port": s.port, "tcp": s.tcp} for s in rack.supplies]
    rack_line = {"type": "rack", "name": rack.name, "rack": str(sim.rack_file), "control": rack.control}
    out.append({**rack_line, "dir": str(sim.run_dir), "configs": sim.configs.describe()})
    return out


def _text(line: dict[str, Any]) -> str:
    if line["type"] == "esc":
        extra = f" tcp {line['tcp']}" if line["tcp"] else ""
        extra += f" swd {line['swd']}" if line["swd"] else ""
        peers = "".join(f" + CAN {p['can_id']} ({p['hw']} {p['fw']})" for p in line["peers"])
        return f"esc    {line['name']}: {line['port']}  hw {line['hw']} fw {line['fw']}{peers}{extra}"
    if line["type"] in ("relay", "supply"):
        return f"{line['type']:<6} {line['name']}: {line['kind']} at {line['port'] or 'tcp://' + line['tcp']}"
    return f"rack   {line['name']}: {line['rack']} (control {line['control']})\n       {line['configs']}"


def run_serve(args: argparse.Namespace) -> int:
    rack = load_rack(args.rack)
    if args.schemas is not None:  # the resolved rack names them too, so host commands read the same schemas
        rack = replace(rack, schemas=str(args.schemas.expanduser().resolve()))
    fresh = args.dir is None
    run_dir = Path(tempfile.mkdtemp(prefix="rig-sim-")) if fresh else args.dir
    print(f"rig sim serve: run directory {run_dir}", file=sys.stderr if args.json else sys.stdout, flush=True)
    stop: list[int] = []  # the handler only appends: taking a lock in a signal handler can deadlock
    previous = {sig: signal.signal(sig, lambda sig, _: stop.append(sig)) for sig in (signal.SIGINT, signal.SIGTERM)}
    sim = SimRack(rack, run_dir, args.speed)
    try:
        resolved = sim.start()
        for line in lines(resolved, sim):
            print(json.dumps(line) if args.json else _text(line))
        sys.stdout.flush()
        while not stop:
            time.sleep(0.1)
    finally:
        sim.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if fresh:
            shutil.rmtree(run_dir, ignore_errors=True)
    return 0


@contextmanager
def served(rack: Rack, path: Path, serve: bool) -> Iterator[Rack]:
    """The rack as host code uses it: a hardware or served rack as it is, a simulated one served here."""
    if rack.served:
        yield rack
        return
    if not serve:
        raise RackFileError(
            f"{path} is a simulated rack that is not served: run `rig sim serve --rack {path}` and use the "
            "resolved rack file it writes (rack.toml in its run directory), or add --serve to serve it for this run"
        )
    with tempfile.TemporaryDirectory(prefix="rig-serve-") as run_dir, SimRack(rack, Path(run_dir)) as sim:
        yield sim.resolved
