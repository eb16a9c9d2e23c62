"""A rack reached only through standard network exporters, with the real daemons on 127.0.0.1.

The simulated rack (fixtures/racks/sim.toml) is served in this process; ser2net (the Debian package,
installed by scripts/install-ser2net.sh when missing) exports each ESC's pty as RFC 2217 or raw TCP
and the LCUS relay board's pty as raw TCP; pyocd's own DebugProbeServer exports each SWD probe and
the simulated Modbus relay and supply answer Modbus TCP, as the simulator already serves them. The
host side gets a rack file of hardware (simulated = false) holding nothing but those addresses.

The scenario suite runs on the fw6 stations (esc-602 over RFC 2217, dual-602 over raw TCP) through
the exporters and directly, with the same images and options; by default only the scenarios that
reboot the board. RIG_NETWORK_SUITE=full runs all of them (several minutes: add --timeout 0). The
timing comparison is printed either way (-s to see it).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from rig.firmware.image import load_firmware
from rig.protocol.codecs import FwVersionReply
from rig.protocol.commands import FirmwareVersion
from rig.sim.image import make_firmware_image
from rig.sim.serve import SimRack
from rig.station.bench import Bounds, StationRig
from rig.station.rack import Rack, load_rack
from rig.transport.presence import OtherBoard, PortLocator, same_board

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[2]
INSTALL_SER2NET = REPO / "scripts" / "install-ser2net.sh"
SIM_RACK = REPO / "fixtures" / "racks" / "sim.toml"
INSTALL_BOUND_S = 600.0
START_BOUND_S = 5.0
STOP_BOUND_S = 3.0
SUITE_BOUND_S = 900.0
RFC2217 = ("esc-602", "esc-340")  # the other stations are exported as raw TCP
DROPPED_PROOF = "protocol: the exporter dropped the link (port gone on its host), then answered again"
FULL = os.environ.get("RIG_NETWORK_SUITE") == "full"
QUICK = "test_update_to_candidate or test_power_cycle_and_time"  # the scenarios that reboot the board


# --- the exporters ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def ser2net_bin() -> str:
    """The ser2net executable, installed (apt-get, as root) when missing."""
    try:
        done = subprocess.run([str(INSTALL_SER2NET)], capture_output=True, text=True, timeout=INSTALL_BOUND_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot run {INSTALL_SER2NET.name}: {exc}")
    if done.returncode != 0:
        pytest.skip(f"ser2net is missing and could not be installed: {done.stderr.strip()[-500:]}")
    return done.stdout.strip().splitlines()[-1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Ser2net:
    """ser2net in the foreground with its own YAML configuration: one TCP port per exported device."""

    def __init__(self, binary: str, workdir: Path, devices: dict[str, tuple[str, bool]]) -> None:
        """`devices`: alias -> (device path, RFC 2217?)."""
        self.ports = {alias: _free_port() for alias in devices}
        lines = []
        for alias, (device, rfc2217) in devices.items():
            accepter = ("telnet(rfc2217)," if rfc2217 else "") + f"tcp,127.0.0.1,{self.ports[alias]}"
            lines += [
                f"connection: &{alias}",
                f"  accepter: {accepter}",
                f"  connector: serialdev,{device},115200n81,local",
                "  options:",
                "    kickolduser: true",  # a client that never let go (a crashed run) cannot block the port
            ]
        self.config = workdir / "ser2net.yaml"
        self.config.write_text("%YAML 1.1\n---\n" + "\n".join(lines) + "\n")
        self.log = workdir / "ser2net.log"
        argv = [binary, "-n", "-u", "-c", str(self.config), "-P", str(workdir / "ser2net.pid")]
        with self.log.open("wb") as log:  # -n: foreground; -u: no UUCP lock files in /var/lock
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        try:
            self._wait_listening()
        except BaseException:
            self.stop()
            raise

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + START_BOUND_S
        for port in self.ports.values():
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"ser2net exited ({self.process.returncode}): {self.log.read_text()}")
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"ser2net not listening on {port} within {START_BOUND_S} s") from None
                    time.sleep(0.02)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(STOP_BOUND_S)
        except subprocess.TimeoutExpired:  # ser2net 4.3 may ignore SIGTERM while a client is connected
            self.process.kill()
            self.process.wait(STOP_BOUND_S)


def network_rack(resolved: Rack, ser2net: Ser2net) -> Rack:
    """The served simulated rack as a rack of hardware reached only over the network."""
    relays = tuple(
        replace(board, port=f"socket://127.0.0.1:{ser2net.ports[board.name]}") if board.port else board
        for board in resolved.relays
    )
    stations = []
    for station in resolved.stations:
        port = ser2net.ports[station.name.replace("-", "_")]
        url = (
            f"rfc2217://127.0.0.1:{port}?ign_set_control&timeout=1"
            if station.name in RFC2217
            else f"socket://127.0.0.1:{port}"
        )
        stations.append(replace(station, port=None, url=url, usb_serial=None, sim=None))
    return replace(
        resolved,
        name="network",
        relays=relays,
        stations=tuple(stations),
        simulated=False,
        control=None,
    )


@dataclass
class Exported:
    sim: SimRack
    ser2net: Ser2net
    rack: Rack
    rack_file: Path


@pytest.fixture(scope="module")
def exported(ser2net_bin: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Exported]:
    """The simulated rack served here, every part re-exported over 127.0.0.1; the rack file that says where."""
    work = tmp_path_factory.mktemp("net")
    with SimRack(load_rack(SIM_RACK), work / "sim") as sim:
        resolved = sim.resolved
        devices = {s.name.replace("-", "_"): (str(s.port), s.name in RFC2217) for s in resolved.stations}
        devices |= {board.name: (str(board.port), False) for board in resolved.relays if board.port}
        daemon = Ser2net(ser2net_bin, work, devices)
        try:
            rack = network_rack(resolved, daemon)
            rack_file = work / "network.toml"
            rack_file.write_text(rack.to_toml())
            yield Exported(sim, daemon, load_rack(rack_file), rack_file)
        finally:
            daemon.stop()


def test_the_network_rack_holds_only_network_addresses(exported: Exported) -> None:
    rack = exported.rack
    assert not rack.simulated and rack.control is None
    for station in rack.stations:
        assert station.url and station.url.startswith(("rfc2217://127.0.0.1:", "socket://127.0.0.1:"))
        assert station.port is None and station.usb_serial is None
        assert station.swd is not None and station.swd.probe.startswith("remote:127.0.0.1:")  # pyocd's server
    for board in rack.relays:
        assert board.url.startswith(("tcp://127.0.0.1:", "socket://127.0.0.1:"))


# --- power cycles and updates prove the reboot through the protocol ----------------------------------


@pytest.mark.parametrize("name", ["esc-602", "dual-602"], ids=["rfc2217", "raw-tcp"])
def test_power_cycle_through_the_exporters_proves_the_reboot_with_the_same_uid(exported: Exported, name: str) -> None:
    rig = StationRig(exported.rack, exported.rack.station(name), bounds=Bounds(settle_s=0.1))
    enumerations = exported.sim.port(name).enumerations
    try:
        result = rig.power_cycle()
    finally:
        rig.close()
    uid = exported.sim.device(name).spec.uid.hex()
    assert result.proof.startswith("protocol: stopped answering, then answered again"), result.proof
    assert f"same UID {uid}" in result.proof
    assert result.port_before == result.port_after == rig.locator.url  # the exported port never vanished...
    assert exported.sim.port(name).enumerations == enumerations + 1  # ...while the pty behind ser2net did


def test_another_board_answering_after_the_cycle_is_refused(exported: Exported, monkeypatch) -> None:  # noqa: ANN001
    rig = StationRig(exported.rack, exported.rack.station("esc-502"), bounds=Bounds(settle_s=0.1))
    uids = [b"\x01" * 12]  # the first answer (before the cycle); every later one comes from another board
    real_probe = rig.probe

    def probe() -> FwVersionReply | None:
        reply = real_probe()
        return None if reply is None else replace(reply, uid=uids.pop() if uids else b"\x02" * 12)

    monkeypatch.setattr(rig, "probe", probe)
    try:
        with pytest.raises(OtherBoard, match="UID 020202.* answered, not 010101"):
            rig.power_cycle()
    finally:
        rig.close()


def test_update_through_ser2net_is_proven_by_the_dropped_link(exported: Exported, tmp_path: Path) -> None:
    """The pty goes away and comes back under ser2net; the rig reconnects (a new TCP connection)."""
    rig = StationRig(exported.rack, exported.rack.station("esc-602"), bounds=Bounds(settle_s=0.1))
    images = {}
    for version in ("6.05", "6.02"):
        path = tmp_path / version / "60" / "VESC_default.bin"
        path.parent.mkdir(parents=True)
        path.write_bytes(make_firmware_image("60", version))
        images[version] = load_firmware(path, hw_names=("60",), version=FirmwareVersion.parse(version))
    try:
        up = rig.update(images["6.05"])
        down = rig.update(images["6.02"])
    finally:
        rig.close()
    uid = exported.sim.device("esc-602").spec.uid.hex()
    assert str(up.after.version) == "6.05" and str(down.after.version) == "6.02"
    for result, version in ((up, "6.05"), (down, "6.02")):
        assert result.proof == f"{DROPPED_PROOF}, same UID {uid}, runs {version}, the image's version"


def test_same_board_words_and_refusal() -> None:
    assert same_board("x", b"\xab" * 12, b"\xab" * 12) == f"same UID {'ab' * 12}"
    assert same_board("x", None, b"\xab" * 12) == "UID not compared (no answer before)"
    assert same_board("x", b"\xab" * 12, None) == "UID not compared (no UID reported)"
    with pytest.raises(OtherBoard, match="^x: after the reboot UID"):
        same_board("x", b"\xab" * 12, b"\xac" * 12)
    assert not PortLocator("rfc2217://127.0.0.1:4001").observable


# --- the scenario suite through the exporters, against the direct run ---------------------------------


def _suite(rack_args: list[str], work: Path, images: dict[str, Path]) -> tuple[float, str, int]:
    argv = [sys.executable, "-m", "pytest", "tests/scenarios", "-q", "-p", "no:cacheprovider", *rack_args]
    argv += ["--station", "fw6", "-m", "not sim_only", "--allow-destructive", "--rig-dir", str(work / "reports")]
    argv += ["--baseline-firmware", str(images["6.02"]), "--baseline-version", "6.02"]
    argv += ["--firmware", str(images["6.05"]), "--firmware-version", "6.05", "--lease-dir", str(work / "leases")]
    if not FULL:
        argv += ["-k", QUICK]
    start = time.monotonic()
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=SUITE_BOUND_S)
    took = time.monotonic() - start
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-2000:]
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    passed = re.search(r"(\d+) passed", summary)
    return took, summary, int(passed.group(1)) if passed else 0


def test_scenario_suite_passes_through_the_exporters(exported: Exported, tmp_path: Path) -> None:
    images = {}
    for version in ("6.02", "6.05"):
        target = tmp_path / "images" / version / "60" / "VESC_default.bin"
        target.parent.mkdir(parents=True)
        target.write_bytes(make_firmware_image("60", version))
        images[version] = target.parent.parent
    network_s, network, network_passed = _suite(["--rack", str(exported.rack_file)], tmp_path / "net", images)
    direct_s, direct, direct_passed = _suite(["--rack", str(SIM_RACK)], tmp_path / "direct", images)
    print(f"\nthrough the exporters: {network} ({network_s:.1f} s)\ndirect: {direct} ({direct_s:.1f} s)")
    assert network_passed > 0, network
    if not FULL:  # the full suite skips more on a rack of hardware (no simulator to change configs through)
        assert network_passed == direct_passed, (network, direct)
