"""The station strategy: where a station's board is, and the cheapest way to where a test needs it.

A board is ``off`` (its power channel reads off), ``silent`` (powered or unknown, no answer),
``running`` a firmware version, or ``broken``: an earlier transition could not bring it back, and the
state directory remembers why, so the next test (or the next run) does not flash it blindly again; it
is skipped with that diagnosis until someone repairs the board and clears the mark
(``rig rack clear-broken``).

:meth:`StationStrategy.transition` takes a target (:class:`Running` an image, or :class:`Off`) and
escalates as a technician would, re-observing the board after every step (F2, F4, F9):

1. off: power on; silent: power cycle (state stuck in RAM; a board hung after a jump to a missing
   bootloader comes back on its old firmware);
2. running another version: update over USB;
3. the update did not take (bootloader missing or rejected) or the board hung, now or in the session's
   last update: power cycle, bootloader over USB, update again;
4. still not there, or silent: bootloader and firmware over SWD as one image (a mass erase: the
   session's permit must allow it), power cycle;
5. still not there: broken, with the last diagnosis.

Every step goes through the station session, so its guards (lease, config care, permits) apply, and is
kept in the returned :class:`Transition`. :meth:`StationStrategy.provision` is the factory's path for a
blank board: SWD mass erase, bootloader and a firmware, power cycle, then the target over USB (which
proves the bootloader).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TypeVar

from rig.errors import Diagnosis, RigError
from rig.events import Progress, step
from rig.firmware.image import Image
from rig.hardware.swd import ConnectMode, SwdConnectFailed, SwdSession
from rig.interrupts import Interrupted
from rig.protocol.commands import FirmwareVersion
from rig.station.session import StationSession

log = logging.getLogger(__name__)
T = TypeVar("T")
StepHook = Callable[[str, float, object], None]
"""Told of each finished step of a transition: its name, seconds, and what it returned."""


class Status(StrEnum):
    OFF = "off"
    SILENT = "silent"
    RUNNING = "running"
    BROKEN = "broken"


@dataclass(frozen=True)
class BoardState:
    """What the strategy last saw of the board."""

    status: Status
    version: FirmwareVersion | None = None
    hw_name: str | None = None
    uid: str | None = None
    diagnosis: str | None = None

    def __str__(self) -> str:
        if self.status == Status.RUNNING:
            return f"running {self.version}"
        return self.status.value + (f" ({self.diagnosis})" if self.diagnosis else "")


@dataclass(frozen=True)
class Running:
    """Target: the board (and with all_can, every CAN node) runs `image`'s version."""

    image: Image
    all_can: bool = False

    def reached(self, state: BoardState, versions: set[FirmwareVersion | None]) -> bool:
        return state.status == Status.RUNNING and self.image.version is not None and versions == {self.image.version}

    def __str__(self) -> str:
        return f"running {self.image.version or self.image.source}"


@dataclass(frozen=True)
class Off:
    """Target: the board's power is off."""

    def __str__(self) -> str:
        return "off"


Target = Running | Off


@dataclass
class TransitionStep:
    action: str
    outcome: str
    seconds: float
    diagnosis: str | None = None


@dataclass
class Transition:
    """Where the board was, what was done, and where it ended."""

    target: str
    initial: BoardState
    final: BoardState
    steps: list[TransitionStep] = field(default_factory=list)

    @property
    def actions(self) -> list[str]:
        return [s.action for s in self.steps]

    def describe(self) -> str:
        lines = [f"target: {self.target}", f"initially: {self.initial}"]
        lines += [f"{s.action}: {s.outcome} ({s.seconds:.2f} s)" for s in self.steps]
        return "\n".join([*lines, f"finally: {self.final}"])


class StationBroken(RigError):
    """The station's board could not be brought where it was needed; it is marked broken."""

    diagnosis = Diagnosis.STATION_BROKEN

    def __init__(self, message: str, transition: Transition | None = None) -> None:
        super().__init__(message)
        self.transition = transition


class StepFailed(RigError):
    """A step of a provisioning path failed; `name` says which, `error` why."""

    def __init__(self, name: str, error: RigError) -> None:
        super().__init__(f"{name}: {error}", diagnosis=error.diagnosis)
        self.name = name
        self.error = error


class StationStrategy:
    """Moves one station's board between states through its session."""

    def __init__(self, session: StationSession, *, bootloader: Image | None = None) -> None:
        self.session = session
        self.bootloader = bootloader
        self.state = BoardState(Status.SILENT)

    # --- observing ----------------------------------------------------------------------------------

    def observe(self) -> BoardState:
        """Look at the board now: broken mark, power, FW_VERSION."""
        mark = self.session.state.broken(self.session.key)
        if mark is not None:
            self.state = BoardState(Status.BROKEN, diagnosis=f"{mark.diagnosis}: {mark.detail} (since {mark.at_text})")
            return self.state
        info = self.session.probe()
        if info is not None:
            self.state = BoardState(Status.RUNNING, info.version, info.hw_name, (info.uid or b"").hex())
        elif self.session.has_power and self.session.bench.power_channel().state() is False:
            self.state = BoardState(Status.OFF)
        else:
            self.state = BoardState(Status.SILENT)
        return self.state

    def versions(self, all_can: bool) -> set[FirmwareVersion | None]:
        """The version of the USB node and, with all_can, of every CAN node the rack lists."""
        with self.session.connect() as esc:
            assert esc.info is not None
            found: set[FirmwareVersion | None] = {esc.info.version}
            if all_can:
                found |= {client.fw_version().version for node, client in self.session.nodes(esc) if node is not None}
        return found

    def check_not_broken(self) -> None:
        """StationBroken (with the remembered diagnosis) if the station is marked broken."""
        mark = self.session.state.broken(self.session.key)
        if mark is not None:
            raise StationBroken(
                f"station {self.session.name} is broken since {mark.at_text}: {mark.diagnosis}: {mark.detail}. "
                f"Repair the board, then `rig rack clear-broken --rack RACK {self.session.name}`"
            )

    # --- transitions --------------------------------------------------------------------------------

    def transition(self, target: Target) -> Transition:
        """Bring the board to `target` by the cheapest path; StationBroken (and the mark) if it cannot."""
        self.check_not_broken()
        initial = self.observe()
        done = Transition(str(target), initial, initial)
        with (
            step(f"bring {self.session.name} to {target}", initially=str(initial)),
            self.session.preserving_configs(f"bring to {target}", path=True),
        ):
            if isinstance(target, Off):
                self._attempt(done, "power off", lambda: self.session.power(False))
            else:
                self._to_running(target, done)
        done.final = self.state
        if not self._reached(target):
            last = next((s for s in reversed(done.steps) if s.diagnosis), None)
            detail = f"{done.final}; last step {last.action}: {last.outcome}" if last else str(done.final)
            self.session.state.mark_broken(self.session.key, Diagnosis.STATION_BROKEN, f"not {target}: {detail}")
            self.state = replace(self.state, status=Status.BROKEN)
            raise StationBroken(
                f"station {self.session.name} could not be brought to {target}:\n{done.describe()}", done
            )
        return done

    def _reached(self, target: Target) -> bool:
        if isinstance(target, Off):
            return self.state.status == Status.OFF
        if self.state.status != Status.RUNNING:
            return False
        return target.reached(self.state, self.versions(target.all_can))

    def _to_running(self, target: Running, done: Transition) -> None:
        session, image = self.session, target.image
        if self.state.status == Status.OFF:
            self._attempt(done, "power on", session.power_on)
        if self.state.status == Status.SILENT and session.has_power:
            self._attempt(done, "power cycle", session.power_cycle)
        if self._reached(target):
            return
        if self.state.status == Status.RUNNING and not (session.bootloader_suspect and self.bootloader is not None):
            self._attempt(done, "update over USB", lambda: session.update(image, all_can=target.all_can))
            if self._reached(target):
                return
            if self.state.status == Status.SILENT and session.has_power:
                self._attempt(done, "power cycle", session.power_cycle)
        if self.state.status == Status.RUNNING and self.bootloader is not None:
            bootloader = self.bootloader
            self._attempt(done, "bootloader over USB", lambda: session.upload_bootloader(bootloader))
            self._attempt(done, "update over USB", lambda: session.update(image, all_can=target.all_can))
            if self._reached(target):
                return
        if session.has_swd and self.bootloader is not None:
            images = [self.bootloader, image]
            self._attempt(done, "bootloader + firmware over SWD", lambda: session.swd_program(images, chip_erase=True))
            if session.has_power:
                self._attempt(done, "power cycle", session.power_cycle)

    def _attempt(self, done: Transition, action: str, do: Callable[[], object]) -> None:
        """Run one step, note its outcome, and look at the board again."""
        start = time.monotonic()
        diagnosis = None
        try:
            do()
            outcome = "done"
        except Interrupted:
            raise
        except RigError as exc:
            outcome = f"failed: {exc} [{exc.diagnosis.value}]"
            diagnosis = exc.diagnosis.value
        state = self.observe()
        done.steps.append(TransitionStep(action, f"{outcome}; board {state}", time.monotonic() - start, diagnosis))
        log.info("%s: %s -> %s", self.session.name, action, done.steps[-1].outcome)

    # --- the factory's path -------------------------------------------------------------------------

    def provision(
        self,
        *,
        bootloader: Image,
        swd_firmware: Image,
        firmware: Image | None,
        all_can: bool = False,
        on_step: StepHook | None = None,
        progress: Progress | None = None,
    ) -> BoardState:
        """A blank (or any) board from scratch: power on, SWD mass erase, bootloader + `swd_firmware`,
        power cycle, then `firmware` over USB through the bootloader just written (None: stop after SWD).

        Each step is told to `on_step` as it ends; a failing step raises StepFailed naming it. `progress` follows
        the SWD programming and the USB upload."""
        session = self.session

        def run(name: str, do: Callable[[], T]) -> T:
            start = time.monotonic()
            with step(f"factory: {name}", station=session.name):
                try:
                    value = do()
                except RigError as exc:
                    raise StepFailed(name, exc) from exc
            if on_step is not None:
                on_step(name, time.monotonic() - start, value)
            return value

        with session.preserving_configs("factory bring-up", path=True):
            if session.has_power:  # a board left off (say, by a failed run) does not answer SWD
                run("power on", lambda: session.power(True))
            swd = run("swd connect", lambda: self._swd_connect(progress))
            try:
                run("swd mass erase", lambda: session.swd_erase(mass=True, swd=swd))
                run("swd program", lambda: session.swd_program([bootloader, swd_firmware], swd=swd))
            finally:
                swd.close()
            run("power cycle", session.power_cycle)
            if firmware is not None:
                run("firmware over USB", lambda: session.update(firmware, all_can=all_can, progress=progress))
        return self.observe()

    def _swd_connect(self, progress: Progress | None = None) -> SwdSession:
        """An open SWD session: in the station's connect mode (one try), then under reset if the target is silent."""
        swd = self.session.swd(progress)
        configured = swd.config
        if configured.connect_mode != ConnectMode.UNDER_RESET:
            swd.config = replace(configured, connect_attempts=1)
            try:
                swd.open()
                return swd
            except SwdConnectFailed as exc:
                log.info("%s: %s; connecting under reset", self.session.name, exc)
        swd.config = replace(configured, connect_mode=ConnectMode.UNDER_RESET)
        swd.open()
        return swd
