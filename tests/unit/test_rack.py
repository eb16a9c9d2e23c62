"""Rack files: loading, the model, and every validation error naming file, entry and key."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from rig.errors import Diagnosis, RackFileError
from rig.sim.serve import SimRack
from rig.station.rack import Rack, RelayRef, load_rack, parse_rack

RACKS = Path(__file__).resolve().parents[2] / "fixtures" / "racks"

REAL = """
name = "bench"
[[relay]]
name = "relays"
kind = "lcus"
port = "/dev/ttyUSB0"
channels = 4
[[relay]]
name = "mb"
kind = "modbus-coils"
tcp = "127.0.0.1:502"
[[supply]]
name = "psu"
port = "/dev/ttyUSB1"
[[station]]
name = "esc1"
port = "/dev/serial/by-id/usb-STMicroelectronics_ChibiOS_RT_Virtual_COM_Port_AAAA-if00"
usb_serial = "AAAA"
relay = "relays:1"
supply = "psu"
tags = ["single"]
"""

SIM = """
name = "sim"
simulated = true
[[relay]]
name = "lcus"
kind = "lcus"
[[station]]
name = "esc1"
relay = "lcus:1"
[station.sim]
hw = "60"
fw = "6.02"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rack.toml"
    path.write_text(text)
    return path


def fails(tmp_path: Path, text: str, *fragments: str) -> RackFileError:
    path = write(tmp_path, text)
    with pytest.raises(RackFileError) as info:
        load_rack(path)
    message = str(info.value)
    assert str(path) in message, message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert info.value.diagnosis is Diagnosis.RACK_FILE
    return info.value


# --- the shipped racks -----------------------------------------------------------------------------


def test_sim_rack_loads_with_singles_on_five_releases_and_a_dual_board() -> None:
    rack = load_rack(RACKS / "sim.toml")
    assert rack.simulated and not rack.served
    assert {s.sim.node.fw for s in rack.stations if s.sim} >= {"6.02", "3.40", "5.02", "6.06", "7.00"}
    dual = rack.select(["dual"])
    assert len(dual) == 1 and dual[0].can_ids == (0, 1)
    assert dual[0].sim is not None and {p.hw for p in dual[0].sim.peers} == {dual[0].sim.node.hw}
    for station in rack.stations:  # the 6.06 and 7.00 stations have no relay (their scenarios need none)
        assert station.relay is not None or station.name in ("esc-606", "esc-700")
        assert station.swd is not None and station.swd.probe is None
        assert station.usb_serial and station.port is None
    uids = [n.uid for s in rack.stations if s.sim for n in s.sim.nodes]
    assert len(set(uids)) == len(uids) and all(len(u) == 12 for u in uids)


def test_example_rack_loads_and_documents_every_key() -> None:
    rack = load_rack(RACKS / "example.toml")
    assert not rack.simulated and rack.served
    assert rack.relay("din-rail").url == "tcp://192.168.1.50:502"
    assert rack.relay("relays").open_options == {"channels": 4}
    assert rack.relay("hub").open_options["argv"][0] == "uhubctl"
    assert rack.station("phone-bridge").link_url == "socket://192.168.1.70:65102"
    text = (RACKS / "example.toml").read_text()
    for key in ("port_dir", "control", "transport", "readback", "bridge", "peers", "tcp_bridge", "faults", "uid"):
        assert key in text
    assert rack.schemas == str((RACKS / ".." / "vesc_tool").resolve())
    settings = rack.factory_settings(rack.station("esc-602"))
    assert settings.fields["mcconf"] == {"l_current_max": 50.0, "l_current_min": -60.0, "l_in_current_max": 30.0}
    assert settings.fields["appconf"]["app_ppm_conf.ctrl_type"] == "Current"
    assert not rack.factory_settings(rack.station("phone-bridge"))  # no hw name: no [[config]] applies


def test_round_trip_through_toml(tmp_path: Path) -> None:
    for name in ("sim.toml", "example.toml"):
        rack = load_rack(RACKS / name)
        again = parse_rack(tomllib.loads(rack.to_toml()), tmp_path / name)
        assert again == rack


# --- the model -------------------------------------------------------------------------------------


def test_model_lookups_and_selection(tmp_path: Path) -> None:
    rack = load_rack(write(tmp_path, REAL))
    station = rack.station("esc1")
    assert station.relay == RelayRef("relays", 1) and str(station.relay) == "relays:1"
    assert station.link_url == station.port
    assert rack.supply("psu").kind == "rd6006"
    assert rack.relay("mb").url == "tcp://127.0.0.1:502"
    assert rack.select([]) == rack.stations
    assert rack.select(["single"]) == rack.select(["esc1"]) == (station,)
    with pytest.raises(RackFileError, match="no station or tag named nope"):
        rack.select(["nope"])
    with pytest.raises(RackFileError, match="no station named 'x'"):
        rack.station("x")


def test_sim_defaults(tmp_path: Path) -> None:
    rack = load_rack(write(tmp_path, SIM))
    station = rack.station("esc1")
    assert station.sim is not None
    assert station.sim.tcp_bridge is None and station.sim.node.bootloader
    assert station.usb_serial == station.sim.node.uid.hex().upper()
    assert station.can_ids == (0,)
    assert rack.port_dir == "by-id"


def test_sim_peers_and_bridge(tmp_path: Path) -> None:
    text = SIM + 'uid = "000102030405060708090a0b"\ntcp_bridge = 65102\npeers = [{ can_id = 3, fw = "5.02" }]\n'
    station = load_rack(write(tmp_path, text)).station("esc1")
    assert station.sim is not None
    assert station.sim.node.uid == bytes(range(12))
    assert station.sim.tcp_bridge == 65102
    (peer,) = station.sim.peers
    assert (peer.can_id, peer.hw, peer.fw) == (3, "60", "5.02")
    assert station.can_ids == (0, 3)
    assert load_rack(write(tmp_path, SIM + "tcp_bridge = true\n")).station("esc1").sim.tcp_bridge == 0  # type: ignore[union-attr]


# --- validation errors -----------------------------------------------------------------------------


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(RackFileError, match="cannot read"):
        load_rack(tmp_path / "missing.toml")
    fails(tmp_path, "name = \n", "not valid TOML")
    fails(tmp_path, 'name = "x"\n', "no [[station]]")


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        (REAL + "colour = 1\n", ("rack", "'colour'", "unknown key")),
        (REAL.replace('kind = "lcus"', 'kind = "lcus"\nbaud = 9600'), ("relay 'relays'", "'baud'", "unknown key")),
        (REAL + "speed = 3\n", ("station 'esc1'", "'speed'")),
        (REAL.replace('name = "bench"', ""), ("rack", "'name'", "missing")),
        (REAL.replace('kind = "lcus"', ""), ("relay 'relays'", "'kind'", "missing")),
        (REAL.replace('kind = "lcus"', 'kind = "x10"'), ("relay 'relays'", "'kind'", "not one of")),
        (REAL.replace('name = "mb"', 'name = "relays"'), ("relay 'relays'", "duplicate")),
        (REAL + '[[station]]\nname = "esc1"\nport = "/dev/ttyACM1"\n', ("station 'esc1'", "duplicate")),
        (REAL + '[[station]]\nname = "esc2"\nusb_serial = "AAAA"\n', ("station 'AAAA'", "'usb_serial'", "duplicate")),
        (REAL + '[[supply]]\nname = "psu"\nport = "/dev/ttyUSB2"\n', ("supply 'psu'", "duplicate")),
        (REAL.replace('relay = "relays:1"', 'relay = "nowhere:1"'), ("station 'esc1'", "'relay'", "'nowhere'")),
        (REAL.replace('relay = "relays:1"', 'relay = "relays:9"'), ("'relay'", "channel 9", "1..4")),
        (REAL.replace('relay = "relays:1"', 'relay = "relays:0"'), ("'relay'", "out of range 1..4")),
        (REAL.replace('relay = "relays:1"', 'relay = "relays"'), ("'relay'", "BOARD:CHANNEL")),
        (REAL.replace('relay = "relays:1"', 'relay = "relays:one"'), ("'relay'", "BOARD:CHANNEL")),
        (REAL.replace('supply = "psu"', 'supply = "bench"'), ("'supply'", "no [[supply]] named 'bench'")),
        (REAL + 'url = "http://example.com"\n', ("station 'esc1'", "'url'")),
        (REAL.replace('port = "/dev/serial', 'url = "socket://127.0.0.1"\nx = "/dev/serial'), ("'url'",)),
        (REAL + 'url = "socket://127.0.0.1:65102"\n', ("'url'", "either port or url")),
        (REAL + 'bridge = "socket://localhost"\n', ("'bridge'", "pyserial URL")),
        (REAL.replace('tcp = "127.0.0.1:502"', 'tcp = "127.0.0.1"'), ("relay 'mb'", "'tcp'", "HOST:PORT")),
        (REAL.replace('tcp = "127.0.0.1:502"', 'tcp = "127.0.0.1:99999"'), ("relay 'mb'", "'tcp'")),
        (REAL.replace('port = "/dev/ttyUSB0"', ""), ("relay 'relays'", "'port'", "missing")),
        (REAL.replace('port = "/dev/ttyUSB0"', 'tcp = "1.2.3.4:5"'), ("relay 'relays'", "'tcp'", "only Modbus")),
        (REAL.replace('port = "/dev/ttyUSB1"', ""), ("supply 'psu'", "'port'", "missing")),
        (REAL.replace('usb_serial = "AAAA"', "").replace('port = "/dev/serial', 'x = "'), ("station 'esc1'",)),
        (REAL + "can_ids = [0, 0]\n", ("'can_ids'", "duplicate")),
        (REAL + "can_ids = [0, 255]\n", ("'can_ids'", "0..254")),
        (REAL.replace('tags = ["single"]', "tags = [1]"), ("'tags'", "list of non-empty strings")),
        (REAL.replace("channels = 4", 'channels = "4"'), ("relay 'relays'", "'channels'", "an integer")),
        (REAL.replace("channels = 4", "channels = true"), ("'channels'", "an integer")),
        (REAL.replace("channels = 4", "channels = 0"), ("'channels'", "out of range")),
        (REAL + 'swd = { probe = "x" }\n', ("station 'esc1' swd", "'target'", "missing")),
        (REAL + 'swd = { probe = "x", target = "t", speed = 1 }\n', ("swd", "'speed'", "unknown key")),
        (REAL + 'swd = { probe = "x", target = "t", connect = "now" }\n', ("'connect'", "not one of")),
        (REAL + 'swd = { target = "t" }\n', ("swd", "'probe'", "missing")),
        (REAL + '[station.sim]\nhw = "60"\nfw = "6.02"\n', ("station 'esc1'", "'sim'", "simulated racks")),
        ('port_dir = "x"\n' + REAL, ("rack", "'port_dir'", "simulated racks")),
        (REAL.replace("[[relay]]", '[[relay]]\nname = "cmd"\nkind = "command"\n[[relay]]', 1), ("'argv'", "missing")),
        ('name = "x"\nstation = 5\n', ("rack", "'station'", "array of tables")),
        (
            REAL + "[station.config]\nmcconf = { l_current_max = [1, 2] }\n",
            ("station 'esc1' config mcconf", "'l_current_max'", "must be a number, true/false or text"),
        ),  # fmt: skip
        (REAL + "[station.config]\nmotor = { x = 1 }\n", ("station 'esc1' config", "'motor'", "unknown key")),
        (REAL + "[station.config]\nmcconf = 5\n", ("station 'esc1' config", "'mcconf'", "a table")),
        (REAL + "[[config]]\nmcconf = { x = 1 }\n", ("config '#1'", "'hw'", "missing")),
        (REAL + '[[config]]\nhw = "60"\n[[config]]\nhw = "60"\n', ("config '60'", "'hw'", "duplicate")),
        (REAL + '[[config]]\nhw = "60"\nappconf = { "" = 1 }\n', ("config '60' appconf", "must not be empty")),
        ('schemas = "http://x"\n' + REAL, ("rack", "'schemas'", "not a directory path")),
    ],
)
def test_real_rack_errors(tmp_path: Path, text: str, fragments: tuple[str, ...]) -> None:
    fails(tmp_path, text, *fragments)


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        (REAL + '[limits]\nv_in = "thirty"\n', ("limits", "'v_in'", "LOW:HIGH")),
        (REAL + '[limits]\ntemp_fet = "60:20"\n', ("'temp_fet'", "low limit is above the high one")),
        (REAL + '[limits]\nrpm = "1:2"\n', ("limits", "'rpm'", "unknown key")),
    ],
)
def test_limit_errors(tmp_path: Path, text: str, fragments: tuple[str, ...]) -> None:
    fails(tmp_path, text, *fragments)


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        (SIM.replace('hw = "60"\n', ""), ("station 'esc1' sim", "'hw'", "missing")),
        (SIM.replace('[station.sim]\nhw = "60"\nfw = "6.02"\n', ""), ("station 'esc1'", "'sim'", "missing")),
        (SIM + "colour = 1\n", ("station 'esc1' sim", "'colour'", "unknown key")),
        (SIM.replace('"6.02"', '"6.2"'), ("'fw'", "MAJOR.MINOR")),
        (SIM + 'uid = "0011"\n', ("'uid'", "24 hex digits")),
        (SIM + 'uid = "zz0102030405060708090a0b"\n', ("'uid'", "24 hex digits")),
        (SIM + "peers = [{ can_id = 0 }]\n", ("'peers'", "duplicate can_id [0]")),
        (SIM + 'peers = [{ hw = "60" }]\n', ("peer 1", "'can_id'", "missing")),
        (SIM + "peers = [{ can_id = 1, size = 2 }]\n", ("peer 1", "'size'", "unknown key")),
        (SIM + "peers = [1]\n", ("peers #1", "must be a table")),
        (SIM + 'tcp_bridge = "yes"\n', ("'tcp_bridge'", "an integer")),
        (SIM + "tcp_bridge = 70000\n", ("'tcp_bridge'", "out of range")),
        (SIM.replace("[station.sim]", "can_ids = [0, 1]\n[station.sim]"), ("'can_ids'", "differ")),
        (SIM.replace('kind = "lcus"', 'kind = "hid"'), ("relay 'lcus'", "'kind'", "cannot be simulated")),
        (SIM.replace('kind = "lcus"', 'kind = "modbus-coils"\ntransport = "udp"'), ("'transport'", "not one of")),
        (SIM.replace("simulated = true", 'simulated = "yes"'), ("rack", "'simulated'", "true or false")),
    ],
)
def test_simulated_rack_errors(tmp_path: Path, text: str, fragments: tuple[str, ...]) -> None:
    fails(tmp_path, text, *fragments)


@pytest.mark.parametrize(
    ("faults", "fragment"),
    [('["no_such_fault"]', "unknown fault 'no_such_fault'"), ('["link_slow:delay"]', "key=value")],
)
def test_fault_names_are_checked_when_the_rack_is_served(tmp_path: Path, faults: str, fragment: str) -> None:
    """The rack loader does not know the simulator's faults; serving the rack checks them, naming file and key."""
    path = write(tmp_path, SIM + f"faults = {faults}\n")
    with pytest.raises(RackFileError) as info:
        SimRack(load_rack(path), tmp_path / "run").start()
    message = str(info.value)
    for part in (str(path), "station 'esc1'", "'faults'", fragment):
        assert part in message, message


def test_served_sim_rack_is_recognised(tmp_path: Path) -> None:
    text = SIM.replace("simulated = true", 'simulated = true\ncontrol = "/tmp/x/control.sock"')
    text = text.replace('relay = "lcus:1"', 'relay = "lcus:1"\nport = "/tmp/x/by-id/p"')
    rack: Rack = load_rack(write(tmp_path, text))
    assert rack.served and rack.control == "/tmp/x/control.sock"
    assert rack.station("esc1").link_url == "/tmp/x/by-id/p"


def test_lease_directory_is_a_path_relative_to_the_rack_file(tmp_path: Path) -> None:
    rack = load_rack(write(tmp_path, 'leases = "shared/leases"\n' + REAL))
    assert rack.leases == str((tmp_path / "shared" / "leases").resolve())
    assert load_rack(write(tmp_path, 'leases = "/srv/rig"\n' + REAL)).leases == "/srv/rig"
    assert load_rack(write(tmp_path, REAL)).leases is None
    again = parse_rack(tomllib.loads(rack.to_toml()), tmp_path / "again.toml")
    assert again == rack
    fails(tmp_path, 'leases = "redis://rack-host:6379"\n' + REAL, "rack", "'leases'", "not a directory path")
    fails(tmp_path, "leases = 3\n" + REAL, "rack", "'leases'", "must be a string")
