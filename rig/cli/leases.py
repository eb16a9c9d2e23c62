"""The command line's lease options: --lease-backend and --lg-coordinator (rig.station.lease_choice)."""

from __future__ import annotations

import argparse

from rig.station.lease_choice import leases_for
from rig.station.leases import LeaseBackend
from rig.station.rack import LEASE_BACKENDS, Rack
from rig.station.state import StateDir


def add_lease_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--lease-backend",
        choices=LEASE_BACKENDS,
        help="where station leases live: sqlite (one host) or labgrid (a coordinator); default: the rack's",
    )
    parser.add_argument(
        "--lg-coordinator",
        metavar="HOST:PORT",
        help="labgrid coordinator for --lease-backend labgrid (default: the rack's, else $LG_COORDINATOR)",
    )


def leases_of(args: argparse.Namespace, rack: Rack, state: StateDir) -> LeaseBackend:
    """The lease backend the command line and the rack file choose."""
    return leases_for(
        rack,
        state,
        backend=getattr(args, "lease_backend", None),
        coordinator=getattr(args, "lg_coordinator", None),
    )
