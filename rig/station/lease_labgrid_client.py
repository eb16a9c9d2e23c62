"""One connection to a labgrid coordinator, with this run's identity, for synchronous callers.

labgrid's client (``labgrid.remote.client.ClientSession``, 26.x) is asyncio on grpc.aio. grpc.aio binds
to the first event loop that uses it, so this process runs one event loop in a daemon thread (made
again after a fork) and every connection submits its coroutines there; callers stay synchronous and a
heartbeat keeps running while they block. The coordinator keys a client by its TCP peer and grpc shares
one TCP connection between channels to one target, so each connection gets a subchannel pool of its own.

The coordinator knows a client by ``host/user`` (LG_HOSTNAME / LG_USERNAME by default); a connection
here uses a per-run identity ``host/user+<run id>`` (rig.station.lease_heartbeat) instead.

When the coordinator goes away (a restart, a network cut) the client's stream breaks: the connection
notices at once, marks itself unverified, reconnects every RECONNECT_S, and after reconnecting calls
its ``on_reconnect`` callback (the lease backend checks there which places are still its own: a
coordinator restart drops every acquisition). Every call is bounded (``rpc_timeout_s``).

labgrid's client calls ``logging.error`` on the root logger when the coordinator is unavailable; and
importing it replaces ``sys.excepthook``, which this module puts back.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import grpc  # type: ignore[import-untyped,unused-ignore]

from rig.station.leases import LeaseError
from rig.station.places import PlaceResource

_hook = sys.excepthook
from labgrid.remote.client import ClientSession  # type: ignore[import-untyped,unused-ignore]  # noqa: E402
from labgrid.remote.common import Place  # type: ignore[import-untyped,unused-ignore]  # noqa: E402
from labgrid.remote.generated import labgrid_coordinator_pb2 as pb2  # type: ignore[import-untyped,unused-ignore]  # noqa: E402
from labgrid.remote.generated import labgrid_coordinator_pb2_grpc  # type: ignore[import-untyped,unused-ignore]  # noqa: E402
from labgrid.util.proxy import proxymanager  # type: ignore[import-untyped,unused-ignore]  # noqa: E402

sys.excepthook = _hook  # labgrid.remote.client replaces it at import (a work-around for a grpc message)

log = logging.getLogger(__name__)

DEFAULT_PORT = 20408  # labgrid's
RPC_TIMEOUT_S = 5.0
CONNECT_TIMEOUT_S = 10.0
RECONNECT_S = (0.25, 1.0)  # a broken connection is tried again after 0.25 s, then backing off to every 1 s

T = TypeVar("T")

_loop: asyncio.AbstractEventLoop | None = None
_loop_pid = 0
_loop_lock = threading.Lock()


class CoordinatorRefused(LeaseError):
    """The coordinator answered a call with an error (not reserved for us, already acquired, no such place)."""

    def __init__(self, address: str, call: str, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"labgrid coordinator {address}: {call}: {code.name}: {details}")
        self.code = code
        self.details = details


def shared_loop() -> asyncio.AbstractEventLoop:
    """This process's event loop for labgrid (a daemon thread; a new one after a fork)."""
    global _loop, _loop_pid
    with _loop_lock:
        if _loop is None or _loop_pid != os.getpid() or _loop.is_closed():
            _loop = asyncio.new_event_loop()
            _loop_pid = os.getpid()
            threading.Thread(target=_loop.run_forever, name="labgrid-client", daemon=True).start()
        return _loop


class _RunSession(ClientSession):  # type: ignore[misc,unused-ignore]  # labgrid has no types: Any
    """labgrid's ClientSession with an explicit identity and a subchannel pool of its own."""

    run_host = ""
    run_user = ""

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.channel = grpc.aio.insecure_channel(  # the base class's channel was never connected
            target=self.address,
            options=[
                ("grpc.keepalive_time_ms", 7500),  # as labgrid's client
                ("grpc.keepalive_timeout_ms", 10000),
                ("grpc.http2.ping_timeout_ms", 10000),
                ("grpc.http2.max_pings_without_data", 0),
                ("grpc.use_local_subchannel_pool", 1),
            ],
        )
        self.stub = labgrid_coordinator_pb2_grpc.CoordinatorStub(self.channel)

    def gethostname(self) -> str:
        return self.run_host

    def getuser(self) -> str:
        return self.run_user


def coordinator_address(address: str) -> str:
    """HOST[:PORT] as gRPC wants it (labgrid's default port 20408; LG_PROXY honoured as labgrid does)."""
    return str(proxymanager.get_grpc_address(address, default_port=DEFAULT_PORT))


class CoordinatorConnection:
    """A client session on one coordinator under `identity` (``host/user+run``); reconnects by itself."""

    def __init__(
        self,
        address: str,
        identity: str,
        *,
        rpc_timeout_s: float = RPC_TIMEOUT_S,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
    ) -> None:
        self.address = coordinator_address(address)
        self.identity = identity
        self.host, self.user = identity.split("/", 1)
        self.rpc_timeout_s = rpc_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.on_reconnect: Callable[[], Awaitable[None]] | None = None
        self.verified = threading.Event()  # set while connected and on_reconnect has run since the last break
        self.broken_since: float | None = None  # time.time() of the last break, while not verified
        self._loop = shared_loop()
        self._session: _RunSession | None = None
        self._lock: asyncio.Lock | None = None
        self._closing = False
        self.run(self._start(), timeout=connect_timeout_s + rpc_timeout_s)
        self._watch = asyncio.run_coroutine_threadsafe(self._watch_stream(), self._loop)

    def __repr__(self) -> str:
        return f"CoordinatorConnection({self.address!r} as {self.identity!r})"

    # --- plumbing ------------------------------------------------------------------------------------

    def run(self, coro: Coroutine[Any, Any, T], *, timeout: float | None = None) -> T:
        """Run a coroutine on the loop and wait for it (bounded: LeaseError naming the coordinator)."""
        bound = timeout if timeout is not None else 3 * self.rpc_timeout_s
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(bound)
        except TimeoutError as exc:
            future.cancel()
            raise LeaseError(f"labgrid coordinator {self.address}: no answer within {bound:g} s") from exc

    async def _start(self) -> None:
        self._lock = asyncio.Lock()
        await self._connect()
        self.verified.set()

    async def _connect(self) -> None:
        session = _RunSession(self.address, self._loop)
        session.run_host, session.run_user = self.host, self.user
        try:
            await asyncio.wait_for(session.start(), self.connect_timeout_s)
        except Exception as exc:  # grpc, labgrid's ServerError, the bound: all mean "not reachable now"
            await self._drop(session)
            raise LeaseError(
                f"labgrid coordinator {self.address}: cannot connect ({exc or type(exc).__name__})"
            ) from exc
        self._session = session

    @staticmethod
    async def _drop(session: _RunSession) -> None:
        try:
            await session.stop()
            await session.close()
        except Exception as exc:  # the session is gone either way  # noqa: BLE001
            log.debug("closing a labgrid session: %r", exc)

    async def session(self) -> _RunSession:
        """The client session, made again if its stream broke."""
        assert self._lock is not None
        async with self._lock:
            current = self._session
            if current is None or current.stopping.is_set():
                if current is not None:
                    self._session = None
                    await self._drop(current)
                await self._connect()
            assert self._session is not None
            return self._session

    async def _watch_stream(self) -> None:
        """Wake at once when the stream breaks; reconnect (labgrid logs every failed try: backing off); then
        let the owner check what it held."""
        pause = RECONNECT_S[0]
        while not self._closing:
            current = self._session
            if current is not None and not current.stopping.is_set():
                await current.stopping.wait()
                if self._closing:
                    return
            if self.verified.is_set():
                self.broken_since = time.time()
                self.verified.clear()
                log.warning("labgrid coordinator %s: connection lost; reconnecting as %s", self.address, self.identity)
            try:
                await self.session()
            except LeaseError as exc:
                log.debug("%s", exc)
                await asyncio.sleep(pause)
                pause = min(2 * pause, RECONNECT_S[1])
                continue
            pause = RECONNECT_S[0]
            if self.on_reconnect is not None:
                try:
                    await self.on_reconnect()
                except LeaseError as exc:  # lost again while checking: go round
                    log.warning("%s", exc)
                    continue
            log.info("labgrid coordinator %s: connected again as %s", self.address, self.identity)
            self.broken_since = None
            self.verified.set()

    async def rpc(self, name: str, request: Any) -> Any:
        """One unary call: an unreachable coordinator is a LeaseError (and the session is made again), a
        refusal a CoordinatorRefused."""
        session = await self.session()
        try:
            return await getattr(session.stub, name)(request, timeout=self.rpc_timeout_s)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                session.stopping.set()
                raise LeaseError(f"labgrid coordinator {self.address}: {exc.code().name}: {exc.details()}") from exc
            raise CoordinatorRefused(self.address, name, exc.code(), exc.details()) from exc

    # --- what the lease backend asks -----------------------------------------------------------------

    async def places(self) -> dict[str, Place]:
        reply = await self.rpc("GetPlaces", pb2.GetPlacesRequest())
        return {p.name: Place.from_pb2(p) for p in reply.places}

    async def place(self, name: str) -> Place:
        places = await self.places()
        if name not in places:
            known = ", ".join(sorted(places)) or "none"
            raise LeaseError(
                f"labgrid coordinator {self.address} has no place {name!r} (places: {known}); "
                f"create it: labgrid-client -x {self.address} -p {name} create, then add-match"
            )
        return places[name]

    async def live_paths(self) -> list[tuple[str, str, str, str]]:
        """(exporter, group, class, name) of every resource an exporter publishes now."""
        session = await self.session()
        await session.sync_with_coordinator()
        return _live(session)

    async def resources_of(self, place: Place, *, acquired: bool) -> list[PlaceResource]:
        """The place's acquired resources, or (acquired False) every live resource it matches."""
        session = await self.session()
        await session.sync_with_coordinator()
        paths = place.acquired_resources if acquired else [p for p in _live(session) if place.hasmatch(p)]
        found = []
        for path in paths:
            exporter, group, cls, name = path
            entry = session.resources.get(exporter, {}).get(group, {}).get(name)
            if entry is None or not entry.data:  # an exporter that left keeps its entries, emptied
                raise LeaseError(f"labgrid place {place.name}: resource {'/'.join(path)} is gone (exporter down?)")
            match = place.getmatch(path)
            label = match.rename if match is not None and match.rename else name
            found.append(PlaceResource(label, cls, dict(entry.args), "/".join(path)))
        return found

    def close(self) -> None:
        """Stop the stream and close the channel."""
        self._closing = True

        async def stop() -> None:
            self._watch.cancel()
            if self._session is not None:
                await self._drop(self._session)
                self._session = None

        try:
            self.run(stop(), timeout=self.rpc_timeout_s)
        except LeaseError as exc:
            log.warning("%s", exc)


def _live(session: _RunSession) -> list[tuple[str, str, str, str]]:
    return [
        (exporter, group, entry.cls, name)
        for exporter, groups in session.resources.items()
        for group, entries in groups.items()
        for name, entry in entries.items()
        if entry.data and entry.avail
    ]
