"""The `rig` command-line tools used as a user would, against a simulated rack served in-process.

Every command goes through rig.cli.main with stdout captured: devices, info, update, bootloader,
config dump/restore/diff and rack check, including the usual mistakes (wrong URL, missing file,
image for other hardware, a relay board that is not there, a simulated rack that is not served).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from serial.tools.list_ports_common import ListPortInfo

from rig.cli import devices, main
from rig.client.esc import Esc
from rig.device.memory import BOOTLOADER_BASE, FLASH_BASE, FLASH_SIZE
from rig.protocol.codecs import ConfigBlob, ConfigKind
from rig.sim.image import BOOTLOADER_IMAGE_SIZE, make_bootloader_image, make_firmware_image
from rig.sim.serve import SimRack
from rig.station.rack import load_rack

SIM_RACK = Path(__file__).resolve().parents[2] / "fixtures" / "racks" / "sim.toml"
STATION = "esc-602"  # hw 60, firmware 6.02
NEXT = "6.00"  # another release with the config layout of 6.02 (both signatures shared): configs restore both ways


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimRack]:
    """A served rack for commands that change nothing on the boards."""
    with SimRack(load_rack(SIM_RACK), tmp_path_factory.mktemp("cli")) as served:
        yield served


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[SimRack]:
    """A served rack of its own, for commands that write to a board."""
    with SimRack(load_rack(SIM_RACK), tmp_path / "run") as served:
        yield served


def port(sim: SimRack, name: str = STATION) -> str:
    path = sim.resolved.station(name).port
    assert path is not None
    return path


def rig(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run `rig ARGV...`; exit code, stdout, stderr."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def rig_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    code, out, err = rig(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


def flat(table: str) -> str:
    """A rich table's text without borders and whitespace, so wrapped cells read as one string."""
    return "".join(ch for ch in table if not ch.isspace() and ch not in "│┃━─┏┓┗┛┡┩┣┫╇╈┳┻┼└┘┌┐├┤┬┴")


def firmware_in_folder(root: Path, hw: str, version: str) -> Path:
    """A generated image laid out as the desktop tool does: ROOT/<hw>/VESC_default.bin."""
    path = root / hw / "VESC_default.bin"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(make_firmware_image(hw, version))
    return path


def closed_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- info ------------------------------------------------------------------------------------------


def test_info_json_has_every_fw_version_field_and_telemetry(sim: SimRack, capsys: pytest.CaptureFixture[str]) -> None:
    doc = rig_json(capsys, "info", port(sim))
    node = sim.resolved.station(STATION).sim.node  # type: ignore[union-attr]
    fw = doc["fw_version"]
    assert (fw["version"], fw["hw_name"], fw["uid"]) == ("6.02", "60", node.uid.hex())
    assert {"fw_name", "nrf_flags", "hw_type", "test_version", "pairing_done"} <= set(fw)  # 6.x sends them
    assert doc["values"]["v_in"] > 0 and doc["values"]["fault"] == 0
    assert doc["port"] == os.path.realpath(port(sim))


def test_info_of_legacy_firmware_has_only_its_fields(sim: SimRack, capsys: pytest.CaptureFixture[str]) -> None:
    fw = rig_json(capsys, "info", port(sim, "esc-340"))["fw_version"]
    assert (fw["version"], fw["hw_name"]) == ("3.40", "410")
    assert "fw_name" not in fw and "pairing_done" not in fw  # 3.40 ends its reply after the UID


def test_info_as_text(sim: SimRack, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = rig(capsys, "info", port(sim))
    assert code == 0
    assert "6.02" in out and "GET_VALUES" in out and "v_in" in out


@pytest.mark.parametrize("url", ["missing", "socket"])
def test_info_wrong_url_is_a_clean_error(url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = str(tmp_path / "ttyACM9") if url == "missing" else f"socket://127.0.0.1:{closed_tcp_port()}"
    started = time.monotonic()
    code, out, err = rig(capsys, "info", target, "--connect-timeout", "0.5")
    assert time.monotonic() - started >= 0.5  # the port gets --connect-timeout to appear (a board re-enumerating)
    assert code == 1 and out == ""
    if url == "missing":
        assert f"no port at {target} within 0.5 s (--connect-timeout)" in err
    else:
        host_port = target.removeprefix("socket://")
        assert f"connection refused at {host_port} (nothing listens there" in err and "kept trying for 0.5 s" in err
    assert err.rstrip().endswith("[port not found]")
    code, out, _ = rig(capsys, "info", target, "--connect-timeout", "0", "--json")
    assert code == 1 and json.loads(out)["diagnosis"] == "port not found"  # --json: the error is JSON on stdout


# --- update and bootloader -------------------------------------------------------------------------


def test_update_end_to_end_from_a_folder(fresh: SimRack, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    firmware_in_folder(tmp_path / "fw", "60", NEXT)
    enumerations = fresh.port(STATION).enumerations
    doc = rig_json(capsys, "update", port(fresh), str(tmp_path / "fw"), "--version", NEXT, "--window", "4")
    assert doc["before"]["version"] == "6.02" and doc["after"]["version"] == NEXT
    assert doc["after"]["uid"] == doc["before"]["uid"]
    assert doc["proof"].startswith("port re-enumerated, same UID")
    assert fresh.port(STATION).enumerations > enumerations
    assert doc["image"]["hw_names"] == ["60"] and doc["compressed"] is True  # 524280 bytes: heatshrink
    assert set(doc["times"]) == {"erase_s", "write_s", "boot_s", "ready_s", "total_s"}
    assert doc["stats"]["chunks_sent"] > 0 and doc["stats"]["bytes_sent"] > 0
    assert rig_json(capsys, "info", port(fresh))["fw_version"]["version"] == NEXT


def test_update_back_with_a_plain_bin_shows_phase_times(
    fresh: SimRack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = tmp_path / "release.bin"
    image.write_bytes(make_firmware_image("60", "6.02"))
    rig_json(capsys, "update", port(fresh), str(firmware_in_folder(tmp_path / "fw", "60", NEXT)))
    code, out, _ = rig(capsys, "update", port(fresh), str(image), "--hw", "60", "--version", "6.02")
    assert code == 0
    assert f"{NEXT} -> 6.02" in out
    for phase in ("erase", "write", "boot", "ready", "total"):
        assert phase in out


def test_update_refuses_image_for_other_hardware_before_erasing(
    sim: SimRack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = firmware_in_folder(tmp_path / "fw", "410", NEXT)
    device = sim.device(STATION)
    flash_before = device.flash.read(FLASH_BASE, FLASH_SIZE)
    code, out, err = rig(capsys, "update", port(sim), str(image))
    assert code == 1 and out == ""
    assert "410" in err and "'60'" in err and "[wrong hardware]" in err
    assert device.flash.read(FLASH_BASE, FLASH_SIZE) == flash_before  # nothing erased, nothing written
    assert rig_json(capsys, "info", port(sim))["fw_version"]["version"] == "6.02"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("missing.bin", "no such firmware file"),
        ("plain.bin", "cannot tell which hardware"),  # a .bin outside a hardware folder, no --hw
        ("garbage.bin", "not in RAM"),
    ],
)
def test_update_user_mistakes_are_clean_errors(
    name: str, message: str, sim: SimRack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "plain.bin").write_bytes(make_firmware_image("60", NEXT))
    (tmp_path / "garbage.bin").write_bytes(b"hello world, not firmware")
    code, _, err = rig(capsys, "update", port(sim), str(tmp_path / name))
    assert code == 1 and message in err
    assert rig_json(capsys, "info", port(sim))["fw_version"]["version"] == "6.02"


@pytest.mark.parametrize("argv", [["update"], ["update", "x", "y", "--window", "0"], ["info", "x", "--bogus"]])
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_bootloader_written_over_usb(fresh: SimRack, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    image = tmp_path / "generic.bin"
    image.write_bytes(make_bootloader_image())
    doc = rig_json(capsys, "bootloader", port(fresh), str(image))
    assert doc["image"]["kind"] == "bootloader" and doc["stats"]["bytes_sent"] > 0
    assert set(doc["times"]) == {"erase_s", "write_s", "total_s"}
    assert fresh.device(STATION).flash.read(BOOTLOADER_BASE, BOOTLOADER_IMAGE_SIZE) == image.read_bytes()
    assert rig_json(capsys, "info", port(fresh))["fw_version"]["version"] == "6.02"  # firmware kept running


def test_bootloader_over_usb_to_firmware_without_erase_bootloader_is_refused(
    fresh: SimRack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """3.40 has no ERASE_BOOTLOADER: writing over the shipped bootloader would AND the two images together."""
    image = tmp_path / "generic.bin"
    image.write_bytes(make_bootloader_image("other"))
    flash = fresh.device("esc-340").flash
    before = flash.read(BOOTLOADER_BASE, BOOTLOADER_IMAGE_SIZE)
    code, _, err = rig(capsys, "bootloader", port(fresh, "esc-340"), str(image))
    assert code == 1 and "has no ERASE_BOOTLOADER" in err and "--allow-destructive" in err, err
    assert flash.read(BOOTLOADER_BASE, BOOTLOADER_IMAGE_SIZE) == before
    assert rig_json(capsys, "info", port(fresh, "esc-340"))["fw_version"]["version"] == "3.40"


# --- configs ---------------------------------------------------------------------------------------


def change_mcconf(url: str, offset: int) -> None:
    """Change one byte of the board's mcconf, as a user with VESC Tool would."""
    with Esc.open(url) as esc:
        esc.fw_version()
        blob = esc.get_config(ConfigKind.MCCONF)
        data = bytearray(blob.data)
        data[offset] ^= 0x5A
        esc.set_config(ConfigBlob(blob.kind, blob.signature, bytes(data)))


def test_config_dump_diff_restore_round_trip(
    fresh: SimRack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, a, b = port(fresh), tmp_path / "a.json", tmp_path / "b.json"
    dumped = rig_json(capsys, "config", "dump", url, "-o", str(a), "--raw-only")
    assert dumped["version"] == "6.02" and dumped["configs"]["mcconf"]["signature"] is not None

    change_mcconf(url, 17)
    rig_json(capsys, "config", "dump", url, "-o", str(b), "--raw-only")
    code, out, _ = rig(capsys, "config", "diff", str(a), str(b), "--bytes", "--json")
    diff = json.loads(out)
    assert code == 3 and diff["same"] is False
    assert diff["configs"]["mcconf"]["first_offsets"] == [17] and diff["configs"]["mcconf"]["differing_bytes"] == 1
    assert diff["configs"]["appconf"]["differing_bytes"] == 0
    assert diff["version"] == ["6.02", "6.02"]

    code, out, _ = rig(capsys, "config", "diff", str(a), url, "--bytes")  # against the board, as a table
    assert code == 3 and "mcconfbytes1bytediffers,firstat17" in flat(out)

    restored = rig_json(capsys, "config", "restore", url, str(a))
    assert restored["verified"] is True and restored["same_board"] is True
    code, _, _ = rig(capsys, "config", "diff", str(a), url, "--bytes")
    assert code == 0


def test_restore_refuses_a_config_of_another_layout(
    fresh: SimRack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, backup = port(fresh), tmp_path / "a.json"
    rig_json(capsys, "config", "dump", url, "-o", str(backup), "--raw-only")
    raw = json.loads(backup.read_text())
    raw["blobs"]["mcconf"]["signature"] += 1  # as if read from a firmware with another mcconf layout
    raw["blobs"]["mcconf"]["data"] = "00" * 10
    backup.write_text(json.dumps(raw))
    change_mcconf(url, 3)
    rig_json(capsys, "config", "dump", url, "-o", str(tmp_path / "now.json"), "--raw-only")

    code, _, err = rig(capsys, "config", "restore", url, str(backup))
    assert code == 1 and "signature" in err and "[config signature mismatch]" in err
    code, _, _ = rig(capsys, "config", "diff", str(tmp_path / "now.json"), url, "--bytes")
    assert code == 0  # the board's config is untouched


def test_restore_refuses_another_hardware(sim: SimRack, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    backup = tmp_path / "esc-340.json"
    rig_json(capsys, "config", "dump", port(sim, "esc-340"), "-o", str(backup), "--raw-only")
    code, _, err = rig(capsys, "config", "restore", port(sim), str(backup))
    assert code == 1 and "'410'" in err and "[wrong hardware]" in err


@pytest.mark.parametrize("content", [None, "not json", '{"version": "6.02"}'])
def test_config_file_mistakes_are_clean_errors(
    content: str | None, sim: SimRack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    backup = tmp_path / "backup.json"
    if content is not None:
        backup.write_text(content)
    code, _, err = rig(capsys, "config", "restore", port(sim), str(backup))
    assert code == 1 and str(backup) in err
    code, _, err = rig(capsys, "config", "diff", str(backup), str(backup))
    assert code == 1 and str(backup) in err


# --- rack check ------------------------------------------------------------------------------------


def test_rack_check_of_a_served_rack(sim: SimRack, capsys: pytest.CaptureFixture[str]) -> None:
    doc = rig_json(capsys, "rack", "check", "--rack", str(sim.rack_file))
    assert doc["ok"] is True
    by_name = {s["station"]: s["checks"] for s in doc["stations"]}
    assert set(by_name) == {"esc-602", "esc-340", "esc-502", "dual-602", "esc-606", "esc-700"}
    assert by_name["dual-602"]["firmware"]["detail"] == "6.02 hw 60, CAN 1: 6.02"
    assert by_name["dual-602"]["supply"]["ok"] is True and "V" in by_name["dual-602"]["supply"]["detail"]
    assert by_name["esc-502"]["relay"]["detail"] == "modbus:0 on"  # Modbus coils read back
    assert by_name["esc-602"]["relay"]["detail"] == "lcus:1 (no read-back)"
    assert by_name["esc-602"]["supply"] == {"ok": None, "detail": "none"}
    assert all(checks["swd"]["ok"] for checks in by_name.values())


def test_rack_check_names_an_unreachable_relay_board(
    sim: SimRack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rack = sim.resolved
    lcus = replace(rack.relay("lcus"), port=str(tmp_path / "ttyUSB-unplugged"))
    broken = tmp_path / "rack.toml"
    broken.write_text(replace(rack, relays=(lcus, *rack.relays[1:])).to_toml())
    code, out, err = rig(capsys, "rack", "check", "--rack", str(broken))
    assert code == 1
    assert "ttyUSB-unplugged" in flat(out)  # the table names it
    assert "esc-602: relay not ready" in err and "esc-340: relay not ready" in err
    assert "esc-502" not in err
    doc = rig_json_code(capsys, 1, "rack", "check", "--rack", str(broken), "--station", "esc-340")
    relay = doc["stations"][0]["checks"]["relay"]
    assert relay["ok"] is False and "cannot open" in relay["detail"]


def test_rack_check_names_a_board_that_does_not_answer(sim: SimRack, capsys: pytest.CaptureFixture[str]) -> None:
    sim.power("esc-502", False)
    try:
        doc = rig_json_code(
            capsys, 1, "rack", "check", "--rack", str(sim.rack_file), "--station", "esc-502", "--bound", "0.5"
        )
    finally:
        sim.power("esc-502", True)
    checks = doc["stations"][0]["checks"]
    assert checks["port"]["ok"] is False and checks["firmware"]["ok"] is False
    assert checks["relay"]["ok"] is True  # the board is there, the channel reads back...
    assert checks["relay"]["detail"] == "modbus:0 on"  # ...but this test cut the power behind its back


def rig_json_code(capsys: pytest.CaptureFixture[str], expected: int, *argv: str) -> dict[str, Any]:
    code, out, err = rig(capsys, *argv, "--json")
    assert code == expected, err
    return json.loads(out)


def test_rack_check_of_an_unserved_simulated_rack(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = rig(capsys, "rack", "check", "--rack", str(SIM_RACK))
    assert code == 1 and out == ""
    assert "not served" in err and "rig sim serve" in err and "--serve" in err
    doc = rig_json(capsys, "rack", "check", "--rack", str(SIM_RACK), "--serve", "--station", "esc-340")
    assert doc["ok"] is True and doc["stations"][0]["checks"]["firmware"]["detail"] == "3.40 hw 410"


def test_rack_check_of_a_missing_rack_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = rig(capsys, "rack", "check", "--rack", str(tmp_path / "nope.toml"))
    assert code == 1 and "cannot read rack file" in err and "[rack file error]" in err


# --- devices ---------------------------------------------------------------------------------------


def fake_port(device: str, vid: int | None, pid: int | None, manufacturer: str | None, serial: str | None) -> Any:
    info = ListPortInfo(device, skip_link_detection=True)
    info.vid, info.pid, info.manufacturer, info.serial_number = vid, pid, manufacturer, serial
    return info


def test_devices_finds_vesc_ports_and_relay_boards(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ports = [
        fake_port("/dev/ttyACM0", 0x0483, 0x5740, "STMicroelectronics", "3A0041000F51"),
        fake_port("/dev/ttyACM1", 0x0483, 0x1234, "STMicroelectronics", "B"),  # by manufacturer, as VESC Tool
        fake_port("/dev/ttyUSB0", 0x1A86, 0x7523, None, None),
        fake_port("/dev/ttyACM2", 0x2A19, 0x0C05, "Numato Systems Pvt. Ltd.", None),
        fake_port("/dev/ttyUSB1", 0x0403, 0x6001, "FTDI", "FT1"),  # something else
    ]
    by_id = tmp_path / "by-id"
    by_id.mkdir()
    stable = by_id / "usb-STMicroelectronics_ChibiOS_RT_Virtual_COM_Port_3A0041000F51-if00"
    stable.symlink_to("/dev/ttyACM0")
    monkeypatch.setattr(devices.list_ports, "comports", lambda: ports)
    monkeypatch.setattr(devices, "BY_ID_DIR", by_id)
    doc = rig_json(capsys, "devices")
    vesc = {p["device"]: p for p in doc["vesc"]}
    assert set(vesc) == {"/dev/ttyACM0", "/dev/ttyACM1"}
    assert vesc["/dev/ttyACM0"]["by_id"] == str(stable) and vesc["/dev/ttyACM0"]["usb_id"] == "0483:5740"
    assert vesc["/dev/ttyACM0"]["serial_number"] == "3A0041000F51"
    relays = {p["device"]: p["kind"] for p in doc["relays"]}
    assert relays == {"/dev/ttyUSB0": devices.RELAY_USB_IDS[(0x1A86, 0x7523)], "/dev/ttyACM2": "numato"}
    assert isinstance(doc["probes"], list)
    code, out, _ = rig(capsys, "devices")
    assert code == 0 and "ttyACM0" in out and "numato" in out


def test_devices_with_a_rack_lists_its_ports(sim: SimRack, capsys: pytest.CaptureFixture[str]) -> None:
    doc = rig_json(capsys, "devices", "--rack", str(sim.rack_file))
    stations = {s["station"]: s for s in doc["rack"]["stations"]}
    assert stations[STATION]["present"] == os.path.realpath(port(sim))
    assert stations[STATION]["relay"] == "lcus:1" and stations[STATION]["swd_probe"].startswith("remote:")
    assert doc["rack"]["note"] is None
    unserved = rig_json(capsys, "devices", "--rack", str(SIM_RACK))["rack"]
    assert "rig sim serve" in unserved["note"] and all(s["present"] is None for s in unserved["stations"])


# --- the command line itself -------------------------------------------------------------------------


RIG = str(Path(sys.executable).parent / "rig")


def test_version() -> None:
    done = subprocess.run([RIG, "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and re.fullmatch(r"rig \d+\.\d+\.\d+\S*\n", done.stdout), done.stdout


def test_a_reader_that_goes_away_is_no_error(tmp_path: Path) -> None:
    """`rig devices --json | head -1`: the pipe closes before rig writes; no traceback, exit 0."""
    child = subprocess.Popen([RIG, "devices", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stderr is not None
    child.stdout.close()  # the reader is gone before the first byte
    err = child.stderr.read()
    assert child.wait(60) == 0 and "Traceback" not in err and "BrokenPipe" not in err, err


def test_tables_written_to_a_file_do_not_wrap(sim: SimRack, tmp_path: Path) -> None:
    out = tmp_path / "rack.txt"
    with out.open("w") as stream:
        subprocess.run(
            [RIG, "rack", "check", "--rack", str(sim.rack_file), "--state-dir", str(tmp_path / "state")],
            stdout=stream,
            timeout=120,
            check=False,
        )
    rows = [line for line in out.read_text().splitlines() if "esc-602" in line]
    assert len(rows) == 1 and "6.02 hw 60" in rows[0], out.read_text()  # one line per station, not folded
