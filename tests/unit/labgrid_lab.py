"""A real labgrid lab on 127.0.0.1 for the tests: coordinator, exporter with static resources, places.

The daemons are labgrid's own console scripts (the `labgrid` extra, installed with the dev extra),
started in a temporary directory and always stopped (SIGTERM, then SIGKILL after a bound). Places are
made through the coordinator's API, as `labgrid-client create / add-match / set-tags` would.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from labgrid.remote.generated import labgrid_coordinator_pb2 as pb2

from rig.station.lease_labgrid_client import CoordinatorConnection
from rig.station.rack import Rack

START_BOUND_S = 15.0
STOP_BOUND_S = 5.0
GRACE_S = 1.0
SAVE_BOUND_S = 20.0  # the coordinator saves places every 15 s
BIN = Path(sys.executable).parent


def labgrid_script(name: str) -> str:
    """A labgrid console script of this environment (labgrid-coordinator, labgrid-exporter)."""
    path = BIN / name
    found = str(path) if path.exists() else shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} is not installed: pip install -e '.[dev]' (it brings vesc-rig[labgrid])")
    return found


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, and SIGKILL after GRACE_S (labgrid-coordinator's graceful shutdown waits 5 s for its clients)."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(GRACE_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(STOP_BOUND_S)


class Coordinator:
    """labgrid-coordinator on 127.0.0.1 (an ephemeral port, kept across restarts)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self.starts += 1
        log = self.workdir / f"coordinator-{self.starts}.log"
        argv = [labgrid_script("labgrid-coordinator"), "-l", f"127.0.0.1:{self.port}"]
        with log.open("wb") as out:  # places.yaml and resources.yaml go to its working directory
            self.process = subprocess.Popen(argv, cwd=self.workdir, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_BOUND_S
        while (found := re.search(rb"listening on 127\.0\.0\.1:(\d+)", log.read_bytes())) is None:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"labgrid-coordinator did not start within {START_BOUND_S} s: {log.read_text()}")
            time.sleep(0.05)
        self.port = int(found[1])

    def wait_saved(self, places: list[str]) -> None:
        """Wait (bounded) until places.yaml has the places: the coordinator saves changes every 15 s only, and
        a restart loses what it had not saved."""
        path = self.workdir / "places.yaml"
        deadline = time.monotonic() + SAVE_BOUND_S
        while not (path.exists() and all(f"{name}:" in path.read_text() for name in places)):
            if time.monotonic() > deadline:
                raise RuntimeError(f"labgrid-coordinator did not save {places} within {SAVE_BOUND_S} s")
            time.sleep(0.2)

    def kill(self) -> None:
        """SIGKILL: a crash (what a restart without a clean shutdown looks like to its clients)."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(STOP_BOUND_S)

    def stop(self) -> None:
        if self.process is not None:
            _stop(self.process)


def exporter_yaml(groups: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> str:
    """An exporter configuration: group -> resource name -> {cls, params...}, every value JSON (which is YAML)."""
    lines = ["## labgrid-exporter resources (a Jinja2 template: comments start with ##)"]
    for group, resources in groups.items():
        lines.append(f"{json.dumps(group)}:")
        for name, resource in resources.items():
            lines.append(f"  {json.dumps(name)}:")
            lines += [f"    {key}: {json.dumps(value)}" for key, value in resource.items()]
    return "\n".join(lines) + "\n"


class Exporter:
    """labgrid-exporter publishing static resources; it exits when its coordinator goes away."""

    def __init__(self, workdir: Path, coordinator: Coordinator, name: str, config: str) -> None:
        self.workdir, self.coordinator, self.name = workdir, coordinator, name
        self.config = workdir / f"exporter-{name}.yaml"
        self.config.write_text(config)
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, connection: CoordinatorConnection) -> None:
        """Start it and wait (bounded) until the coordinator publishes its resources."""
        self.starts += 1
        log = self.workdir / f"exporter-{self.name}-{self.starts}.log"
        argv = [labgrid_script("labgrid-exporter"), "-c", self.coordinator.address, "-n", self.name]
        argv += ["--hostname", "127.0.0.1", str(self.config)]
        with log.open("wb") as out:
            self.process = subprocess.Popen(argv, cwd=self.workdir, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_BOUND_S
        while not any(path[0] == self.name for path in connection.run(connection.live_paths())):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"labgrid-exporter {self.name} not published within {START_BOUND_S} s: {log.read_text()}"
                )
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            _stop(self.process)


def make_place(connection: CoordinatorConnection, name: str, match: str, tags: Mapping[str, str]) -> None:
    """labgrid-client -p NAME create; add-match MATCH; set-tags TAGS."""
    connection.run(connection.rpc("AddPlace", pb2.AddPlaceRequest(name=name)))
    pattern = pb2.AddPlaceMatchRequest(placename=name, pattern=match)
    connection.run(connection.rpc("AddPlaceMatch", pattern))
    connection.run(connection.rpc("SetPlaceTags", pb2.SetPlaceTagsRequest(placename=name, tags=dict(tags))))


def station_exports(rack: Rack) -> dict[str, dict[str, dict[str, Any]]]:
    """A rack of network addresses as exporter groups, one per station (the mapping rig.station.places reads
    back): the ESC's NetworkSerialPort, its relay (ModbusTCPCoil for Modbus coil boards on TCP, else a
    NetworkPowerPort whose model is the rig's board kind), its supply and its pyocd server (NetworkService)."""
    groups: dict[str, dict[str, dict[str, Any]]] = {}
    for station in rack.stations:
        assert station.url is not None
        url = urlsplit(station.url)
        protocol = "rfc2217" if url.scheme == "rfc2217" else "raw"
        group: dict[str, dict[str, Any]] = {
            "esc": {"cls": "NetworkSerialPort", "host": url.hostname, "port": url.port, "protocol": protocol}
        }
        if station.relay is not None:
            board = rack.relay(station.relay.board)
            if board.kind == "modbus-coils" and board.tcp:
                group["relay"] = {"cls": "ModbusTCPCoil", "host": board.tcp, "coil": station.relay.channel}
            else:
                host = board.tcp or board.port
                group["relay"] = {
                    "cls": "NetworkPowerPort",
                    "model": board.kind,
                    "host": host,
                    "index": station.relay.channel,
                }
        if station.supply is not None:
            supply = rack.supply(station.supply)
            host = supply.tcp or supply.port
            group["supply"] = {"cls": "NetworkPowerPort", "model": supply.kind, "host": host, "index": supply.unit}
        if station.swd is not None and station.swd.probe:
            address, port = station.swd.probe.removeprefix("remote:").rsplit(":", 1)
            group["probe"] = {"cls": "NetworkService", "address": address, "port": int(port), "username": "pyocd"}
        groups[station.name] = group
    return groups
