"""Which lease backend a run uses: the command line's choice, else the rack file's, else SQLite (labgrid
when only a coordinator is given).

- ``sqlite`` (default): one host; the database in ``--lease-dir``, the rack's ``leases``, else the
  state directory.
- ``labgrid``: a labgrid coordinator at ``--lg-coordinator``, the rack's ``lg_coordinator``, else
  ``$LG_COORDINATOR`` (labgrid's own variable). One connection and one run identity per process.
  Needs the optional extra: ``pip install 'vesc-rig[labgrid]'``.

Every runner sharing a rack must use the same backend: the two do not see each other's leases.
"""

from __future__ import annotations

import os
from pathlib import Path

from rig.station.leases import LeaseBackend, LeaseError, SqliteLeases
from rig.station.rack import LEASE_BACKENDS, Rack
from rig.station.state import StateDir

ENV_COORDINATOR = "LG_COORDINATOR"


def leases_for(
    rack: Rack,
    state: StateDir,
    *,
    backend: str | None = None,
    coordinator: str | None = None,
    directory: str | Path | None = None,
) -> LeaseBackend:
    """The lease backend for a rack: `backend`, `coordinator` and `directory` (from the command line) win
    over the rack file's lease_backend, lg_coordinator and leases."""
    chosen = backend or rack.lease_backend or ("labgrid" if coordinator else "sqlite")
    if chosen not in LEASE_BACKENDS:
        raise LeaseError(f"lease backend {chosen!r} is not one of {', '.join(LEASE_BACKENDS)}")
    on_places = [s.name for s in rack.stations if s.place is not None]
    if chosen == "sqlite":
        if on_places:
            raise LeaseError(
                f"rack {rack.name}: stations {', '.join(on_places)} are labgrid places; they cannot be leased "
                "through sqlite (drop --lease-backend sqlite)"
            )
        if coordinator:
            raise LeaseError(f"a labgrid coordinator ({coordinator}) is given, but the lease backend is sqlite")
        return SqliteLeases(directory or rack.leases or state.leases)
    if directory:
        raise LeaseError(f"a lease directory ({directory}) is for the sqlite backend, not labgrid")
    address = coordinator or rack.lg_coordinator or os.environ.get(ENV_COORDINATOR)
    if not address:
        raise LeaseError(
            f"rack {rack.name}: labgrid leases need a coordinator: --lg-coordinator HOST:PORT, lg_coordinator in "
            f"the rack file, or ${ENV_COORDINATOR}"
        )
    try:
        from rig.station.lease_labgrid import labgrid_leases
    except ImportError as exc:
        raise LeaseError(f"the labgrid lease backend needs labgrid: pip install 'vesc-rig[labgrid]' ({exc})") from exc
    return labgrid_leases(address).bind(rack)
