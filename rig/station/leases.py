"""Station leases: several runs, CI jobs and command lines share a rack; one of them holds a station at a time.

A lease names a station (its key, ``rack/station``) and the resources the station is made of (its port
path, USB serial number, URL, SWD probe, relay channel): two leases conflict when they share the key
or any resource, so ``rig update /dev/serial/by-id/...`` finds the station a pytest run holds under its
rack name, and two rack files that describe the same board cannot both take it.

The backend is an interface (:class:`LeaseBackend`): :class:`SqliteLeases` for the runs of one host,
the labgrid coordinator for racks across hosts (rig.station.lease_labgrid; rig.station.lease_choice picks
one from the command line and the rack file). The SQLite backend keeps one row per lease: key,
holder, token, expiry and resources. Taking a station is one ``BEGIN IMMEDIATE`` transaction: look for
an unexpired lease that conflicts, else insert. The holder's heartbeat thread pushes the expiry
forward every ``ttl_s / 3``; a holder that dies (SIGKILL, a cancelled CI job, a runner that lost power)
stops renewing, and after ``ttl_s`` the next run takes the station over; sooner on the same host, where
a holder whose process no longer exists is known to be dead.

A heartbeat that meets a transient error ("database is locked": another process holds the write lock
for a while) keeps trying until the lease would expire; only then, or when another run really took the
station, is the lease lost. A lost lease calls its ``on_lost`` callbacks at once (the station session
refuses every further operation), so two runs never act on one station.

Why SQLite on a path, not a lock file or a server: flock/fcntl locks vanish with their process, but on
NFS they go through the lock manager and cannot say who holds a station or until when, which a refused
run should report. A lease with an expiry needs an atomic read-compare-write; SQLite gives exactly that
in one file, with no daemon, in the standard library. Keep the file on a local disk of the host where
the runs execute (SQLite's locking is unreliable on network file systems); racks across hosts use the
labgrid backend. Expiry uses the wall clock (``time.time()``), the only clock that processes share.
"""

from __future__ import annotations

import getpass
import json
import logging
import math
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from rig.errors import Diagnosis, RigError, RigTimeout

log = logging.getLogger(__name__)

DB_NAME = "leases.sqlite3"
TTL_S = 30.0  # a dead holder's station is free this long after its last renewal
POLL_S = 0.2  # how often a waiting run looks again
BUSY_S = 2.0  # how long one SQLite call waits for another one's write lock before it is tried again
RENEW_MARGIN_S = 0.5  # a heartbeat that has not renewed this long before the expiry gives the lease up

_SCHEMA = """CREATE TABLE IF NOT EXISTS lease (
    key TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    token TEXT NOT NULL,
    acquired REAL NOT NULL,
    expires REAL NOT NULL,
    resources TEXT NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL
)"""


class LeaseError(RigError):
    """The lease database cannot be used."""

    diagnosis = Diagnosis.LEASE


class LeaseLost(LeaseError):
    """A held lease expired and another run took the station, or it could not be renewed in time."""


class LeaseBusy(RigTimeout):
    """The station stayed held by another run for the whole bound."""

    diagnosis = Diagnosis.LEASE

    def __init__(self, key: str, holder: LeaseInfo | None, bound_s: float, why: str = "") -> None:
        by = f"held by {holder.holder} until {holder.expires_text}" if holder else "held by another run"
        RigError.__init__(self, f"station {key} is {by}{why}; waited {bound_s:g} s (--lease-wait)")
        self.what = f"lease on station {key}"
        self.bound_s = bound_s
        self.holder = holder


@dataclass(frozen=True)
class LeaseInfo:
    """A lease as the backend has it."""

    key: str
    holder: str
    token: str
    acquired: float
    expires: float
    resources: tuple[str, ...] = ()
    host: str = ""
    pid: int = 0

    @property
    def holder_dead(self) -> bool:
        """Whether the holding process is known to be gone: it ran on this host and its pid no longer exists
        (a killed run's station is free at once here, not only after the TTL)."""
        if self.host != socket.gethostname() or self.pid <= 0:
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    @property
    def expires_text(self) -> str:
        if self.expires == math.inf:  # a labgrid place a person acquired
            return "they release it"
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.expires))


def default_holder() -> str:
    """Who this process is, as other runs read it: user, host, pid, and the CI job if there is one."""
    job = os.environ.get("CI_JOB_ID") or os.environ.get("GITHUB_RUN_ID") or os.environ.get("BUILD_TAG")
    user = getpass.getuser()
    return f"{user}@{socket.gethostname()}:{os.getpid()}" + (f" (job {job})" if job else "")


class LeaseBackend(Protocol):
    """Where leases live: one host (SQLite), or a labgrid coordinator."""

    name: str

    def acquire(
        self, key: str, resources: Collection[str] = (), *, bound_s: float, holder: str | None = None
    ) -> Lease: ...

    def holder(self, key_or_resource: str) -> LeaseInfo | None: ...


class SqliteLeases:
    """Leases in an SQLite file in `directory` (the state directory by default)."""

    name = "sqlite"

    def __init__(self, directory: str | Path, *, ttl_s: float = TTL_S, busy_s: float = BUSY_S) -> None:
        self.directory = Path(directory)
        self.path = self.directory / DB_NAME
        self.ttl_s = ttl_s
        self.busy_s = busy_s
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            with self._transaction(time.monotonic() + 30 * busy_s) as db:
                db.execute(_SCHEMA)
        except OSError as exc:
            raise LeaseError(f"lease directory {self.directory}: {exc}") from exc

    @contextmanager
    def _transaction(self, deadline: float) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE, so compare-and-set is atomic); a locked database is tried
        again until `deadline` (time.monotonic()), then LeaseError."""
        while True:
            try:
                with closing(sqlite3.connect(self.path, timeout=self.busy_s, isolation_level=None)) as db:
                    db.execute("BEGIN IMMEDIATE")
                    try:
                        yield db
                    except BaseException:
                        db.execute("ROLLBACK")
                        raise
                    db.execute("COMMIT")
                return
            except sqlite3.OperationalError as exc:
                transient = "locked" in str(exc) or "busy" in str(exc)
                if not transient or time.monotonic() >= deadline:
                    raise LeaseError(f"lease database {self.path}: {exc}") from exc
                log.info("lease database %s: %s; trying again", self.path, exc)
                time.sleep(min(POLL_S, max(0.0, deadline - time.monotonic())))

    def _rows(self, db: sqlite3.Connection) -> list[LeaseInfo]:
        return [
            LeaseInfo(key, holder, token, acquired, expires, tuple(json.loads(resources)), host, pid)
            for key, holder, token, acquired, expires, resources, host, pid in db.execute("SELECT * FROM lease")
        ]

    def holder(self, key_or_resource: str) -> LeaseInfo | None:
        """The unexpired lease that holds a station key or a resource, if any."""
        now = time.time()
        with self._transaction(time.monotonic() + self.ttl_s) as db:
            rows = self._rows(db)
        live = (r for r in rows if r.expires > now and not r.holder_dead)
        return next((r for r in live if r.key == key_or_resource or key_or_resource in r.resources), None)

    def try_acquire(
        self, key: str, resources: Collection[str], holder: str, *, deadline: float | None = None
    ) -> tuple[Lease | None, LeaseInfo | None]:
        """Take the station if nothing unexpired conflicts: (the lease, None), else (None, the holder)."""
        token = os.urandom(8).hex()
        wanted = set(resources)
        now = time.time()
        taken_over: list[LeaseInfo] = []
        with self._transaction(deadline if deadline is not None else time.monotonic() + self.ttl_s) as db:
            for row in self._rows(db):
                conflicts = row.key == key or wanted.intersection(row.resources)
                if not conflicts:
                    continue
                if row.expires > now and not row.holder_dead:
                    return None, row
                taken_over.append(row)
                db.execute("DELETE FROM lease WHERE key = ? AND token = ?", (row.key, row.token))
            info = LeaseInfo(
                key, holder, token, now, now + self.ttl_s, tuple(sorted(wanted)), socket.gethostname(), os.getpid()
            )
            db.execute(
                "INSERT INTO lease VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (key, holder, token, now, info.expires, json.dumps(info.resources), info.host, info.pid),
            )
        for row in taken_over:
            why = f"its process {row.pid} is gone" if row.expires > now else f"it expired {row.expires_text}"
            log.warning("%s: took over the lease of %s (%s)", key, row.holder, why)
        return Lease(self, info), None

    def acquire(self, key: str, resources: Collection[str] = (), *, bound_s: float, holder: str | None = None) -> Lease:
        """Wait (at most `bound_s`) for the station; LeaseBusy naming the holder and the bound otherwise."""
        who = holder or default_holder()
        deadline = time.monotonic() + bound_s
        while True:
            lease, current = self.try_acquire(key, resources, who, deadline=deadline + self.ttl_s)
            if lease is not None:
                lease.start_heartbeat()
                return lease
            if time.monotonic() >= deadline:
                assert current is not None
                why = "" if current.key == key else f" as {current.key}, which shares its {_shared(current, resources)}"
                raise LeaseBusy(key, current, bound_s, why)
            time.sleep(min(POLL_S, max(0.0, deadline - time.monotonic())))

    def renew(self, lease: LeaseInfo) -> float:
        """Push the lease's expiry forward; LeaseLost if another run holds the station now or the database
        stayed locked until the lease would expire."""
        expires = time.time() + self.ttl_s
        deadline = time.monotonic() + max(0.0, lease.expires - time.time() - RENEW_MARGIN_S)
        try:
            with self._transaction(deadline) as db:
                changed = db.execute(
                    "UPDATE lease SET expires = ? WHERE key = ? AND token = ?", (expires, lease.key, lease.token)
                ).rowcount
        except LeaseError as exc:
            raise LeaseLost(f"lease on station {lease.key} could not be renewed before it expired: {exc}") from exc
        if not changed:
            raise LeaseLost(f"lease on station {lease.key} was lost (expired and taken over by another run)")
        return expires

    def release(self, lease: LeaseInfo) -> None:
        """Give the station back (only if this lease still holds it)."""
        with self._transaction(time.monotonic() + self.ttl_s) as db:
            db.execute("DELETE FROM lease WHERE key = ? AND token = ?", (lease.key, lease.token))


def _shared(current: LeaseInfo, resources: Collection[str]) -> str:
    return ", ".join(sorted(set(current.resources).intersection(resources))) or "key"


class _Renewing(Protocol):
    ttl_s: float

    def renew(self, lease: LeaseInfo) -> float: ...

    def release(self, lease: LeaseInfo) -> None: ...


@dataclass(eq=False)
class Lease:
    """A held station; renewed by a heartbeat thread until released (use it with `with`).

    `gate`, when the backend sets one, runs in every check(): the labgrid backend holds a run there while
    its coordinator connection is broken, until it knows whether the station is still the run's."""

    store: _Renewing
    info: LeaseInfo
    lost: LeaseLost | None = None  # set by the heartbeat when the lease is gone
    on_lost: list[Callable[[LeaseLost], None]] = field(default_factory=list)
    gate: Callable[[Lease], None] | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start_heartbeat(self) -> None:
        self._thread = threading.Thread(target=self._beat, name=f"lease-{self.info.key}", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.store.ttl_s / 3):
            try:
                expires = self.store.renew(self.info)
            except LeaseLost as exc:
                self.lose(exc)
                return
            self.info = LeaseInfo(**{**vars(self.info), "expires": expires})

    def lose(self, exc: LeaseLost) -> None:
        """Mark the lease lost (once, and not after its release): logged, and the on_lost callbacks called."""
        if self.lost is not None or self._stop.is_set():
            return
        self.lost = exc
        log.error("%s", exc)
        for callback in self.on_lost:
            callback(exc)

    def check(self) -> None:
        """Raise LeaseLost if the lease is gone (the session calls this before every operation)."""
        if self.lost is None and self.gate is not None:
            self.gate(self)
        if self.lost is not None:
            raise self.lost

    def release(self) -> None:
        """Stop renewing and give the station back."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(self.store.ttl_s)
        if self.lost is None:
            self.store.release(self.info)

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
