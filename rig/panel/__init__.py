"""The factory operator panel (`rig panel`): a local web page for the stations of a rack.

An operator scans or types a board's label, starts its bring-up (rig.factory.flow) on one station or on every
idle one, watches each station's step and progress, stops a station at its next safe point, and acknowledges a
failed board (it stays powered off until then). The page lists today's records, filters and exports them, and
shows a failed board's step log and decoded trace.

Layers: :mod:`rig.panel.floor` is the bench as the panel sees it (stations, their runs, what the page may do; no
web code), :mod:`rig.panel.views` turns records into what the page shows, :mod:`rig.panel.app` is the web app
(Starlette), :mod:`rig.panel.server` serves it (uvicorn). The web stack is the optional extra
``vesc-rig[panel]``; without it the rest of the rig works and `rig panel` says what to install.
"""

from __future__ import annotations

import importlib.util

from rig.errors import Diagnosis, RigError

EXTRA = "vesc-rig[panel]"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
WEB_STACK = ("starlette", "uvicorn")


class PanelError(RigError):
    """An operator action the panel refuses (the message says why), or a panel that cannot start."""

    diagnosis = Diagnosis.PANEL


class BadRequest(PanelError):
    """A request the page should never send: not JSON, a label that is no label, an unknown filter value."""


class WebStackMissing(RigError):
    """The optional web stack of the panel is not installed."""

    diagnosis = Diagnosis.NOT_INSTALLED


def check_web_stack() -> None:
    """WebStackMissing naming the extra to install, unless Starlette and uvicorn are importable."""
    missing = [name for name in WEB_STACK if importlib.util.find_spec(name) is None]
    if missing:
        raise WebStackMissing(
            f"the operator panel needs {' and '.join(missing)}, which are not installed: "
            f"pip install '{EXTRA}' (the rest of the rig works without them)"
        )
