"""Nothing lost: a run killed or interrupted at any phase of an update leaves the board's configs
recoverable, and the next run finds the orphaned backup and restores it.

The board runs the synthetic firmware 6.90 and the update goes to 6.91, whose config layout differs: the
update resets the configs to the new defaults, so only the rig's backup (migrated by field with the
project's schemas) brings them back. The simulated rack runs here at a quarter of real time, so each
phase of an update lasts long enough to land a signal in it; `rig -v update` in a child process logs each
step as it starts, and the test signals it right after the step it wants.
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
from synthetic import CHANGED, NEW, OLD, configure, mcconf_now, rack

from rig.cli import main
from rig.config.codec import Value
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
RUN_BOUND_S = 120
RIG = str(Path(sys.executable).parent / "rig")  # the console script of this environment


RACK = rack({"name": STATION}, name="one")


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[SimRack]:
    with SimRack(parse_rack(RACK, tmp_path / "one.toml"), tmp_path / "run", speed=SPEED) as served:
        yield served


def configured(sim: SimRack, state: StateDir) -> dict[str, Value]:
    """A non-default mcconf, so a reset to the defaults shows; its values after."""
    with StationSession(sim.resolved, STATION, state=state) as session, session.connect() as esc:
        return configure(esc)


def target(sim: SimRack) -> list[str]:
    """The station by its rack file, which names the schemas the rig migrates the configs with."""
    return ["--rack", str(sim.rack_file), "--station", STATION]


def values_now(sim: SimRack, state: StateDir) -> dict[str, Value]:
    with StationSession(sim.resolved, STATION, state=state) as session, session.connect() as esc:
        return mcconf_now(esc)


def version_now(sim: SimRack, state: StateDir) -> str:
    with StationSession(sim.resolved, STATION, state=state) as session:
        return str(session.read_board().version)


def pending(state: StateDir) -> list[Path]:
    return [p for p in state.backups.rglob("*.json") if json.loads(p.read_text())["meta"]["purpose"] == "pending"]


def image(tmp_path: Path, version: str) -> Path:
    path = tmp_path / f"fw-{version}.bin"
    path.write_bytes(make_firmware_image("60", version))
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
    before = configured(sim, state)
    common = [*target(sim), "--state-dir", str(state.root), "--hw", "60", "--version"]
    child = run_until(["update", str(image(tmp_path, NEW)), *common, NEW], PHASES[phase])
    child.send_signal(signal.SIGKILL)
    finish(child)
    assert len(pending(state)) == 1, "the killed run's backup must stay, marked pending"

    # the next session on the board: it finds the orphan, says so, restores it, then does its own work
    deadline = time.monotonic() + 30  # a board killed mid-copy finishes its copy and boots on its own
    while not sim.device(STATION).usb_up:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    running = sim.device(STATION).profile
    assert running is not None
    assert main(["update", str(image(tmp_path, OLD)), *common, OLD, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)["session"]
    (care,) = [c for c in report["configs"] if c["operation"].startswith("update to")]
    assert care["orphans_restored"], report
    now = values_now(sim, state)
    if str(running.version) == OLD:  # killed before the jump: the board never left 6.90
        assert now == before
    else:  # the board finished the update on its own: 6.90 -> 6.91 -> 6.90 by field keeps what both hold
        assert {name: now[name] for name in CHANGED} == CHANGED
    assert not pending(state)


@pytest.mark.parametrize("phase", ["erase", "write", "boot"])
def test_sigint_in_each_update_phase_stops_at_a_safe_point_and_restores(
    sim: SimRack, tmp_path: Path, phase: str
) -> None:
    """SIGINT before the jump stops the update there (the board keeps its firmware); during the boot it lets
    the update finish (no safe point in between); either way the configs come back and the exit is 130."""
    state = StateDir.at(tmp_path / "state")
    before = configured(sim, state)
    argv = ["update", str(image(tmp_path, NEW)), *target(sim), "--state-dir", str(state.root), "--hw", "60"]
    argv += ["--version", NEW]
    child = run_until(argv, PHASES[phase])
    os.kill(child.pid, signal.SIGINT)
    code, err = finish(child)
    assert code == 130, err
    version = version_now(sim, state)
    if phase == "boot":
        assert str(version) == NEW
        now = values_now(sim, state)
        assert {name: now[name] for name in CHANGED} == CHANGED  # migrated by field into the new layout
    else:
        assert "stopped at a safe point (before the jump" in err, err
        assert str(version) == OLD
        assert values_now(sim, state) == before
    assert not pending(state)
