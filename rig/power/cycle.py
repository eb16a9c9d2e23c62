"""A power cycle with proof (field failure F9): off, the USB port goes, settle, on, the port comes back
(found again by USB serial number, its device name may change), the firmware answers; every phase
timed and bounded, and, where a supply feeds the ESC, its current confirms off and on."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from serial.tools import list_ports

from rig.errors import Diagnosis, PowerError
from rig.power.base import PowerChannel, PowerSupply

log = logging.getLogger(__name__)


@dataclass
class PowerCycleResult:
    """Timings of each phase (seconds) and what proved the cycle."""

    off_s: float  # switching off
    gone_s: float  # from off until the port was gone
    settle_s: float  # off time after the port was gone
    on_s: float  # switching on
    back_s: float  # from on until the port was back
    answer_s: float  # from the port back until the firmware answered
    port_before: str | None
    port_after: str
    proof: str
    supply_current_off: float | None = None
    supply_current_on: float | None = None

    @property
    def total_s(self) -> float:
        return self.off_s + self.gone_s + self.settle_s + self.on_s + self.back_s + self.answer_s


def _timed(action: Callable[[], None]) -> float:
    start = time.monotonic()
    action()
    return time.monotonic() - start


def wait_until(condition: Callable[[], bool], timeout_s: float, poll_s: float) -> float | None:
    """Poll until condition() holds; the elapsed time, or None when timeout_s ran out."""
    start = time.monotonic()
    while True:
        if condition():
            return time.monotonic() - start
        if time.monotonic() - start >= timeout_s:
            return None
        time.sleep(poll_s)


def power_cycle(
    channel: PowerChannel,
    *,
    port_present: Callable[[], str | None],
    answers: Callable[[], bool],
    supply: PowerSupply | None = None,
    settle_s: float = 0.5,
    gone_timeout_s: float = 5.0,
    back_timeout_s: float = 10.0,
    answer_timeout_s: float = 10.0,
    poll_s: float = 0.02,
    min_current_step_a: float = 0.02,
) -> PowerCycleResult:
    """Power-cycle one ESC through `channel` and prove it.

    port_present() gives the ESC's current port path (found by USB serial number) or None when gone;
    answers() is True when the firmware answers FW_VERSION. With a supply, its output current must
    drop by at least min_current_step_a when off and rise again when on.
    """
    port_before = port_present()
    current_before = supply.read_current() if supply else None
    off_s = _timed(lambda: channel.switch(False))

    gone_s = 0.0
    if port_before is not None:
        waited = wait_until(lambda: port_present() is None, gone_timeout_s, poll_s)
        if waited is None:
            _restore(channel)
            raise PowerError(
                f"{channel} switched off, but port {port_before} was still there after "
                f"{gone_timeout_s:.3g} s: wrong channel or wiring",
                diagnosis=Diagnosis.PORT_NEVER_WENT,
            )
        gone_s = waited

    settle_start = time.monotonic()
    time.sleep(settle_s)
    current_off = supply.read_current() if supply else None
    if current_before is not None and current_off is not None:
        try:
            _check_step(channel, "off", current_before, current_off, min_current_step_a)
        except PowerError:
            _restore(channel)
            raise
    settle_took = time.monotonic() - settle_start

    on_s = _timed(lambda: channel.switch(True))
    port_after: str | None = None

    def back() -> bool:
        nonlocal port_after
        port_after = port_present()
        return port_after is not None

    back_s = wait_until(back, back_timeout_s, poll_s)
    if back_s is None or port_after is None:
        raise PowerError(
            f"{channel} switched on, but the port did not come back within {back_timeout_s:.3g} s (was {port_before})",
            diagnosis=Diagnosis.PORT_NEVER_CAME_BACK,
        )
    answer_s = wait_until(answers, answer_timeout_s, poll_s)
    if answer_s is None:
        raise PowerError(
            f"{channel}: port {port_after} is back, but the firmware did not answer FW_VERSION within "
            f"{answer_timeout_s:.3g} s",
            diagnosis=Diagnosis.BRICKED,
        )
    current_on = supply.read_current() if supply else None
    if current_off is not None and current_on is not None:
        _check_step(channel, "on", current_on, current_off, min_current_step_a)

    proofs = ["port re-enumerated" if port_before is not None else "port appeared after power on"]
    if supply is not None:
        proofs.append("supply current")
    result = PowerCycleResult(
        off_s=off_s,
        gone_s=gone_s,
        settle_s=settle_took,
        on_s=on_s,
        back_s=back_s,
        answer_s=answer_s,
        port_before=port_before,
        port_after=port_after,
        proof=", ".join(proofs),
        supply_current_off=current_off,
        supply_current_on=current_on,
    )
    log.info("power cycle of %s: %s", channel, result)
    return result


def _check_step(channel: PowerChannel, phase: str, high: float, low: float, step: float) -> None:
    """The supply current while powered must exceed the current while off by `step`."""
    if high - low < step:
        raise PowerError(
            f"{channel} switched {phase}, but the supply current did not follow (powered {high:.3f} A, "
            f"off {low:.3f} A, need a step of {step:.3f} A): this channel does not switch this ESC's supply"
        )


def _restore(channel: PowerChannel) -> None:
    """Switch a channel back on after a failed cycle, so a wrong channel is left as it was found."""
    try:
        channel.switch(True)
    except PowerError as exc:
        log.warning("could not switch %s back on: %s", channel, exc)


def port_by_serial(directory: str, serial_number: str) -> str | None:
    """The device a /dev/serial/by-id style symlink named with `serial_number` points to, or None."""
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return None
    for name in names:
        if serial_number not in name:
            continue
        try:
            return os.path.realpath(os.path.join(directory, name), strict=True)
        except OSError:  # the link or its device vanished while we looked (udev removes them as USB goes)
            continue
    return None


def port_by_usb_serial(serial_number: str) -> str | None:
    """On real hardware: the port whose USB serial number is `serial_number` (pyserial list_ports)."""
    for port in list_ports.comports():
        if port.serial_number == serial_number:
            return port.device
    return None
