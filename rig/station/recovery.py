"""Bring a board back to the expected firmware, escalating as a technician would (F2, F4).

1. Classify: does it answer, and on which firmware?
2. No answer: power-cycle it (state stuck in RAM, or a board hung after a jump to a missing
   bootloader comes back on its old firmware after a power cycle).
3. Old firmware: the update did not take, so the bootloader is suspect: write it again over USB and
   update again.
4. Still not there, or no answer at all: SWD. Program the bootloader and the expected firmware as
   one merged image, verify it, power-cycle, and check again.

Every step is reported (rig.events) and kept in the result; if the board is still not on the
expected firmware after the last step, RecoveryFailed says what was tried.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from rig.errors import Diagnosis, RigError
from rig.events import step
from rig.firmware.image import Image, write_merged_hex
from rig.protocol.commands import FirmwareVersion
from rig.station.bench import StationRig

log = logging.getLogger(__name__)


class BoardState(StrEnum):
    EXPECTED = "answers on the expected firmware"
    OTHER = "answers on another firmware"
    SILENT = "does not answer"


@dataclass
class RecoveryStep:
    action: str
    outcome: str
    seconds: float


@dataclass
class Recovery:
    """What recover() found and did."""

    initial: BoardState
    final: BoardState
    version: FirmwareVersion | None
    steps: list[RecoveryStep] = field(default_factory=list)

    def describe(self) -> str:
        lines = [f"initially: {self.initial.value}"]
        lines += [f"{s.action}: {s.outcome} ({s.seconds:.2f} s)" for s in self.steps]
        return "\n".join([*lines, f"finally: {self.final.value} ({self.version})"])


class RecoveryFailed(RigError):
    diagnosis = Diagnosis.BRICKED


def classify(station: StationRig, expected: FirmwareVersion | None) -> tuple[BoardState, FirmwareVersion | None]:
    """Whether the board answers, and on which firmware."""
    if not station.answers():
        return BoardState.SILENT, None
    with station.connect() as esc:
        assert esc.info is not None
        version = esc.info.version
    return (BoardState.EXPECTED if expected in (None, version) else BoardState.OTHER), version


def recover(
    station: StationRig,
    *,
    firmware: Image,
    bootloader: Image,
    allow_wrong_hw: bool = False,
    work_dir: Path | None = None,
) -> Recovery:
    """Bring the station's board to `firmware`, escalating: power cycle, USB bootloader + update, SWD."""
    state, version = classify(station, firmware.version)
    result = Recovery(state, state, version)

    def attempt(action: str, do: Callable[[], object]) -> None:
        start = time.monotonic()
        with step(f"recovery: {action}", station=station.name):
            try:
                do()
                outcome = "done"
            except RigError as exc:
                outcome = f"failed: {exc} [{exc.diagnosis.value}]"
        nonlocal state, version
        state, version = classify(station, firmware.version)
        result.steps.append(RecoveryStep(action, f"{outcome}; board {state.value}", time.monotonic() - start))
        log.info("%s recovery: %s -> %s", station.name, action, result.steps[-1].outcome)

    has_power = station.spec.relay is not None or station.spec.supply is not None
    if state == BoardState.SILENT and has_power:
        attempt("power cycle", station.power_cycle)
    if state == BoardState.OTHER:
        attempt("bootloader over USB", lambda: station.upload_bootloader(bootloader))
        attempt("update over USB", lambda: station.update(firmware, allow_wrong_hw=allow_wrong_hw))
    if state != BoardState.EXPECTED and station.spec.swd is not None and station.spec.swd.probe is not None:
        folder = work_dir or Path(tempfile.mkdtemp(prefix="rig-recovery-"))
        merged = write_merged_hex(folder / f"{station.name}-recovery.hex", bootloader, firmware)

        def swd_flash() -> None:
            with station.swd() as session:
                session.program(str(merged), chip_erase=True, verify=True)

        attempt("bootloader + firmware over SWD", swd_flash)
        if state != BoardState.EXPECTED and has_power:
            attempt("power cycle", station.power_cycle)
    result.final, result.version = state, version
    if state != BoardState.EXPECTED:
        raise RecoveryFailed(f"station {station.name} not recovered:\n{result.describe()}")
    return result
