"""Every bad image through every entry point: refused with its error, and the board untouched."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from bad_inputs_table import CASES, ENTRY_POINTS, HW, VERSION, BadInput

from rig.cli import main
from rig.device.memory import FLASH_BASE, FLASH_SIZE
from rig.sim.serve import SimRack
from rig.station.rack import parse_rack
from rig.station.session import StationSession
from rig.station.state import StateDir

pytest_plugins = ["pytester"]
STATION = "esc"
RACK = {
    "name": "bad-input",
    "simulated": True,
    "relay": [{"name": "r", "kind": "lcus", "channels": 1}],
    "station": [{"name": STATION, "relay": "r:1", "swd": {"target": "stm32f405rg"}, "sim": {"hw": HW, "fw": VERSION}}],
}


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimRack]:
    work = tmp_path_factory.mktemp("bad-input")
    with SimRack(parse_rack(RACK, work / "rack.toml"), work / "run") as served:
        yield served


def _run(
    entry: str, sim: SimRack, image: Path, state: Path, pytester: pytest.Pytester, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str]:
    rack = str(sim.rack_file)
    port = str(sim.resolved.station(STATION).port)
    common = ["--state-dir", str(state)]
    if entry == "rig update":
        argv = ["update", port, str(image), "--hw", HW, *common]
    elif entry == "rig swd flash":
        address = ["--address", "firmware"] if image.suffix == ".bin" else []
        argv = ["swd", "flash", str(image), *address, "--rack", rack, "--station", STATION, "--hw", HW, *common]
    elif entry == "rig factory --firmware":
        argv = ["factory", "--rack", rack, "--firmware", str(image), "--hw", HW, "--records", str(state / "r.sqlite")]
        argv += ["--state-dir", str(state)]
    else:
        return _pytest(sim, image, state, pytester)
    capsys.readouterr()
    code = main(argv)  # in-process: the same code path as the console script, without a new interpreter
    out, err = capsys.readouterr()
    return code, out + err


def _pytest(sim: SimRack, image: Path, state: Path, pytester: pytest.Pytester) -> tuple[int, str]:
    pytester.makepyfile(test_bad_image_update="def test_update(station, firmware):\n    station.update(firmware)\n")
    reports = pytester.inline_run(
        "-p", "no:cacheprovider", "--rack", str(sim.rack_file), "--firmware", str(image),
        "--firmware-version", "6.05", "--state-dir", str(state),
    ).getreports("pytest_runtest_logreport")  # fmt: skip
    failed = [r for r in reports if r.failed]
    return (1 if failed else 0), "\n".join(str(r.longrepr) for r in failed)


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_refused_and_the_board_survives(
    sim: SimRack,
    case: BadInput,
    entry: str,
    tmp_path: Path,
    pytester: pytest.Pytester,
    capsys: pytest.CaptureFixture[str],
) -> None:
    flash = sim.device(STATION).flash
    before = flash.read(FLASH_BASE, FLASH_SIZE)
    image = case.make(tmp_path)
    code, output = _run(entry, sim, image, tmp_path / "state", pytester, capsys)
    assert code != 0, output
    assert case.error in output and case.diagnosis in output, output[-3000:]
    assert flash.read(FLASH_BASE, FLASH_SIZE) == before, "the flash changed"
    with StationSession(sim.resolved, STATION, state=StateDir.at(tmp_path / "check")) as session:
        assert str(session.read_board().version) == VERSION
