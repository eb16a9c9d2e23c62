"""Nothing lost: a run killed or interrupted at any phase of an update leaves the board's configs
recoverable, and the next run finds the orphaned backup and restores it.

The simulated rack runs here at a quarter of real time, so each phase of an update lasts long enough to land a
signal in it; `rig -v update` in a child process logs each step as it starts, and the test signals it
right after the step it wants.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rig.cli import main
from rig.firmware.config import read_backup, write_verified
from rig.protocol.codecs import ConfigBlob, ConfigKind
from rig.sim.image import make_firmware_image
from rig.sim.serve import SimRack
from rig.station.rack import parse_rack
from rig.station.session import StationSession
from rig.station.state import StateDir

REPO = Path(__file__).resolve().parents[2]
STATION = "esc-602"
SPEED = 0.25
PHASES = {
    "erase": "step: erase new-app buffer",
    "write": "step: write image",
    "jump": "step: jump to bootloader",
    "boot": "step: wait for the board to come back",
}
SMALL = 64 * 1024
RUN_BOUND_S = 120
RIG = str(Path(sys.executable).parent / "rig")  # the console script of this environment


RACK = {"name": "one", "simulated": True, "station": [{"name": STATION, "sim": {"hw": "60", "fw": "6.02"}}]}


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[SimRack]:
    with SimRack(parse_rack(RACK, tmp_path / "one.toml"), tmp_path / "run", speed=SPEED) as served:
        yield served


def configure(sim: SimRack, state: StateDir) -> dict[ConfigKind, ConfigBlob]:
    """A non-default mcconf, so a wipe shows; the configs after."""
    with StationSession(sim.resolved, STATION, state=state) as session, session.connect() as esc:
        blob = esc.get_config(ConfigKind.MCCONF)
        middle = len(blob.data) // 2
        data = blob.data[:middle] + bytes([blob.data[middle] ^ 0x01]) + blob.data[middle + 1 :]
        write_verified(esc, ConfigBlob(blob.kind, blob.signature, data), esc.version)
        return read_backup(esc).blobs


def configs_now(sim: SimRack, state: StateDir) -> dict[ConfigKind, ConfigBlob]:
    with StationSession(sim.resolved, STATION, state=state) as session, session.connect() as esc:
        return read_backup(esc).blobs


def version_now(sim: SimRack, state: StateDir) -> str:
    with StationSession(sim.resolved, STATION, state=state) as session:
        return str(session.read_board().version)


def pending(state: StateDir) -> list[Path]:
    return [p for p in state.backups.rglob("*.json") if json.loads(p.read_text())["meta"]["purpose"] == "pending"]


def image(tmp_path: Path, version: str) -> Path:
    path = tmp_path / f"fw-{version}.bin"
    path.write_bytes(make_firmware_image("60", version, size=SMALL))
    return path


def run_until(argv: list[str], line: str) -> subprocess.Popen[str]:
    """Start `rig` in a child process and return once its log shows `line` (the step has started)."""
    child = subprocess.Popen([RIG, "-v", *argv], stderr=subprocess.PIPE, text=True, cwd=REPO)
    assert child.stderr is not None
    deadline = time.monotonic() + RUN_BOUND_S
    seen = []
    while time.monotonic() < deadline:
        text = child.stderr.readline()
        if not text:
            break
        seen.append(text)
        if line in text:
            return child
    child.kill()
    raise AssertionError(f"{line!r} never logged:\n{''.join(seen[-20:])}")


def finish(child: subprocess.Popen[str]) -> tuple[int, str]:
    out = child.stderr.read() if child.stderr else ""
    return child.wait(RUN_BOUND_S), out


@pytest.mark.parametrize("phase", list(PHASES))
def test_a_run_killed_in_each_update_phase_leaves_a_backup_the_next_run_restores(
    sim: SimRack, tmp_path: Path, phase: str, capsys: pytest.CaptureFixture[str]
) -> None:
    state = StateDir.at(tmp_path / "state")
    before = configure(sim, state)
    port = str(sim.resolved.station(STATION).port)
    common = ["--state-dir", str(state.root), "--hw", "60", "--version"]
    child = run_until(["update", port, str(image(tmp_path, "6.03")), *common, "6.03"], PHASES[phase])
    child.send_signal(signal.SIGKILL)
    finish(child)
    assert len(pending(state)) == 1, "the killed run's backup must stay, marked pending"

    # the next session on the board: it finds the orphan, says so, restores it, then does its own work
    deadline = time.monotonic() + 30  # a board killed mid-copy finishes its copy and boots on its own
    while not sim.device(STATION).usb_up:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert main(["update", port, str(image(tmp_path, "6.02")), *common, "6.02", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)["session"]
    (care,) = [c for c in report["configs"] if c["operation"].startswith("update to")]
    assert care["orphans_restored"], report
    assert configs_now(sim, state) == before
    assert not pending(state)


@pytest.mark.parametrize("phase", ["erase", "write", "boot"])
def test_sigint_in_each_update_phase_stops_at_a_safe_point_and_restores(
    sim: SimRack, tmp_path: Path, phase: str
) -> None:
    """SIGINT before the jump stops the update there (the board keeps its firmware); during the boot it lets
    the update finish (no safe point in between); either way the configs come back and the exit is 130."""
    state = StateDir.at(tmp_path / "state")
    before = configure(sim, state)
    port = str(sim.resolved.station(STATION).port)
    argv = ["update", port, str(image(tmp_path, "6.03")), "--state-dir", str(state.root), "--hw", "60"]
    argv += ["--version", "6.03"]
    child = run_until(argv, PHASES[phase])
    os.kill(child.pid, signal.SIGINT)
    code, err = finish(child)
    assert code == 130, err
    version = version_now(sim, state)
    if phase == "boot":
        assert str(version) == "6.03"
    else:
        assert "stopped at a safe point (before the jump" in err, err
        assert str(version) == "6.02"
    assert configs_now(sim, state) == before
    assert not pending(state)
