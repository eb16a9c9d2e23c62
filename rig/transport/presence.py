"""Where an ESC's port is now, and waiting for a board to go away and come back (F9).

A USB ESC re-enumerates after a power cycle, a jump to the bootloader or a reboot, and may come
back under another device name; it is found again by its USB serial number, through a stable
by-id style symlink or through pyserial's list_ports. A port exported over the network (ser2net,
a TCP bridge) never vanishes, so there the reboot is proven through the protocol instead: the
board stops answering (or the exporter drops a link held across the reboot: ser2net closes its
client's connection when the device goes away on its host), then answers again with the same UID.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from serial.tools import list_ports

from rig.errors import Diagnosis, RigError, RigTimeout

log = logging.getLogger(__name__)

VESC_VID, VESC_PID = 0x0483, 0x5740  # STM32 CDC-ACM (facts sheet section 10)
NETWORK_SCHEMES = ("socket://", "rfc2217://", "loop://", "spy://")


@dataclass(frozen=True)
class PortLocator:
    """Finds an ESC's port: its configured path or URL, else its USB serial number."""

    url: str
    usb_serial: str | None = None

    @property
    def observable(self) -> bool:
        """Whether the port's presence tells anything (not for network exporters)."""
        return not self.url.startswith(NETWORK_SCHEMES)

    def current(self) -> str | None:
        """The device the port is now (symlinks resolved), or None while it is gone."""
        found = self.identity()
        return None if found is None else found.device

    def identity(self) -> PortIdentity | None:
        """The port as it is now, distinct for every enumeration of it where that can be told."""
        if not self.observable:
            return PortIdentity(self.url)
        path = Path(self.url)
        try:
            if not self.url:
                raise FileNotFoundError  # found by USB serial number only
            link = path.lstat()
            return PortIdentity(os.path.realpath(path), link.st_ino, link.st_mtime_ns) if path.exists() else None
        except FileNotFoundError:
            pass
        device = find_by_serial(self.usb_serial) if self.usb_serial else None
        return None if device is None else PortIdentity(device)


@dataclass(frozen=True)
class PortIdentity:
    """A port's device, plus its by-id symlink's inode and time where there is one (a new link each time)."""

    device: str
    link_inode: int = 0
    link_mtime_ns: int = 0


def find_by_serial(usb_serial: str) -> str | None:
    """The device of the USB serial port with this serial number (pyserial list_ports), if plugged in."""
    for port in list_ports.comports():
        if port.serial_number == usb_serial:
            return port.device
    return None


@dataclass
class Reappearance:
    """How a board went away and came back: times of each phase and what proved it."""

    gone_s: float
    back_s: float
    answer_s: float
    port_before: str | None
    port_after: str | None
    proof: str

    @property
    def total_s(self) -> float:
        return self.gone_s + self.back_s + self.answer_s


def wait_for(condition: Callable[[], bool], bound_s: float, what: str, diagnosis: Diagnosis, poll_s: float) -> float:
    """Poll until `condition()` holds; the seconds it took, or RigTimeout naming `what` and the bound."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start >= bound_s:
            raise RigTimeout(what, bound_s, diagnosis=diagnosis)
        time.sleep(poll_s)
    return time.monotonic() - start


def proof_of(locator: PortLocator, *, held_link: bool = False) -> str:
    """What proves a reboot on this port (`held_link`: a network link held across it was dropped)."""
    if locator.observable:
        return "port re-enumerated"
    if held_link:
        return "protocol: the exporter dropped the link (port gone on its host), then answered again"
    return "protocol: stopped answering, then answered again"


class OtherBoard(RigError):
    """After a reboot a board with another UID answered: the port (or its exporter) leads to another ESC."""

    diagnosis = Diagnosis.PORT_NEVER_CAME_BACK


def same_board(where: str, uid_before: bytes | None, uid_after: bytes | None) -> str:
    """Words for the proof that the board answering after a reboot is the one from before (same UID);
    OtherBoard when the UIDs differ. Firmware before 3.09 reports no UID: then nothing is compared."""
    if uid_before is None or uid_after is None:
        return "UID not compared (" + ("no answer before" if uid_after is not None else "no UID reported") + ")"
    if uid_before != uid_after:
        raise OtherBoard(f"{where}: after the reboot UID {uid_after.hex()} answered, not {uid_before.hex()}")
    return f"same UID {uid_after.hex()}"


def wait_gone(
    locator: PortLocator,
    before: PortIdentity | None,
    answers: Callable[[], bool],
    bound_s: float,
    *,
    poll_s: float = 0.01,
    diagnosis: Diagnosis = Diagnosis.PORT_NEVER_WENT,
    dropped: Callable[[], bool] | None = None,
) -> float:
    """Wait until the port is no longer the one it was (or, over a network, the board stops answering,
    or `dropped()` says the exporter closed a link held across the reboot)."""
    if locator.observable:
        return wait_for(
            lambda: locator.identity() != before, bound_s, f"port {locator.url} to go away", diagnosis, poll_s
        )
    if dropped is not None:
        return wait_for(dropped, bound_s, f"{locator.url} to drop the link held across the reboot", diagnosis, poll_s)
    return wait_for(lambda: not answers(), bound_s, f"{locator.url} to stop answering", diagnosis, poll_s)


def wait_back(
    locator: PortLocator,
    answers: Callable[[], bool],
    back_bound_s: float,
    answer_bound_s: float,
    *,
    poll_s: float = 0.01,
    back_diagnosis: Diagnosis = Diagnosis.PORT_NEVER_CAME_BACK,
    answer_diagnosis: Diagnosis = Diagnosis.BRICKED,
) -> tuple[float, float]:
    """Wait until the port is back, then until the firmware answers; (back_s, answer_s)."""
    back_s = 0.0
    if locator.observable:
        back_s = wait_for(
            lambda: locator.current() is not None,
            back_bound_s,
            f"port {locator.url} to come back",
            back_diagnosis,
            poll_s,
        )
    answer_s = wait_for(
        answers, answer_bound_s, f"FW_VERSION from {locator.url} once it is back", answer_diagnosis, poll_s
    )
    return back_s, answer_s


def wait_reappearance(
    locator: PortLocator,
    answers: Callable[[], bool],
    *,
    before: PortIdentity | None,
    gone_timeout_s: float,
    back_timeout_s: float,
    answer_timeout_s: float,
    poll_s: float = 0.01,
    back_diagnosis: Diagnosis = Diagnosis.PORT_NEVER_CAME_BACK,
    answer_diagnosis: Diagnosis = Diagnosis.BRICKED,
    dropped: Callable[[], bool] | None = None,
) -> Reappearance:
    """Wait (each phase bounded) until the board has gone, is back, and answers.

    `answers()` must try one bounded FW_VERSION and say whether it got a reply; on a network port,
    `dropped()` (if given) says whether a link held across the reboot was closed by the exporter.
    """
    gone_s = wait_gone(locator, before, answers, gone_timeout_s, poll_s=poll_s, dropped=dropped)
    back_s, answer_s = wait_back(
        locator,
        answers,
        back_timeout_s,
        answer_timeout_s,
        poll_s=poll_s,
        back_diagnosis=back_diagnosis,
        answer_diagnosis=answer_diagnosis,
    )
    after = locator.current()
    log.info("%s back as %s: gone %.3f s, back %.3f s, answer %.3f s", locator.url, after, gone_s, back_s, answer_s)
    proof = proof_of(locator, held_link=dropped is not None)
    return Reappearance(gone_s, back_s, answer_s, before.device if before else None, after, proof)
