"""The station session behind every entry point: the lease held, the configs backed up and given back.

Each entry point (the CLI's update and bootloader, the factory, the strategy's recovery, pytest) is run
against a simulated rack served here, and the test looks at what the session did: its report, the
lease database, the backup files in the state directory, and the board's configs afterwards.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from synthetic import CHANGED, NEW, mcconf_now, rack
from synthetic import configure as configure_node

from rig import interrupts
from rig.cli import main
from rig.errors import IdentityLost
from rig.firmware.config import ConfigBackup, read_backup, write_verified
from rig.firmware.image import load_bootloader, load_firmware
from rig.protocol.codecs import ConfigBlob, ConfigKind
from rig.protocol.commands import FirmwareVersion
from rig.sim.image import make_bootloader_image, make_firmware_image
from rig.sim.serve import SimRack
from rig.station.configs import check_identity, node_name
from rig.station.leases import SqliteLeases
from rig.station.permissions import Permit
from rig.station.rack import load_rack, parse_rack
from rig.station.session import StationSession
from rig.station.state import StateDir
from rig.station.strategy import Running, StationStrategy, Status

pytest_plugins = ["pytester"]
REPO = Path(__file__).resolve().parents[2]
SIM_RACK = REPO / "fixtures" / "racks" / "sim.toml"


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[SimRack]:
    with SimRack(load_rack(SIM_RACK), tmp_path / "run") as served:
        yield served


SYN_RACK = rack(
    {"name": "esc", "relay": "lcus:1", "swd": {"target": "stm32f405rg"}},
    {"name": "dual", "sim": {"can_id": 0, "peers": [{"can_id": 1}]}},
    relay=[{"name": "lcus", "kind": "lcus", "channels": 1}],
)


@pytest.fixture
def syn(tmp_path: Path) -> Iterator[SimRack]:
    """Boards on the synthetic firmware 6.90, whose update to 6.91 resets the configs to new defaults: only
    the rig's backup, migrated by field with the rack's schemas, brings them back (tests/unit/synthetic.py)."""
    with SimRack(parse_rack(SYN_RACK, tmp_path / "syn.toml"), tmp_path / "syn-run") as served:
        yield served


def target(sim: SimRack, station: str) -> list[str]:
    return ["--rack", str(sim.rack_file), "--station", station]


def configured(sim: SimRack, state: StateDir, name: str) -> dict[int | None, dict[str, object]]:
    """CHANGED written into every node's mcconf; each node's mcconf after, by field."""
    with StationSession(sim.resolved, name, state=state) as session, session.connect() as esc:
        return {node: configure_node(client) for node, client in session.nodes(esc)}


def changed_now(sim: SimRack, state: StateDir, name: str) -> dict[str, dict[str, object]]:
    """The CHANGED fields of every node's mcconf now."""
    with StationSession(sim.resolved, name, state=state) as session, session.connect() as esc:
        return {node_name(n): {f: mcconf_now(client)[f] for f in CHANGED} for n, client in session.nodes(esc)}


@pytest.fixture
def state(tmp_path: Path) -> StateDir:
    return StateDir.at(tmp_path / "state")


def configure(sim: SimRack, state: StateDir, name: str) -> dict[ConfigKind, ConfigBlob]:
    """Give every node a non-default mcconf (the test holds the station's session) so that a wipe shows."""
    with StationSession(sim.resolved, name, state=state) as session, session.connect() as esc:
        for _node, client in session.nodes(esc):
            write_verified(client, changed_mcconf(client.get_config(ConfigKind.MCCONF)), esc.version)
        return read_backup(esc).blobs


def changed_mcconf(blob: ConfigBlob) -> ConfigBlob:
    """The blob with one byte in the middle flipped (opaque bytes: no field is known to be safe to change)."""
    middle = len(blob.data) // 2
    return ConfigBlob(
        blob.kind, blob.signature, blob.data[:middle] + bytes([blob.data[middle] ^ 0x01]) + blob.data[middle + 1 :]
    )


def configs_now(sim: SimRack, state: StateDir, name: str) -> dict[ConfigKind, ConfigBlob]:
    with StationSession(sim.resolved, name, state=state) as session, session.connect() as esc:
        return read_backup(esc).blobs


def pending_backups(state: StateDir) -> list[Path]:
    found = []
    for path in state.backups.rglob("*.json"):
        if json.loads(path.read_text()).get("meta", {}).get("purpose") == "pending":
            found.append(path)
    return found


def image(tmp_path: Path, hw: str, version: str) -> Path:
    path = tmp_path / "images" / version / hw / "VESC_default.bin"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(make_firmware_image(hw, version))
    return path


# --- the command line ---------------------------------------------------------------------------------


def test_cli_update_reports_backup_restore_and_verification_of_every_node(
    syn: SimRack, state: StateDir, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`rig update --json` on a dual board: both nodes backed up, reset by the layout change, restored by
    field, verified."""
    configured(syn, state, "dual")
    folder = image(tmp_path, "60", NEW).parent.parent
    argv = ["update", str(folder), *target(syn, "dual"), "--version", NEW, "--all-can"]
    assert main([*argv, "--state-dir", str(state.root), "--json"]) == 0, capsys.readouterr().err
    report = json.loads(capsys.readouterr().out)
    session = report["session"]
    assert session["lease"]["key"] == "syn/dual" and session["lease"]["holder"]
    (care,) = [c for c in session["configs"] if c["operation"].startswith("update to")]
    nodes = {n["node"]: n for n in care["nodes"]}
    assert set(nodes) == {"local", "CAN 1"}
    for node in nodes.values():
        assert node["changed"] and node["restored"] and node["verified"] and not node["kept"], node
        assert node["note"].startswith("layout changed: mcconf signature"), node
    assert changed_now(syn, state, "dual") == {"local": CHANGED, "CAN 1": CHANGED}
    assert not pending_backups(state)


def test_cli_bootloader_keeps_the_configs_and_holds_the_lease(
    sim: SimRack, state: StateDir, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = configure(sim, state, "esc-602")
    loader = tmp_path / "generic.bin"
    loader.write_bytes(make_bootloader_image())
    port = str(sim.resolved.station("esc-602").port)
    assert main(["bootloader", port, str(loader), "--state-dir", str(state.root), "--json"]) == 0
    session = json.loads(capsys.readouterr().out)["session"]
    (care,) = [c for c in session["configs"] if c["operation"] == "bootloader upload"]
    assert care["ok"] and [n["node"] for n in care["nodes"]] == ["local"]
    assert session["lease"]["key"] == f"port/{port}"
    assert configs_now(sim, state, "esc-602") == before


def test_a_command_on_a_station_a_pytest_run_holds_fails_at_once_naming_the_holder(
    sim: SimRack, state: StateDir, tmp_path: Path, pytester: pytest.Pytester, capsys: pytest.CaptureFixture[str]
) -> None:
    """pytest holds esc-602 (by its rack's name); `rig update` on the same port (its own key) is refused."""
    held = tmp_path / "held"
    pytester.makepyfile(
        test_hold=textwrap.dedent(
            f"""
            import pathlib, time
            def test_hold(station):
                pathlib.Path({str(held)!r}).write_text(station.lease.info.holder)
                time.sleep(30)
            """
        )
    )
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--rack", str(sim.rack_file)]
    argv += ["--station", "esc-602", "--state-dir", str(state.root), str(pytester.path / "test_hold.py")]
    run = subprocess.Popen(argv, cwd=pytester.path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while not held.is_file():
            assert run.poll() is None and time.monotonic() < deadline, run.stdout.read() if run.stdout else ""
            time.sleep(0.05)
        holder = held.read_text()
        port = str(sim.resolved.station("esc-602").port)
        started = time.monotonic()
        code = main(["update", port, str(image(tmp_path, "60", "6.05")), "--state-dir", str(state.root)])
        took = time.monotonic() - started
        err = capsys.readouterr().err
    finally:
        run.kill()
        run.wait(10)
    assert code == 1
    assert f"held by {holder}" in err and "as sim/esc-602" in err, err
    assert took < 5.0  # at once: --lease-wait is 0 on the command line (a loose bound; the point is no 60 s wait)
    assert sim.device("esc-602").spec.fw == "6.02"


# --- the factory and the strategy -----------------------------------------------------------------------


def test_factory_writes_defaults_through_the_session_under_its_lease(
    syn: SimRack, state: StateDir, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A refurbished board (it answers over USB): its configs are backed up before the bring-up and the
    factory's defaults are written through the session, with undo files; the JSON says what the session did."""
    configured(syn, state, "esc")
    target_image = image(tmp_path, "60", NEW)
    loader = tmp_path / "generic.bin"
    loader.write_bytes(make_bootloader_image())
    argv = ["factory", *target(syn, "esc"), "--firmware", str(target_image), "--bootloader", str(loader)]
    argv += ["--hw", "60", "--version", NEW, "--allow-destructive"]
    assert main([*argv, "--state-dir", str(state.root), "--json"]) == 0, capsys.readouterr().err
    (board,) = json.loads(capsys.readouterr().out)["boards"]
    assert board["verdict"] == "PASS"
    session = "\n".join(board["session"])
    assert "lease on syn/esc held by" in session
    assert "factory bring-up: configs local" in session  # backed up before the mass erase
    assert "mcconf and appconf written and verified" in session
    undo = [p for p in state.backups.rglob("*.json") if json.loads(p.read_text())["meta"]["purpose"] == "undo"]
    assert undo and not pending_backups(state)


def test_recovery_keeps_the_configs_of_a_board_whose_update_did_not_take(
    syn: SimRack, state: StateDir, tmp_path: Path
) -> None:
    """F1: the bootloader is missing; the strategy rewrites it and updates again; the configs that the update's
    layout change reset come back by field, verified (the path's backup)."""
    configured(syn, state, "esc")
    syn.fault("esc", "no_bootloader_returns")
    loader = tmp_path / "generic.bin"
    loader.write_bytes(make_bootloader_image())
    with StationSession(syn.resolved, "esc", state=state, permit=Permit.simulated()) as session:
        strategy = StationStrategy(session, bootloader=load_bootloader(loader))
        syn.fault("esc", "no_bootloader_returns", False)  # the erased sector stays erased
        goal = load_firmware(image(tmp_path, "60", NEW), hw_names=("60",), version=FirmwareVersion.parse(NEW))
        done = strategy.transition(Running(goal))
        assert done.actions == ["update over USB", "bootloader over USB", "update over USB"], done.describe()
        path_care = next(c for c in session.report.configs if c.operation.startswith("bring to"))
        (local,) = path_care.nodes
        assert local.changed and local.restored and local.verified, local.describe()
        assert session.lease is not None and SqliteLeases(state.leases).holder(session.key) == session.lease.info
    assert changed_now(syn, state, "esc") == {"local": CHANGED}


def test_a_broken_station_is_skipped_by_the_next_test_with_its_diagnosis(
    sim: SimRack, state: StateDir, pytester: pytest.Pytester
) -> None:
    """A board the strategy cannot bring back (its bootloader rejects every image, no SWD probe on the
    station) ends broken; the next test on it is skipped with that diagnosis and flashes nothing."""
    pytester.makepyfile(
        test_broken=textwrap.dedent(
            """
            import pytest
            from rig.station.strategy import Running, StationBroken

            def test_1_ends_broken(station, strategy, sim, firmware):
                sim.fault("bootloader_rejects")
                with pytest.raises(StationBroken) as caught:
                    strategy.transition(Running(firmware))
                assert "could not be brought to running" in str(caught.value)

            def test_2_is_skipped(station, firmware):
                station.update(firmware)
                raise AssertionError("a broken station was flashed again")
            """
        )
    )
    rack = pytester.path / "rack.toml"
    rack.write_text(
        'name = "one"\nsimulated = true\n[[relay]]\nname = "r"\nkind = "lcus"\nchannels = 1\n'
        '[[station]]\nname = "esc"\nrelay = "r:1"\n[station.sim]\nhw = "60"\nfw = "6.02"\n'
    )
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--rack", str(rack), "--state-dir", str(state.root), "-rs", timeout=120
    )
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*station esc is broken since *not running 6.05*last step update over USB*"])
    assert state.broken("one/esc") is not None


def test_strategy_powers_on_an_off_board_and_power_cycles_a_silent_one(sim: SimRack, state: StateDir) -> None:
    """esc-502's Modbus relay reads back, so the strategy can tell an off board from a silent one."""
    baseline = Path(sim.resolved.station("esc-502").images.baseline)  # type: ignore[union-attr]
    target = load_firmware(baseline / "60" / "VESC_default.bin", version=FirmwareVersion(5, 2))
    with StationSession(sim.resolved, "esc-502", state=state, permit=Permit.simulated()) as session:
        strategy = StationStrategy(session)
        assert strategy.observe().status == Status.RUNNING and strategy.state.version == FirmwareVersion(5, 2)
        session.power(False)
        deadline = time.monotonic() + 5
        while strategy.observe().status != Status.OFF:
            assert time.monotonic() < deadline, strategy.state
            time.sleep(0.02)
        assert strategy.transition(Running(target)).actions == ["power on"]
        sim.fault("esc-502", "stuck_after", commands=0)  # state stuck in RAM: only a power cycle helps (F9)
        done = strategy.transition(Running(target))
        assert done.initial.status == Status.SILENT and done.actions == ["power cycle"]
        assert done.final.status == Status.RUNNING and done.final.version == FirmwareVersion(5, 2)


# --- backups keyed safely -------------------------------------------------------------------------------


def test_two_nodes_that_claim_one_uid_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    """A dual board whose CAN peer reports the local node's UID: one backup file per UID would let the second
    overwrite the first, so the session refuses to back up (and so to update) at all."""
    uid = "00112233445566778899aabb"
    rack = {
        "name": "twins",
        "simulated": True,
        "station": [
            {"name": "dual", "sim": {"hw": "60", "fw": "6.02", "uid": uid, "peers": [{"can_id": 1, "uid": uid}]}}
        ],
    }
    state = StateDir.at(tmp_path / "state")
    with (
        SimRack(parse_rack(rack, tmp_path / "twins.toml"), tmp_path / "run") as sim,
        StationSession(sim.resolved, "dual", state=state) as session,
        pytest.raises(IdentityLost, match="both report UID 00112233445566778899aabb"),
        session.preserving_configs("update"),
    ):
        raise AssertionError("the block must not run")
    assert not list(state.backups.rglob("*.json"))


def test_a_node_without_the_uid_its_version_sends_has_lost_its_identity() -> None:
    blob = {kind: ConfigBlob(kind, 1, b"\x00") for kind in ConfigKind}
    with pytest.raises(IdentityLost, match="runs firmware 6.02, which sends its 12-byte STM32 UID"):
        check_identity([(None, ConfigBackup(FirmwareVersion(6, 2), "60", "", blob))])
    check_identity([(None, ConfigBackup(FirmwareVersion(3, 7), "60", "", blob))])  # 3.07 did not send one yet


def test_a_stopped_process_still_powers_a_failed_board_off(sim: SimRack, state: StateDir) -> None:
    """After Ctrl-C the factory powers failed boards off: switching off is clean-up, not a step to stop before."""
    with StationSession(sim.resolved, "esc-602", state=state) as session:
        interrupts.request("a test's SIGINT")
        try:
            with pytest.raises(interrupts.Interrupted, match="before power-on on esc-602"):
                session.power(True)
            session.power(False)
        finally:
            interrupts.reset()
    assert not sim.device("esc-602").powered
