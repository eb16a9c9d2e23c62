"""Stopping at a safe point: SIGINT and SIGTERM set a flag; the rig checks it where stopping harms nothing.

A signal never interrupts a step half way (say, between an SWD mass erase and the program that follows,
or after JUMP_TO_BOOTLOADER while the bootloader copies): the station session and the update check the
flag only before such steps (`check`), raise :class:`Interrupted` there, and the usual clean-up runs
(configs given back, a failed factory board powered off). A second signal while the first is pending
stops at once (KeyboardInterrupt), for a user who means it.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from rig.errors import Diagnosis, RigError

log = logging.getLogger(__name__)
_requested = threading.Event()
_signal_name = ""


class Interrupted(RigError):
    """A stop asked for by a signal, taken at a safe point."""

    diagnosis = Diagnosis.INTERRUPTED


def requested() -> bool:
    return _requested.is_set()


def request(name: str = "a stop request") -> None:
    """Ask every rig operation of this process to stop at its next safe point."""
    global _signal_name
    _signal_name = name
    _requested.set()


def check(where: str) -> None:
    """Interrupted if a stop was asked for; `where` names the safe point (for the message)."""
    if _requested.is_set():
        raise Interrupted(f"stopped at a safe point ({where}) on {_signal_name}")


def _on_signal(signum: int, frame: FrameType | None) -> None:
    name = signal.Signals(signum).name
    if _requested.is_set():
        raise KeyboardInterrupt(f"second {name}: stopping at once")
    log.warning("%s: stopping at the next safe point (again to stop at once)", name)
    request(name)


@contextmanager
def stopping_at_safe_points() -> Iterator[None]:
    """For the block, SIGINT and SIGTERM ask for a stop at the next safe point (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def reset() -> None:
    """Forget a stop request (a new run in the same process)."""
    _requested.clear()
