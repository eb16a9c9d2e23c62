"""Numato Lab USB relay modules (ASCII console over USB CDC).

Commands end with CR: "relay on N", "relay off N", "relay read N"; relays count from 0 and relays 10
and up are sent as upper-case letters A, B, ... (Numato sample code relayread.py: chr(55 + n); an
older Numato manual, quoted at michaelkeating.com, "relay on C" for relay 12). The module echoes the
command, then "\\n\\r", then for "read" the state "on" or "off" and "\\n\\r", then the ">" prompt
(Numato usbrelay_8.py reads the state at reply[-5:-3]).
"""

from __future__ import annotations

import re
import time

import serial

from rig.errors import PowerError
from rig.hardware.power.base import check_channel, open_serial

BAUDRATE = 19200  # ignored by USB CDC; Numato samples use 19200
PROMPT = b">"
_POLL_S = 0.02


def relay_index(channel: int) -> str:
    """Numato's one-character relay index: 0-9, then A, B, ... for 10 and up."""
    check_channel(channel, 0, 35, "Numato relay index")
    return str(channel) if channel < 10 else chr(ord("A") + channel - 10)


def parse_read_reply(command: str, reply: str) -> bool:
    """The state in a "relay read" reply (echo, state, prompt)."""
    lines = [line.strip() for line in re.split(r"[\r\n]+", reply.split(">")[0])]
    words = [line for line in lines if line and line != command]
    if not words or words[-1] not in ("on", "off"):
        raise PowerError(f"Numato: unexpected reply to {command!r}: {reply!r}")
    return words[-1] == "on"


class NumatoBoard:
    """A Numato USB relay module on a serial port path (or pyserial URL)."""

    def __init__(self, url: str, *, channels: int = 8, timeout_s: float = 0.5) -> None:
        self.url = url
        self.channels = channels
        self.timeout_s = timeout_s
        self._port = open_serial(url, baudrate=BAUDRATE, timeout_s=timeout_s, what="Numato relay")
        self._port.timeout = _POLL_S  # reads poll; the whole exchange is bounded by timeout_s

    def set(self, channel: int, on: bool) -> None:
        self._command(f"relay {'on' if on else 'off'} {self._index(channel)}")

    def get(self, channel: int) -> bool | None:
        command = f"relay read {self._index(channel)}"
        return parse_read_reply(command, self._command(command))

    def close(self) -> None:
        self._port.close()

    def _index(self, channel: int) -> str:
        check_channel(channel, 0, self.channels - 1, f"Numato relay at {self.url}")
        return relay_index(channel)

    def _command(self, command: str) -> str:
        """Send one command line and read up to the prompt, bounded by timeout_s."""
        deadline = time.monotonic() + self.timeout_s
        reply = b""
        try:
            self._port.reset_input_buffer()
            self._port.write(command.encode("ascii") + b"\r")
            while PROMPT not in reply:
                if time.monotonic() >= deadline:
                    raise PowerError(
                        f"Numato relay at {self.url}: no prompt after {command!r} within "
                        f"{self.timeout_s:.3g} s (got {reply!r})"
                    )
                reply += self._port.read(max(1, self._port.in_waiting))
        except (serial.SerialException, OSError) as exc:
            raise PowerError(f"Numato relay at {self.url}: {command!r} failed: {exc}") from exc
        return reply.decode("ascii", errors="replace")
