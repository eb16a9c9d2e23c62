"""Stations from labgrid places, the heartbeat in the place comment, and choosing a lease backend.

No coordinator here (tests/unit/test_labgrid_leases.py and test_labgrid_rack.py run a real one): the
mapping from a place's resources to a station, the rack file's labgrid keys, and every error naming
the place and the resource class.
"""

from __future__ import annotations

import math
import tomllib
from pathlib import Path

import pytest

from rig.errors import RackFileError
from rig.station.lease_choice import leases_for
from rig.station.lease_heartbeat import Heartbeat, is_run_identity, judge, run_identity
from rig.station.leases import LeaseError, SqliteLeases
from rig.station.places import PlaceError, PlaceResource, place_station, resolve_places
from rig.station.rack import Rack, Station, SwdSpec, load_rack, parse_rack
from rig.station.session import station_resources
from rig.station.state import StateDir

RACKS = Path(__file__).resolve().parents[2] / "fixtures" / "racks"
ENTRY = Station("esc1", place="esc1", swd=SwdSpec(None, "stm32f405rg"), hw="60")


def res(name: str, cls: str, **params: object) -> PlaceResource:
    return PlaceResource(name, cls, params, f"rack1/esc1/{cls}/{name}")


SERIAL = res("esc", "NetworkSerialPort", host="rack-host", port=4001, protocol="rfc2217", speed=115200)
COIL = res("relay", "ModbusTCPCoil", host="rack-host:5020", coil=3)
PROBE = res("probe", "NetworkService", address="rack-host", port=5555, username="pyocd")


def test_a_place_gives_the_esc_url_relay_and_probe() -> None:
    got = place_station(ENTRY, "esc1", [SERIAL, COIL, PROBE])
    station = got.station
    assert station.url == "rfc2217://rack-host:4001?ign_set_control&timeout=1"
    assert station.swd == SwdSpec("remote:rack-host:5555", "stm32f405rg")
    assert station.relay is not None and station.relay.channel == 3
    (board,) = got.relays
    assert (board.name, board.kind, board.url, board.channels) == (
        "esc1.relay",
        "modbus-coils",
        "tcp://rack-host:5020",
        4,
    )
    assert station.place == "esc1" and station.hw == "60"  # what the rack file said stays
    rack = Rack("lab", (station,), got.relays)
    assert station_resources(rack, station) == (
        "url:rfc2217://rack-host:4001?ign_set_control&timeout=1",
        "probe:remote:rack-host:5555",
        "relay:tcp://rack-host:5020#3",
    )


def test_raw_ports_power_ports_supplies_and_defaults() -> None:
    raw = res("esc", "NetworkSerialPort", host="::1", port=4101, protocol="raw")
    lcus = res("power", "NetworkPowerPort", model="lcus", host="socket://rack-host:4201", index=2)
    psu = res("psu", "NetworkPowerPort", model="rd6006", host="rack-host", index=7)
    got = place_station(Station("esc1", place="esc1"), "esc1", [raw, lcus, psu, PROBE])
    assert got.station.url == "socket://[::1]:4101"
    assert got.station.swd is None  # no swd target in the rack file: the place's probe is not used
    (board,) = got.relays
    assert (board.kind, board.url, board.channels) == ("lcus", "socket://rack-host:4201", 2)
    assert got.station.relay is not None and got.station.relay.channel == 2
    (supply,) = got.supplies
    assert (supply.kind, supply.url, supply.unit) == ("rd6006", "tcp://rack-host:502", 7)  # Modbus's port 502
    assert got.station.supply == supply.name
    registers = res("power", "NetworkPowerPort", model="modbus-registers", host="10.0.0.9:502", index=1)
    (board,) = place_station(Station("e", place="e"), "e", [raw, registers]).relays
    assert board.url == "tcp://10.0.0.9:502"
    labgrid_usb = res("esc", "NetworkSerialPort", host="rack-host", port=4001)  # an exported USBSerialPort
    assert place_station(Station("e", place="e"), "e", [labgrid_usb]).station.url.startswith("rfc2217://")


@pytest.mark.parametrize(
    ("resources", "fragments"),
    [
        ([COIL, PROBE], ("labgrid place esc1", "no NetworkSerialPort", "ModbusTCPCoil, NetworkService")),
        ([SERIAL, COIL], ("labgrid place esc1", "no NetworkService", "SWD probe")),
        ([SERIAL, SERIAL, PROBE], ("NetworkSerialPort 'esc'", "a second serial port")),
        ([res("esc", "NetworkSerialPort", host="h", port=1, protocol="telnet"), PROBE], ("protocol 'telnet'",)),
        ([res("esc", "NetworkSerialPort", port=1), PROBE], ("NetworkSerialPort 'esc'", "has no 'host'")),
        ([SERIAL, PROBE, res("r", "ModbusTCPCoil", host="h", coil=1, invert=True)], ("ModbusTCPCoil 'r'", "invert")),
        ([SERIAL, PROBE, COIL, res("p", "NetworkPowerPort", model="lcus", host="x", index=1)], ("a second relay",)),
        ([SERIAL, PROBE, res("p", "NetworkPowerPort", model="gude", host="h", index=1)], ("model 'gude'", "rd6006")),
        (
            [SERIAL, PROBE, res("p", "NetworkPowerPort", model="lcus", host="x", index=0)],
            ("index 0", "first channel 1"),
        ),
        ([SERIAL, res("probe", "NetworkService", address="h", username="u")], ("NetworkService 'probe'", "'port'")),
    ],
)
def test_what_a_place_lacks_or_cannot_give_is_an_error_naming_place_and_class(
    resources: list[PlaceResource], fragments: tuple[str, ...]
) -> None:
    with pytest.raises(PlaceError) as info:
        place_station(ENTRY, "esc1", resources)
    for fragment in fragments:
        assert fragment in str(info.value)
    assert "rack1/esc1/" in str(info.value) or "no Network" in str(info.value)  # the resource path, or the class


def test_resolving_needs_a_backend_that_reads_places(tmp_path: Path) -> None:
    rack = load_rack(RACKS / "labgrid.toml")
    assert resolve_places(Rack("plain", (Station("a", url="socket://h:1"),)), object()).stations[0].url
    with pytest.raises(PlaceError, match="stations esc1, dual1 take their addresses from labgrid places.*sqlite"):
        resolve_places(rack, SqliteLeases(tmp_path))

    class Reader:
        def place_resources(self, place: str) -> list[PlaceResource]:
            return [SERIAL, PROBE, COIL] if place == "esc1" else [SERIAL, PROBE]

    resolved = resolve_places(rack, Reader())
    assert resolved.station("esc1").url and resolved.relay("esc1.relay").tcp == "rack-host:5020"
    assert resolved.station("dual1").relay is None and resolved.station("dual1").can_ids == (0, 1)
    assert resolved.station("bench-esc").url == "socket://rack-host:4101"  # its own address: the place only locks


# --- the heartbeat ---------------------------------------------------------------------------------


def test_heartbeat_text_and_who_may_be_taken_over() -> None:
    me = run_identity("vm", "ci", "123.abcdef")
    assert me == "vm/ci+123.abcdef" and is_run_identity(me) and not is_run_identity("vm/alice")
    beat = Heartbeat(me, 1000.0, 30.0, "ci@vm:123 (job 77)")
    assert Heartbeat.parse(beat.text()) == beat
    assert Heartbeat.parse("free (last: x)") is None
    alive = judge(me, beat.text(), changed=990.0, now=1029.0, ttl_s=30.0)
    assert not alive.stale and alive.expires == 1030.0 and "ci@vm:123 (job 77)" in alive.why
    assert judge(me, beat.text(), changed=990.0, now=1030.5, ttl_s=30.0).stale
    other = judge("vm/ci+9.000000", beat.text(), changed=990.0, now=1019.0, ttl_s=30.0)  # a comment not its own
    assert not other.stale and other.heartbeat is None and other.expires == 1020.0
    assert judge("vm/ci+9.000000", beat.text(), changed=990.0, now=1021.0, ttl_s=30.0).stale
    person = judge("vm/alice", beat.text(), changed=0.0, now=1e9, ttl_s=30.0)
    assert not person.stale and person.expires == math.inf and "never taken over" in person.why
    for host, user in (("a/b", "c"), ("a", "b c"), ("a", "b+c"), ("", "c")):
        with pytest.raises(ValueError, match="must not be empty or contain"):
            run_identity(host, user, "1")


# --- the rack file and the backend choice ----------------------------------------------------------


def test_the_labgrid_rack_loads_and_round_trips(tmp_path: Path) -> None:
    rack = load_rack(RACKS / "labgrid.toml")
    assert (rack.lease_backend, rack.lg_coordinator) == ("labgrid", "lab-coordinator:20408")
    assert rack.station("dual1").place == "rack2-dual1" and rack.station("dual1").swd == SwdSpec(None, "stm32f405rg")
    assert parse_rack(tomllib.loads(rack.to_toml()), tmp_path / "labgrid.toml") == rack


PLACE = 'name = "lab"\nlease_backend = "labgrid"\n[[station]]\nname = "esc1"\nplace = "esc1"\n'


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        (PLACE.replace('lease_backend = "labgrid"\n', ""), ("'lease_backend'", "esc1 name labgrid places")),
        (PLACE.replace('"labgrid"', '"redis"'), ("'lease_backend'", "not one of sqlite, labgrid")),
        ('lg_coordinator = "h:1"\n' + PLACE.replace('lease_backend = "labgrid"\n', ""), ("'lg_coordinator'",)),
        ('lg_coordinator = "h"\n' + PLACE, ("'lg_coordinator'", "HOST:PORT")),
        ('leases = "/srv/leases"\n' + PLACE, ("'leases'", "sqlite backend")),
        (PLACE.replace('place = "esc1"', 'place = "rack/esc1"'), ("'place'", "not a labgrid place name")),
        (PLACE + 'relay = "r:1"\n', ("station 'esc1'", "'relay'", "comes from the place")),
        (PLACE + 'swd = { probe = "remote:h:1", target = "t" }\n', ("'swd'", "NetworkService")),
        (PLACE.replace('name = "esc1"\nplace = "esc1"', 'name = "esc1"'), ("'port'", "or a labgrid place")),
    ],
)
def test_labgrid_rack_errors(tmp_path: Path, text: str, fragments: tuple[str, ...]) -> None:
    path = tmp_path / "rack.toml"
    path.write_text(text)
    with pytest.raises(RackFileError) as info:
        load_rack(path)
    for fragment in (str(path), *fragments):
        assert fragment in str(info.value)


def test_choosing_a_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LG_COORDINATOR", raising=False)
    state = StateDir.at(tmp_path / "state")
    plain = Rack("bench", (Station("esc1", url="socket://h:1"),), leases=str(tmp_path / "shared"))
    chosen = leases_for(plain, state)
    assert isinstance(chosen, SqliteLeases) and chosen.directory == tmp_path / "shared"  # the rack's directory
    assert isinstance(leases_for(plain, state, directory=tmp_path / "cli"), SqliteLeases)
    on_places = load_rack(RACKS / "labgrid.toml")
    with pytest.raises(LeaseError, match="stations esc1, dual1, bench-esc are labgrid places.*sqlite"):
        leases_for(on_places, state, backend="sqlite")
    with pytest.raises(LeaseError, match="labgrid leases need a coordinator: --lg-coordinator"):
        leases_for(Rack("bench", plain.stations), state, backend="labgrid")
    with pytest.raises(LeaseError, match="a lease directory .* is for the sqlite backend"):
        leases_for(on_places, state, directory=tmp_path)
    with pytest.raises(LeaseError, match=r"a labgrid coordinator \(h:1\) is given, but the lease backend is sqlite"):
        leases_for(plain, state, backend="sqlite", coordinator="h:1")
