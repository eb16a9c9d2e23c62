"""Serving simulated ESCs where hardware would be, tested only through the real client (rig.client.esc over
the pty or TCP, rig.hardware.power over the relay boards, SimControl over the socket, `rig sim serve` as a process)."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rig.client.esc import Esc
from rig.device.memory import BOOTLOADER_BASE, FLASH_BASE
from rig.errors import LinkLost, PowerError
from rig.hardware.power.base import open_relay_board
from rig.hardware.swd import ConnectMode, SwdConfig, SwdConnectFailed, SwdProbeBusy, SwdSession, SwdVerifyMismatch
from rig.sim.image import make_bootloader_image
from rig.sim.serve import SimControl, SimRack, SimServeError, usb_port_name
from rig.station.bench import Bounds, StationRig
from rig.station.rack import load_rack, parse_rack

RACKS = Path(__file__).resolve().parents[2] / "fixtures" / "racks"
RIG = [sys.executable, "-c", "import sys; from rig.cli import main; sys.exit(main())"]  # the `rig` entry point
ODD_UID = "0311130d0a7f1a041c00ff15"  # tty control characters: they must pass untouched

SINGLE = f"""
name = "t"
simulated = true
[[station]]
name = "esc"
[station.sim]
hw = "60"
fw = "6.02"
uid = "{ODD_UID}"
tcp_bridge = true
"""


def wait_for(condition: Callable[[], object], bound_s: float, what: str) -> None:
    deadline = time.monotonic() + bound_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {bound_s} s")
        time.sleep(0.01)


@pytest.fixture
def single(tmp_path: Path) -> Iterator[SimRack]:
    rack_file = tmp_path / "single.toml"
    rack_file.write_text(SINGLE)
    with SimRack(load_rack(rack_file), tmp_path / "run") as sim:
        yield sim


def port_of(sim: SimRack) -> Path:
    port = sim.resolved.station("esc").port
    assert port is not None
    return Path(port)


# --- USB presence ----------------------------------------------------------------------------------


def test_stable_name_follows_usb_and_power_cycle_reenumerates(single: SimRack) -> None:
    port = port_of(single)
    station = single.resolved.station("esc")
    assert (
        port.name
        == usb_port_name(station.usb_serial or "")
        == (f"usb-STMicroelectronics_ChibiOS_RT_Virtual_COM_Port_{ODD_UID.upper()}-if00")
    )
    wait_for(port.exists, 2.0, "port after start")
    first = os.path.realpath(port)
    assert first.startswith("/dev/pts/")
    with Esc.open(str(port)) as esc:
        assert esc.fw_version().hw_name == "60"
        single.power("esc", False)
        assert not port.exists() and not os.path.lexists(port)
        with pytest.raises(LinkLost):
            esc.fw_version()
    single.power("esc", True)
    wait_for(port.exists, 2.0, "port after power on")
    assert os.path.realpath(port) != first  # a new pty, as a re-enumeration gives a new device
    assert single.port("esc").enumerations == 2
    with Esc.open(str(port)) as esc:
        assert str(esc.fw_version().version) == "6.02"


def test_host_sees_link_lost_when_power_goes_mid_read(single: SimRack) -> None:
    port = port_of(single)
    wait_for(port.exists, 2.0, "port")
    with Esc.open(str(port)) as esc:
        esc.fw_version()
        cut = threading.Timer(0.2, single.power, ("esc", False))
        cut.start()
        started = time.monotonic()
        with pytest.raises(LinkLost):
            esc.link.read(3.0)
        assert time.monotonic() - started < 1.5
        cut.join(2.0)


def test_raw_bytes_pass_untouched_both_ways(single: SimRack) -> None:
    wait_for(port_of(single).exists, 2.0, "port")
    with Esc.open(str(port_of(single))) as esc:
        assert esc.fw_version().uid == bytes.fromhex(ODD_UID)  # device -> host: 03 11 13 0d 0a 7f 1a 04 1c
        mask = 0x000A0D03  # host -> device: 0a 0d 03 in the request
        assert esc.values_selective(mask).mask == mask


def test_host_closing_the_port_is_reported_to_the_device(single: SimRack) -> None:
    device = single.device("esc")
    wait_for(port_of(single).exists, 2.0, "port")
    before = device.host_sessions
    with Esc.open(str(port_of(single))) as esc:
        esc.fw_version()
        wait_for(lambda: single.port("esc").host_connected, 1.0, "host seen")
    wait_for(lambda: device.host_sessions == before + 1, 2.0, "host_disconnected after close")
    assert not single.port("esc").host_connected


def test_an_idle_loop_sleeps_until_a_host_or_a_timer_needs_it(single: SimRack) -> None:
    """The loop waits on inotify (no host), the pty (a host) and the device's next timer: an idle board wakes
    it a handful of times at most, where the 2 ms polling loop it replaced woke 250 times a second."""
    wait_for(port_of(single).exists, 2.0, "port")
    loop = single._stations["esc"].loop
    before = loop.turns
    time.sleep(0.5)
    assert loop.turns - before <= 5, "the loop polls while nothing happens"
    with Esc.open(str(port_of(single))) as esc:  # the open wakes it (inotify), the request is answered
        assert str(esc.fw_version().version) == "6.02"
        busy = loop.turns
        time.sleep(0.5)
        assert loop.turns - busy <= 5, "the loop polls while a host holds the port and sends nothing"


# --- TCP bridge ------------------------------------------------------------------------------------


def test_tcp_bridge_takes_one_client_and_drops_on_demand(single: SimRack) -> None:
    url = single.resolved.station("esc").bridge
    assert url is not None and url.startswith("socket://127.0.0.1:")
    host, port = url.removeprefix("socket://").split(":")
    device = single.device("esc")
    with Esc.open(url) as esc:
        assert esc.fw_version().hw_name == "60"
        with socket.create_connection((host, int(port)), timeout=2.0) as extra:
            extra.settimeout(2.0)
            assert extra.recv(16) == b""  # closed at once: a client is already connected
        assert esc.fw_version().hw_name == "60"  # the first client is untouched
        before = device.host_sessions
        single.drop_tcp("esc")
        with pytest.raises(LinkLost):
            esc.fw_version()
        assert device.host_sessions == before + 1
    with Esc.open(url) as again:  # the next client is served
        assert again.fw_version().hw_name == "60"


# --- control socket --------------------------------------------------------------------------------

CLIENT = """
import json, sys
from rig.sim.serve import SimControl
control = SimControl(sys.argv[1])
control.ping()
control.fault("esc", "link_slow", True, delay_s=0.25)
control.power("esc", False)
print(json.dumps(control.state()))
try:
    control.power("nope", True)
except Exception as exc:
    print(type(exc).__name__)
"""


def test_control_socket_round_trip_from_another_process(single: SimRack) -> None:
    port = port_of(single)
    wait_for(port.exists, 2.0, "port")
    control = single.resolved.control
    assert control is not None and Path(control).is_socket()
    done = subprocess.run(
        [sys.executable, "-c", CLIENT, control], capture_output=True, text=True, timeout=30, check=True
    )
    state_line, error_line = done.stdout.strip().splitlines()
    state = json.loads(state_line)["esc"]
    assert state["usb_up"] is False and state["nodes"]["0"]["powered"] is False
    assert state["nodes"]["0"]["faults"] == {"link_slow": {"delay_s": 0.25}}
    assert error_line == "SimServeError"
    assert not port.exists()
    assert "link_slow" in single.device("esc").faults
    SimControl(control).power("esc", True)
    wait_for(port.exists, 2.0, "port after power on through the control socket")


# --- the default rack ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def default_rack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimRack]:
    with SimRack(load_rack(RACKS / "sim.toml"), tmp_path_factory.mktemp("simrack")) as sim:
        for station in sim.resolved.stations:
            wait_for(Path(station.port or "").exists, 5.0, f"{station.name} port")
        yield sim


def test_every_station_answers_fw_version_through_its_pty(default_rack: SimRack) -> None:
    for station in default_rack.resolved.stations:
        assert station.sim is not None and station.port is not None
        with Esc.open(station.port) as esc:
            info = esc.fw_version()
        assert (info.hw_name, str(info.version), info.uid) == (
            station.sim.node.hw,
            station.sim.node.fw,
            station.sim.node.uid,
        )


def test_dual_board_forwards_to_its_can_peer(default_rack: SimRack) -> None:
    (dual,) = default_rack.resolved.select(["dual"])
    assert dual.sim is not None and dual.port is not None
    (peer,) = dual.sim.peers
    with Esc.open(dual.port) as esc:
        esc.fw_version()
        assert esc.ping_can() == (peer.can_id,)
        info = esc.can(peer.can_id).fw_version()
    assert (info.hw_name, str(info.version), info.uid) == (peer.hw, peer.fw, peer.uid)


def test_resolved_rack_file_is_what_host_code_reads(default_rack: SimRack) -> None:
    again = load_rack(default_rack.rack_file)
    assert again == default_rack.resolved and again.served
    assert all(s.swd and s.swd.probe and s.swd.probe.startswith("remote:127.0.0.1:") for s in again.stations)
    assert all(b.port or b.tcp for b in again.relays) and all(s.port or s.tcp for s in again.supplies)


def test_relay_channel_power_cycles_its_esc_through_the_real_client(default_rack: SimRack) -> None:
    for station in default_rack.resolved.select(["single"])[:1] + default_rack.resolved.select(["dual"]):
        assert station.relay is not None and station.port is not None
        spec = default_rack.resolved.relay(station.relay.board)
        board = open_relay_board(spec.kind, spec.url, **spec.open_options)
        try:
            before = os.path.realpath(station.port)
            board.set(station.relay.channel, False)
            wait_for(lambda p=station.port: not os.path.lexists(p), 2.0, f"{station.name} port gone")
            board.set(station.relay.channel, True)
            wait_for(Path(station.port).exists, 5.0, f"{station.name} port back")
        finally:
            board.close()
        assert os.path.realpath(station.port) != before
        with Esc.open(station.port) as esc:
            assert esc.fw_version().hw_name == station.sim.node.hw  # type: ignore[union-attr]


def test_only_simulated_racks_are_served(tmp_path: Path) -> None:
    rack = parse_rack({"name": "real", "station": [{"name": "a", "port": "/dev/null"}]})
    with pytest.raises(SimServeError, match="not a simulated rack"):
        SimRack(rack, tmp_path)


# --- rig sim serve ---------------------------------------------------------------------------------


def read_lines(proc: subprocess.Popen[str], bound_s: float) -> list[dict[str, object]]:
    """JSON lines up to and including the "rack" line, within bound_s (a thread reads, so no wait is unbounded)."""
    assert proc.stdout is not None and proc.stderr is not None
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()  # type: ignore[union-attr]
    out: list[dict[str, object]] = []
    deadline = time.monotonic() + bound_s
    while not out or out[-1]["type"] != "rack":
        try:
            out.append(json.loads(lines.get(timeout=max(0.0, deadline - time.monotonic()))))
        except queue.Empty:
            proc.kill()
            raise AssertionError(
                f"rig sim serve printed {out} within {bound_s} s; stderr: {proc.stderr.read()}"
            ) from None
    return out


def test_rig_sim_serve_json_then_sigint_cleans_up(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    argv = [*RIG, "sim", "serve", "--rack", str(RACKS / "sim.toml"), "--json"]
    proc = subprocess.Popen([*argv, "--dir", str(run_dir)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = read_lines(proc, 30.0)
        escs = [line for line in lines if line["type"] == "esc"]
        rack = load_rack(RACKS / "sim.toml")
        assert [e["name"] for e in escs] == [s.name for s in rack.stations]
        for line in escs:
            assert {"name", "port", "tcp", "uid", "hw", "fw", "can_id", "swd", "swd_target"} <= set(line)
            assert str(line["swd"]).startswith("remote:127.0.0.1:") and line["swd_target"] == "stm32f405rg"
            port = str(line["port"])
            assert Path(port).parent == run_dir / "by-id"
            wait_for(Path(port).exists, 5.0, f"{port} exists")
            with Esc.open(port) as esc:
                info = esc.fw_version()
            assert (info.hw_name, str(info.version), info.uid.hex()) == (line["hw"], line["fw"], line["uid"])  # type: ignore[union-attr]
        assert any(line["tcp"] for line in escs)
        boards = [line for line in lines if line["type"] in ("relay", "supply")]
        assert {b["name"] for b in boards} == {"lcus", "modbus", "psu"}
        assert all(b["kind"] and (b["port"] or b["tcp"]) for b in boards)
        (rack_line,) = [line for line in lines if line["type"] == "rack"]
        assert Path(str(rack_line["control"])).is_socket() and load_rack(str(rack_line["rack"])).served
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    assert list((run_dir / "by-id").iterdir()) == []
    assert not (run_dir / "control.sock").exists() and not (run_dir / "rack.toml").exists()


def test_rig_sim_serve_sigterm_removes_its_fresh_run_directory(tmp_path: Path) -> None:
    rack_file = tmp_path / "single.toml"
    rack_file.write_text(SINGLE)
    argv = [*RIG, "sim", "serve", "--rack", str(rack_file)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("rig sim serve: run directory ")
        run_dir = Path(first.strip().rsplit(" ", 1)[1])
        esc_line = proc.stdout.readline()
        assert esc_line.startswith("esc    esc: ") and "hw 60 fw 6.02" in esc_line
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    assert not run_dir.exists()


# --- SWD probe faults, board power and dead power gear through the control socket -----------------

POWERED = """
name = "p"
simulated = true
[[relay]]
name = "lcus"
kind = "lcus"
channels = 1
[[supply]]
name = "psu"
kind = "rd6006"
unit = 1
[[station]]
name = "esc"
relay = "lcus:1"
supply = "psu"
swd = { target = "stm32f405rg" }
[station.sim]
hw = "60"
fw = "6.02"
"""


@pytest.fixture
def powered(tmp_path: Path) -> Iterator[SimRack]:
    rack_file = tmp_path / "powered.toml"
    rack_file.write_text(POWERED)
    with SimRack(load_rack(rack_file), tmp_path / "run") as sim:
        yield sim


def swd_config(sim: SimRack, **options: object) -> SwdConfig:
    swd = sim.resolved.station("esc").swd
    assert swd is not None and swd.probe is not None
    fast = {"connect_attempts": 1, "attempt_bound_s": 5.0, "retry_delay_s": 0.0, "frequency_hz": 20_000_000}
    return SwdConfig(swd.probe, **{**fast, **options})  # type: ignore[arg-type]


def test_control_socket_sets_swd_probe_faults(powered: SimRack, tmp_path: Path) -> None:
    control = SimControl(powered.resolved.control or "")
    with SwdSession(swd_config(powered)) as swd:  # no fault: the probe reaches the target
        assert swd.read(FLASH_BASE, 8) == powered.device("esc").flash.read(FLASH_BASE, 8)
    for fault, error in (("not_answering", SwdConnectFailed), ("busy", SwdProbeBusy)):
        control.swd_fault("esc", fault)
        with pytest.raises(error):
            SwdSession(swd_config(powered)).open()
        control.swd_fault("esc", fault, False)
    control.swd_fault("esc", "swd_disabled_by_firmware")
    with pytest.raises(SwdConnectFailed):
        SwdSession(swd_config(powered)).open()
    with SwdSession(swd_config(powered, connect_mode=ConnectMode.UNDER_RESET)) as swd:
        swd.read(FLASH_BASE, 4)
    control.swd_fault("esc", "swd_disabled_by_firmware", False)
    loader = make_bootloader_image()
    offset = next(i for i, byte in enumerate(loader) if byte != 0xFF)
    control.swd_fault("esc", "stuck_bits", address=BOOTLOADER_BASE + offset, mask=~loader[offset] & 0xFF)
    (tmp_path / "bl.bin").write_bytes(loader)
    with SwdSession(swd_config(powered)) as swd, pytest.raises(SwdVerifyMismatch) as err:
        swd.program([(BOOTLOADER_BASE, loader)])
    assert err.value.address == BOOTLOADER_BASE + offset
    with pytest.raises(SimServeError, match="unknown SWD probe fault"):
        control.swd_fault("esc", "melted")


def test_swd_probe_follows_the_board_power(powered: SimRack) -> None:
    powered.power("esc", False)
    with pytest.raises(SwdConnectFailed, match="not powered"):
        SwdSession(swd_config(powered)).open()
    powered.power("esc", True)
    with SwdSession(swd_config(powered)) as swd:
        swd.read(FLASH_BASE, 4)


def test_control_socket_silences_relay_board_and_supply(powered: SimRack) -> None:
    resolved = powered.resolved
    control = SimControl(resolved.control or "")
    rig = StationRig(resolved, resolved.station("esc"), bounds=Bounds(gone_s=0.5, settle_s=0.05))
    try:
        wait_for(port_of(powered).exists, 2.0, "port")
        control.responding("lcus", False)
        with pytest.raises(PowerError, match="still there"):  # the dead relay switches nothing
            rig.power_cycle()
        assert powered.device("esc").powered
        control.responding("lcus", True)
        control.responding("psu", False)
        supply = rig.supply()
        assert supply is not None
        with pytest.raises(PowerError, match="no answer within"):
            supply.read_current()
        control.responding("psu", True)
        assert supply.read_current() > 0
        with pytest.raises(SimServeError, match="no relay board or supply"):
            control.responding("nope", False)
    finally:
        rig.close()
