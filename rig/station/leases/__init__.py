"""Station leases: several runs, CI jobs and command lines share a rack; one of them holds a station at a time.

The backend is an interface (:class:`LeaseBackend`): :class:`SqliteLeases` for the runs of one host
(rig.station.leases.sqlite), :class:`rig.station.leases.labgrid_leases.LabgridLeases` for racks across
hosts, on a labgrid coordinator (an optional extra: ``pip install 'vesc-rig[labgrid]'``; imported only
when chosen). rig.station.leases.choice picks one from the rack file and the command line.
"""

from rig.station.leases.base import (
    POLL_S,
    TTL_S,
    Lease,
    LeaseBackend,
    LeaseBusy,
    LeaseError,
    LeaseInfo,
    LeaseLost,
    default_holder,
)
from rig.station.leases.sqlite import DB_NAME, SqliteLeases

__all__ = [
    "DB_NAME",
    "POLL_S",
    "TTL_S",
    "Lease",
    "LeaseBackend",
    "LeaseBusy",
    "LeaseError",
    "LeaseInfo",
    "LeaseLost",
    "SqliteLeases",
    "default_holder",
]
