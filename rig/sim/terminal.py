"""The firmware terminal as the simulated ESC answers it (B: terminal.c; research fw-protocol.md 9).

From 6.00 every command is echoed first ("-> <cmd> \\n"); "ping" answers "pong" up to 5.03 and is gone
from 6.00; an unknown command gets the same two lines in every version.
"""

from __future__ import annotations

from rig.device.firmware import FirmwareProfile
from rig.protocol.commands import FirmwareVersion


def terminal_lines(
    profile: FirmwareProfile, text: str, *, uid: bytes, version: FirmwareVersion, hw_name: str
) -> list[str]:
    """The PRINT lines a TERMINAL_CMD produces."""
    lines = [f"-> {text} \n"] if profile.terminal_echo else []
    argv = text.split()
    if not argv:
        return [*lines, "No command received\n"]
    command = argv[0].lower()
    if command == "ping" and profile.terminal_ping:
        lines.append("pong\n")
    elif command == "fault":
        lines.append("FAULT_CODE_NONE\n")
    elif command == "hw_status":
        lines += [
            f"Firmware: {version.major}.{version.minor}",
            f"Hardware: {hw_name}",
            f"UUID: {' '.join(f'{b:02X}' for b in uid)}",
            "Permanent NRF found: No",
            " ",
        ]
    elif command == "help":
        lines += ["Valid commands are:", "help", "  Show this help"]
        if profile.terminal_ping:
            lines += ["ping", "  Print pong here to see if the reply works"]
        lines += [
            "fault",
            "  Prints the current fault code",
            "hw_status",
            "  Print some hardware status information.",
            " ",
        ]
    else:
        lines.append(f"Invalid command: {argv[0]}\ntype help to list all available commands\n")
    return lines
