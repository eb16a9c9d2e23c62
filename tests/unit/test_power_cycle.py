"""Power cycles with proof (F9) through every backend, against simulated boards, and their failures."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rig.errors import Diagnosis, PowerError
from rig.hardware.power import PowerChannel, SupplyOutput, open_relay_board, open_supply, power_cycle
from rig.sim.relay_boards import SimLcusBoard, SimModbusRelay, SimNumatoBoard
from rig.sim.supply import SimRd6006
from rig.transport.presence import PortLocator

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

    @property
    def locator(self) -> PortLocator:
        return PortLocator(str(self.link), SERIAL)

    def port(self) -> str | None:
        return self.locator.current()

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
    """A relay board of `backend`, the stand-in wired to one channel, opened by the real client."""
    with contextlib.ExitStack() as stack:
        if backend == "lcus":
            sim = stack.enter_context(SimLcusBoard(wiring={2: esc}))
            board, channel = open_relay_board("lcus", sim.port), 2
        elif backend == "numato":
            sim = stack.enter_context(SimNumatoBoard(wiring={2: esc}))
            board, channel = open_relay_board("numato", sim.port), 2
        elif backend.startswith("modbus-coils"):
            transport = backend.rsplit("-", 1)[1]
            sim = stack.enter_context(SimModbusRelay(dialect="coils", wiring={1: esc}, transport=transport))
            board, channel = open_relay_board("modbus-coils", sim.address), 1
        elif backend == "modbus-registers":
            sim = stack.enter_context(SimModbusRelay(dialect="registers", wiring={2: esc}))
            board, channel = open_relay_board("modbus-registers", sim.address), 2
        else:
            state_file = tmp_path / "hub-port-2"
            stack.callback(FileWatcher(state_file, esc).close)
            script = (
                "import os, sys; new = sys.argv[1] + '.new'; "
                "open(new, 'w').write(sys.argv[2]); os.replace(new, sys.argv[1])"
            )
            argv = [sys.executable, "-c", script, str(tmp_path / "hub-port-{channel}"), "{state}"]
            board, channel = open_relay_board("command", "uhubctl-standin", argv=argv), 2
        stack.callback(board.close)
        yield PowerChannel(board, channel, backend)


def power_on(channel: PowerChannel, esc: StandInEsc) -> str:
    """Switch on and wait for the stand-in's port; its path."""
    channel.switch(True)
    deadline = time.monotonic() + 2.0
    while esc.port() is None:
        assert time.monotonic() < deadline, "stand-in never powered up"
        time.sleep(0.01)
    return esc.port()


def eventually(condition: Callable[[], bool], timeout_s: float = 1.0) -> bool:
    """LCUS boards never answer, so their effect shows a moment after the write."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.005)
    return True


@pytest.mark.parametrize("backend", BACKENDS)
def test_power_cycle_through_each_backend(backend: str, esc: StandInEsc, tmp_path: Path) -> None:
    with rack(backend, esc, tmp_path) as channel:
        before = power_on(channel, esc)
        result = power_cycle(channel, locator=esc.locator, answers=esc.answers, **FAST)
    assert result.port_before == before
    assert result.port_after is not None
    assert result.proof == "port re-enumerated"
    for phase in ("off_s", "gone_s", "settle_s", "on_s", "back_s", "answer_s"):
        assert getattr(result, phase) >= 0.0, phase
    assert result.settle_s >= FAST["settle_s"]
    assert result.total_s < 3.0
    assert result.supply_current_off is None and result.supply_current_on is None
    assert esc.powered


def test_cycle_of_a_board_whose_port_was_absent(esc: StandInEsc, tmp_path: Path) -> None:
    with rack("numato", esc, tmp_path) as channel:
        result = power_cycle(channel, locator=esc.locator, answers=esc.answers, **FAST)
    assert result.port_before is None
    assert result.gone_s == 0.0
    assert result.proof == "port appeared after power on"


def test_board_not_answering_is_a_bounded_error(esc: StandInEsc, tmp_path: Path) -> None:
    with SimNumatoBoard(wiring={2: esc}) as sim:
        channel = PowerChannel(open_relay_board("numato", sim.port, timeout_s=0.2), 2, "numato")
        power_on(channel, esc)
        sim.responding = False
        start = time.monotonic()
        with pytest.raises(PowerError, match=r"within 0.2 s") as caught:
            power_cycle(channel, locator=esc.locator, answers=esc.answers, **FAST)
        assert caught.value.diagnosis is Diagnosis.POWER_FAILED
        assert time.monotonic() - start < 1.0
        assert esc.powered  # nothing switched
        channel.board.close()


def test_silent_board_that_ignores_commands_is_caught_by_the_port(esc: StandInEsc, tmp_path: Path) -> None:
    """An LCUS board never answers, so a dead one only shows as a port that never goes."""
    with SimLcusBoard(wiring={2: esc}) as sim:
        channel = PowerChannel(open_relay_board("lcus", sim.port), 2, "lcus")
        power_on(channel, esc)
        sim.responding = False
        with pytest.raises(PowerError, match="still there after 0.3 s") as caught:
            power_cycle(channel, locator=esc.locator, answers=esc.answers, **{**FAST, "gone_timeout_s": 0.3})
        assert caught.value.diagnosis is Diagnosis.PORT_NEVER_WENT
        channel.board.close()


def test_channel_wired_to_nothing(esc: StandInEsc, tmp_path: Path) -> None:
    with SimLcusBoard(wiring={2: esc}) as sim:
        right = PowerChannel(open_relay_board("lcus", sim.port), 2, "lcus")
        power_on(right, esc)
        wrong = PowerChannel(right.board, 3, "lcus")  # clicks, but feeds nothing
        start = time.monotonic()
        with pytest.raises(PowerError, match="still there after 0.3 s: wrong channel or wiring") as caught:
            power_cycle(wrong, locator=esc.locator, answers=esc.answers, **{**FAST, "gone_timeout_s": 0.3})
        assert caught.value.diagnosis is Diagnosis.PORT_NEVER_WENT
        assert time.monotonic() - start < 1.0
        assert esc.powered
        assert eventually(lambda: sim.wiring.states[3])  # the wrong channel was switched back on
        right.board.close()


def test_port_that_never_comes_back(esc: StandInEsc, tmp_path: Path) -> None:
    with rack("modbus-coils-tcp", esc, tmp_path) as channel:
        before = power_on(channel, esc)
        esc.comes_back = False
        start = time.monotonic()
        with pytest.raises(PowerError, match=f"did not come back within 0.3 s \\(was {before}\\)") as caught:
            power_cycle(channel, locator=esc.locator, answers=esc.answers, **{**FAST, "back_timeout_s": 0.3})
        assert caught.value.diagnosis is Diagnosis.PORT_NEVER_CAME_BACK
        assert time.monotonic() - start < 1.0


def test_firmware_that_never_answers_is_bricked(esc: StandInEsc, tmp_path: Path) -> None:
    with rack("numato", esc, tmp_path) as channel:
        power_on(channel, esc)
        esc.firmware_answers = False
        with pytest.raises(PowerError, match="did not answer FW_VERSION within 0.2 s") as caught:
            power_cycle(channel, locator=esc.locator, answers=esc.answers, **{**FAST, "answer_timeout_s": 0.2})
        assert caught.value.diagnosis is Diagnosis.BRICKED


def test_supply_current_proves_the_cycle(esc: StandInEsc, tmp_path: Path) -> None:
    with SimRd6006() as bench, SimModbusRelay(dialect="coils") as relay:
        relay.wire(1, bench.branch(esc))
        bench.wire(lambda on: None)  # another ESC on the same supply, not cycled
        supply = open_supply("rd6006", bench.address)
        supply.set_output(True)
        channel = PowerChannel(open_relay_board("modbus-coils", relay.address), 1, "relay")
        power_on(channel, esc)
        result = power_cycle(channel, locator=esc.locator, answers=esc.answers, supply=supply, **FAST)
        assert result.proof == "port re-enumerated, supply current"
        assert result.supply_current_off == pytest.approx(0.08)
        assert result.supply_current_on == pytest.approx(0.16)
        channel.board.close()
        supply.close()


def test_supply_current_that_does_not_drop_fails(esc: StandInEsc, tmp_path: Path) -> None:
    """The port goes (the relay cuts this ESC) but the supply feeds something else: no proof."""
    with SimRd6006() as bench, rack("lcus", esc, tmp_path) as channel:
        bench.wire(lambda on: None)
        supply = open_supply("rd6006", bench.address)
        supply.set_output(True)
        power_on(channel, esc)
        with pytest.raises(PowerError, match="supply current did not follow"):
            power_cycle(channel, locator=esc.locator, answers=esc.answers, supply=supply, **FAST)
        assert eventually(lambda: esc.powered)  # switched back on after the failed proof
        supply.close()


def test_power_cycle_through_the_supply_output(esc: StandInEsc) -> None:
    with SimRd6006() as bench:
        bench.wire(esc)
        supply = open_supply("rd6006", bench.address)
        channel = PowerChannel(SupplyOutput(supply), 1, "bench")
        power_on(channel, esc)
        result = power_cycle(channel, locator=esc.locator, answers=esc.answers, supply=supply, **FAST)
        assert result.proof == "port re-enumerated, supply current"
        assert result.supply_current_off == 0.0
        supply.close()


def test_locator_follows_the_stand_in(tmp_path: Path, esc: StandInEsc) -> None:
    assert PortLocator(str(tmp_path / "missing"), "OTHERSERIAL").current() is None
    assert esc.port() is None
    esc(True)
    assert esc.port() == os.path.realpath(esc.link)
