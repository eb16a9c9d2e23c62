"""Power cycles with proof (F9) through every backend, against simulated boards, and their failures."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rig.errors import Diagnosis, PowerError
from rig.power import PowerChannel, SupplyOutput, open_relay_board, open_supply, port_by_serial, power_cycle
from rig.sim.relay_boards import SimLcusBoard, SimModbusRelay, SimNumatoBoard
from rig.sim.supply import SimRd6006

SERIAL = "3A0041000C51363436383538"
FAST = {"settle_s": 0.05, "gone_timeout_s": 1.0, "back_timeout_s": 1.0, "answer_timeout_s": 1.0, "poll_s": 0.01}


class StandInEsc:
    """A device with a power input, until the simulated ESC replaces it: while powered, a pty exists
    with a /dev/serial/by-id style symlink named with its USB serial number."""

    def __init__(self, by_id: Path) -> None:
        self.by_id = by_id
        self.link = by_id / f"usb-STMicroelectronics_ChibiOS_RT_Virtual_COM_Port_{SERIAL}-if00"
        self.comes_back = True  # fault: False = the port never re-enumerates
        self.firmware_answers = True  # fault: False = bricked
        self.powered = False
        self._fds: tuple[int, int] | None = None
        self._lock = threading.Lock()

    def __call__(self, on: bool) -> None:
        with self._lock:
            self.powered = on
            if on and self._fds is None and self.comes_back:
                self._fds = os.openpty()
                self.link.symlink_to(os.ttyname(self._fds[1]))
            elif not on and self._fds is not None:
                self.link.unlink()
                for fd in self._fds:
                    os.close(fd)
                self._fds = None

    def port(self) -> str | None:
        return port_by_serial(str(self.by_id), SERIAL)

    def answers(self) -> bool:
        return self.powered and self.firmware_answers and self.port() is not None


class FileWatcher:
    """Turns the state a command writes into a file into power for the stand-in."""

    def __init__(self, path: Path, esc: StandInEsc) -> None:
        self.path, self.esc = path, esc
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        last = None
        while not self._stop.wait(0.005):
            state = self.path.read_text() if self.path.exists() else None
            if state is not None and state != last:
                last = state
                self.esc(state == "on")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)


@pytest.fixture
def esc(tmp_path: Path) -> Iterator[StandInEsc]:
    by_id = tmp_path / "by-id"
    by_id.mkdir()
    device = StandInEsc(by_id)
    yield device
    device(False)


BACKENDS = ["lcus", "numato", "modbus-coils-tcp", "modbus-coils-rtu", "modbus-registers", "command"]


@contextlib.contextmanager
def rack(backend: str, esc: StandInEsc, tmp_path: Path) -> Iterator[PowerChannel]:
    """A relay board of `backend` with `esc` on its channel 2 (1 for coils), opened by the real client."""
    with contextlib.ExitStack in_stack if False else contextlib.ExitStack() as stack:  # noqa: SIM117
        pass
    raise AssertionError


def test_port_by_serial(tmp_path: Path, esc: StandInEsc) -> None:
    assert port_by_serial(str(tmp_path / "missing"), SERIAL) is None
    assert esc.port() is None
    esc(True)
    assert esc.port() == os.path.realpath(esc.link)
    assert port_by_serial(str(esc.by_id), "OTHERSERIAL") is None
