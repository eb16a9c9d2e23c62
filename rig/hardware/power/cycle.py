"""A power cycle with proof (field failure F9): off, the USB port goes, settle, on, the port comes back
(found again by USB serial number, its device name may change), the firmware answers; every phase
timed and bounded, and, where a supply feeds the ESC, its current confirms off and on."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from rig.errors import Diagnosis, PowerError, RigTimeout
from rig.hardware.power.base import PowerChannel, PowerSupply
from rig.transport.presence import PortLocator, proof_of, wait_back, wait_gone

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


def power_cycle(
    channel: PowerChannel,
    *,
    locator: PortLocator,
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

    `locator` finds the ESC's port (by its stable name or USB serial number); `answers()` is True when
    the firmware answers one bounded FW_VERSION. With a supply, its output current must drop by at
    least `min_current_step_a` when off and rise again when on. A port that cannot be watched (one
    exported over the network) is proven through the protocol: no answer while off, an answer after.
    """
    before = locator.identity()
    current_before = supply.read_current() if supply else None
    off_s = _timed(lambda: channel.switch(False))
    try:
        gone_s = wait_gone(locator, before, answers, gone_timeout_s, poll_s=poll_s) if before else 0.0
    except RigTimeout as exc:
        _restore(channel)
        what = f"port {before.device if before else locator.url} was still there"
        if not locator.observable:
            what = f"{locator.url} still answered"
        raise PowerError(
            f"{channel} switched off, but {what} after {exc.bound_s:.3g} s: wrong channel or wiring",
            diagnosis=exc.diagnosis,
        ) from exc

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
    try:
        back_s, answer_s = wait_back(locator, answers, back_timeout_s, answer_timeout_s, poll_s=poll_s)
    except RigTimeout as exc:
        if exc.diagnosis == Diagnosis.PORT_NEVER_CAME_BACK:
            message = f"{channel} switched on, but the port did not come back within {exc.bound_s:.3g} s"
            message += f" (was {before.device if before else None})"
        else:
            message = (
                f"{channel}: port {locator.current()} is back, but the firmware did not answer FW_VERSION "
                f"within {exc.bound_s:.3g} s"
            )
        raise PowerError(message, diagnosis=exc.diagnosis) from exc
    current_on = supply.read_current() if supply else None
    if current_off is not None and current_on is not None:
        _check_step(channel, "on", current_on, current_off, min_current_step_a)

    proofs = [proof_of(locator) if before is not None else "port appeared after power on"]
    if supply is not None:
        proofs.append("supply current")
    result = PowerCycleResult(
        off_s=off_s,
        gone_s=gone_s,
        settle_s=settle_took,
        on_s=on_s,
        back_s=back_s,
        answer_s=answer_s,
        port_before=before.device if before else None,
        port_after=locator.current() or "",
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
