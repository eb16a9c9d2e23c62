"""LCUS-type USB relays (LC Technology, CH340 serial at 9600 8N1).

Frame: A0 <channel> <state> <sum>, sum = (A0 + channel + state) & 0xFF, channels from 1, state 1 = on.
Source: LC Technology USB switch protocol, e.g. github.com/jarwyg/USB_RELAY README ("A0 01 01 A2" on,
"A0 01 00 A1" off). The board never answers and has no USB serial number: find it by USB port path
(/dev/serial/by-path/...), and prove a switch by its effect (see rig.hardware.power.cycle).
"""

from __future__ import annotations

import serial

from rig.errors import PowerError
from rig.hardware.power.base import check_channel, open_serial

START = 0xA0
BAUDRATE = 9600


def frame(channel: int, on: bool) -> bytes:
    """The 4-byte LCUS command that switches one channel."""
    check_channel(channel, 1, 0xFF, "LCUS frame")
    state = 1 if on else 0
    return bytes((START, channel, state, (START + channel + state) & 0xFF))


class LcusBoard:
    """An LCUS relay board on a serial port path (or pyserial URL); no read-back."""

    def __init__(self, url: str, *, channels: int = 8, timeout_s: float = 0.5) -> None:
        self.url = url
        self.channels = channels
        self.timeout_s = timeout_s
        self._port = open_serial(url, baudrate=BAUDRATE, timeout_s=timeout_s, what="LCUS relay")

    def set(self, channel: int, on: bool) -> None:
        check_channel(channel, 1, self.channels, f"LCUS relay at {self.url}")
        try:
            self._port.write(frame(channel, on))
            self._port.flush()
        except serial.SerialTimeoutException as exc:
            raise PowerError(f"LCUS relay at {self.url}: write not taken within {self.timeout_s:.3g} s") from exc
        except (serial.SerialException, OSError) as exc:
            raise PowerError(f"LCUS relay at {self.url}: write failed: {exc}") from exc

    def get(self, channel: int) -> bool | None:
        check_channel(channel, 1, self.channels, f"LCUS relay at {self.url}")
        return None

    def close(self) -> None:
        self._port.close()
