"""The byte link to an ESC: pyserial opened from a URL, with a trace recorder and a cut hook.

One transport for everything (design principle): a device path, a pty path of the simulator,
``socket://host:port`` for a TCP bridge, ``rfc2217://host:port`` for ser2net. The trace keeps every
chunk written and read with its time; the cut hook ends the link after N bytes in one direction,
for forced-disconnect scenarios.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import serial
import serial.rfc2217

from rig.errors import LinkError, LinkLost

log = logging.getLogger(__name__)

try:  # pyserial's POSIX backend lets termios.error (not an OSError) escape from flush() on a vanished pty
    from termios import error as _termios_error

    IO_ERRORS: tuple[type[BaseException], ...] = (serial.SerialException, OSError, _termios_error)
except ImportError:  # pragma: no cover - not POSIX
    IO_ERRORS = (serial.SerialException, OSError)

Direction = Literal["tx", "rx"]
DEFAULT_BAUD = 115200  # what VESC Tool opens (ignored by USB CDC, matters for the UART app)
WRITE_TIMEOUT_S = 2.0


class Rfc2217Port(serial.rfc2217.Serial):
    """pyserial's RFC 2217 client (ser2net), negotiating the line settings only when they change.

    pyserial renegotiates baud rate, data bits, parity, stop bits and flow control, waiting for the
    server's acknowledgement (at least 50 ms), on every change of `timeout`, which Link.read makes
    twice per read. Its RFC 2217 client has no write_timeout either; a write is bounded by its
    socket's timeout instead.
    """

    _negotiated: tuple[object, ...] | None = None

    def _reconfigure_port(self) -> None:
        settings = (self._baudrate, self._bytesize, self._parity, self._stopbits, self._rtscts, self._xonxoff)
        if settings != self._negotiated:
            super()._reconfigure_port()
            self._negotiated = settings

    def _internal_raw_write(self, data: bytes) -> None:
        """Telnet replies; pyserial's reader thread sends them and dies noisily if the server has gone."""
        try:
            super()._internal_raw_write(data)
        except OSError as exc:  # the server closed the connection: the reader sees it and ends the link
            log.debug("%s: %s", self.portstr, exc)


@dataclass(frozen=True)
class TraceEntry:
    """One chunk on the link: seconds since the trace started, direction, bytes."""

    t: float
    direction: Direction
    data: bytes

    def line(self) -> str:
        return f"{self.t:10.6f} {self.direction}: {self.data.hex(' ')}"


@dataclass
class Trace:
    """Timestamped record of both directions; its text form is what `rig trace decode` reads."""

    entries: list[TraceEntry] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def record(self, direction: Direction, data: bytes) -> None:
        if data:
            self.entries.append(TraceEntry(time.monotonic() - self.started, direction, bytes(data)))

    def text(self) -> str:
        return "".join(entry.line() + "\n" for entry in self.entries)

    def save(self, path: Path) -> None:
        path.write_text(self.text())

    def total(self, direction: Direction) -> int:
        return sum(len(e.data) for e in self.entries if e.direction == direction)


@dataclass
class Cut:
    """Cut the link once `after` more bytes have passed in `direction`; `action` does the cutting.

    The default action closes the host side of the link. A scenario may instead cut power through a
    relay or drop a TCP bridge at that instant.
    """

    direction: Direction
    after: int
    action: Callable[[], None] | None = None
    done: bool = False


class Link:
    """A pyserial port with tracing and an optional armed cut."""

    def __init__(self, port: serial.SerialBase, url: str, trace: Trace | None = None) -> None:
        self.port = port
        self.url = url
        self.trace = trace if trace is not None else Trace()
        self._cut: Cut | None = None
        self._counted = {"tx": 0, "rx": 0}
        self._lost: str | None = None

    @classmethod
    def open(cls, url: str, *, baudrate: int = DEFAULT_BAUD, trace: Trace | None = None) -> Link:
        """Open a link from a pyserial URL or device path."""
        try:
            if url.startswith("rfc2217://"):
                port = Rfc2217Port(url, baudrate=baudrate, timeout=0)
            else:
                port = serial.serial_for_url(url, baudrate=baudrate, timeout=0, write_timeout=WRITE_TIMEOUT_S)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise LinkError(f"cannot open {url}: {exc}") from exc
        log.debug("opened %s", url)
        return cls(port, url, trace)

    # --- cutting ------------------------------------------------------------------------------------

    def cut_after(self, n: int, direction: Direction = "tx", action: Callable[[], None] | None = None) -> Cut:
        """Arm a cut after `n` more bytes in `direction` (n=0 cuts before the next byte)."""
        self._cut = Cut(direction, n, action)
        self._counted[direction] = 0
        return self._cut

    def _budget(self, direction: Direction, size: int) -> int:
        """How many of `size` bytes may pass before an armed cut fires."""
        cut = self._cut
        if cut is None or cut.done or cut.direction != direction:
            return size
        return max(0, min(size, cut.after - self._counted[direction]))

    def _fire(self, direction: Direction) -> None:
        cut = self._cut
        assert cut is not None
        cut.done = True
        log.info("forced cut of %s after %d %s bytes", self.url, cut.after, direction)
        if cut.action is not None:
            cut.action()
        self.close()
        self._lost = f"link {self.url} cut on purpose after {cut.after} bytes {direction}"

    def _cut_due(self, direction: Direction) -> bool:
        cut = self._cut
        return cut is not None and not cut.done and cut.direction == direction and self._counted[direction] >= cut.after

    # --- I/O ----------------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._lost is not None:
            raise LinkLost(self._lost)
        if not self.port.is_open:
            raise LinkLost(f"link {self.url} is closed")

    def write(self, data: bytes) -> None:
        """Write all bytes (or up to an armed cut, then LinkLost)."""
        self._check_open()
        allowed = self._budget("tx", len(data))
        chunk = data[:allowed]
        try:
            if chunk:
                self.port.write(chunk)
                self.port.flush()
        except IO_ERRORS as exc:
            self._lost = f"link {self.url} lost while writing: {exc}"
            raise LinkLost(self._lost) from exc
        self.trace.record("tx", chunk)
        self._counted["tx"] += len(chunk)
        if self._cut_due("tx"):
            self._fire("tx")
            if allowed < len(data):
                raise LinkLost(self._lost or "cut")

    def read(self, timeout_s: float) -> bytes:
        """Bytes that arrive within `timeout_s` (b'' if none); LinkLost if the link went away."""
        self._check_open()
        try:
            self.port.timeout = max(0.0, timeout_s)
            data = self.port.read(1)
            if data:
                self.port.timeout = 0
                waiting = self.port.in_waiting
                if waiting:
                    data += self.port.read(waiting)
        except (*IO_ERRORS, TypeError) as exc:
            # pyserial raises TypeError from a socket closed under it
            self._lost = f"link {self.url} lost while reading: {exc}"
            raise LinkLost(self._lost) from exc
        allowed = self._budget("rx", len(data))
        data = data[:allowed]
        self.trace.record("rx", data)
        self._counted["rx"] += len(data)
        if self._cut_due("rx"):
            self._fire("rx")
        return data

    def close(self) -> None:
        try:
            self.port.close()
        except IO_ERRORS as exc:
            log.debug("closing %s: %s", self.url, exc)

    @property
    def is_open(self) -> bool:
        return self._lost is None and self.port.is_open

    def __enter__(self) -> Link:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
