"""`rig config` by named field, end to end: the real CLI over the served pty of a simulated rack.

The boards run the synthetic firmware 6.90, whose schemas (fixtures/schemas, the project's own) the rack
file names with `schemas`, so the simulator holds their defaults and clamps as the firmware does. An
update to 6.91 changes the layout: the station session carries the configs over by field name.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rig.cli import main
from rig.config.apply import Assignment, plan, write_settings
from rig.config.codec import decode, encode
from rig.config.source import SchemaSource
from rig.firmware.config import read_backup
from rig.protocol.codecs import ConfigKind
from rig.sim.eeprom import Record
from rig.sim.serve import SimRack
from rig.station.rack import parse_rack
from rig.station.session import StationSession
from rig.station.state import StateDir

SCHEMAS = Path(__file__).resolve().parents[2] / "fixtures" / "schemas"
RACK = {
    "name": "schemas",
    "simulated": True,
    "schemas": str(SCHEMAS),
    "station": [
        {"name": "syn", "sim": {"hw": "60", "fw": "6.90"}},
        {"name": "old", "sim": {"hw": "410", "fw": "3.40"}},
    ],
}


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[SimRack]:
    with SimRack(parse_rack(RACK, tmp_path / "schemas.toml"), tmp_path / "run") as served:
        yield served


def rig(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def on(sim: SimRack, station: str = "syn") -> tuple[str, ...]:
    """The target options: the resolved rack (it names the schemas) and a station."""
    return ("--rack", str(sim.rack_file), "--station", station, "--state-dir", str(sim.run_dir / "state"))


def rig_json(capsys: pytest.CaptureFixture[str], *argv: str, code: int = 0) -> dict[str, Any]:
    got, out, err = rig(capsys, *argv, "--json")
    assert got == code, err
    return json.loads(out)


def test_set_reports_the_value_the_firmware_clamped(sim: SimRack, capsys: pytest.CaptureFixture[str]) -> None:
    doc = rig_json(
        capsys, "config", "set", *on(sim), "l_current_max=150", "l_current_min=-50", "app_to_use=uart", code=4
    )
    assert doc["written"] == ["mcconf", "appconf"]
    assert doc["changed_by_firmware"] == ["mcconf.l_current_max"]
    fields = {f["name"]: f for f in doc["fields"]}
    assert (fields["l_current_max"]["sent"], fields["l_current_max"]["got"]) == ("150 A", "120 A")  # HW_LIM_CURRENT
    assert fields["l_current_max"]["status"] == "changed by the firmware" and not fields["l_current_max"]["ok"]
    assert (fields["l_current_min"]["got"], fields["l_current_min"]["status"]) == ("-50 A", "as written")
    assert fields["app_to_use"]["got"] == "UART (3)"
    undo = [n["file"] for care in doc["session"]["configs"] for n in care["nodes"]]
    assert len(undo) == 1 and Path(undo[0]).is_file()  # the configs before, kept as the undo file

    code, out, _ = rig(capsys, "config", "set", *on(sim), "l_current_max=100")  # as a table
    assert code == 0 and "as written" in out and "changed by the firmware" not in out


@pytest.mark.parametrize(
    ("setting", "problem"),
    [
        ("l_current_maxx=5", "no such field (did you mean l_current_max"),
        ("motor_type=GPD", "motor_type is an enum of Trapezoidal (0), DC (1), Old drive (2), Field oriented (3)"),
        ("count_u16=70000", "count_u16: 70000 is out of range 0..65535"),
        ("l_current_max", "is not NAME=VALUE"),
        ("appconf:l_current_max=5", "no such field"),
    ],
)
def test_set_mistakes_are_clean_errors_and_write_nothing(
    sim: SimRack, capsys: pytest.CaptureFixture[str], setting: str, problem: str
) -> None:
    before = sim.device("syn").eeprom.read(Record.MCCONF)
    code, _, err = rig(capsys, "config", "set", *on(sim), setting)
    assert code == 1 and problem in err
    assert sim.device("syn").eeprom.read(Record.MCCONF) == before


def test_dump_writes_the_raw_backup_and_a_toml_by_field(
    sim: SimRack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = tmp_path / "a.json"
    doc = rig_json(capsys, "config", "dump", *on(sim), "-o", str(raw))
    assert doc["configs"]["mcconf"] == {"signature": 2583585907, "size": 63}
    readable = tomllib.loads(Path(doc["toml"]).read_text())
    assert readable["board"]["version"] == "6.90" and readable["board"]["mcconf_signature"] == 2583585907
    assert readable["mcconf"]["l_current_max"] == 60.0 and readable["mcconf"]["motor_type"] == "Field oriented"
    assert readable["mcconf"]["hall_table__0"] == 255 and readable["mcconf"]["sensor_flags"] == 5
    assert readable["appconf"]["app_ppm_conf.hyst"] == 0.15
    assert json.loads(raw.read_text())["blobs"]["mcconf"]["signature"] == 2583585907  # the raw backup too


def test_update_across_a_layout_change_keeps_the_settings_by_field(
    sim: SimRack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The Show: settings survive 6.90 -> 6.91 although the layout changed; `rig config diff` by field."""
    rig_json(capsys, "config", "set", *on(sim), "l_current_max=50", "foc_motor_r=0.123", "controller_id=9")
    before = tmp_path / "before.json"
    rig_json(capsys, "config", "dump", *on(sim), "-o", str(before))
    candidate = sim.resolved.station("syn").images
    assert candidate is not None and candidate.firmware is not None
    doc = rig_json(capsys, "update", *on(sim), candidate.firmware, "--version", "6.91")
    assert doc["after"]["version"] == "6.91"
    (care,) = doc["session"]["configs"]
    (local,) = care["nodes"]
    assert local["restored"] and local["verified"] and not local["kept"], local
    assert local["note"].startswith("layout changed: mcconf signature 2583585907 -> 3785288155")
    migration = local["migration"]
    assert "  mcconf.foc_sample_v0_v7: false -> - [vanished] dropped" in migration
    assert (
        "  appconf.app_to_use: Balance (4) -> PAS (4) [not migrated] label 'Balance' does not exist in the new layout"
        in migration
    )
    assert any(line.startswith("  mcconf.l_temp_fet_end: 100.5 °C -> 100 °C [not migrated]") for line in migration)
    assert sim.device("syn").running and sim.device("syn").eeprom.read(Record.MCCONF) is not None

    after = tmp_path / "after.json"
    rig_json(capsys, "config", "dump", *on(sim), "-o", str(after))
    readable = tomllib.loads(after.with_suffix(".toml").read_text())
    assert readable["mcconf"]["l_current_max"] == 50.0 and readable["mcconf"]["foc_motor_r"] == 0.123
    assert readable["appconf"]["controller_id"] == 9 and readable["mcconf"]["motor_type"] == "Field oriented"

    code, out, _ = rig(capsys, "config", "diff", str(before), str(after), "--vesc-tool", str(SCHEMAS), "--json")
    diff = json.loads(out)
    assert code == 3 and diff["version"] == ["6.90", "6.91"]
    changes = {f"{d['kind']}.{d['name']}": (d["change"], d["old"], d["new"]) for d in diff["fields"]}
    assert changes["mcconf.foc_sample_v0_v7"] == ("only in A", "false", None)
    assert changes["mcconf.foc_overmod_factor"] == ("only in B", None, "1.15")
    assert changes["mcconf.l_temp_fet_end"][0] == "type changed"
    assert changes["appconf.app_to_use"] == ("changed", "Balance (4)", "PAS (4)")
    assert "mcconf.l_current_max" not in changes and "appconf.controller_id" not in changes  # survived


def test_pre_signature_firmware_needs_a_chosen_schema(sim: SimRack, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = rig(capsys, "config", "set", *on(sim, "old"), "l_current_max=50")
    assert code == 1 and "firmware 3.40 sends its mcconf without a signature" in err and "--schema-version" in err
    code, _, err = rig(capsys, "config", "set", *on(sim, "old"), "l_current_max=50", "--schema-version", "6.90")
    assert code == 1 and "describes 63 field bytes, the board's mcconf (firmware 3.40) has 340: not its layout" in err


def test_schemas_list_check_and_import(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = rig_json(capsys, "config", "schemas", "list", "--vesc-tool", str(SCHEMAS))
    found = {(s["versions"][0], s["kind"]): (s["signature"], s["size"], s["status"]) for s in doc["schemas"]}
    assert found[("6.90", "mcconf")] == (2583585907, 63, "no firmware facts")

    wrong = tmp_path / "tree" / "res" / "config" / "6.02"  # a 6.02 folder holding a schema of another layout
    wrong.mkdir(parents=True)
    (wrong / "parameters_mcconf.xml").write_bytes((SCHEMAS / "res/config/6.90/parameters_mcconf.xml").read_bytes())
    got, out, _ = rig(capsys, "config", "schemas", "check", "--vesc-tool", str(tmp_path / "tree"), "--json")
    doc = json.loads(out)
    assert got == 1 and doc["ok"] is False
    assert doc["schemas"][0]["problems"] == [
        "signature 2583585907, firmware 6.02 sends 776184161; 63 field bytes, firmware 6.02 sends 477"
    ]

    export = tmp_path / "my-appconf-export.xml"  # as saved from VESC Tool's Parameter Editor
    export.write_bytes((SCHEMAS / "res/config/6.91/parameters_appconf.xml").read_bytes())
    state = tmp_path / "state"
    doc = rig_json(capsys, "config", "schemas", "import", str(export), "--state-dir", str(state))
    assert [Path(i["file"]).relative_to(state) for i in doc["imported"]] == [Path("schemas/appconf/163331833.xml")]
    source = SchemaSource.resolve(cache=state / "schemas", environ={})
    assert source.by_signature(ConfigKind.APPCONF, 163331833).signature == 163331833


def test_a_missing_schema_names_the_expected_path(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    source = SchemaSource.resolve([SCHEMAS])
    with pytest.raises(
        Exception, match=r"res/config/6\.02/parameters_mcconf\.xml.*git clone https://github.com/vedderb/vesc_tool"
    ):
        source.by_signature(ConfigKind.MCCONF, 776184161)
    nothing = SchemaSource.resolve(environ={})
    with pytest.raises(Exception, match="no schema source is configured"):
        nothing.by_signature(ConfigKind.MCCONF, 776184161)


def test_config_care_accepts_what_the_firmwares_float32_requantizes(sim: SimRack) -> None:
    """foc_gain (x100000) code 475 comes back 474, and 474 comes back 473: a restore reads back one code lower.
    With the schema the session sees it is the firmware's float32 storage, not a change, and lists it."""
    session = StationSession(sim.resolved, "syn", state=StateDir.at(sim.run_dir / "state")).open()
    try:
        with session.connect() as esc:
            board = read_backup(esc)
        source = session.keeper.schemas
        write_settings(session, plan(board.blobs, [Assignment.parse("foc_gain=0.00475")], source, board.version))
        with session.preserving_configs("an operation that changes the config") as care, session.connect() as esc:
            blob = esc.get_config(ConfigKind.MCCONF)
            values = decode(source.by_signature(blob.kind, blob.signature or 0), blob)
            assert values["foc_gain"] == 0.00474  # requantized once already
            esc.set_config(encode(values.with_values({"l_current_max": 40.0})))
    finally:
        session.close()
    (local,) = care.nodes
    assert local.restored and local.verified, local.describe()
    assert local.migration == [
        "  mcconf.foc_gain: sent 0.00474, board holds 0.00473 [requantized by the firmware (float32)]"
    ]
    assert "restored and verified by field" in local.describe()
