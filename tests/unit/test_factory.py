"""Factory bring-up (rig.factory.flow, `rig factory`) on a simulated rack of blank boards.

Boards are blanked as on the bench: a mass erase through the station's SWD probe, then a power cycle
through its relay (the board then has no firmware and no USB port). Images are small generated ones
(64 KB firmware) to keep SWD programming fast; the records are read back with `rig records`.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from rig.cli import main
from rig.cli.factory import factory_permit, plans
from rig.device.memory import FLASH_BASE, FLASH_SIZE
from rig.errors import Diagnosis, ImageError
from rig.factory.flow import FactoryPlan, Limits, Range, bring_up
from rig.factory.records import INCOMPLETE, Record, RecordStore
from rig.firmware.image import Image, load_bootloader, load_firmware
from rig.protocol.commands import FirmwareVersion
from rig.sim.device import Mode
from rig.sim.image import make_bootloader_image, make_firmware_image
from rig.sim.serve import SimRack
from rig.station.bench import Bounds
from rig.station.rack import load_rack, parse_rack
from rig.station.session import StationSession
from rig.station.state import StateDir
from rig.transport.presence import wait_for

REPO = Path(__file__).resolve().parents[2]
SWD = {"target": "stm32f405rg"}
BOARDS = ("a", "b", "c", "d")
RACK = {
    "name": "factory",
    "simulated": True,
    "relay": [{"name": "lcus", "kind": "lcus", "channels": 4}],
    "station": [
        *(
            {"name": n, "relay": f"lcus:{i}", "swd": SWD, "sim": {"hw": "60", "fw": "6.02"}}
            for i, n in enumerate(BOARDS, 1)
        ),
        {"name": "no-relay", "swd": SWD, "sim": {"hw": "60", "fw": "6.02"}},  # a mistake in the rack
    ],
}
QUICK = Bounds(settle_s=0.05)


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[SimRack]:
    with SimRack(parse_rack(RACK, tmp_path / "factory.toml"), tmp_path / "run") as served:
        yield served


@pytest.fixture
def images(tmp_path: Path) -> dict[str, Path]:
    """Bootloader, the firmware SWD writes (6.05) and the target (6.06), for hardware 60, at their real sizes
    (a 6.x .bin of another size is refused: rig.device.app_image.built_image_problem)."""
    files = {
        "bootloader": tmp_path / "bootloader.bin",
        "swd": tmp_path / "fw-6.05.bin",
        "target": tmp_path / "fw-6.06.bin",
    }
    files["bootloader"].write_bytes(make_bootloader_image())
    files["swd"].write_bytes(make_firmware_image("60", "6.05"))
    files["target"].write_bytes(make_firmware_image("60", "6.06"))
    return files


def plan(images: dict[str, Path], **options: Any) -> FactoryPlan:
    firmware = load_firmware(images["target"], hw_names=("60",), version=FirmwareVersion(6, 6))
    swd = load_firmware(images["swd"], hw_names=("60",), version=FirmwareVersion(6, 5))
    return FactoryPlan(firmware, load_bootloader(images["bootloader"]), swd_firmware=swd, **options)


def station(sim: SimRack, name: str) -> StationSession:
    """The station's session as `rig factory` opens it (its permit: mass erase and the bootloader sector)."""
    return StationSession(
        sim.resolved,
        name,
        state=StateDir.at(sim.run_dir / "state"),
        permit=factory_permit(argparse.Namespace(allow_wrong_hw=False, allow_destructive=False), sim.resolved),
        bounds=QUICK,
    ).open()


def blank(sim: SimRack, *names: str) -> None:
    """Mass erase over SWD, then power off and on: no firmware, no USB port."""
    for name in names:
        board, device = station(sim, name), sim.device(name)
        try:
            with board.swd() as session:
                session.mass_erase()
            channel = board.bench.power_channel()
            channel.switch(False)
            until(lambda d=device: not d.powered, f"{name} off")
            channel.switch(True)
            until(lambda d=device: d.mode == Mode.DEAD, f"{name} booted")
        finally:
            board.close()
        assert device.flash.is_erased(FLASH_BASE, FLASH_SIZE)
        assert not device.usb_up and not Path(sim.resolved.station(name).port or "").exists()


def until(condition: Callable[[], bool], what: str) -> None:
    """The simulated relay switches in its own thread: wait (bounded) for what it did."""
    wait_for(condition, 2.0, what, Diagnosis.TIMEOUT, 0.01)


def rig(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def checks(record: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in record["checks"]}


def table_rows(text: str) -> dict[str, dict[str, str]]:
    """The cells of a rich table by its first column, wrapped cells joined again."""
    header = next(line for line in text.splitlines() if line.startswith("┃"))
    columns = [c.strip() for c in header.strip("┃").split("┃")]
    rows: dict[str, dict[str, str]] = {}
    for line in text.splitlines():
        if not line.startswith("│"):
            continue
        cells = [c.strip() for c in line.strip("│").split("│")]
        if cells[0]:
            row = rows[cells[0]] = dict.fromkeys(columns, "")
        for column, cell in zip(columns, cells, strict=True):
            row[column] = f"{row[column]} {cell}".strip()
    return rows


# --- the Show: several blank boards, one with a fault, and the records -------------------------------


def test_factory_run_over_blank_boards_one_with_a_fault(
    sim: SimRack, images: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blank(sim, *BOARDS)
    sim.fault("d", "bootloader_rejects")  # F2: the bootloader SWD wrote rejects every image
    left_off = station(sim, "b")  # as a failed run leaves a board: the factory must switch it on for SWD
    try:
        left_off.power(False)
        until(lambda: not sim.device("b").powered, "b off")
    finally:
        left_off.close()
    db = tmp_path / "records.sqlite"
    code, out, err = rig(
        capsys,
        "factory",
        "--rack", str(sim.rack_file),
        *(f"--station={n}" for n in BOARDS),
        "--firmware", str(images["target"]),
        "--swd-firmware", str(images["swd"]),
        "--bootloader", str(images["bootloader"]),
        "--hw", "60",
        "--version", "6.06",
        "--records", str(db),
        "--run-id", "tray-1",
        "--json",
    )  # fmt: skip
    assert code == 1  # not every board passed
    doc = json.loads(out)
    boards = {b["station"]: b for b in doc["boards"]}
    assert (doc["run_id"], doc["ok"], list(boards)) == ("tray-1", False, list(BOARDS))
    for name in "abc":
        good = boards[name]
        assert (good["verdict"], good["fw"], good["hw"], good["failed_step"]) == ("PASS", "6.06", "60", None)
        assert good["uid"] == sim.device(name).spec.uid.hex()
        assert good["left"] == "running firmware 6.06"
        assert sim.device(name).running
    bad = boards["d"]
    assert (bad["verdict"], bad["failed_step"]) == ("FAIL", "firmware over USB")
    assert bad["diagnosis"] == Diagnosis.BOOTLOADER_MISSING.value
    assert "still reports 6.05 (expected 6.06)" in bad["reason"]
    assert (bad["uid"], bad["fw"]) == (sim.device("d").spec.uid.hex(), "6.05")  # asked before powering it off
    assert bad["left"] == "running firmware 6.05; powered off"  # what it answered before it was switched off
    until(lambda: not sim.device("d").powered, "d off")  # left in a known state
    assert "station d: FAIL: firmware over USB [update did not take" in err

    code, out, _ = rig(capsys, "records", "list", "--db", str(db), "--json")
    assert code == 0
    records = {r["station"]: r for r in json.loads(out)}
    assert {r["status"] for n, r in records.items() if n != "d"} == {"PASS"}
    assert all(r["run_id"] == "tray-1" and r["hw"] == "60" for r in records.values())
    good = checks(records["a"])
    assert good["fw_version"]["value"] == "6.06" and good["uid"]["value"] == sim.device("a").spec.uid.hex()
    for name, record in records.items():  # the UID column, from the first identity read: findable by UID
        assert record["uid"] == sim.device(name).spec.uid.hex(), (name, record)
    uid_d = sim.device("d").spec.uid.hex()
    code, out, _ = rig(capsys, "records", "list", "--db", str(db), "--uid", uid_d, "--json")
    assert code == 0 and [r["station"] for r in json.loads(out)] == ["d"]
    assert (good["v_in"]["low"], good["v_in"]["high"], good["v_in"]["passed"]) == (8.0, 60.0, True)
    assert good["fault"]["value"] == 0 and good["usb update"]["value"].startswith("6.05 -> 6.06")
    assert {"mcconf defaults verified", "appconf defaults verified", "swd verified"} <= set(good)
    assert records["a"]["fw"] == "6.06"

    code, out, _ = rig(capsys, "records", "show", str(records["d"]["id"]), "--db", str(db), "--json")
    faulted = json.loads(out)
    assert faulted["status"] == "FAIL" and faulted["fw"] == "6.05"  # the firmware it reached
    failed = [c for c in faulted["checks"] if not c["passed"]]
    assert [c["name"] for c in failed] == ["firmware over USB"]
    assert failed[0]["value"].startswith(f"[{Diagnosis.BOOTLOADER_MISSING.value}] ")
    assert checks(faulted)["left"]["value"].endswith("powered off")
    assert "fw_version" not in checks(faulted)  # nothing after the failing step


def test_a_board_that_answers_over_usb_is_not_erased_without_permission(
    sim: SimRack, images: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = sim.device("a").flash.read(FLASH_BASE, FLASH_SIZE)
    code, out, err = rig(
        capsys,
        "factory", "--rack", str(sim.rack_file), "--station", "a",
        "--firmware", str(images["target"]), "--bootloader", str(images["bootloader"]), "--hw", "60",
        "--records", str(tmp_path / "records.sqlite"),
    )  # fmt: skip
    assert code == 1
    assert "swd mass erase [refused: needs explicit permission]" in table_rows(out)["a"]["failed"]
    assert "pass --allow-destructive" in err
    assert sim.device("a").flash.read(FLASH_BASE, FLASH_SIZE) == before  # nothing erased, nothing written


def test_factory_table_merged_flow_and_a_station_without_relay(
    sim: SimRack, images: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blank(sim, "a")
    code, out, err = rig(
        capsys,
        "factory",
        "--rack", str(sim.rack_file),
        "--station", "a",
        "--station", "no-relay",
        "--merged",
        "--firmware", str(images["target"]),
        "--bootloader", str(images["bootloader"]),
        "--hw", "60",
        "--version", "6.06",
        "--records", str(tmp_path / "records.sqlite"),
        "--allow-destructive",  # no-relay runs its firmware: erasing it needs the explicit permission
    )  # fmt: skip
    assert code == 1 and out, err
    rows = table_rows(out)
    assert rows["a"]["verdict"] == "PASS" and rows["a"]["UID"] == sim.device("a").spec.uid.hex()
    assert (rows["a"]["firmware"], rows["a"]["left"]) == ("6.06", "running firmware 6.06")
    assert rows["no-relay"]["verdict"] == "FAIL"
    assert rows["no-relay"]["failed"].startswith("power cycle [power control failed]: station no-relay has no relay")
    # SWD wrote the flash, but without a power cycle the board still runs what it ran before
    assert rows["no-relay"]["left"] == "running firmware 6.02; left powered (the station has no relay or supply)"
    assert "station no-relay: FAIL: power cycle [power control failed]: station no-relay has no relay channel" in err
    assert "a: swd program ok" in err and "no-relay: power cycle failed" in err
    assert "firmware over USB" not in err  # merged: nothing over USB


# --- bring_up itself ---------------------------------------------------------------------------------


def test_telemetry_out_of_limits_fails_the_board_and_powers_it_off(sim: SimRack, images: dict[str, Path]) -> None:
    blank(sim, "b")
    sim.swd_fault("b", "swd_disabled_by_firmware")  # F5: only a connect under reset gets through
    strict = plan(images, merged=True, limits=Limits().override(v_in="30:60"))
    board = station(sim, "b")
    try:
        with RecordStore(sim.run_dir / "records.sqlite") as store:
            result = bring_up(board, strict, store, "limits")
            record = store.record(result.record_id or 0)
    finally:
        board.close()
    assert (result.verdict, result.failed_step, result.failed_checks) == ("FAIL", None, ("v_in",))
    assert result.reason == "failed checks: v_in = 24.1 not in 30..60 V"
    assert result.left == "running firmware 6.06; powered off"
    until(lambda: not sim.device("b").powered, "b off")
    by_name = {c.name: c for c in record.checks}
    assert by_name["swd connect mode"].value == "under-reset"
    assert (by_name["v_in"].low, by_name["v_in"].high, by_name["v_in"].passed) == (30.0, 60.0, False)
    assert by_name["temp_fet"].passed and by_name["fault"].passed and by_name["fw_version"].value == "6.06"
    assert record.status == "FAIL"


def test_swd_probe_not_answering_fails_at_connect(sim: SimRack, images: dict[str, Path]) -> None:
    sim.swd_fault("c", "not_answering")  # F5: wiring, power, a dead MCU
    board = station(sim, "c")
    try:
        with RecordStore(sim.run_dir / "records.sqlite") as store:
            result = bring_up(board, plan(images), store, "probe")
            record = store.record(result.record_id or 0)
    finally:
        board.close()
    assert (result.verdict, result.failed_step) == ("FAIL", "swd connect")
    assert result.diagnosis == Diagnosis.SWD_CONNECT_FAILED.value
    assert "under_reset connect" in (result.reason or "")  # tried under reset too
    assert result.left == "running firmware 6.02; powered off"  # still the shipped firmware: SWD wrote nothing
    until(lambda: not sim.device("c").powered, "c off")
    assert [c.name for c in record.checks] == ["power on", "swd connect", "uid", "left"]


class Killed(BaseException):
    """The run dies (SIGKILL, power cut) while storing a check."""


class DyingRecord(Record):
    def check(self, name: str, *args: Any, **kwargs: Any) -> bool:
        verdict = super().check(name, *args, **kwargs)
        if name == "power cycle":
            raise Killed(name)
        return verdict


class DyingStore(RecordStore):
    def open_record(self, *args: Any, **kwargs: Any) -> Record:
        return DyingRecord(self, super().open_record(*args, **kwargs).id)


def test_a_run_killed_mid_way_keeps_every_check_written_before(sim: SimRack, images: dict[str, Path]) -> None:
    blank(sim, "a")
    path = sim.run_dir / "records.sqlite"
    board = station(sim, "a")
    try:
        with DyingStore(path) as store, pytest.raises(Killed):
            bring_up(board, plan(images), store, "killed")
    finally:
        board.close()
    with RecordStore(path) as reopened:  # a new connection, as after a restart
        (record,) = reopened.records(run_id="killed")
    assert record.status == INCOMPLETE
    assert [c.name for c in record.checks] == [
        "power on",
        "swd connect",
        "swd connect mode",
        "swd mass erase",
        "swd program",
        "swd verified",
        "power cycle",
    ]
    assert record.fw == "6.05"  # noted when SWD had written it


# --- plans and mistakes ------------------------------------------------------------------------------


def test_images_of_each_station_of_a_served_simulated_rack(tmp_path: Path) -> None:
    args = argparse.Namespace(
        firmware=None, bootloader=None, swd_firmware=None, hw=None, version=None, merged=False,
        allow_wrong_hw=False, no_defaults=False, v_in=None, temp_fet=":70", temp_motor="none",
    )  # fmt: skip
    with SimRack(load_rack(REPO / "fixtures" / "racks" / "sim.toml"), tmp_path / "run") as served:
        rack = served.resolved
        made = plans(args, rack, rack.stations)
    assert list(made) == [s.name for s in rack.stations]
    versions = {n: (str(p.swd_image.version), str(p.firmware.version), p.firmware.hw_names) for n, p in made.items()}
    assert versions["esc-602"] == ("6.02", "6.05", ("60",))
    assert versions["esc-340"] == ("3.40", "3.48", ("410",))
    limits = made["esc-602"].limits
    assert limits.temp_fet == Range(None, 70.0, "°C") and limits.temp_motor == Range(None, None, "°C")
    assert limits.v_in == Limits().v_in


def test_limits_come_from_the_rack_then_the_station_then_the_command_line(tmp_path: Path) -> None:
    rack_file = tmp_path / "rack.toml"
    rack_file.write_text(
        'name = "bench"\n[limits]\nv_in = "20:30"\ntemp_fet = ":50"\n'
        '[[station]]\nname = "a"\nport = "/dev/a"\n[station.limits]\ntemp_fet = "5:45"\n'
        '[[station]]\nname = "b"\nport = "/dev/b"\n'
    )
    rack = load_rack(rack_file)
    args = argparse.Namespace(v_in=None, temp_fet=None, temp_motor="none")
    a = Limits().override(**rack.limits).override(**rack.station("a").limits).override(**vars(args))
    b = Limits().override(**rack.limits).override(**rack.station("b").limits).override(**vars(args))
    assert (a.v_in, a.temp_fet, a.temp_motor) == (Range(20, 30, "V"), Range(5, 45, "°C"), Range(None, None, "°C"))
    assert (b.v_in, b.temp_fet) == (Range(20, 30, "V"), Range(None, 50, "°C"))
    again = tmp_path / "again.toml"
    again.write_text(rack.to_toml())
    assert load_rack(again).limits == rack.limits and load_rack(again).station("a").limits == {"temp_fet": "5:45"}


def test_factory_mistakes_are_clean_errors(
    images: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sim_rack = str(REPO / "fixtures" / "racks" / "sim.toml")
    code, _, err = rig(capsys, "factory", "--rack", sim_rack)
    assert code == 1 and "not served" in err and "--serve" in err
    hardware = str(REPO / "fixtures" / "racks" / "example.toml")
    code, _, err = rig(capsys, "factory", "--rack", hardware)
    assert code == 1 and "fixtures/fw/6.02: no such firmware file" in err  # esc-602's [station.images]
    code, _, err = rig(capsys, "factory", "--rack", hardware, "--station", "dual-66")
    assert code == 1 and "has no firmware and bootloader images: give --firmware and --bootloader" in err
    code, _, err = rig(capsys, "factory", "--rack", hardware, "--firmware", str(tmp_path / "nope.bin"))
    assert code == 1 and "nope.bin: no such firmware file" in err
    code, _, err = rig(capsys, "factory", "--rack", hardware, "--firmware", str(images["target"]), "--bootloader",
                       str(images["bootloader"]))  # fmt: skip
    assert code == 1 and "cannot tell which hardware" in err
    with pytest.raises(SystemExit):
        main(["factory", "--rack", hardware, "--v-in", "60:8"])
    assert "the low limit is above the high one" in capsys.readouterr().err


def test_plan_refuses_images_of_the_wrong_kind(images: dict[str, Path]) -> None:
    firmware: Image = load_firmware(images["target"], hw_names=("60",))
    with pytest.raises(ImageError, match="is a firmware image, the plan needs a bootloader"):
        FactoryPlan(firmware, firmware)


# --- factory settings by field (rig.config.apply) ----------------------------------------------------


SETTINGS_RACK = {
    "name": "settings",
    "simulated": True,
    "schemas": str(REPO / "fixtures" / "schemas"),  # the project's own synthetic schemas (firmware 6.90)
    "relay": [{"name": "lcus", "kind": "lcus", "channels": 2}],
    "config": [{"hw": "60", "mcconf": {"l_current_max": 50.0, "motor_type": "DC"}, "appconf": {"controller_id": 3}}],
    "station": [
        {
            "name": "a",
            "relay": "lcus:1",
            "swd": SWD,
            "sim": {"hw": "60", "fw": "6.90"},
            "config": {"mcconf": {"l_current_min": -150.0}, "appconf": {"controller_id": 5}},  # over hw 60's
        },
    ],
}


def test_factory_writes_the_racks_settings_by_field_and_records_them(tmp_path: Path) -> None:
    """Per hardware ([[config]] hw = "60") and per station; a setting the firmware clamps fails the board."""
    bootloader, target = tmp_path / "bootloader.bin", tmp_path / "fw-6.90.bin"
    bootloader.write_bytes(make_bootloader_image())
    target.write_bytes(make_firmware_image("60", "6.90"))
    firmware = load_firmware(target, hw_names=("60",), version=FirmwareVersion(6, 90))
    with SimRack(parse_rack(SETTINGS_RACK, tmp_path / "settings.toml"), tmp_path / "run") as sim:
        blank(sim, "a")
        board = station(sim, "a")
        try:
            with RecordStore(tmp_path / "records.sqlite") as store:
                result = bring_up(board, FactoryPlan(firmware, load_bootloader(bootloader), merged=True), store, "r")
                record = store.record(result.record_id or 0)
        finally:
            board.close()
    by_name = {c.name: c for c in record.checks}
    assert (by_name["config mcconf.l_current_max"].value, by_name["config mcconf.l_current_max"].unit) == (50.0, "A")
    assert by_name["config mcconf.motor_type"].value == 1 and by_name["config mcconf.motor_type"].passed
    assert by_name["config appconf.controller_id"].value == 5  # the station's setting wins over the hardware's
    clamped = by_name["config mcconf.l_current_min"]
    assert (clamped.value, clamped.passed) == (-120.0, False)  # hw 60: HW_LIM_CURRENT -120..120
    assert (result.verdict, result.failed_checks) == ("FAIL", ("config mcconf.l_current_min",))
    assert result.reason == "failed checks: config mcconf.l_current_min = -120.0"
