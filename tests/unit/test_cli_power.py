"""`rig power on|off|cycle` against a simulated rack served by `rig sim serve` in another process, exactly as
against hardware: the command only gets the resolved rack file (relay boards on ptys and TCP, ESC ports)."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rig.cli import main
from rig.client.esc import Esc
from rig.station.rack import load_rack

RACKS = Path(__file__).resolve().parents[2] / "fixtures" / "racks"
RIG = [sys.executable, "-c", "import sys; from rig.cli import main; sys.exit(main())"]  # the `rig` entry point
SERVE_BOUND_S = 30.0


def wait_for(condition: Callable[[], object], bound_s: float, what: str) -> None:
    deadline = time.monotonic() + bound_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {bound_s} s")
        time.sleep(0.01)


def _rack_line(proc: subprocess.Popen[str], bound_s: float) -> dict[str, str]:
    """Read `rig sim serve --json` lines up to its "rack" line, within bound_s (a thread reads)."""
    assert proc.stdout is not None
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()  # type: ignore[union-attr]
    deadline = time.monotonic() + bound_s
    while True:
        try:
            line = json.loads(lines.get(timeout=max(0.0, deadline - time.monotonic())))
        except queue.Empty:
            raise AssertionError(f"rig sim serve printed no rack line within {bound_s} s") from None
        if line["type"] == "rack":
            return line


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """`rig sim serve` of the default simulated rack in another process; yields its resolved rack file."""
    run_dir = tmp_path_factory.mktemp("power") / "run"
    argv = [*RIG, "sim", "serve", "--rack", str(RACKS / "sim.toml"), "--json", "--dir", str(run_dir)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        rack_file = Path(_rack_line(proc, SERVE_BOUND_S)["rack"])
        for station in load_rack(rack_file).stations:
            wait_for(Path(station.port or "").exists, 5.0, f"{station.name} port")
        yield rack_file
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def rig_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, object]:
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def fails(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """Run `rig` in-process; it must exit 1 with a message; returns stderr."""
    assert main(list(argv)) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"rig {argv[0]}: ") and "Traceback" not in err
    return err


def port_of(rack_file: Path, name: str) -> str:
    port = load_rack(rack_file).station(name).port
    assert port is not None
    return port


# --- on, off, cycle ---------------------------------------------------------------------------------


def test_off_makes_the_port_vanish_and_on_brings_it_back(served: Path, capsys: pytest.CaptureFixture[str]) -> None:
    port = port_of(served, "esc-602")
    before = os.path.realpath(port)
    off = rig_json(capsys, "power", "off", "esc-602", "--rack", str(served))
    assert not os.path.lexists(port)
    assert off["action"] == "off" and off["port_before"] == before and off["port_after"] is None
    assert 0 <= float(off["gone_s"]) < 5.0  # type: ignore[arg-type]

    on = rig_json(capsys, "power", "on", "esc-602", "--rack", str(served))
    assert os.path.exists(port) and os.path.realpath(port) == on["port_after"] != before
    assert float(on["back_s"]) >= 0 and float(on["answer_s"]) >= 0  # type: ignore[arg-type]
    with Esc.open(port) as esc:
        assert str(esc.fw_version().version) == "6.02"


def test_off_and_on_without_waiting_only_switch(served: Path, capsys: pytest.CaptureFixture[str]) -> None:
    port = port_of(served, "esc-340")
    off = rig_json(capsys, "power", "off", "esc-340", "--rack", str(served), "--no-wait")
    assert "gone_s" not in off and off["readback"] is None  # LCUS boards cannot read back
    wait_for(lambda: not os.path.lexists(port), 2.0, "port gone")
    rig_json(capsys, "power", "on", "esc-340", "--rack", str(served), "--no-wait")
    wait_for(lambda: os.path.exists(port), 5.0, "port back")


def test_cycle_reports_every_phase_and_the_proof(served: Path, capsys: pytest.CaptureFixture[str]) -> None:
    port = port_of(served, "esc-602")
    before = os.path.realpath(port)
    result = rig_json(capsys, "power", "cycle", "esc-602", "--rack", str(served))
    phases = ("off_s", "gone_s", "settle_s", "on_s", "back_s", "answer_s")
    assert all(float(result[p]) >= 0 for p in phases)  # type: ignore[arg-type]
    assert float(result["settle_s"]) >= 0.5  # type: ignore[arg-type]
    assert result["total_s"] == pytest.approx(sum(float(result[p]) for p in phases))  # type: ignore[arg-type]
    assert result["proof"] == "port re-enumerated"
    assert result["port_before"] == before != result["port_after"] == os.path.realpath(port)
    assert result["channel"] == "power channel lcus:1"

    assert main(["power", "cycle", "esc-602", "--rack", str(served)]) == 0
    text = capsys.readouterr().out
    for phase in ("off", "gone", "settle", "on", "back", "answer", "total"):
        assert f"\n  {phase} " in text
    assert "proof   port re-enumerated" in text


def test_cycle_through_modbus_with_supply_current_as_proof(served: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = rig_json(capsys, "power", "cycle", "dual-602", "--rack", str(served))
    assert result["proof"] == "port re-enumerated, supply current"
    assert float(result["supply_current_on"]) > float(result["supply_current_off"])  # type: ignore[arg-type]


# --- failures ---------------------------------------------------------------------------------------


def test_relay_channel_wired_to_nothing_is_a_clear_error(
    served: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The rack file names the wrong channel: the relay clicks, the port stays (F9's wiring diagnosis)."""
    wrong = tmp_path / "wrong-channel.toml"
    wrong.write_text(served.read_text().replace('relay = "lcus:1"', 'relay = "lcus:3"'))
    started = time.monotonic()
    err = fails(capsys, "power", "off", "esc-602", "--rack", str(wrong), "--timeout", "0.5")
    assert time.monotonic() - started < 3.0
    assert "power channel lcus:3 switched off, but" in err and "within 0.5 s" in err
    assert "[relay switched but the port never went away (wrong channel or wiring)]" in err
    assert os.path.exists(port_of(served, "esc-602"))


def test_station_without_relay_or_supply(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rack = tmp_path / "bench.toml"
    rack.write_text('name = "bench"\n[[station]]\nname = "loose"\nport = "/dev/null"\n')
    err = fails(capsys, "power", "cycle", "loose", "--rack", str(rack))
    assert "station loose has no relay channel or supply in the rack file" in err
    assert "[power control failed]" in err


def test_wrong_station_name_lists_the_stations(served: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = fails(capsys, "power", "on", "esc-999", "--rack", str(served))
    assert "no station named 'esc-999'; stations: esc-602, esc-340, esc-502, dual-602" in err


def test_missing_rack_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = fails(capsys, "power", "off", "esc-602", "--rack", str(tmp_path / "nope.toml"))
    assert "nope.toml: cannot read rack file" in err and "[rack file error]" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["power", "cycle", "esc-602"],  # no --rack
        ["power", "reboot", "esc-602", "--rack", "r.toml"],
        ["power", "on", "esc-602", "--rack", "r.toml", "--timeout", "-1"],
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(argv)
    assert done.value.code == 2
    assert "usage: rig power" in capsys.readouterr().err


def test_the_entry_point_exits_1_without_a_traceback(served: Path) -> None:
    done = subprocess.run(
        [*RIG, "power", "cycle", "nope", "--rack", str(served)], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith("rig power: ") and "Traceback" not in done.stderr
