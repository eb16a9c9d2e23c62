"""Station leases: several pytest runs or CI jobs share a rack, one run holds a station at a time.

A lease is a row in an SQLite database (Python's sqlite3): rack, station, holder, expiry. Taking a
station is one ``BEGIN IMMEDIATE`` transaction: insert the row, or take over a row whose expiry has
passed. The holder's heartbeat thread pushes the expiry forward every ``ttl_s / 3``; a holder that
dies (SIGKILL, a cancelled CI job, a runner that lost power) stops renewing, and after ``ttl_s``
the next run takes the station over. Nothing needs cleaning up by hand.

Why SQLite on a path, not a lock file or a server:

- flock/fcntl locks vanish with their process, which is what we want, but on NFS they go through
  the lock manager: a client that loses contact with the server can hold a lock until the server's
  grace period ends, and some NFS set-ups do not implement them at all. They also cannot say who
  holds the station or until when, which a skipped test should report.
- A lease with an expiry needs an atomic read-compare-write. SQLite gives exactly that in one file,
  with no daemon, in the standard library, and the row says who holds the station and until when.
- A database server (PostgreSQL, Redis) would do across hosts too, but the rack host does not run
  one for the rig; the runs that share a rack run on the rack host (or reach one shared disk).

Where the database lives: the rack file's ``leases`` key (a directory), or ``--lease-dir``. Put it on
a local disk of the host where the runs execute. SQLite's own documentation warns that its locking
is unreliable on network file systems, so do not point several hosts at one NFS file; share a rack
between hosts by running their jobs on the rack host instead. Expiry uses the wall clock
(``time.time()``), the only clock that processes share; ``ttl_s`` is far longer than any clock step.
"""

from __future__ import annotations

import logging
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

from rig.errors import RigError, RigTimeout

log = logging.getLogger(__name__)

DB_NAME = "vesc-rig-leases.sqlite3"
TTL_S = 30.0  # a dead holder's station is free this long after its last renewal
POLL_S = 0.2  # how often a waiting run looks again
BUSY_S = 5.0  # how long one transaction waits for another one's write lock

_SCHEMA = """CREATE TABLE IF NOT EXISTS lease (
    rack TEXT NOT NULL,
    station TEXT NOT NULL,
    holder TEXT NOT NULL,
    token TEXT NOT NULL,
    acquired REAL NOT NULL,
    expires REAL NOT NULL,
    PRIMARY KEY (rack, station)
)"""


class LeaseError(RigError):
    """The lease database cannot be used, or a lease was lost to another run."""


class LeaseBusy(RigTimeout):
    """The station stayed held by another run for the whole bound."""

    def __init__(self, rack: str, station: str, holder: LeaseInfo | None, bound_s: float) -> None:
        by = f"held by {holder.holder} until {holder.expires_text}" if holder else "held by another run"
        super().__init__(f"lease on station {station} of rack {rack} ({by})", bound_s)
        self.holder = holder


@dataclass(frozen=True)
class LeaseInfo:
    """A lease as the database has it."""

    rack: str
    station: str
    holder: str
    token: str
    acquired: float
    expires: float

    @property
    def expires_text(self) -> str:
        return time.strftime("%H:%M:%S", time.localtime(self.expires))


def default_holder() -> str:
    """Who this process is, as other runs read it: host, pid, and the CI job if there is one."""
    job = os.environ.get("CI_JOB_ID") or os.environ.get("GITHUB_RUN_ID") or os.environ.get("BUILD_TAG")
    return f"{socket.gethostname()}:{os.getpid()}" + (f" (job {job})" if job else "")


class LeaseStore:
    """The lease database of a rack (a directory; the database file is created in it)."""

    def __init__(self, directory: str | Path, *, ttl_s: float = TTL_S, busy_s: float = BUSY_S) -> None:
        self.directory = Path(directory)
        self.path = self.directory / DB_NAME
        self.ttl_s = ttl_s
        self.busy_s = busy_s
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            with self._transaction() as db:
                db.execute(_SCHEMA)
        except OSError as exc:
            raise LeaseError(f"lease directory {self.directory}: {exc}") from exc

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE: taken before reading, so compare-and-set is atomic)."""
        try:
            with closing(sqlite3.connect(self.path, timeout=self.busy_s, isolation_level=None)) as db:
                db.execute("BEGIN IMMEDIATE")
                try:
                    yield db
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
        except sqlite3.OperationalError as exc:  # "database is locked" after busy_s, or a broken file
            raise LeaseError(f"lease database {self.path}: {exc} (waited up to {self.busy_s:g} s)") from exc

    def holder(self, rack: str, station: str) -> LeaseInfo | None:
        """The current, unexpired lease on a station, if any."""
        with self._transaction() as db:
            row = db.execute("SELECT * FROM lease WHERE rack = ? AND station = ?", (rack, station)).fetchone()
        lease = LeaseInfo(*row) if row else None
        return lease if lease and lease.expires > time.time() else None

    def try_acquire(self, rack: str, station: str, holder: str) -> tuple[Lease | None, LeaseInfo | None]:
        """Take the station if it is free or its lease expired: (the lease, None), else (None, current holder)."""
        token = os.urandom(8).hex()
        now = time.time()
        with self._transaction() as db:
            row = db.execute("SELECT * FROM lease WHERE rack = ? AND station = ?", (rack, station)).fetchone()
            current = LeaseInfo(*row) if row else None
            if current is not None and current.expires > now:
                return None, current
            db.execute(
                "INSERT OR REPLACE INTO lease VALUES (?, ?, ?, ?, ?, ?)",
                (rack, station, holder, token, now, now + self.ttl_s),
            )
        if current is not None:
            log.warning("%s/%s: took over the lease of %s (expired %s)", rack, station, current.holder, current.expires)
        return Lease(self, LeaseInfo(rack, station, holder, token, now, now + self.ttl_s)), None

    def acquire(self, rack: str, station: str, *, bound_s: float, holder: str | None = None) -> Lease:
        """Wait (at most `bound_s`) for the station; LeaseBusy naming the holder and the bound otherwise."""
        who = holder or default_holder()
        deadline = time.monotonic() + bound_s
        while True:
            lease, current = self.try_acquire(rack, station, who)
            if lease is not None:
                lease.start_heartbeat()
                return lease
            if time.monotonic() >= deadline:
                raise LeaseBusy(rack, station, current, bound_s)
            time.sleep(min(POLL_S, max(0.0, deadline - time.monotonic())))

    def renew(self, lease: LeaseInfo) -> float:
        """Push the lease's expiry forward; LeaseError if another run holds the station now."""
        expires = time.time() + self.ttl_s
        with self._transaction() as db:
            changed = db.execute(
                "UPDATE lease SET expires = ? WHERE rack = ? AND station = ? AND token = ?",
                (expires, lease.rack, lease.station, lease.token),
            ).rowcount
        if not changed:
            raise LeaseError(f"lease on {lease.station} of rack {lease.rack} was lost (expired and taken over)")
        return expires

    def release(self, lease: LeaseInfo) -> None:
        """Give the station back (only if this lease still holds it)."""
        with self._transaction() as db:
            db.execute(
                "DELETE FROM lease WHERE rack = ? AND station = ? AND token = ?",
                (lease.rack, lease.station, lease.token),
            )


class Lease:
    """A held station; renewed by a heartbeat thread until released (use it with `with`)."""

    def __init__(self, store: LeaseStore, info: LeaseInfo) -> None:
        self.store = store
        self.info = info
        self.lost: LeaseError | None = None  # set by the heartbeat if another run took the station
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start_heartbeat(self) -> None:
        self._thread = threading.Thread(target=self._beat, name=f"lease-{self.info.station}", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.store.ttl_s / 3):
            try:
                self.store.renew(self.info)
            except LeaseError as exc:
                self.lost = exc
                log.error("%s", exc)
                return

    def release(self) -> None:
        """Stop renewing and give the station back."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.store.busy_s + 1.0)
        if self.lost is None:
            self.store.release(self.info)

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
