"""How a command reaches a board: a station session on a port or on a rack's station, and what it did.

Every command that touches a board opens a :class:`rig.station.session.StationSession` here: on a port
(`rig update /dev/serial/by-id/... IMAGE`, a one-station rack whose lease key is the port) or on a
station of a rack file (`--rack FILE --station NAME`). The session holds the lease while the command
runs, so a command on a station that a pytest run or another command holds fails at once, naming the
holder. Afterwards the command prints what the session did (lease, config backups, restores).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from serial.tools import list_ports

from rig.cli.leases import add_lease_options, leases_of
from rig.client.esc import Timeouts
from rig.errors import Diagnosis, LinkError, RigError
from rig.station.bench import Bounds
from rig.station.permissions import Permit
from rig.station.rack import Rack, Station, load_rack
from rig.station.session import StationSession
from rig.station.state import StateDir

PORT_POLL_S = 0.05


def add_target(parser: argparse.ArgumentParser, *, destructive: bool = False, wrong_hw: bool = False) -> None:
    """PORT, or --rack FILE --station NAME; the state directory; the permissions the command can grant."""
    parser.add_argument("url", nargs="?", help="device path, by-id name, or socket://HOST:PORT (or use --rack)")
    parser.add_argument("--rack", type=Path, help="rack file: act on its --station instead of a port")
    parser.add_argument("--station", help="station of the rack file")
    add_connection_options(parser)
    add_state_options(parser)
    if destructive:
        parser.add_argument("--allow-destructive", action="store_true", help="allow steps that can brick the board")
    if wrong_hw:
        parser.add_argument("--allow-wrong-hw", action="store_true", help="write an image for other hardware")
    parser.set_defaults(parser=parser)


def add_connection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--usb-serial", help="USB serial number that finds the port again after re-enumeration")
    parser.add_argument("--timeout", type=float, default=1.0, help="reply timeout in seconds (default %(default)s)")
    parser.add_argument(
        "--connect-timeout", type=float, default=5.0, help="wait this long for the port (default %(default)s s)"
    )
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")


def add_state_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state-dir", type=Path, help="backups, records, leases (default: the rack's, else per user)")
    parser.add_argument(
        "--lease-wait", type=float, default=0.0, help="wait this long for a station another run holds (default 0)"
    )
    add_lease_options(parser)


def usb_serial_of(path: str) -> str | None:
    """The USB serial number of the port a device path (or symlink to it) names, if pyserial lists it."""
    real = os.path.realpath(path)
    for port in list_ports.comports():
        if os.path.realpath(port.device) == real:
            return port.serial_number
    return None


def target(args: argparse.Namespace, url: str | None = None) -> tuple[Rack, str]:
    """The rack and station a command acts on: --rack/--station, or a one-station rack around the port."""
    url = url or getattr(args, "url", None)
    assert url is None or isinstance(url, str)
    if getattr(args, "rack", None) is not None:
        if url:
            args.parser.error("give a port or --rack/--station, not both")
        if not args.station:
            args.parser.error("--rack needs --station")
        rack = load_rack(args.rack)
        return rack, rack.station(args.station).name
    if not url:
        args.parser.error("give the board's port (or --rack FILE --station NAME)")
        raise AssertionError("unreachable: argparse exits")
    network = "://" in url
    usb_serial = args.usb_serial or (None if network else usb_serial_of(url))
    station = Station(name=url, port=None if network else url, url=url if network else None, usb_serial=usb_serial)
    return Rack(name="port", stations=(station,)), station.name


def permit(args: argparse.Namespace) -> Permit:
    return Permit.of(
        destructive=bool(getattr(args, "allow_destructive", False)),
        wrong_hw=bool(getattr(args, "allow_wrong_hw", False)),
        by="the command line",
    )


@contextmanager
def open_session(args: argparse.Namespace, url: str | None = None) -> Iterator[StationSession]:
    """A session on the command's target, its lease held for the command; the port must exist."""
    rack, name = target(args, url)
    state = StateDir.at(getattr(args, "state_dir", None) or rack.state_dir)
    session = StationSession(
        rack,
        name,
        state=state,
        leases=leases_of(args, rack, state),
        permit=permit(args),
        lease_wait_s=getattr(args, "lease_wait", 0.0),
        bounds=replace(Bounds(), connect_s=args.connect_timeout),
        timeouts=replace(Timeouts(), reply=args.timeout),
    )
    _wait_for_port(session, args.connect_timeout)
    with session:
        try:
            yield session
        except RigError:
            tell(args, session, failed=True)
            raise
        tell(args, session)


def _wait_for_port(session: StationSession, bound_s: float) -> None:
    """A board may be re-enumerating: its port gets up to --connect-timeout to appear."""
    locator = session.bench.locator
    if not locator.observable:
        return
    deadline = time.monotonic() + bound_s
    while locator.current() is None:
        if time.monotonic() >= deadline:
            serial = session.spec.usb_serial
            by_serial = f" and no USB port has serial number {serial}" if serial else ""
            raise LinkError(
                f"no port at {locator.url}{by_serial} within {bound_s:g} s (--connect-timeout); "
                "`rig devices` lists the VESC ports",
                diagnosis=Diagnosis.NO_PORT,
            )
        time.sleep(PORT_POLL_S)


def tell(args: argparse.Namespace, session: StationSession, *, failed: bool = False) -> None:
    """What the session did, on stderr (the JSON document carries it as "session")."""
    if args.json and not failed:
        return
    for line in session.report.describe():
        print(f"session: {line}", file=sys.stderr)


def session_json(session: StationSession) -> dict[str, Any]:
    return {"session": session.report.as_json()}
