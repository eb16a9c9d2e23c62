"""SWD programming of VESC boards through pyocd's public API (failure modes F4, F5).

Open a session on a probe by unique id (USB serial, or `remote:host:port` for a pyocd probe server such as the
simulator's), then mass erase, sector erase, program .hex (merged images too) and .bin files, and verify by
reading back. Programming runs with pyocd's smart flash off, so every page is erased and written and the
erase and program times mean what they say.

Everything is bounded: each connect attempt, each operation and each close runs in a worker thread with a
stated bound; a probe or target that hangs is abandoned with an SwdTimeout naming the bound. pyocd's remote
probe client would otherwise wait forever for a server that accepts the connection but never answers.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from pyocd.core import exceptions
from pyocd.core.helpers import ConnectHelper
from pyocd.core.session import Session
from pyocd.core.target import Target
from pyocd.flash.eraser import FlashEraser
from pyocd.flash.loader import FlashLoader

from rig.errors import Diagnosis, ImageError, RigTimeout, SwdError
from rig.events import Progress
from rig.hardware.swd_target import TARGET_NAME, register

LOG = logging.getLogger(__name__)

_CLOSE_BOUND_S = 5.0
_VERIFY_CHUNK = 0x8000
_FLASH_EVENTS = (
    Target.Event.PRE_FLASH_ERASE,
    Target.Event.POST_FLASH_ERASE,
    Target.Event.PRE_FLASH_PROGRAM,
    Target.Event.POST_FLASH_PROGRAM,
)
T = TypeVar("T")


class SwdProbeMissing(SwdError):
    """No probe with that unique id (nothing at that remote address)."""

    diagnosis = Diagnosis.SWD_PROBE_MISSING


class SwdProbeBusy(SwdError):
    """The probe exists but cannot be opened: another program holds it."""

    diagnosis = Diagnosis.SWD_PROBE_BUSY


class SwdConnectFailed(SwdError):
    """The probe works but the target does not answer (unpowered, miswired, SWD pins taken, dead MCU)."""

    diagnosis = Diagnosis.SWD_CONNECT_FAILED


class SwdTargetLocked(SwdError):
    """The MCU answers but its flash is read-out protected; only a mass erase gets it back."""

    diagnosis = Diagnosis.SWD_TARGET_LOCKED


class SwdVerifyMismatch(SwdError):
    """Flash read back differs from the image."""

    diagnosis = Diagnosis.SWD_VERIFY_MISMATCH

    def __init__(self, message: str, *, address: int, expected: int, actual: int) -> None:
        super().__init__(message)
        self.address = address
        self.expected = expected
        self.actual = actual


class SwdTimeout(SwdError, RigTimeout):
    """An SWD step that did not finish within its bound; the session is abandoned."""


class ConnectMode(StrEnum):
    """pyocd's connect modes: halt the running core; reset it before connecting; hold it in reset while
    connecting (firmware that disables SWD or crashes at once can only be reached so); or attach without
    halting or resetting (a preflight must leave a running board running)."""

    HALT = "halt"
    PRE_RESET = "pre-reset"
    UNDER_RESET = "under-reset"
    ATTACH = "attach"


@dataclass(frozen=True)
class SwdConfig:
    """Where and how to connect."""

    probe_id: str  # unique id of a USB probe (a part is enough), or "remote:host:port"
    target: str = TARGET_NAME
    frequency_hz: int = 4_000_000
    connect_mode: ConnectMode = ConnectMode.HALT
    connect_attempts: int = 3
    attempt_bound_s: float = 20.0  # one connect attempt
    retry_delay_s: float = 0.5
    operation_bound_s: float = 300.0  # one erase, program or verify (a full chip at x8 is ~1 minute)
    pack: str | None = None  # a CMSIS pack (.pack file) to take the target from instead of rig.hardware.swd_target


Segments = Sequence[tuple[int, bytes]]
"""What goes where: (address, bytes) in address order (rig.firmware.image.flash_segments makes them)."""


@dataclass(frozen=True)
class FlashResult:
    """Timings (wall-clock seconds) and byte counts of one programming run."""

    erase_s: float
    program_s: float
    verify_s: float
    image_bytes: int
    programmed_bytes: int  # whole pages, as pyocd wrote them


class _FlashTimer:
    """Times pyocd's erase and program phases from its flash notifications, and feeds the progress callback."""

    def __init__(self, progress: Progress | None, size: int) -> None:
        self._progress = progress
        self._size = size
        self.phase = "erase"
        self.erase_s = 0.0
        self.program_s = 0.0
        self.programmed_bytes = 0
        self._started = 0.0

    def on_event(self, notification: object) -> None:
        event = notification.event  # type: ignore[attr-defined]
        if event in (Target.Event.PRE_FLASH_ERASE, Target.Event.PRE_FLASH_PROGRAM):
            self.phase = "erase" if event == Target.Event.PRE_FLASH_ERASE else "program"
            self._started = time.monotonic()
        elif event == Target.Event.POST_FLASH_ERASE:
            self.erase_s += time.monotonic() - self._started
        elif event == Target.Event.POST_FLASH_PROGRAM:
            self.program_s += time.monotonic() - self._started
            self.programmed_bytes += notification.source.perf.program_byte_count  # type: ignore[attr-defined]

    def progress(self, fraction: float) -> None:
        if self._progress is not None:
            self._progress(self.phase, round(fraction * self._size), self._size)


class SwdSession:
    """An open SWD connection to one board. Use as a context manager; open() connects with bounded retries."""

    def __init__(self, config: SwdConfig, progress: Progress | None = None) -> None:
        self.config = config
        self._progress = progress
        self._session: Session | None = None
        self._abandoned = False

    # -- connection -------------------------------------------------------------------------------

    def open(self) -> None:
        """Connect, retrying a busy probe or a silent target up to `connect_attempts` times."""
        register()
        cfg = self.config
        started = time.monotonic()
        last: SwdError | None = None
        for attempt in range(1, cfg.connect_attempts + 1):
            try:
                self._session = self._bounded(self._connect_once, cfg.attempt_bound_s, f"SWD connect to {cfg.probe_id}")
                return
            except (SwdConnectFailed, SwdProbeBusy, SwdTimeout) as exc:
                last = exc
                LOG.info("SWD connect attempt %d/%d to %s failed: %s", attempt, cfg.connect_attempts, cfg.probe_id, exc)
                self._abandoned = False  # a hung attempt is left behind; the next one opens a fresh session
                if attempt < cfg.connect_attempts:
                    time.sleep(cfg.retry_delay_s)
        assert last is not None
        summary = (
            f"{last} (gave up after {cfg.connect_attempts} attempts in {time.monotonic() - started:.1f} s; "
            f"each attempt bounded by {cfg.attempt_bound_s:g} s)"
        )
        raise (SwdProbeBusy if isinstance(last, SwdProbeBusy) else SwdConnectFailed)(summary)

    def _connect_once(self) -> Session:
        cfg = self.config
        options: dict[str, object] = {
            "target_override": cfg.target,
            "frequency": cfg.frequency_hz,
            "connect_mode": cfg.connect_mode.value,
            "smart_flash": False,
        }
        if cfg.pack is not None:
            options["pack"] = cfg.pack
        try:
            session = ConnectHelper.session_with_chosen_probe(
                blocking=False, return_first=True, unique_id=cfg.probe_id, auto_open=False, options=options
            )
        except exceptions.Error as exc:
            raise SwdError(f"cannot set up a pyocd session for {cfg.probe_id}: {exc}") from exc
        if session is None:
            raise SwdProbeMissing(f"no debug probe with id {cfg.probe_id!r} is connected")
        try:
            session.open()
        except (OSError, exceptions.Error) as exc:
            _close_quietly(session)
            raise _connect_error(exc, cfg) from exc
        return session

    def close(self) -> None:
        """Disconnect (pyocd resumes the core); bounded, never raises."""
        session, self._session = self._session, None
        if session is not None and not self._abandoned:
            try:
                self._bounded(lambda: _close_quietly(session), _CLOSE_BOUND_S, "SWD session close")
            except SwdTimeout as exc:
                LOG.warning("%s", exc)

    def __enter__(self) -> SwdSession:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- operations -------------------------------------------------------------------------------

    def mass_erase(self) -> float:
        """Erase the whole flash (also clears read-out protection on an STM32F4); returns seconds taken."""
        session = self._live()
        started = time.monotonic()
        self._run(lambda: FlashEraser(session, FlashEraser.Mode.MASS).erase(), "mass erase")
        return time.monotonic() - started

    def erase(self, start: int, length: int) -> float:
        """Erase every sector touching [start, start+length); returns seconds taken."""
        session = self._live()
        self._ensure_unlocked()
        started = time.monotonic()
        self._run(
            lambda: FlashEraser(session, FlashEraser.Mode.SECTOR).erase([(start, start + length)]),
            f"sector erase of {length} bytes at {start:#010x}",
        )
        return time.monotonic() - started

    def program(self, segments: Segments, *, chip_erase: bool = False, verify: bool = True) -> FlashResult:
        """Program the segments (sector erase unless `chip_erase`), then verify by reading back."""
        session = self._live()
        size = sum(len(data) for _, data in segments)
        if not size:
            raise ImageError("nothing to program: the image holds no data")
        if not chip_erase:  # a mass erase is what clears read-out protection, so only check without it
            self._ensure_unlocked()
        timer = _FlashTimer(self._progress, size)
        loader = FlashLoader(
            session,
            progress=timer.progress,
            chip_erase="chip" if chip_erase else "sector",
            smart_flash=False,
            trust_crc=False,
            keep_unwritten=True,
        )
        for address, data in segments:
            loader.add_data(address, data)
        session.subscribe(timer.on_event, _FLASH_EVENTS)
        try:
            self._run(loader.commit, f"programming {size} bytes")
        finally:
            session.unsubscribe(timer.on_event)
        verify_s = self.verify(segments) if verify else 0.0
        return FlashResult(timer.erase_s, timer.program_s, verify_s, size, timer.programmed_bytes)

    def verify(self, segments: Segments) -> float:
        """Read the image's ranges back and compare; raises SwdVerifyMismatch; returns seconds taken."""
        self._live()
        self._ensure_unlocked()
        started = time.monotonic()
        done = 0
        size = sum(len(data) for _, data in segments)
        for address, data in segments:
            for offset in range(0, len(data), _VERIFY_CHUNK):
                expected = data[offset : offset + _VERIFY_CHUNK]
                actual = self.read(address + offset, len(expected))
                if actual != expected:
                    _raise_mismatch(address + offset, expected, actual)
                done += len(expected)
                if self._progress is not None:
                    self._progress("verify", done, size)
        return time.monotonic() - started

    def read(self, address: int, length: int) -> bytes:
        """Bytes of target memory."""
        target = self._live().target
        return bytes(
            self._run(lambda: target.read_memory_block8(address, length), f"reading {length} bytes at {address:#010x}")
        )

    # -- helpers ----------------------------------------------------------------------------------

    def _live(self) -> Session:
        if self._session is None:
            raise SwdError("SWD session is not open")
        if self._abandoned:
            raise SwdError("SWD session was abandoned after a timeout; open a new one")
        return self._session

    def _ensure_unlocked(self) -> None:
        """Read-out protected flash faults on debug reads: say so instead of failing later in the algorithm."""
        session = self._live()
        boot = session.target.memory_map.get_boot_memory()
        try:
            self._bounded(lambda: session.target.read32(boot.start), self.config.operation_bound_s, "flash read check")
        except exceptions.TransferFaultError as exc:
            raise SwdTargetLocked(
                f"target flash is read-out protected (reading {boot.start:#010x} faults); "
                "a mass erase removes the protection and all flash contents"
            ) from exc
        except exceptions.Error as exc:
            raise _operation_error(exc, "flash read check") from exc

    def _run(self, call: Callable[[], T], what: str) -> T:
        try:
            return self._bounded(call, self.config.operation_bound_s, what)
        except exceptions.Error as exc:
            raise _operation_error(exc, what) from exc

    def _bounded(self, call: Callable[[], T], bound_s: float, what: str) -> T:
        """Run `call` in a daemon thread; give up after `bound_s` (the thread is abandoned)."""
        outcome: dict[str, object] = {}

        def worker() -> None:
            try:
                outcome["value"] = call()
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                outcome["error"] = exc

        thread = threading.Thread(target=worker, name=f"swd: {what}", daemon=True)
        thread.start()
        thread.join(bound_s)
        if thread.is_alive():
            self._abandoned = True
            raise SwdTimeout(what, bound_s)
        if "error" in outcome:
            raise outcome["error"]  # type: ignore[misc]
        return outcome["value"]  # type: ignore[return-value]


def _connect_error(exc: BaseException, cfg: SwdConfig) -> SwdError:
    """Name what failed while opening: the probe (missing, busy) or the target (not answering)."""
    if isinstance(exc, OSError | exceptions.ProbeDisconnected):
        return SwdProbeMissing(f"no probe answers at {cfg.probe_id}: {exc}")
    if isinstance(exc, exceptions.ProbeError):
        return SwdProbeBusy(f"probe {cfg.probe_id} found but it cannot be opened (in use by another program?): {exc}")
    cause = exc.__cause__ or exc
    return SwdConnectFailed(
        f"target not answering on {cfg.probe_id} ({cfg.connect_mode.name.lower()} connect at "
        f"{cfg.frequency_hz / 1e6:g} MHz): {cause}; check power, GND/SWDIO/SWCLK wiring, try connecting under reset"
    )


def _operation_error(exc: BaseException, what: str) -> SwdError:
    if isinstance(exc, exceptions.TransferError) and not isinstance(exc, exceptions.TransferFaultError):
        return SwdConnectFailed(f"target stopped answering during {what}: {exc}")
    return SwdError(f"{what} failed: {exc}")


def _raise_mismatch(address: int, expected: bytes, actual: bytes) -> None:
    diffs = [i for i, (e, a) in enumerate(zip(expected, actual, strict=True)) if e != a]
    first = diffs[0]
    raise SwdVerifyMismatch(
        f"verify failed: {len(diffs)} byte(s) differ in {len(expected)} bytes at {address:#010x}; first at "
        f"{address + first:#010x}: wrote {expected[first]:#04x}, read {actual[first]:#04x}",
        address=address + first,
        expected=expected[first],
        actual=actual[first],
    )


def _close_quietly(session: Session) -> None:
    """Close the session, and its probe too when opening failed half way (pyocd then skips the probe)."""
    try:
        session.close()
        if session.probe is not None and session.probe.is_open:
            session.probe.close()
    except (OSError, exceptions.Error) as exc:
        LOG.debug("ignoring error while closing the pyocd session: %s", exc)
