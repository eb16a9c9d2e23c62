"""What every lease backend shares: the lease a run holds, its heartbeat, the errors, the backend interface.

A lease names a station (its key, ``rack/station``) and the resources the station is made of (its port
path, USB serial number, URL, SWD probe, relay channel). The holder's heartbeat thread renews it every
``ttl_s / 3`` through its backend; a holder that dies stops renewing, and after ``ttl_s`` the next run
takes the station over. A lost lease calls its ``on_lost`` callbacks at once (the station session
refuses every further operation), so two runs never act on one station.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Protocol

from rig.errors import Diagnosis, RigError, RigTimeout

log = logging.getLogger(__name__)

TTL_S = 30.0  # a dead holder's station is free this long after its last renewal
POLL_S = 0.2  # how often a waiting run looks again
RENEW_MARGIN_S = 0.5  # a heartbeat that has not renewed this long before the expiry gives the lease up


class LeaseError(RigError):
    """The lease store (database or coordinator) cannot be used."""

    diagnosis = Diagnosis.LEASE


class LeaseLost(LeaseError):
    """A held lease expired and another run took the station, or it could not be renewed in time."""


class LeaseBusy(RigTimeout):
    """The station stayed held by another run for the whole bound."""

    diagnosis = Diagnosis.LEASE

    def __init__(self, key: str, holder: LeaseInfo | None, bound_s: float, why: str = "") -> None:
        by = f"held by {holder.holder} until {holder.expires_text}" if holder else "held by another run"
        super().__init__(f"lease on station {key} ({by}{why})", bound_s)
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

    @property
    def expires_text(self) -> str:
        if self.expires == math.inf:  # a labgrid place a person acquired
            return "they release it"
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.expires))


def default_holder() -> str:
    """Who this process is, as other runs read it: user, host, pid, and the CI job if there is one."""
    job = os.environ.get("CI_JOB_ID") or os.environ.get("GITHUB_RUN_ID") or os.environ.get("BUILD_TAG")
    user = os.environ.get("USER") or os.environ.get("USERNAME") or "?"
    return f"{user}@{socket.gethostname()}:{os.getpid()}" + (f" (job {job})" if job else "")


class LeaseBackend(Protocol):
    """Where leases live: one host (SQLite), or a labgrid coordinator."""

    name: str

    def acquire(
        self, key: str, resources: Collection[str] = (), *, bound_s: float, holder: str | None = None
    ) -> Lease: ...

    def holder(self, key_or_resource: str) -> LeaseInfo | None: ...


class Renewing(Protocol):
    """What a lease's heartbeat needs from its backend."""

    ttl_s: float

    def renew(self, lease: LeaseInfo) -> float: ...

    def release(self, lease: LeaseInfo) -> None: ...


@dataclass(eq=False)
class Lease:
    """A held station; renewed by a heartbeat thread until released (use it with `with`).

    `gate`, when the backend sets one, runs in every check(): the labgrid backend holds a run there
    while its coordinator connection is broken, until it knows whether the station is still its own."""

    store: Renewing
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
            if self.lost is not None:
                return
            try:
                expires = self.store.renew(self.info)
            except LeaseLost as exc:
                self.lose(exc)
                return
            self.info = LeaseInfo(**{**vars(self.info), "expires": expires})

    def lose(self, exc: LeaseLost) -> None:
        """Mark the lease lost (once): logged, and every on_lost callback is called."""
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
