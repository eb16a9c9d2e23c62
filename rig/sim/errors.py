"""The simulator's own error: a set-up mistake (unknown fault, impossible image, bad spec)."""

from __future__ import annotations

from rig.errors import Diagnosis, RigError


class SimError(RigError):
    """A simulator set-up mistake (unknown profile, bad fault name, impossible image)."""

    diagnosis = Diagnosis.SIM
