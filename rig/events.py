"""What the rig is doing, for whoever listens (reports, progress bars, logs).

Library code marks its steps with ``with step("erase", station="esc1"):`` and attaches evidence with
``attach("FW_VERSION", text)``; a listener (the Allure integration, a CLI) turns them into report
steps and attachments. With no listener a step only logs, so the library never depends on a report
tool.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]
"""Progress of a long operation: (phase, units done, units in all); bytes for uploads and SWD. Called from
whichever thread does the work."""


class Listener(Protocol):
    def step_started(self, title: str, params: dict[str, object]) -> None: ...
    def step_ended(self, title: str, seconds: float, error: BaseException | None) -> None: ...
    def attach(self, name: str, body: str | bytes, mime: str) -> None: ...


_listeners: list[Listener] = []


def subscribe(listener: Listener) -> None:
    _listeners.append(listener)


def unsubscribe(listener: Listener) -> None:
    if listener in _listeners:
        _listeners.remove(listener)


@contextmanager
def step(title: str, **params: object) -> Iterator[None]:
    """One named step of a rig operation, timed, reported to every listener."""
    log.info("step: %s", title)
    for listener in _listeners:
        listener.step_started(title, params)
    start = time.monotonic()
    error: BaseException | None = None
    try:
        yield
    except BaseException as exc:
        error = exc
        raise
    finally:
        seconds = time.monotonic() - start
        log.debug("step %s %s: %.3f s%s", title, params or "", seconds, f" ({error})" if error else "")
        for listener in reversed(_listeners):
            listener.step_ended(title, seconds, error)


def attach(name: str, body: str | bytes, mime: str = "text/plain") -> None:
    """Evidence for the current step (a trace, a version reply, a config diff)."""
    for listener in _listeners:
        listener.attach(name, body, mime)
