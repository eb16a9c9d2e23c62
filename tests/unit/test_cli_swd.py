"""`rig swd flash|erase|verify` against a simulated rack in-process: the command reaches the station's simulated
probe through pyocd's remote-probe server, as it would a probe on a rack host."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from intelhex import IntelHex

from rig.cli import main
from rig.device.memory import BOOTLOADER_BASE, FLASH_BASE, SECTORS
from rig.sim.flash import Flash
from rig.sim.image import make_bootloader_image, make_firmware_image
from rig.sim.serve import SimRack
from rig.sim.swd_probe import SimSwdProbe, SimSwdServer
from rig.station.rack import parse_rack

RACK = {
    "name": "swd",
    "simulated": True,
    "station": [
        {"name": "esc", "swd": {"target": "stm32f405rg"}, "sim": {"hw": "60", "fw": "6.02"}},
        {"name": "no-swd", "sim": {"hw": "60", "fw": "6.02"}},
    ],
}
BOOTLOADER = make_bootloader_image()
FIRMWARE = make_firmware_image("60", "6.05", size=64 * 1024)  # small: only the code sectors are written


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[SimRack]:
    with SimRack(parse_rack(RACK, tmp_path / "swd.toml"), tmp_path / "run") as served:
        yield served


@pytest.fixture
def flash(sim: SimRack) -> Flash:
    return sim.device("esc").flash


def on_rack(sim: SimRack) -> list[str]:
    return ["--rack", str(sim.rack_file), "--station", "esc"]


def rig_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, object]:
    assert main([*argv, "--json"]) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def fails(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """Run `rig` in-process; it must exit 1; returns its message (the last line of stderr, after the bars)."""
    assert main(list(argv)) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    message = err.splitlines()[-1]
    assert message.startswith("rig swd: ")
    return message


def write_bin(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def write_hex(path: Path, address: int, data: bytes) -> Path:
    hexfile = IntelHex()
    hexfile.frombytes(data, offset=address)
    hexfile.write_hex_file(str(path))
    return path


# --- flash, verify, erase ---------------------------------------------------------------------------


def test_flash_bootloader_bin_at_its_sector(
    sim: SimRack, flash: Flash, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flash.erase_sector(11)
    image = write_bin(tmp_path / "bootloader.bin", BOOTLOADER)
    report = rig_json(
        capsys, "swd", "flash", str(image), "--address", "0x080E0000", "--allow-destructive", *on_rack(sim)
    )
    assert flash.read(BOOTLOADER_BASE, len(BOOTLOADER)) == BOOTLOADER
    assert report["segments"] == [{"address": BOOTLOADER_BASE, "bytes": len(BOOTLOADER)}]
    assert report["probe"] == sim.resolved.station("esc").swd.probe  # type: ignore[union-attr]
    assert report["target"] == "stm32f405rg" and report["verified"] is True
    assert {"connect_s", "erase_s", "program_s", "verify_s"} <= set(report)
    assert report["image_bytes"] == len(BOOTLOADER) and int(report["programmed_bytes"]) >= len(BOOTLOADER)  # type: ignore[call-overload]


def test_flash_firmware_hex_reports_erase_and_program_separately(
    sim: SimRack, flash: Flash, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = write_hex(tmp_path / "firmware.hex", FLASH_BASE, FIRMWARE)
    assert main(["swd", "flash", str(image), *on_rack(sim)]) == 0
    out, err = capsys.readouterr()
    assert flash.read(FLASH_BASE, len(FIRMWARE)) == FIRMWARE
    assert f"programmed {image} ({len(FIRMWARE)} bytes at 0x08000000)" in out
    assert "\n  erase " in out and "\n  program " in out and "\n  verify " in out
    for bar in ("connect remote:127.0.0.1:", "erase", "program", "verify", "100%"):
        assert bar in err  # the progress bar, on stderr


def test_verify_then_mismatch_after_sector_erase(
    sim: SimRack, flash: Flash, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = write_bin(tmp_path / "bootloader.bin", flash.read(BOOTLOADER_BASE, len(BOOTLOADER)))
    assert image.read_bytes() == BOOTLOADER  # as shipped
    report = rig_json(capsys, "swd", "verify", str(image), "--address", "bootloader", *on_rack(sim))
    assert report["verified"] is True and report["image_bytes"] == len(BOOTLOADER)

    bootloader_sector = ["--sector-range", "0x080E0000", "0x20000", *on_rack(sim)]
    erased = rig_json(capsys, "swd", "erase", *bootloader_sector, "--allow-destructive")
    assert erased["mode"] == "sectors" and erased["start"] == BOOTLOADER_BASE
    assert flash.is_erased(SECTORS[11].start, SECTORS[11].size)
    assert not flash.is_erased(FLASH_BASE, 0x100)  # only sector 11

    err = fails(capsys, "swd", "verify", str(image), "--address", "bootloader", *on_rack(sim))
    assert "verify failed:" in err and "first at 0x080e0000" in err and err.endswith("[SWD verify mismatch]")


def test_mass_erase(sim: SimRack, flash: Flash, capsys: pytest.CaptureFixture[str]) -> None:
    assert not flash.is_erased(FLASH_BASE, 0x10_0000)
    report = rig_json(capsys, "swd", "erase", "--mass", "--allow-destructive", *on_rack(sim))
    assert report["mode"] == "mass" and float(report["erase_s"]) >= 0  # type: ignore[arg-type]
    assert flash.is_erased(FLASH_BASE, 0x10_0000)


def test_probe_form_with_overrides(
    sim: SimRack, flash: Flash, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    probe = sim.resolved.station("esc").swd.probe  # type: ignore[union-attr]
    image = write_bin(tmp_path / "fw.bin", FIRMWARE)
    argv = ["--probe", str(probe), "--frequency", "1.8M", "--under-reset"]
    report = rig_json(capsys, "swd", "flash", str(image), "--address", "firmware", "--no-verify", *argv)
    assert flash.read(FLASH_BASE, len(FIRMWARE)) == FIRMWARE
    assert (report["frequency_hz"], report["connect_mode"], report["verified"]) == (1_800_000, "under-reset", False)
    assert report["verify_s"] == 0


# --- errors -----------------------------------------------------------------------------------------


@pytest.fixture
def faulty(sim: SimRack) -> Iterator[SimSwdServer]:
    """A second probe on the station's flash, whose faults the test sets (reached with --probe)."""
    with SimSwdServer(SimSwdProbe(sim.device("esc").flash, unique_id="faulty")) as server:
        yield server


def test_target_not_answering_is_f5_within_its_bound(
    faulty: SimSwdServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    faulty.probe.not_answering = True
    image = write_bin(tmp_path / "bootloader.bin", BOOTLOADER)
    started = time.monotonic()
    err = fails(capsys, "swd", "flash", str(image), "--address", "bootloader", "--probe", faulty.address)
    assert time.monotonic() - started < 10.0  # 3 attempts, each failing at once; each bounded by 20 s
    assert "target not answering" in err and "check power, GND/SWDIO/SWCLK wiring" in err
    assert "gave up after 3 attempts" in err and "each attempt bounded by 20 s" in err
    assert err.endswith("[SWD connect failed]")


def test_busy_probe(faulty: SimSwdServer, capsys: pytest.CaptureFixture[str]) -> None:
    faulty.probe.busy = True
    err = fails(capsys, "swd", "erase", "--mass", "--probe", faulty.address)
    assert "in use by another program" in err and err.endswith("[SWD probe busy]")


def test_no_probe_at_the_address(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    err = fails(capsys, "swd", "erase", "--mass", "--probe", f"remote:127.0.0.1:{port}")
    assert err.endswith("[SWD probe missing]")


def test_station_without_a_probe(sim: SimRack, capsys: pytest.CaptureFixture[str]) -> None:
    err = fails(capsys, "swd", "erase", "--mass", "--rack", str(sim.rack_file), "--station", "no-swd")
    assert "station no-swd has no SWD probe in the rack file" in err


def test_image_errors(sim: SimRack, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = fails(capsys, "swd", "flash", str(tmp_path / "missing.hex"), *on_rack(sim))
    assert "missing.hex: no such hex file" in err
    image = write_bin(tmp_path / "fw.bin", FIRMWARE)
    err = fails(capsys, "swd", "flash", str(image), *on_rack(sim))
    assert "a .bin goes to the firmware (0x08000000) or the bootloader (0x080e0000), not to no address" in err
    broken = tmp_path / "broken.hex"
    broken.write_text(":10000000ZZ\n:00000001FF\n")
    assert "corrupt hex file" in fails(capsys, "swd", "verify", str(broken), *on_rack(sim))


def test_destructive_steps_are_refused_without_permission_and_change_nothing(
    sim: SimRack, flash: Flash, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = flash.read(FLASH_BASE, 0x10_0000)
    image = write_bin(tmp_path / "bootloader.bin", BOOTLOADER)
    for argv, what in (
        (["erase", "--mass"], "mass erase"),
        (["erase", "--sector-range", "0x080C0000", "0x40000"], "covers the bootloader sector"),
        (["flash", str(image), "--address", "bootloader"], "program the bootloader"),
    ):
        err = fails(capsys, "swd", *argv, *on_rack(sim))
        assert what in err and "pass --allow-destructive if you mean it" in err, err
        assert err.endswith("[refused: needs explicit permission]")
    assert flash.read(FLASH_BASE, 0x10_0000) == before


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["erase", "--mass", "--rack", "r.toml"], "--rack needs --station"),
        (["erase", "--mass", "--probe", "x", "--station", "esc"], "--station goes with --rack"),
        (["erase", "--mass"], "one of the arguments --rack --probe is required"),
        (["erase", "--probe", "x"], "one of the arguments --mass --sector-range is required"),
        (["erase", "--sector-range", "0x08000000", "lots", "--probe", "x"], "'lots' is not an integer"),
        (["flash", "fw.hex", "--address", "0x08000000", "--probe", "x"], "--address is for .bin images"),
        (["verify", "fw.bin", "--probe", "x", "--frequency", "fast"], "'fast' is not a frequency"),
    ],
)
def test_usage_errors_exit_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["swd", *argv])
    assert done.value.code == 2
    assert message in capsys.readouterr().err
