"""Each power backend through its real client code against the simulated boards and supply."""

from __future__ import annotations

import sys
import time

import pytest

from rig.errors import PowerError
from rig.hardware.power import PowerChannel, SupplyOutput, open_relay_board, open_supply
from rig.hardware.power.hid_relay import HidRelayBoard, open_hid_relay, switch_report
from rig.hardware.power.lcus import frame
from rig.hardware.power.numato import parse_read_reply, relay_index
from rig.hardware.power.riden import model_for_id
from rig.sim.relay_boards import SimLcusBoard, SimModbusRelay, SimNumatoBoard
from rig.sim.supply import SimRd6006


class PowerLog:
    """A power input that records what it was told."""

    def __init__(self) -> None:
        self.events: list[bool] = []

    def __call__(self, on: bool) -> None:
        self.events.append(on)

    def wait_for(self, events: list[bool], timeout_s: float = 1.0) -> None:
        deadline = time.monotonic() + timeout_s
        while self.events != events and time.monotonic() < deadline:
            time.sleep(0.005)
        assert self.events == events


# --- LCUS -------------------------------------------------------------------------------------


def test_lcus_frames_follow_the_published_examples() -> None:
    assert frame(1, True) == bytes.fromhex("A00101A2")
    assert frame(1, False) == bytes.fromhex("A00100A1")
    assert frame(4, True) == bytes.fromhex("A00401A5")


def test_lcus_switches_the_wired_channel_only() -> None:
    esc2, esc3 = PowerLog(), PowerLog()
    with SimLcusBoard(channels=4, wiring={2: esc2}) as sim:
        sim.wire(3, esc3)
        board = open_relay_board("lcus", sim.port)
        try:
            board.set(2, True)
            esc2.wait_for([True])
            board.set(2, False)
            esc2.wait_for([True, False])
            assert board.get(2) is None  # LCUS cannot read back
            assert esc3.events == []
            with pytest.raises(PowerError, match="channel 5 out of range 1..4"):
                open_relay_board("lcus", sim.port, channels=4).set(5, True)
        finally:
            board.close()


def test_lcus_missing_port_is_a_clear_error() -> None:
    with pytest.raises(PowerError, match="cannot open /dev/serial/by-path/nope"):
        open_relay_board("lcus", "/dev/serial/by-path/nope")


# --- Numato -----------------------------------------------------------------------------------


def test_numato_indexes_and_replies() -> None:
    assert [relay_index(n) for n in (0, 9, 10, 12, 15)] == ["0", "9", "A", "C", "F"]
    assert parse_read_reply("relay read 4", "relay read 4\n\ron\n\r>") is True
    assert parse_read_reply("relay read 4", "relay read 4\n\roff\n\r>") is False
    with pytest.raises(PowerError, match="unexpected reply"):
        parse_read_reply("relay read 4", "relay read 4\n\r>")


def test_numato_switches_and_reads_back() -> None:
    esc = PowerLog()
    with SimNumatoBoard(channels=16, wiring={12: esc}) as sim:
        board = open_relay_board("numato", sim.port, channels=16)
        try:
            assert board.get(12) is False
            board.set(12, True)
            assert esc.events == [True]
            assert board.get(12) is True
            board.set(12, False)
            assert board.get(12) is False
            assert esc.events == [True, False]
        finally:
            board.close()


def test_numato_not_answering_fails_within_the_bound() -> None:
    with SimNumatoBoard() as sim:
        board = open_relay_board("numato", sim.port, timeout_s=0.2)
        sim.responding = False
        start = time.monotonic()
        with pytest.raises(PowerError, match=r"no prompt after 'relay on 1' within 0.2 s"):
            board.set(1, True)
        assert time.monotonic() - start < 1.0
        board.close()


# --- Modbus relays ----------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["tcp", "rtu"])
def test_modbus_coils_switch_and_read_back(transport: str) -> None:
    esc = PowerLog()
    with SimModbusRelay(dialect="coils", wiring={0: esc}, transport=transport) as sim:
        board = open_relay_board("modbus-coils", sim.address, timeout_s=0.5)
        try:
            board.set(0, True)
            assert board.get(0) is True
            board.set(0, False)
            assert board.get(0) is False
            assert esc.events == [True, False]
        finally:
            board.close()


@pytest.mark.parametrize("transport", ["tcp", "rtu"])
def test_modbus_registers_switch_and_read_back(transport: str) -> None:
    esc = PowerLog()
    with SimModbusRelay(dialect="registers", wiring={3: esc}, transport=transport) as sim:
        board = open_relay_board("modbus-registers", sim.address)
        try:
            board.set(3, True)
            assert board.get(3) is True
            board.set(3, False)
            assert board.get(3) is False
            assert esc.events == [True, False]
            with pytest.raises(PowerError, match="out of range 1..8"):
                board.set(0, True)
        finally:
            board.close()
        board = open_relay_board("modbus-registers", sim.address, readback=False)
        assert board.get(3) is None
        board.close()


def test_modbus_wrong_dialect_is_refused() -> None:
    with SimModbusRelay(dialect="registers") as sim:
        board = open_relay_board("modbus-coils", sim.address)
        with pytest.raises(PowerError, match="refused"):
            board.set(1, True)
        board.close()


def test_modbus_not_answering_fails_within_the_bound() -> None:
    esc = PowerLog()
    with SimModbusRelay(dialect="coils", wiring={1: esc}) as sim:
        board = open_relay_board("modbus-coils", sim.address, timeout_s=0.3)
        sim.responding = False
        start = time.monotonic()
        with pytest.raises(PowerError, match="no answer within 0.3 s"):
            board.set(1, True)
        assert time.monotonic() - start < 1.5
        assert esc.events == []  # a dead board switches nothing
        board.close()


def test_modbus_bad_urls_and_options() -> None:
    with pytest.raises(PowerError, match="want tcp://HOST:PORT"):
        open_relay_board("modbus-coils", "tcp://127.0.0.1")
    with pytest.raises(PowerError, match="bad options"):
        open_relay_board("modbus-coils", "tcp://127.0.0.1:1", colour="red")
    with pytest.raises(PowerError, match="unknown relay board kind 'x10'"):
        open_relay_board("x10", "")


# --- Riden RD6006 -----------------------------------------------------------------------------


def test_riden_models() -> None:
    assert model_for_id(60062).i_scale == 1000
    assert model_for_id(60065).v_scale == 1000
    assert model_for_id(60121).name == "RD6012"
    assert model_for_id(12345) is None


def test_rd6006_sets_switches_and_measures_its_loads() -> None:
    direct, switched = PowerLog(), PowerLog()
    with SimRd6006() as sim:
        sim.wire(direct)
        relay_side = sim.branch(switched)
        supply = open_supply("rd6006", sim.address, unit=1)
        try:
            assert supply.model.name == "RD6006"
            supply.set_voltage(12.5)
            supply.set_current(1.234)
            assert supply.output() is False
            assert supply.read_current() == 0.0
            assert supply.read_voltage() == 0.0
            supply.set_output(True)
            assert supply.read_voltage() == 12.5
            assert supply.read_current() == pytest.approx(0.08)
            relay_side(True)
            assert supply.read_current() == pytest.approx(0.16)
            supply.set_current(0.1)  # the current limit holds (CC)
            assert supply.read_current() == pytest.approx(0.1)
            supply.set_output(False)
            assert supply.read_current() == 0.0
            assert direct.events == [True, False]
            assert switched.events == [True, False]
        finally:
            supply.close()


def test_rd6012_scales_are_read_from_the_model_id() -> None:
    with SimRd6006(model_id=60121, i_scale=100, amps_per_load=0.5) as sim:
        sim.wire(PowerLog())
        sim.set_output(True)
        supply = open_supply("rd6006", sim.address)
        assert supply.model.name == "RD6012"
        assert supply.read_current() == pytest.approx(0.5)
        supply.close()


def test_rd6006_not_answering_and_wrong_device() -> None:
    with SimRd6006() as sim:
        supply = open_supply("rd6006", sim.address, timeout_s=0.3)
        sim.responding = False
        with pytest.raises(PowerError, match="read output current: no answer within 0.3 s"):
            supply.read_current()
        supply.close()
    with SimRd6006(model_id=4242) as sim, pytest.raises(PowerError, match="not a Riden RD60xx"):
        open_supply("rd6006", sim.address)


def test_supply_output_as_a_power_channel() -> None:
    esc = PowerLog()
    with SimRd6006() as sim:
        sim.wire(esc)
        channel = PowerChannel(SupplyOutput(open_supply("rd6006", sim.address)), 1, "bench")
        channel.switch(True)
        assert channel.state() is True
        channel.switch(False)
        assert esc.events == [True, False]
        with pytest.raises(PowerError, match="out of range 1..1"):
            channel.board.set(2, True)
        channel.board.close()


# --- HID (dcttech) ----------------------------------------------------------------------------


class FakeHidDevice:
    """The only fake here: no HID devices in this sandbox. Behaves as hidapi's hid.device on a
    dcttech board: feature report 0 carries the 5-byte board ID and the relay bitmask at byte 7."""

    def __init__(self, board_id: bytes = b"QWERT") -> None:
        self.sent: list[bytes] = []
        self.board_id = board_id
        self.state = 0
        self.closed = False

    def send_feature_report(self, data: bytes) -> int:
        self.sent.append(bytes(data))
        command, relay = data[1], data[2]
        if command == 0xFF:
            self.state |= 1 << (relay - 1)
        elif command == 0xFD:
            self.state &= ~(1 << (relay - 1))
        return len(data)

    def get_feature_report(self, report_num: int, max_length: int) -> list[int]:
        assert report_num == 0
        return [0, *self.board_id, 0, 0, self.state][:max_length]

    def close(self) -> None:
        self.closed = True


def test_hid_report_bytes_and_read_back() -> None:
    assert switch_report(2, True) == bytes([0, 0xFF, 2, 0, 0, 0, 0, 0, 0])
    assert switch_report(2, False) == bytes([0, 0xFD, 2, 0, 0, 0, 0, 0, 0])
    device = FakeHidDevice()
    board = HidRelayBoard(device, channels=2, name="HID relay QWERT")
    board.set(2, True)
    assert device.sent == [switch_report(2, True)]
    assert board.get(2) is True
    assert board.get(1) is False
    assert board.board_id() == "QWERT"
    with pytest.raises(PowerError, match="out of range 1..2"):
        board.set(3, True)
    board.close()
    assert device.closed


def test_hid_without_hidapi_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "hid", None)  # import hid -> ImportError
    with pytest.raises(PowerError, match="optional 'hidapi' package"):
        open_hid_relay("QWERT")


# --- external command -------------------------------------------------------------------------


def test_command_runs_without_a_shell(tmp_path) -> None:
    out = tmp_path / "out"
    script = "import sys; open(sys.argv[1], 'a').write(' '.join(sys.argv[2:]) + ';')"
    argv = [sys.executable, "-c", script, str(out), "port={channel}", "$(echo {state})"]
    board = open_relay_board("command", "hub", argv=argv, on_word="1", off_word="0")
    board.set(2, True)
    board.set(2, False)
    assert out.read_text() == "port=2 $(echo 1);port=2 $(echo 0);"
    assert board.get(2) is None


def test_command_failures_are_clear() -> None:
    failing = [sys.executable, "-c", "import sys; sys.stderr.write('hub 1-1 not found'); sys.exit(3)"]
    with pytest.raises(PowerError, match="exited with 3: hub 1-1 not found"):
        open_relay_board("command", argv=failing).set(1, True)
    slow = [sys.executable, "-c", "import time; time.sleep(5)"]
    start = time.monotonic()
    with pytest.raises(PowerError, match="did not finish within 0.3 s"):
        open_relay_board("command", argv=slow, timeout_s=0.3).set(1, True)
    assert time.monotonic() - start < 2.0
    with pytest.raises(PowerError, match="program not found"):
        open_relay_board("command", argv=["/nonexistent/uhubctl"]).set(1, True)
