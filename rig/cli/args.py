"""argparse value types the command groups share."""

from __future__ import annotations

import argparse

from rig.errors import ProtocolError
from rig.protocol.commands import FirmwareVersion


def firmware_version(text: str) -> FirmwareVersion:
    """MAJOR.MINOR, as FW_VERSION reports it (6.02)."""
    try:
        return FirmwareVersion.parse(text)
    except ProtocolError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def positive_int(text: str) -> int:
    """A whole number of 1 or more."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value
