"""Serving the panel (uvicorn): in the foreground for `rig panel`, or in a thread (tests, an embedding program).

The panel has no login: anyone who reaches its address can start and stop bring-ups. It listens on 127.0.0.1
unless told otherwise, and says so loudly when it is.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
import time
from types import FrameType

import uvicorn

from rig.errors import Diagnosis, RigTimeout
from rig.panel import DEFAULT_HOST, DEFAULT_PORT, PanelError
from rig.panel.app import make_app
from rig.panel.stations import Panel

log = logging.getLogger(__name__)

START_BOUND_S = 10.0
STOP_BOUND_S = 10.0
GRACEFUL_S = 2  # open event streams end within WAIT_S of closing; this bounds anything else


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def exposure_warning(host: str) -> str | None:
    """What to tell the user when the panel listens beyond this computer (None on the loopback)."""
    if is_loopback(host):
        return None
    return (
        f"the panel listens on {host}: anyone who reaches this computer on that address can start, stop and "
        "acknowledge bring-ups (the panel has no login); use it only on a closed factory network"
    )


class _Server(uvicorn.Server):
    """uvicorn's server that also ends the panel's event streams when it is told to stop (signal or stop())."""

    def __init__(self, config: uvicorn.Config, closing: threading.Event) -> None:
        super().__init__(config)
        self.closing = closing

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.closing.set()
        super().handle_exit(sig, frame)


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0: any free one); PanelError naming the address if it cannot be had."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise PanelError(f"cannot listen on {host}:{port}: {exc}") from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise PanelError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc} (is another panel running there? choose --port)"
        ) from exc
    return sock


class PanelServer:
    """One panel served on host:port (port 0: any free port; `port` is the one taken). The address is taken at
    once (PanelError if it cannot be); serving starts with run() or start()."""

    def __init__(self, panel: Panel, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
        self.panel = panel
        self.host = host
        self.socket = listen(host, port)
        self.closing = threading.Event()
        app = make_app(panel, closing=self.closing, loopback=is_loopback(host))
        config = uvicorn.Config(
            app, host=host, port=port, log_level="warning", lifespan="off", timeout_graceful_shutdown=GRACEFUL_S
        )
        self._server = _Server(config, self.closing)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.socket.getsockname()[1])

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def run(self) -> None:
        """Serve in this thread until SIGINT/SIGTERM (uvicorn's handlers, main thread) or stop()."""
        try:
            self._server.run(sockets=[self.socket])
        finally:
            self.socket.close()

    def start(self) -> PanelServer:
        """Serve in a thread; returns once the server listens (RigTimeout after START_BOUND_S)."""
        self._thread = threading.Thread(target=self.run, name="panel-server", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + START_BOUND_S
        while not self._server.started:
            if not self._thread.is_alive():
                raise RigTimeout("the panel server ended before it listened", 0.0, diagnosis=Diagnosis.PANEL)
            if time.monotonic() > deadline:
                raise RigTimeout("the panel server to listen", START_BOUND_S, diagnosis=Diagnosis.PANEL)
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop serving (the panel itself, and its bring-ups, go on until Panel.close())."""
        self.closing.set()
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(STOP_BOUND_S + GRACEFUL_S)
            if self._thread.is_alive():
                raise RigTimeout("the panel server to stop", STOP_BOUND_S + GRACEFUL_S, diagnosis=Diagnosis.PANEL)

    def __enter__(self) -> PanelServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
