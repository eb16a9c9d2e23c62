"""The panel's web app (Starlette): the page, its live state as server-sent events, the operator's actions, and
the records with their export.

Routes (JSON unless said):

- ``GET /``: the page (rig/panel/static: plain HTML, CSS and JS, nothing from elsewhere);
- ``GET /api/state``: :meth:`rig.panel.stations.Panel.snapshot`; ``GET /api/events``: the same as server-sent
  events, one at once and one after every change (at most every EVENT_INTERVAL_S), a comment every
  HEARTBEAT_S; the browser reconnects by itself after RETRY_MS;
- ``POST /api/stations/{name}/label`` ``{"label": ...}``, ``.../start``, ``.../stop``, ``.../ack``, and
  ``POST /api/start-all``: 409 with ``{"error": ...}`` when the panel refuses;
- ``GET /api/records?label=&uid=&result=&station=``: today's records; ``GET /api/records/{id}``: one in full;
  ``GET /api/export?format=csv|json&...``: the same records as ``rig records export`` writes, as a download.

Every POST needs the header ``X-Rig-Panel: 1`` (another web site's page cannot send it without the browser asking
this server first), and a panel on the loopback answers only to loopback host names (no DNS rebinding).
"""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import date
from pathlib import Path
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from rig.factory.records import VERDICTS, RecordError, RecordNotFound, write_csv, write_json
from rig.panel import BadRequest, PanelError
from rig.panel.stations import Panel, UnknownStation
from rig.panel.views import detail, summary

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
ACTION_HEADER = "x-rig-panel"
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1", "[::1]")
EVENT_INTERVAL_S = 0.2
HEARTBEAT_S = 10.0
WAIT_S = 1.0  # one wait for a change: the longest a closed stream or a stopping server waits
RETRY_MS = 1000


def make_app(panel: Panel, *, closing: threading.Event, loopback: bool) -> Starlette:
    """The app for one panel; `closing` set ends the event streams (the server is stopping)."""

    async def page(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    async def state(request: Request) -> Response:
        return JSONResponse(await anyio.to_thread.run_sync(panel.snapshot))

    async def events(request: Request) -> Response:
        return StreamingResponse(
            _stream(panel, request, closing),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    async def label(request: Request) -> dict[str, Any]:
        body = await _json(request)
        text = body.get("label") if isinstance(body, dict) else None
        return {"label": panel.set_label(request.path_params["name"], text)}

    def on_station(do: Callable[[str], object]) -> Handler:
        async def act(request: Request) -> dict[str, Any]:
            do(request.path_params["name"])
            return {"ok": True}

        return act

    async def start_all(request: Request) -> dict[str, Any]:
        return panel.start_all()

    async def records(request: Request) -> Response:
        found = await anyio.to_thread.run_sync(lambda: panel.today(**_filters(request)))
        return JSONResponse([summary(r) for r in reversed(found)])  # newest first

    async def record(request: Request) -> Response:
        text = request.path_params["id"]
        if not text.isdigit():
            raise BadRequest(f"a record number, not {text!r}")
        board, evidence = await anyio.to_thread.run_sync(panel.record, int(text))
        return JSONResponse(detail(board, evidence))

    async def export(request: Request) -> Response:
        kind = request.query_params.get("format", "csv")
        if kind not in ("csv", "json"):
            raise BadRequest(f"format is csv or json, not {kind!r}")
        found = await anyio.to_thread.run_sync(lambda: panel.today(**_filters(request)))
        out = io.StringIO()
        (write_csv if kind == "csv" else write_json)(found, out)
        name = f"records-{panel.rack.name}-{date.today().isoformat()}.{kind}"
        return Response(
            out.getvalue(),
            media_type="text/csv" if kind == "csv" else "application/json",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    actions: dict[str, Handler] = {
        "label": label,
        "start": on_station(panel.start),
        "stop": on_station(panel.stop),
        "ack": on_station(panel.acknowledge),
    }
    routes = [
        Route("/", page),
        Route("/api/state", state),
        Route("/api/events", events),
        *(Route(f"/api/stations/{{name}}/{verb}", _action(do), methods=["POST"]) for verb, do in actions.items()),
        Route("/api/start-all", _action(start_all), methods=["POST"]),
        Route("/api/records", records),
        Route("/api/records/{id}", record),
        Route("/api/export", export),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=list(LOOPBACK_NAMES))] if loopback else []
    statuses = {UnknownStation: 404, RecordNotFound: 404, BadRequest: 400, PanelError: 409, RecordError: 500}
    handlers = {kind: _as_status(status) for kind, status in statuses.items()}
    return Starlette(routes=routes, middleware=middleware, exception_handlers=handlers)


Handler = Callable[[Request], Awaitable[dict[str, Any]]]


def _action(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """An operator action: only with the header the page sends."""

    async def run(request: Request) -> Response:
        if request.headers.get(ACTION_HEADER) != "1":
            return _error(403, f"operator actions need the header {ACTION_HEADER}: 1 (the panel's page sends it)")
        return JSONResponse(await handler(request))

    return run


def _as_status(status: int) -> Callable[[Request, Exception], Awaitable[Response]]:
    async def handle(request: Request, exc: Exception) -> Response:
        if status >= 500:
            log.error("%s %s: %s", request.method, request.url.path, exc)
        return _error(status, str(exc))

    return handle


async def _json(request: Request) -> Any:
    try:
        return await request.json()
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the request body is not JSON: {exc}") from exc


def _filters(request: Request) -> dict[str, str | None]:
    """The records filters of a query: label, uid (hex, any case), result (PASS/FAIL/INCOMPLETE), station."""
    query = request.query_params
    result = (query.get("result") or "").upper() or None
    if result is not None and result not in VERDICTS:
        raise BadRequest(f"result is one of {', '.join(VERDICTS)}, not {result!r}")
    return {
        "label": (query.get("label") or "").strip() or None,
        "uid": (query.get("uid") or "").strip().lower() or None,
        "verdict": result,
        "station": query.get("station") or None,
    }


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _stream(panel: Panel, request: Request, closing: threading.Event) -> AsyncIterator[str]:
    """Server-sent events: the state now, then after every change; ends when the browser goes or the server stops."""
    yield f"retry: {RETRY_MS}\n\n"
    seen = -1
    quiet_since = anyio.current_time()
    while not closing.is_set() and not await request.is_disconnected():
        version = await anyio.to_thread.run_sync(panel.wait_change, seen, WAIT_S)
        if version != seen:
            seen = version
            snapshot = await anyio.to_thread.run_sync(panel.snapshot)
            yield f"data: {json.dumps(snapshot)}\n\n"
            quiet_since = anyio.current_time()
            await anyio.sleep(EVENT_INTERVAL_S)  # coalesce a burst of changes (upload progress)
        elif anyio.current_time() - quiet_since > HEARTBEAT_S:
            yield ": still here\n\n"
            quiet_since = anyio.current_time()
