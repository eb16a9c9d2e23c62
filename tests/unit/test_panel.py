"""The operator panel without a browser: the per-session stop, the panel's stations on a simulated rack (labels,
bring-ups, refusals, acknowledgements, a restart), what a record says in plain words, the rack key that lets the
factory erase answering boards, and `rig panel` itself as a process.

The page in a real browser is tests/unit/test_panel_browser.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from rig.captures.decode import decode_log
from rig.cli import main
from rig.cli.factory import factory_permit, plans, rack_only_options
from rig.device.memory import FLASH_BASE, FLASH_SIZE
from rig.errors import Diagnosis, RackFileError
from rig.factory.flow import TRACE_EVIDENCE, planned_steps
from rig.factory.records import PASS, RecordStore
from rig.firmware.image import load_firmware
from rig.interrupts import Interrupted
from rig.panel import BadRequest, PanelError
from rig.panel.server import PanelServer, exposure_warning
from rig.panel.stations import Panel, Phase
from rig.panel.views import outcome
from rig.panel.words import PLAIN
from rig.protocol.commands import FirmwareVersion
from rig.sim.image import make_firmware_image
from rig.sim.serve import SimRack
from rig.station.rack import load_rack, parse_rack
from rig.station.session import StationSession
from rig.station.state import StateDir

REPO = Path(__file__).resolve().parents[2]
RIG = str(Path(sys.executable).parent / "rig")
RUN_BOUND_S = 60.0
SWD = {"target": "stm32f405rg"}


def make_panel(sim: SimRack, state: StateDir, *stations: str) -> Panel:
    """A panel as `rig panel --rack` makes it: plans and permit from the rack file alone."""
    rack = sim.resolved
    options = rack_only_options(sim.rack_file)
    chosen = plans(options, rack, rack.select(stations))
    return Panel(rack, chosen, state=state, permit=factory_permit(options, rack), records=state.records, run_id="t")


def until(panel: Panel, what: str, done: Callable[[], bool], bound_s: float = RUN_BOUND_S) -> None:
    """Wait (bounded) for the panel to reach a state, waking at each of its changes."""
    deadline = time.monotonic() + bound_s
    version = -1
    while not done():
        assert time.monotonic() < deadline, f"{what}: not within {bound_s:g} s; {panel.snapshot()}"
        version = panel.wait_change(version, 0.5)


def ended(panel: Panel, name: str) -> Callable[[], bool]:
    return lambda: panel.stations[name].run is None and panel.stations[name].last is not None


@pytest.fixture
def state(tmp_path: Path) -> StateDir:
    return StateDir.at(tmp_path / "state")


# --- the station session's own stop -------------------------------------------------------------------


def test_a_session_stop_is_taken_at_its_next_safe_point_once(sim_rack: SimRack, state: StateDir) -> None:
    rack = sim_rack.resolved
    with StationSession(rack, "esc-602", state=state) as one, StationSession(rack, "esc-340", state=state) as other:
        one.request_stop("a test's stop")
        assert one.stop_requested
        with pytest.raises(Interrupted, match=r"before power-on on esc-602\) on a test's stop"):
            one.power(True)
        other.power(True)  # the process goes on: only that session was asked
        one.power(True)  # taken once: clean-up after the stop passes the safe points again
        assert not one.stop_requested
        assert any("stopped at a safe point" in line for line in one.report.steps)


def test_a_stop_during_an_upload_is_taken_before_the_jump_and_the_board_keeps_its_firmware(
    sim_rack: SimRack, state: StateDir, tmp_path: Path
) -> None:
    path = tmp_path / "fw-6.05.bin"
    path.write_bytes(make_firmware_image("60", "6.05"))
    image = load_firmware(path, hw_names=("60",), version=FirmwareVersion(6, 5))
    with StationSession(sim_rack.resolved, "esc-602", state=state) as session:

        def halfway(phase: str, done: int, total: int) -> None:
            if phase == "write" and done * 2 >= total and not session.stop_requested:
                session.request_stop("a stop mid-upload")

        with pytest.raises(Interrupted, match="before the jump on esc-602: the board keeps its firmware"):
            session.update(image, progress=halfway)
        assert str(session.read_board().version) == "6.02"
    assert sim_rack.device("esc-602").running


# --- the panel's stations ------------------------------------------------------------------------------


def test_labels_and_refusals(sim_rack: SimRack, state: StateDir) -> None:
    panel = make_panel(sim_rack, state, "esc-602")
    try:
        with pytest.raises(PanelError, match="scan or type the board's label first"):
            panel.start("esc-602")
        assert panel.stations["esc-602"].notice == "not started: scan or type the board's label first"
        for bad, why in ((" ", "empty"), ("x" * 65, "at most 64"), ("a\tb", "control characters"), (7, "is text")):
            with pytest.raises(BadRequest, match=why):
                panel.set_label("esc-602", bad)
        assert panel.set_label("esc-602", "  SN-1 \n") == "SN-1"
        with pytest.raises(PanelError, match="no station 'esc-999'"):
            panel.set_label("esc-999", "SN-2")
        with pytest.raises(PanelError, match="nothing runs on it"):
            panel.stop("esc-602")
        with pytest.raises(PanelError, match="no failed board waits"):
            panel.acknowledge("esc-602")
        assert panel.snapshot()["stations"][0] | {"notice": None} == {
            "name": "esc-602",
            "phase": "idle",
            "hw": "60",
            "target_fw": "6.05",
            "label": "SN-1",
            "run": None,
            "last": None,
            "can_start": True,
            "notice": None,
        }
    finally:
        panel.close()


def test_a_pass_and_a_fail_then_an_acknowledgement_and_a_restart(sim_rack: SimRack, state: StateDir) -> None:
    sim_rack.fault("esc-340", "bootloader_rejects")  # F2: the firmware over USB does not take
    panel = make_panel(sim_rack, state, "esc-602", "esc-340")
    try:
        panel.set_label("esc-602", "SN-PASS")
        panel.set_label("esc-340", "SN-FAIL")
        assert panel.start_all() == {"started": ["esc-602", "esc-340"], "skipped": {}}
        until(panel, "both ended", lambda: ended(panel, "esc-602")() and ended(panel, "esc-340")())
        good, bad = panel.stations["esc-602"], panel.stations["esc-340"]
        assert (good.phase, bad.phase) == (Phase.PASS, Phase.FAIL)
        assert good.last is not None and bad.last is not None
        assert (good.last.record.label, bad.last.record.label) == ("SN-PASS", "SN-FAIL")
        assert good.last.record.uid == sim_rack.device("esc-602").spec.uid.hex()

        # the steps the page counts are the steps the flow took
        with StationSession(sim_rack.resolved, "esc-602", state=state) as session:
            planned = planned_steps(session, good.plan)
        taken = [c.name for c in good.last.record.checks if c.name in planned]
        assert tuple(taken) == planned

        # the failed board: in plain words, powered off, its trace kept and decodable; it must be acknowledged
        said = outcome(bad.last.record)
        assert (said.diagnosis, said.step) == (Diagnosis.BOOTLOADER_MISSING.value, "firmware over USB")
        assert said.words == PLAIN[Diagnosis.BOOTLOADER_MISSING] and said.left == "running firmware 3.40; powered off"
        assert not sim_rack.device("esc-340").powered
        with RecordStore(state.records) as store:
            trace = store.evidence(bad.last.record.id)[TRACE_EVIDENCE]
        commands = {e.command for e in decode_log(trace).frames()}
        assert {"JUMP_TO_BOOTLOADER", "FW_VERSION"} <= commands, commands  # the jump, and the old version after
        panel.set_label("esc-340", "SN-NEXT")
        with pytest.raises(PanelError, match="acknowledge the failed board first"):
            panel.start("esc-340")
        counts = panel.counts()
        assert (counts.passed, counts.failed, counts.by_diagnosis) == (1, 1, [(Diagnosis.BOOTLOADER_MISSING.value, 1)])
        panel.acknowledge("esc-340")
        assert panel.stations["esc-340"].phase == Phase.IDLE and panel.stations["esc-340"].refusal() is None
    finally:
        assert panel.close() == []

    again = make_panel(sim_rack, state, "esc-602", "esc-340")  # a restarted panel shows the same truth
    try:
        assert again.stations["esc-602"].phase == Phase.PASS
        assert again.stations["esc-340"].phase == Phase.IDLE  # acknowledged before the restart
        assert again.stations["esc-340"].last is not None and again.stations["esc-340"].last.acknowledged
    finally:
        again.close()


def test_the_page_cannot_erase_what_the_rack_does_not_allow(state: StateDir, tmp_path: Path) -> None:
    """A rack without [factory] erase_answering_boards: a board that answers over USB is refused, untouched."""
    rack = {
        "name": "strict",
        "simulated": True,
        "relay": [{"name": "r", "kind": "lcus", "channels": 1}],
        "station": [{"name": "a", "relay": "r:1", "swd": SWD, "sim": {"hw": "60", "fw": "6.02"}}],
    }
    with SimRack(parse_rack(rack, tmp_path / "strict.toml"), tmp_path / "run") as sim:
        before = sim.device("a").flash.read(FLASH_BASE, FLASH_SIZE)
        panel = make_panel(sim, state, "a")
        try:
            panel.set_label("a", "SN-RETURNED")
            panel.start("a")
            until(panel, "a refused", ended(panel, "a"))
            last = panel.stations["a"].last
            assert last is not None and outcome(last.record).diagnosis == Diagnosis.NOT_PERMITTED.value
            assert "does not allow erasing" in (outcome(last.record).words or PLAIN[Diagnosis.PANEL]).what
        finally:
            panel.close()
        assert sim.device("a").flash.read(FLASH_BASE, FLASH_SIZE) == before


# --- words, rack key, records filter --------------------------------------------------------------------


def test_every_diagnosis_has_plain_words_and_a_remedy() -> None:
    assert set(PLAIN) == set(Diagnosis)
    assert all(words.what and words.remedy for words in PLAIN.values())


def test_the_rack_key_that_lets_the_factory_erase_answering_boards(tmp_path: Path) -> None:
    base = {"name": "r", "station": [{"name": "a", "port": "/dev/null"}]}
    assert not parse_rack(base).erase_answering_boards
    allowed = parse_rack({**base, "factory": {"erase_answering_boards": True}}, tmp_path / "r.toml")
    assert allowed.erase_answering_boards
    (tmp_path / "again.toml").write_text(allowed.to_toml())
    assert load_rack(tmp_path / "again.toml") == allowed
    with pytest.raises(RackFileError, match=r"rack factory: key 'erase_answering_boards': must be true or false"):
        parse_rack({**base, "factory": {"erase_answering_boards": "yes"}})
    with pytest.raises(RackFileError, match=r"key 'erase_any': unknown key"):
        parse_rack({**base, "factory": {"erase_any": True}})
    assert load_rack(REPO / "fixtures" / "racks" / "sim.toml").erase_answering_boards
    assert not load_rack(REPO / "fixtures" / "racks" / "example.toml").erase_answering_boards


def test_records_filter_by_label(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "records.sqlite3"
    with RecordStore(db) as store:
        store.open_record("a", "aa01", "60", "6.02", "", "r", label="SN-1").finish(PASS)
        store.open_record("a", "aa02", "60", "6.02", "", "r", label="SN-2").finish(PASS)
    assert main(["records", "list", "--db", str(db), "--label", "SN-2", "--json"]) == 0
    assert [r["uid"] for r in json.loads(capsys.readouterr().out)] == ["aa02"]


# --- `rig panel` as a process -----------------------------------------------------------------------------


def test_listening_beyond_the_loopback_is_said_loudly() -> None:
    assert exposure_warning("127.0.0.1") is None and exposure_warning("localhost") is None
    assert exposure_warning("::1") is None
    warning = exposure_warning("0.0.0.0")
    assert warning is not None and "no login" in warning


PanelProcess = tuple[subprocess.Popen[str], str]


@pytest.fixture
def rig_panel(tmp_path: Path) -> Iterator[Callable[[], PanelProcess]]:
    """Start `rig panel` on the embedded simulated rack, on a free port, with the test's state dir: the process and
    the page's URL. Every one started is ended at the end of the test; its temporary files (the served rack's run
    directory, left behind by a killed one) stay in the test's folder."""
    started: list[subprocess.Popen[str]] = []
    env = {**os.environ, "TMPDIR": str(tmp_path)}

    def start() -> PanelProcess:
        argv = [RIG, "panel", "--port", "0", "--state-dir", str(tmp_path / "state")]
        child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=env)
        started.append(child)
        assert child.stdout is not None
        deadline = time.monotonic() + RUN_BOUND_S
        while time.monotonic() < deadline:
            line = child.stdout.readline()
            assert line, f"rig panel ended: {child.stderr.read() if child.stderr else ''}"
            url = next((word for word in line.split() if word.startswith("http://")), "")
            if url:
                return child, url
        raise AssertionError(f"rig panel printed no URL within {RUN_BOUND_S:g} s")

    try:
        yield start
    finally:
        for child in started:
            if child.poll() is None:
                child.terminate()
            try:
                child.wait(RUN_BOUND_S)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(RUN_BOUND_S)


def until_running(url: str, station: int = 0) -> None:
    """Until the station's bring-up has opened its record (it is under way)."""
    deadline = time.monotonic() + RUN_BOUND_S
    while (get(url + "api/state")["stations"][station]["run"] or {}).get("record_id") is None:
        assert time.monotonic() < deadline, "the bring-up did not start"
        time.sleep(0.05)


def test_rig_panel_serves_the_embedded_rack_and_stops_on_sigterm(
    rig_panel: Callable[[], PanelProcess], tmp_path: Path
) -> None:
    child, url = rig_panel()
    assert url.startswith("http://127.0.0.1:")
    with urllib.request.urlopen(url + "api/state", timeout=10) as reply:
        state = json.load(reply)
    assert state["rack"] == "sim" and [s["name"] for s in state["stations"]] == [
        "esc-602",
        "esc-340",
        "esc-502",
        "dual-602",
        "esc-606",
        "esc-700",
    ]
    assert state["erase_answering_boards"] and all(s["phase"] == "idle" for s in state["stations"])
    with urllib.request.urlopen(url, timeout=10) as reply:
        assert b"/static/panel.js" in reply.read()
    with pytest.raises(urllib.error.HTTPError) as refused:  # an action without the page's header
        urllib.request.urlopen(urllib.request.Request(url + "api/start-all", method="POST", data=b"{}"), timeout=10)
    assert refused.value.code == 403

    # SIGTERM while a board runs: it stops at a safe point, is recorded, and powered off, then the panel exits
    post(url + "api/stations/esc-602/label", {"label": "SN-TERM"})
    post(url + "api/stations/esc-602/start", {})
    until_running(url)
    child.send_signal(signal.SIGTERM)
    assert child.wait(RUN_BOUND_S) == 0
    assert "Traceback" not in (child.stderr.read() if child.stderr else "")
    with RecordStore(tmp_path / "state" / "records.sqlite3") as store:
        (record,) = store.records(label="SN-TERM")
    said = outcome(record)
    assert said.diagnosis == Diagnosis.INTERRUPTED.value and "on the panel shutting down" in (said.detail or "")
    assert said.left is not None and said.left.endswith("; powered off"), said.left


def get(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=10) as reply:
        return json.load(reply)


def post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    headers = {"X-Rig-Panel": "1", "Content-Type": "application/json"}
    request = urllib.request.Request(url, method="POST", data=json.dumps(body).encode(), headers=headers)
    with urllib.request.urlopen(request, timeout=10) as reply:
        return json.load(reply)


def test_a_panel_killed_during_a_bring_up_shows_that_board_after_a_restart(
    rig_panel: Callable[[], PanelProcess],
) -> None:
    """SIGKILL (a crash, a power cut) mid bring-up: the record has no verdict, and the next panel shows the board
    as failed "without a verdict" until an operator acknowledges it (its state is unknown)."""
    child, url = rig_panel()
    post(url + "api/stations/esc-340/label", {"label": "SN-KILLED"})
    post(url + "api/stations/esc-340/start", {})
    until_running(url, 1)
    child.kill()
    child.wait(RUN_BOUND_S)
    _, url = rig_panel()
    station = get(url + "api/state")["stations"][1]
    assert (station["name"], station["phase"], station["can_start"]) == ("esc-340", "fail", False)
    last = station["last"]
    assert (last["label"], last["status"], last["needs_ack"]) == ("SN-KILLED", "INCOMPLETE", True)
    assert last["outcome"]["what"].startswith("The bring-up ended without a verdict")
    post(url + "api/stations/esc-340/ack", {})
    assert get(url + "api/state")["stations"][1]["phase"] == "idle"


def test_rig_panel_on_a_taken_port_and_without_its_web_stack(
    rig_panel: Callable[[], PanelProcess], tmp_path: Path
) -> None:
    _, url = rig_panel()
    port = url.rsplit(":", 1)[1].strip("/")
    taken = subprocess.run(
        [RIG, "panel", "--port", port, "--state-dir", str(tmp_path / "other")],
        capture_output=True,
        text=True,
        timeout=RUN_BOUND_S,
        cwd=REPO,
    )
    assert taken.returncode == 1 and f"cannot listen on 127.0.0.1:{port}" in taken.stderr, taken.stderr
    assert "Traceback" not in taken.stderr
    without = "import sys; sys.modules['starlette'] = None; from rig.cli import main; sys.exit(main(['panel']))"
    missing = subprocess.run(
        [sys.executable, "-c", without], capture_output=True, text=True, timeout=RUN_BOUND_S, cwd=REPO
    )
    assert missing.returncode == 1
    assert "pip install 'vesc-rig[panel]'" in missing.stderr and "starlette" in missing.stderr, missing.stderr
    others = subprocess.run(
        [sys.executable, "-c", without.replace("['panel']", "['records', '--help']")],
        capture_output=True,
        text=True,
        timeout=RUN_BOUND_S,
        cwd=REPO,
    )
    assert others.returncode == 0, others.stderr  # the rest of the rig works without it


def test_panel_server_in_a_thread_stops_and_frees_its_port(sim_rack: SimRack, state: StateDir) -> None:
    panel = make_panel(sim_rack, state, "esc-602")
    try:
        with PanelServer(panel, port=0) as server:
            with urllib.request.urlopen(server.url + "api/state", timeout=10) as reply:
                assert json.load(reply)["stations"][0]["name"] == "esc-602"
            port = server.port
        with PanelServer(panel, port=port):  # the same port again at once (a restart)
            pass
    finally:
        panel.close()
