"""Issue 5's proof, end to end against simulated boards: F1 fixed by `rig swd flash` of the bootloader, a blank
board brought up over SWD (F4), and an unreachable target as a bounded, precise error (F5), through `rig swd`
and through the pyocd command line with the repo's pyocd_user.py."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rig.cli import main
from rig.device.memory import BOOTLOADER_BASE, FLASH_BASE
from rig.errors import Diagnosis, PowerError, UpdateError
from rig.firmware.image import Image, load_bootloader, load_firmware, write_merged_hex
from rig.protocol.commands import FirmwareVersion
from rig.sim.flash import Flash
from rig.sim.image import make_bootloader_image, make_firmware_image
from rig.sim.serve import SimRack
from rig.sim.swd_probe import SimSwdProbe, SimSwdServer
from rig.station.bench import Bounds, StationRig
from rig.station.rack import parse_rack

REPO = Path(__file__).resolve().parents[2]
PYOCD = Path(sys.executable).with_name("pyocd")
SWD = {"target": "stm32f405rg"}
RACK = {
    "name": "recovery",
    "simulated": True,
    "relay": [{"name": "lcus", "kind": "lcus", "channels": 2}],
    "station": [
        # F1: shipped without a bootloader, as the two boards in the field report
        {
            "name": "no-bootloader",
            "relay": "lcus:1",
            "swd": SWD,
            "sim": {"hw": "60", "fw": "6.02", "bootloader": False},
        },
        {"name": "esc", "relay": "lcus:2", "swd": SWD, "sim": {"hw": "60", "fw": "6.02"}},
    ],
}


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[SimRack]:
    with SimRack(parse_rack(RACK, tmp_path / "recovery.toml"), tmp_path / "run") as served:
        yield served


def station(sim: SimRack, name: str, bounds: Bounds = Bounds()) -> StationRig:
    return StationRig(sim.resolved, sim.resolved.station(name), bounds=bounds)


def firmware(tmp_path: Path, version: str) -> Image:
    path = tmp_path / f"fw-{version}.bin"
    path.write_bytes(make_firmware_image("60", version))
    return load_firmware(path, hw_names=("60",), version=FirmwareVersion.parse(version))


def bootloader(tmp_path: Path) -> Image:
    path = tmp_path / "bootloader.bin"
    path.write_bytes(make_bootloader_image())
    return load_bootloader(path)


def rig(*argv: str) -> None:
    assert main(list(argv)) == 0


def swd(sim: SimRack, name: str, *argv: str) -> None:
    rig("swd", *argv, "--rack", str(sim.rack_file), "--station", name, "--allow-destructive")


# --- F1 ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["shipped without", "erased over SWD"])
def test_board_without_bootloader_works_again_after_swd_flash_of_the_bootloader(
    sim: SimRack, tmp_path: Path, how: str
) -> None:
    name = "no-bootloader" if how == "shipped without" else "esc"
    if how == "erased over SWD":
        swd(sim, name, "erase", "--sector-range", "0x080E0000", "0x20000")
    assert sim.device(name).flash.is_erased(BOOTLOADER_BASE, 0x2_0000)
    board = station(sim, name)
    newer = firmware(tmp_path, "6.05")
    try:
        with pytest.raises(UpdateError) as caught:
            board.update(newer)
        assert caught.value.diagnosis is Diagnosis.BOOTLOADER_MISSING
        assert "still reports 6.02 (expected 6.05)" in str(caught.value)

        loader = bootloader(tmp_path)
        swd(sim, name, "flash", loader.source, "--address", "0x080E0000")
        assert sim.device(name).flash.read(BOOTLOADER_BASE, len(loader.data)) == loader.data

        result = board.update(newer)
        assert (str(result.before.version), str(result.after.version)) == ("6.02", "6.05")
    finally:
        board.close()


# --- F4 ---------------------------------------------------------------------------------------------


def test_blank_board_brought_up_with_a_merged_hex_over_swd(sim: SimRack, tmp_path: Path) -> None:
    swd(sim, "esc", "erase", "--mass")
    assert sim.device("esc").flash.is_erased(FLASH_BASE, 0x10_0000)
    quick = Bounds(gone_s=2.0, back_s=0.5, answer_s=0.5, settle_s=0.05)
    blank = station(sim, "esc", quick)
    try:
        with pytest.raises(PowerError) as dead:  # blank: after a power cycle nothing enumerates
            blank.power_cycle()
        assert dead.value.diagnosis is Diagnosis.PORT_NEVER_CAME_BACK
    finally:
        blank.close()

    # not the version the board had, so what runs afterwards came over SWD
    shipped = firmware(tmp_path, "6.05")
    merged = write_merged_hex(tmp_path / "bootloader+firmware.hex", bootloader(tmp_path), shipped)
    swd(sim, "esc", "flash", str(merged))
    rig("power", "cycle", "esc", "--rack", str(sim.rack_file))

    board = station(sim, "esc")
    try:
        with board.connect() as esc:
            assert esc.info is not None and (esc.info.hw_name, str(esc.info.version)) == ("60", "6.05")
        result = board.update(firmware(tmp_path, "6.06"))  # the bootloader SWD wrote does the copy
        assert str(result.after.version) == "6.06"
    finally:
        board.close()


# --- F5 ---------------------------------------------------------------------------------------------


@pytest.fixture
def unreachable() -> Iterator[SimSwdServer]:
    """A probe that answers, wired to a target that does not (unpowered, miswired or dead MCU)."""
    probe = SimSwdProbe(Flash(), unique_id="unreachable")
    probe.not_answering = True
    with SimSwdServer(probe) as server:
        yield server


def test_unreachable_target_through_rig_swd(
    unreachable: SimSwdServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = tmp_path / "bootloader.bin"
    image.write_bytes(make_bootloader_image())
    started = time.monotonic()
    code = main(["swd", "flash", str(image), "--address", "bootloader", "--probe", unreachable.address])
    assert code == 1 and time.monotonic() - started < 10.0
    message = capsys.readouterr().err.splitlines()[-1]
    assert message.startswith(f"rig swd: target not answering on {unreachable.address}")
    assert "each attempt bounded by 20 s" in message and message.endswith("[SWD connect failed]")


def test_pyocd_command_line_uses_the_repo_user_script(unreachable: SimSwdServer, tmp_path: Path) -> None:
    image = tmp_path / "x.hex"
    write_merged_hex(image, bootloader(tmp_path))
    command = [str(PYOCD), "flash", "-u", unreachable.address, "-t", "stm32f405rg", "--script", "pyocd_user.py"]
    started = time.monotonic()
    done = subprocess.run([*command, str(image)], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert done.returncode == 1 and time.monotonic() - started < 30.0
    assert "Target not detected" in done.stdout + done.stderr
    assert "not recognized" not in done.stdout + done.stderr  # the script made stm32f405rg known

    unreachable.probe.not_answering = False  # now healthy: the same command, the script found on its own
    done = subprocess.run([*command[:-2], str(image)], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    loader = make_bootloader_image()
    assert unreachable.probe.target.flash.read(BOOTLOADER_BASE, len(loader)) == loader
