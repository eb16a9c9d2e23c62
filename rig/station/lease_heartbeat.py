"""The heartbeat a vesc-rig run writes into the comment of the labgrid place it holds, and when a holder is dead.

A labgrid coordinator knows who acquired a place (``host/user``) but not whether that holder still
runs: an acquisition lasts until somebody releases it, and a SIGKILLed run never does. So a rig run
holds a place under an identity of its own, ``host/user+<run id>``, and proves it is alive by writing
``vesc-rig lease v1 id=<identity> beat=<unix time> ttl=<s> holder=<who>`` into the place's comment every
``ttl / 3``. Another run may take the place over once that heartbeat is older than its ttl.

Only rig identities are ever taken over: a place a person acquired with ``labgrid-client`` (``host/user``,
no ``+``) stays theirs. Heartbeats carry the holder's wall clock and are judged by the taker's, so the
hosts sharing a coordinator need synchronised clocks (NTP), as the runs of the SQLite backend share one.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

_BEAT = re.compile(
    r"^vesc-rig lease v1 id=(?P<id>\S+) beat=(?P<beat>[0-9]+(?:\.[0-9]+)?) ttl=(?P<ttl>[0-9]+(?:\.[0-9]+)?)"
    r" holder=(?P<holder>.*)$"
)
_RUN_IDENTITY = re.compile(r"^[^/\s]+/[^/\s]+\+[0-9a-z.]+$")
_NAME_PART = re.compile(r"^[^/\s+]+$")


def run_identity(host: str, user: str, run_id: str) -> str:
    """``host/user+run``: the name a run acquires places under (labgrid splits it at the slash)."""
    for what, part in (("host", host), ("user", user)):
        if not _NAME_PART.match(part):
            raise ValueError(f"labgrid {what} name {part!r} must not be empty or contain '/', '+' or spaces")
    identity = f"{host}/{user}+{run_id}"
    if not _RUN_IDENTITY.match(identity):
        raise ValueError(f"run id {run_id!r} must be lower-case letters, digits and dots")
    return identity


def is_run_identity(acquired: str) -> bool:
    """Whether a place is held under a rig run's identity (as opposed to a person's labgrid-client)."""
    return bool(_RUN_IDENTITY.match(acquired))


@dataclass(frozen=True)
class Heartbeat:
    """One heartbeat, as written into the place comment."""

    identity: str
    beat: float  # the holder's time.time()
    ttl_s: float
    holder: str  # who, for people: user@host:pid (job ...)

    @classmethod
    def parse(cls, comment: str) -> Heartbeat | None:
        found = _BEAT.match(comment or "")
        if found is None:
            return None
        return cls(found["id"], float(found["beat"]), float(found["ttl"]), found["holder"])

    def text(self) -> str:
        return f"vesc-rig lease v1 id={self.identity} beat={self.beat:.3f} ttl={self.ttl_s:g} holder={self.holder}"


@dataclass(frozen=True)
class Holding:
    """How an acquired place looks to a run that wants it."""

    identity: str  # place.acquired
    heartbeat: Heartbeat | None  # its holder's, when the comment is that holder's heartbeat
    expires: float  # when the holder's claim runs out (math.inf: held until released)
    stale: bool  # True: the holder is a rig run that stopped beating; it may be taken over
    why: str  # for people: who, since when, why (not) stale


def judge(acquired: str, comment: str, changed: float, now: float, ttl_s: float) -> Holding:
    """Whether the holder of a place (`acquired`, its `comment`, the coordinator's `changed` time) is stale.

    A rig run's heartbeat is stale after its own ttl. A rig identity without a heartbeat (it died
    between acquiring and its first beat) is stale `ttl_s` after the place last changed. Anyone else
    is never stale."""
    beat = Heartbeat.parse(comment)
    if beat is not None and beat.identity == acquired:
        expires = beat.beat + beat.ttl_s
        why = f"{beat.holder} (run {acquired}), last heartbeat {now - beat.beat:.1f} s ago, ttl {beat.ttl_s:g} s"
        return Holding(acquired, beat, expires, now > expires, why)
    if is_run_identity(acquired):
        why = f"run {acquired}, no heartbeat, place changed {now - changed:.1f} s ago"
        return Holding(acquired, None, changed + ttl_s, now > changed + ttl_s, why)
    return Holding(acquired, None, math.inf, False, f"{acquired} (not a vesc-rig run, so never taken over)")
