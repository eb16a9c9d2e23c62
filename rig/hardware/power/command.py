"""Power switched by an external program, e.g. uhubctl cutting a USB hub port's VBUS.

The rack file gives the argv as a list with "{channel}" and "{state}" placeholders, for example
["uhubctl", "-l", "1-1", "-p", "{channel}", "-a", "{state}"]. No shell is involved.
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Sequence

from rig.errors import PowerError

log = logging.getLogger(__name__)


class CommandBoard:
    """Switches channels by running a program; cannot read back."""

    def __init__(
        self,
        url: str = "",
        *,
        argv: Sequence[str],
        on_word: str = "on",
        off_word: str = "off",
        timeout_s: float = 10.0,
    ) -> None:
        if not argv:
            raise PowerError("command power: argv is empty")
        self.name = url or argv[0]
        self.argv = list(argv)
        self.words = {True: on_word, False: off_word}
        self.timeout_s = timeout_s

    def command(self, channel: int, on: bool) -> list[str]:
        """The argv for one switch, placeholders filled in."""
        state = self.words[on]
        return [arg.replace("{channel}", str(channel)).replace("{state}", state) for arg in self.argv]

    def set(self, channel: int, on: bool) -> None:
        argv = self.command(channel, on)
        log.debug("power command: %s", argv)
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=self.timeout_s, check=False)
        except FileNotFoundError as exc:
            raise PowerError(f"command power {self.name}: program not found: {argv[0]}") from exc
        except subprocess.TimeoutExpired as exc:
            raise PowerError(f"command power {self.name}: {argv} did not finish within {self.timeout_s:.3g} s") from exc
        if done.returncode != 0:
            raise PowerError(f"command power {self.name}: {argv} exited with {done.returncode}: {done.stderr.strip()}")

    def get(self, channel: int) -> bool | None:
        return None

    def close(self) -> None:
        """Nothing to release."""
