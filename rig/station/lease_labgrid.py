"""Station leases on a labgrid coordinator: a station is a labgrid place, for racks across hosts.

A run holds a station by acquiring its place under the run's own identity ``host/user+<run id>``
(rig.station.lease_heartbeat) and writes its heartbeat into the place comment every ``ttl_s / 3``.
The coordinator itself never lets an acquisition expire, so:

- **takeover**: a run that finds the place held by a rig identity whose heartbeat is older than that
  holder's ttl cancels the dead holder's reservation on it (an acquired reservation never expires and
  would keep the place reserved for the dead run, labgrid #1253), releases it with ``release-from``
  (the coordinator releases only if that exact identity still holds it, so of two racing takers only
  one wins) and acquires it, logging who it took over from. A place a person acquired with
  ``labgrid-client`` is never taken over;
- **lost**: each renewal checks that the coordinator still says the place is ours; when the client's
  stream to the coordinator breaks, every check() of a held lease waits (at most until the lease's own
  expiry) until the connection is back and the backend has looked again. A coordinator restart drops
  every acquisition, so the lease is then lost and the run stops at its next step; it never goes on
  unlocked;
- **any free station with tags** (:meth:`LabgridLeases.acquire_any`): a free, unreserved place whose
  tags match is taken at once; otherwise the run waits in the coordinator's reservation queue
  (first come, first served), releasing stale holders of matching places as it goes. Its reservation
  is cancelled as soon as it holds a place (labgrid #1739: acquired reservations never expire).

Before acquiring, every match of the place must have a live resource (the coordinator would hand out a
place whose exporter is down, with no resources at all). A station whose addresses come from its place
(rig.station.places) is checked after acquiring: the place must still export what the run read.

The coordinator has no authentication: bind it to the rack network (docs/rack-host.md).
"""

from __future__ import annotations

import asyncio
import atexit
import getpass
import logging
import os
import socket
import threading
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import grpc  # type: ignore[import-untyped,unused-ignore]
from labgrid.remote.common import Place, Reservation, ReservationState  # type: ignore[import-untyped,unused-ignore]
from labgrid.remote.generated import labgrid_coordinator_pb2 as pb2  # type: ignore[import-untyped,unused-ignore]

from rig.station.lease_heartbeat import Heartbeat, Holding, judge, run_identity
from rig.station.lease_labgrid_client import CoordinatorConnection, CoordinatorRefused
from rig.station.leases import (
    POLL_S,
    RENEW_MARGIN_S,
    TTL_S,
    Lease,
    LeaseBusy,
    LeaseError,
    LeaseInfo,
    LeaseLost,
    default_holder,
)
from rig.station.places import PlaceResource, from_place, place_of, place_station
from rig.station.rack import Rack, Station
from rig.station.session import station_key, station_resources

log = logging.getLogger(__name__)

RENEW_RETRY_S = 0.5  # an unreachable coordinator is tried again this often while the lease lasts
_REFUSED = (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.PERMISSION_DENIED)


def default_identity() -> str:
    """This run's identity: LG_HOSTNAME / LG_USERNAME (else host and user names) + pid and a random part."""
    host = os.environ.get("LG_HOSTNAME") or socket.gethostname()
    try:
        user = os.environ.get("LG_USERNAME") or getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (a container's uid): the number will do
        user = str(os.getuid())
    try:
        return run_identity(host, user, f"{os.getpid()}.{os.urandom(3).hex()}")
    except ValueError as exc:
        raise LeaseError(f"labgrid identity from LG_HOSTNAME / LG_USERNAME or the host: {exc}") from exc


@dataclass
class _Held:
    place: str
    holder: str
    lease: Lease


class LabgridLeases:
    """Leases on one coordinator under one run identity (the one per process: :func:`labgrid_leases`)."""

    name = "labgrid"

    def __init__(self, connection: CoordinatorConnection, *, ttl_s: float = TTL_S, poll_s: float = POLL_S) -> None:
        self.connection = connection
        self.ttl_s = ttl_s
        self.poll_s = poll_s
        self._entries: dict[str, tuple[str, Station]] = {}  # station key -> (place, the rack file's entry)
        self._held: dict[str, _Held] = {}  # station key -> what this run holds
        self._lock = threading.Lock()
        connection.on_reconnect = self._after_reconnect

    @property
    def identity(self) -> str:
        return self.connection.identity

    @property
    def address(self) -> str:
        return self.connection.address

    def __repr__(self) -> str:
        return f"LabgridLeases({self.address!r} as {self.identity!r})"

    def bind(self, rack: Rack) -> LabgridLeases:
        """Learn the rack's stations: the key rack/station is leased as the station's place (else its name)."""
        with self._lock:
            for station in rack.stations:
                key, place = station_key(rack, station), place_of(station)
                known = self._entries.get(key)
                if known is not None and known[0] != place:
                    raise LeaseError(
                        f"station {key} is labgrid place {known[0]} in one rack file and {place} in another"
                    )
                if known is None:  # the first is the rack file's entry (a resolved rack comes later)
                    self._entries[key] = (place, station)
        return self

    def place_for(self, key: str) -> str:
        """The place a station key is leased as (a key of no bound rack is taken as a place name)."""
        entry = self._entries.get(key)
        return entry[0] if entry is not None else key

    # --- LeaseBackend --------------------------------------------------------------------------------

    def acquire(self, key: str, resources: Collection[str] = (), *, bound_s: float, holder: str | None = None) -> Lease:
        """Wait (at most `bound_s`) for the station's place; LeaseBusy naming the holder and the bound otherwise."""
        who = holder or default_holder()
        deadline = time.monotonic() + bound_s
        while True:
            lease, current, why = self.connection.run(self._try_acquire(key, tuple(resources), who))
            if lease is not None:
                lease.start_heartbeat()
                return lease
            if time.monotonic() >= deadline:
                raise LeaseBusy(key, current, bound_s, why)
            time.sleep(min(self.poll_s, max(0.0, deadline - time.monotonic())))

    def holder(self, key_or_resource: str) -> LeaseInfo | None:
        """Who holds a station key's place (or a place by name), from its heartbeat; None when it is free."""
        place = self.connection.run(self.connection.place(self.place_for(key_or_resource)))
        if not place.acquired:
            return None
        return self._info_of(
            key_or_resource, judge(place.acquired, place.comment, place.changed, time.time(), self.ttl_s)
        )

    def place_resources(self, place: str) -> list[PlaceResource]:
        """What the place's matches find among the live resources now (rig.station.places.PlaceReader)."""

        async def read() -> list[PlaceResource]:
            found = await self.connection.place(place)
            if not found.matches:
                raise LeaseError(f"labgrid place {place} has no matches: labgrid-client -p {place} add-match ...")
            missing = found.unmatched(await self.connection.live_paths())
            if missing is not None:
                raise LeaseError(f"labgrid place {place}: no live resource for its match {missing} (exporter down?)")
            return list(await self.connection.resources_of(found, acquired=False))

        return self.connection.run(read())

    # --- what the lease heartbeat calls (rig.station.leases.Lease) ----------------------------------

    def renew(self, lease: LeaseInfo) -> float:
        """Check the place is still ours and write a new heartbeat; LeaseLost if it is not, or if the
        coordinator stayed unreachable until the lease would expire."""
        held = self._held.get(lease.key)
        if held is None:
            raise LeaseLost(f"lease on station {lease.key} is not held by this run")
        deadline = time.monotonic() + max(0.0, lease.expires - time.time() - RENEW_MARGIN_S)
        while True:
            try:
                return self.connection.run(self._renew(lease.key, held))
            except LeaseLost:
                raise
            except LeaseError as exc:
                if time.monotonic() >= deadline:
                    raise LeaseLost(
                        f"lease on station {lease.key} (labgrid place {held.place}) could not be renewed before it "
                        f"expired: {exc}"
                    ) from exc
                log.warning("lease on station %s: heartbeat failed, trying again: %s", lease.key, exc)
                time.sleep(min(RENEW_RETRY_S, max(0.0, deadline - time.monotonic())))

    def release(self, lease: LeaseInfo) -> None:
        """Give the place back (only if this run still holds it); an unreachable coordinator is logged: the
        place is then taken over once its heartbeat is older than the ttl."""
        held = self._held.pop(lease.key, None)
        if held is None:
            return
        try:
            self.connection.run(self._release_place(held.place, held.holder))
        except LeaseError as exc:
            log.warning(
                "station %s: labgrid place %s not released (%s); it is free for others %g s after its last heartbeat",
                lease.key,
                held.place,
                exc,
                self.ttl_s,
            )

    def close(self) -> None:
        """Release what this run still holds and close the connection (labgrid_leases() makes a new one)."""
        for held in list(self._held.values()):
            held.lease.release()
        self.connection.close()
        with _shared_lock:
            for key in [k for k, v in _shared.items() if v is self]:
                del _shared[key]

    # --- acquiring -----------------------------------------------------------------------------------

    async def _try_acquire(
        self, key: str, resources: tuple[str, ...] | None, who: str
    ) -> tuple[Lease | None, LeaseInfo | None, str]:
        """(the lease, None, "") or (None, the holder if known, why not). `resources`: what the station's
        addresses (read from its place before) make it; None: whatever the place has (acquire_any)."""
        name = self.place_for(key)
        place = await self.connection.place(name)
        took_over: Holding | None = None
        if place.acquired:
            holding = judge(place.acquired, place.comment, place.changed, time.time(), self.ttl_s)
            mine = place.acquired == self.identity
            if mine and any(h.place == name for h in self._held.values()):
                return None, self._info_of(key, holding), f"; labgrid place {name}, by this run already"
            if not (holding.stale or mine):  # mine, but not held: left over from a lease this run lost
                return None, self._info_of(key, holding), f"; labgrid place {name}"
            await self._release_stale(place, holding)
            took_over = None if mine else holding
        if not place.matches:
            raise LeaseError(f"labgrid place {name} has no matches: labgrid-client -p {name} add-match ...")
        missing = place.unmatched(await self.connection.live_paths())
        if missing is not None:
            return None, None, f"; labgrid place {name}: no live resource for its match {missing} (exporter down?)"
        try:
            await self.connection.rpc("AcquirePlace", pb2.AcquirePlaceRequest(placename=name))
        except CoordinatorRefused as exc:
            if exc.code not in _REFUSED:
                raise
            if took_over is not None:
                log.info("%s: released stale holder %s, but another run got place %s first", key, took_over.why, name)
            return None, None, f"; labgrid place {name}: {exc.details}"  # lost a race, or reserved for another
        acquired_at = time.time()
        try:
            beat = await self._beat(name, who)
            place = await self.connection.place(name)
            if place.acquired != self.identity:
                raise LeaseError(f"labgrid place {name}: acquired, but the coordinator says {place.acquired}")
            if resources is not None:
                self._check_resources(key, place, resources, await self.connection.resources_of(place, acquired=True))
        except BaseException:
            await self._release_place(name, who)
            raise
        if took_over is not None:
            log.warning("%s: took over labgrid place %s from stale holder %s", key, name, took_over.why)
        info = LeaseInfo(
            key, f"{who} as {self.identity}", self.identity, acquired_at, beat + self.ttl_s, resources or ()
        )
        lease = Lease(self, info, gate=self._gate)
        held = self._held[key] = _Held(name, who, lease)
        lease.on_lost.append(lambda _: self._forget(key, held))
        return lease, None, ""

    def _forget(self, key: str, held: _Held) -> None:
        """A lost lease is not this run's any more (whatever the coordinator still says)."""
        if self._held.get(key) is held:
            del self._held[key]

    async def _release_stale(self, place: Place, holding: Holding) -> None:
        """Cancel the dead holder's reservation on the place, then release it from exactly that holder."""
        if place.reservation:
            reply = await self.connection.rpc("GetReservations", pb2.GetReservationsRequest())
            for reservation in reply.reservations:
                if reservation.token == place.reservation and reservation.owner == holding.identity:
                    await self.connection.rpc(
                        "CancelReservation", pb2.CancelReservationRequest(token=reservation.token)
                    )
                    log.info(
                        "labgrid place %s: cancelled reservation %s of %s", place.name, reservation.token, holding.why
                    )
        await self.connection.rpc(
            "ReleasePlace", pb2.ReleasePlaceRequest(placename=place.name, fromuser=holding.identity)
        )

    def _check_resources(self, key: str, place: Place, expected: tuple[str, ...], got: list[PlaceResource]) -> None:
        """A station whose addresses came from its place: the acquired place must still export exactly them."""
        entry = self._entries.get(key)
        if entry is None or not from_place(entry[1]):
            return
        now = place_station(entry[1], place.name, got)
        rack = Rack(place.name, (now.station,), now.relays, now.supplies)
        fresh = set(station_resources(rack, now.station))
        if fresh != set(expected):
            raise LeaseError(
                f"station {key}: labgrid place {place.name} now exports {', '.join(sorted(fresh)) or 'nothing'}, "
                f"not what the run read before ({', '.join(sorted(expected)) or 'nothing'}); run again"
            )

    async def _beat(self, name: str, who: str) -> float:
        now = time.time()
        text = Heartbeat(self.identity, now, self.ttl_s, who).text()
        await self.connection.rpc("SetPlaceComment", pb2.SetPlaceCommentRequest(placename=name, comment=text))
        return now

    async def _renew(self, key: str, held: _Held) -> float:
        lost = self._lost(key, held, await self.connection.places())
        if lost is not None:
            raise lost
        return await self._beat(held.place, held.holder) + self.ttl_s

    async def _release_place(self, name: str, who: str) -> None:
        try:
            await self.connection.rpc("ReleasePlace", pb2.ReleasePlaceRequest(placename=name, fromuser=self.identity))
        except CoordinatorRefused as exc:
            if exc.code != grpc.StatusCode.FAILED_PRECONDITION:  # "not acquired": nothing to give back
                raise
        place = await self.connection.place(name)
        beat = Heartbeat.parse(place.comment)
        if place.acquired is None and beat is not None and beat.identity == self.identity:
            free = f"free (last: {who}, released {time.strftime('%Y-%m-%d %H:%M:%S')})"
            await self.connection.rpc("SetPlaceComment", pb2.SetPlaceCommentRequest(placename=name, comment=free))

    # --- losing --------------------------------------------------------------------------------------

    def _lost(self, key: str, held: _Held, places: Mapping[str, Place]) -> LeaseLost | None:
        """Why the held place is not this run's any more (None: it still is)."""
        place = places.get(held.place)
        if place is None:
            return LeaseLost(
                f"lease on station {key} lost: labgrid place {held.place} no longer exists on coordinator "
                f"{self.address} (it restarted within 15 s of the place's last change, before saving it?)"
            )
        if place.acquired == self.identity:
            return None
        why = "the coordinator restarted (that drops every place) or someone released it"
        if place.acquired:
            why = "another run took it over (this run's heartbeat was older than its ttl)"
        return LeaseLost(
            f"lease on station {key} lost: labgrid place {place.name} is now held by {place.acquired or 'nobody'}, "
            f"not {self.identity}; {why}"
        )

    async def _after_reconnect(self) -> None:
        """After the stream to the coordinator broke and came back: is every held place still ours?"""
        places = await self.connection.places()
        for key, held in list(self._held.items()):
            lost = self._lost(key, held, places)
            if lost is not None:
                held.lease.lose(lost)

    def _gate(self, lease: Lease) -> None:
        """check(): while the connection is broken, wait until it is back and checked, at most until the lease
        would expire; then the lease is lost (nobody can tell whether the place is still ours)."""
        connection = self.connection
        if connection.verified.is_set():
            return
        bound_s = max(0.0, lease.info.expires - time.time())
        log.warning(
            "station %s: waiting up to %.1f s for labgrid coordinator %s", lease.info.key, bound_s, self.address
        )
        if connection.verified.wait(bound_s):
            return
        since = time.strftime("%H:%M:%S", time.localtime(connection.broken_since or time.time()))
        lease.lose(
            LeaseLost(
                f"lease on station {lease.info.key} lost: labgrid coordinator {self.address} unreachable since {since} "
                f"and the lease expired at {lease.info.expires_text} (waited {bound_s:.1f} s)"
            )
        )

    @staticmethod
    def _info_of(key: str, holding: Holding) -> LeaseInfo:
        """The holder of a place as a LeaseInfo (LeaseBusy and holder() name it)."""
        beat = holding.heartbeat
        who = f"{beat.holder} as {holding.identity}" if beat is not None else holding.why
        return LeaseInfo(key, who, holding.identity, beat.beat if beat else 0.0, holding.expires)

    # --- any free station with tags ------------------------------------------------------------------

    def acquire_any(
        self, tags: Mapping[str, str], *, bound_s: float, holder: str | None = None, prio: float = 0.0
    ) -> Lease:
        """Wait (at most `bound_s`) for any place whose tags include `tags` (for example {"hw": "60"}).

        The lease's key is the station key of a bound rack's station on that place, else the place name."""
        who = holder or default_holder()
        lease = self.connection.run(self._acquire_any(dict(tags), bound_s, who, prio), timeout=bound_s + 30)
        lease.start_heartbeat()
        return lease

    def _key_of(self, place: str) -> str:
        return next((key for key, (name, _) in self._entries.items() if name == place), place)

    async def _acquire_any(self, tags: dict[str, str], bound_s: float, who: str, prio: float) -> Lease:
        deadline = time.monotonic() + bound_s
        token: str | None = None
        what = ", ".join(f"{k}={v}" for k, v in sorted(tags.items()))
        holders: dict[str, str] = {}
        try:
            while True:
                places = {n: p for n, p in (await self.connection.places()).items() if _has_tags(p, tags)}
                live = await self.connection.live_paths()
                usable = {n for n, p in places.items() if p.matches and p.unmatched(live) is None}
                for name in sorted(usable):  # 1. a free place no reservation waits for
                    if not places[name].acquired and not places[name].reservation:
                        lease, _, _ = await self._try_acquire(self._key_of(name), None, who)
                        if lease is not None:
                            return lease
                if token is None:  # 2. the coordinator's queue
                    request = pb2.CreateReservationRequest(
                        filters={"main": pb2.Reservation.Filter(filter=tags)}, prio=prio
                    )
                    token = (await self.connection.rpc("CreateReservation", request)).reservation.token
                    log.info("waiting for any labgrid place with %s (reservation %s)", what, token)
                reply = await self.connection.rpc("PollReservation", pb2.PollReservationRequest(token=token))
                reservation = Reservation.from_pb2(reply.reservation)
                if reservation.state is ReservationState.allocated:
                    name = reservation.allocations["main"][0]
                    if name in usable:
                        lease, _, why = await self._try_acquire(self._key_of(name), None, who)
                        if lease is not None:
                            return lease
                        log.info("reservation %s: allocated %s, not acquired%s", token, name, why)
                elif reservation.state in (ReservationState.expired, ReservationState.invalid):
                    token = None
                    continue
                holders, reaped = {}, False  # 3. dead holders of matching places
                for name, place in sorted(places.items()):
                    if not place.acquired:
                        holders[name] = f"reserved ({place.reservation})" if place.reservation else "free"
                        continue
                    holding = judge(place.acquired, place.comment, place.changed, time.time(), self.ttl_s)
                    holders[name] = holding.why
                    if holding.stale:
                        await self._release_stale(place, holding)
                        log.warning(
                            "labgrid place %s: released stale holder %s (waiting for %s)", name, holding.why, what
                        )
                        reaped = True
                if reaped:
                    continue
                if time.monotonic() >= deadline:
                    listed = "; ".join(f"{n}: {h}" for n, h in sorted(holders.items())) or "no place has these tags"
                    raise LeaseBusy(f"any labgrid place with {what}", None, bound_s, f"; {listed}")
                await asyncio.sleep(self.poll_s)
        finally:
            if token is not None:
                try:
                    await self.connection.rpc("CancelReservation", pb2.CancelReservationRequest(token=token))
                except LeaseError as exc:
                    log.warning("reservation %s: not cancelled: %s", token, exc)


def _has_tags(place: Place, tags: Mapping[str, str]) -> bool:
    return all(place.tags.get(k) == v for k, v in tags.items())


_shared: dict[tuple[int, str], LabgridLeases] = {}
_shared_lock = threading.Lock()


def labgrid_leases(address: str, **options: Any) -> LabgridLeases:
    """This process's leases on a coordinator: one connection and one run identity per process (made again
    after a fork), closed at exit (what is still held is released then)."""
    key = (os.getpid(), address)
    with _shared_lock:
        if key not in _shared:
            _shared[key] = LabgridLeases(CoordinatorConnection(address, default_identity()), **options)
            atexit.register(_shared[key].close)
        return _shared[key]
