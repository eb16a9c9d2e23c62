"""The rig's state directory: config backups, factory records, leases, broken-station marks, config schemas.

It lives outside ``reports/`` (which ``make clean`` deletes): ``--state-dir``, the rack file's
``state_dir``, ``$VESC_RIG_STATE_DIR``, else ``$XDG_STATE_HOME/vesc-rig`` (``~/.local/state/vesc-rig``).
Files are written atomically and durably: write a temporary file, fsync it, rename, fsync the folder.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from rig.durable import remove_durably, write_durably
from rig.errors import Diagnosis, RigError

ENV = "VESC_RIG_STATE_DIR"


class StateError(RigError):
    """The state directory cannot be used."""

    diagnosis = Diagnosis.RECORDS


def default_state_dir() -> Path:
    """$VESC_RIG_STATE_DIR, else $XDG_STATE_HOME/vesc-rig, else ~/.local/state/vesc-rig."""
    if os.environ.get(ENV):
        return Path(os.environ[ENV])
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "vesc-rig"


@dataclass(frozen=True)
class BrokenMark:
    """Why a station was declared broken, and when."""

    station: str
    diagnosis: str
    detail: str
    at: float

    @property
    def at_text(self) -> str:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.at))


@dataclass(frozen=True)
class StateDir:
    """The folders and files under one state directory."""

    root: Path

    @classmethod
    def at(cls, path: str | Path | None = None) -> StateDir:
        """The state directory at `path` (default: default_state_dir()), created if missing."""
        root = Path(path) if path is not None else default_state_dir()
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StateError(f"state directory {root}: {exc} (choose another with --state-dir)") from exc
        return cls(root)

    @property
    def backups(self) -> Path:
        return self.root / "backups"

    @property
    def schemas(self) -> Path:
        """Config schemas imported from the user's VESC Tool (rig.config.source; `rig config schemas import`)."""
        return self.root / "schemas"

    @property
    def records(self) -> Path:
        return self.root / "records.sqlite3"

    @property
    def leases(self) -> Path:
        return self.root

    @property
    def stations(self) -> Path:
        return self.root / "stations"

    def _mark(self, key: str) -> Path:
        return self.stations / (key.replace("/", "__") + ".broken.json")

    def mark_broken(self, key: str, diagnosis: Diagnosis, detail: str) -> BrokenMark:
        """Remember that a station's board is broken, so the next run does not flash it blindly."""
        mark = BrokenMark(key, diagnosis.value, detail, time.time())
        write_durably(self._mark(key), json.dumps(asdict(mark), indent=1))
        return mark

    def broken(self, key: str) -> BrokenMark | None:
        path = self._mark(key)
        if not path.is_file():
            return None
        try:
            return BrokenMark(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError) as exc:
            raise StateError(
                f"{path}: unreadable broken-station mark ({exc}); delete it if the board is fixed"
            ) from exc

    def clear_broken(self, key: str) -> bool:
        """Forget a broken mark (the board was repaired); True if there was one."""
        path = self._mark(key)
        if not path.is_file():
            return False
        remove_durably(path)
        return True
