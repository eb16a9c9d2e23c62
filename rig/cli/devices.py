"""`rig devices [--json] [--rack FILE]`: what is plugged in: VESC ports, SWD probes, relay boards.

- VESC ports: USB 0483:5740, or a manufacturer starting with "STMicroelectronics", as VESC Tool
  decides (facts sheet section 10), with serial numbers and their stable /dev/serial/by-id names.
- SWD probes: pyocd's probe list (bounded; a hung USB enumeration is reported, not waited for).
- Relay boards by USB id: CH340 1a86:7523 (LCUS boards; Riden supplies use the same chip; source:
  lsusb of an SMAKN LCUS-1 in a public listing) and Numato 2a19:0c05 (source: wdkuchler/numato-pas
  README, "Device: idVendor=2a19, idProduct=0c05").
- With --rack: every station of a rack file, its port (present or not now), relay, supply and probe.
"""

from __future__ import annotations

import argparse
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from serial.tools import list_ports
from serial.tools.list_ports_common import ListPortInfo

from rig.cli.output import emit_json, make_console
from rig.station.rack import Rack, load_rack
from rig.transport.presence import VESC_PID, VESC_VID, PortLocator

log = logging.getLogger(__name__)

VESC_MANUFACTURER = "STMicroelectronics"
RELAY_USB_IDS = {
    (0x1A86, 0x7523): "lcus (CH340 serial; Riden supplies use it too)",
    (0x2A19, 0x0C05): "numato",
}
BY_ID_DIR = Path("/dev/serial/by-id")
PROBE_LIST_BOUND_S = 5.0


@dataclass(frozen=True)
class UsbPort:
    """A serial port pyserial lists, with its stable name where udev made one."""

    kind: str  # "vesc" or a relay kind
    device: str
    by_id: str | None
    usb_id: str
    serial_number: str | None
    manufacturer: str | None
    product: str | None


@dataclass(frozen=True)
class Probe:
    unique_id: str
    vendor: str
    product: str
    description: str


@dataclass(frozen=True)
class RackEntry:
    """One station of a rack file and what it uses."""

    station: str
    port: str | None
    present: str | None  # the device the port is now, None while absent
    usb_serial: str | None
    relay: str | None
    supply: str | None
    swd_probe: str | None


def is_vesc(port: ListPortInfo) -> bool:
    """VESC Tool's test: USB 0483:5740 or a manufacturer starting with STMicroelectronics."""
    return (port.vid, port.pid) == (VESC_VID, VESC_PID) or (port.manufacturer or "").startswith(VESC_MANUFACTURER)


def by_id_names() -> dict[str, str]:
    """Device (resolved) -> its stable name in BY_ID_DIR (/dev/serial/by-id)."""
    if not BY_ID_DIR.is_dir():
        return {}
    return {os.path.realpath(link): str(link) for link in sorted(BY_ID_DIR.iterdir())}


def usb_ports() -> list[UsbPort]:
    """VESC ports and relay boards among the serial ports pyserial lists."""
    names = by_id_names()
    found = []
    for port in list_ports.comports():
        kind = "vesc" if is_vesc(port) else RELAY_USB_IDS.get((port.vid, port.pid))
        if kind is None:
            continue
        found.append(
            UsbPort(
                kind,
                port.device,
                names.get(os.path.realpath(port.device)),
                f"{port.vid or 0:04x}:{port.pid or 0:04x}",
                port.serial_number,
                port.manufacturer,
                port.product,
            )
        )
    return found


def swd_probes(bound_s: float = PROBE_LIST_BOUND_S) -> tuple[list[Probe], str | None]:
    """pyocd's connected probes, and an error text where listing failed or took longer than `bound_s`."""
    outcome: dict[str, Any] = {}

    def work() -> None:
        from pyocd.core.helpers import ConnectHelper

        try:
            outcome["probes"] = ConnectHelper.get_all_connected_probes(blocking=False, print_wait_message=False)
        except Exception as exc:  # noqa: BLE001 - any backend failure is reported, not fatal
            outcome["error"] = f"pyocd could not list probes: {exc}"

    thread = threading.Thread(target=work, name="pyocd probe list", daemon=True)
    thread.start()
    thread.join(bound_s)
    if thread.is_alive():
        return [], f"pyocd probe list: no answer within {bound_s:.3g} s"
    probes = [
        Probe(p.unique_id, p.vendor_name or "", p.product_name or "", p.description or "")
        for p in outcome.get("probes", [])
    ]
    return probes, outcome.get("error")


def rack_entries(rack: Rack) -> list[RackEntry]:
    entries = []
    for s in rack.stations:
        present = PortLocator(s.link_url, s.usb_serial).current() if s.link_url else None
        probe = s.swd.probe if s.swd else None
        entries.append(
            RackEntry(s.name, s.link_url, present, s.usb_serial, str(s.relay) if s.relay else None, s.supply, probe)
        )
    return entries


def register(subparsers: argparse._SubParsersAction) -> None:
    devices = subparsers.add_parser(
        "devices",
        help="list VESC ports, SWD probes and relay boards",
        description="List VESC ports (USB 0483:5740 or STMicroelectronics) with serial numbers and stable "
        "names, SWD probes (pyocd) and relay boards (by USB id); with --rack, a rack's stations too.",
    )
    devices.add_argument("--rack", type=Path, help="also list the stations of this rack file")
    devices.add_argument("--json", action="store_true", help="one JSON document on stdout")
    devices.set_defaults(func=run_devices)


def run_devices(args: argparse.Namespace) -> int:
    rack = load_rack(args.rack) if args.rack else None
    ports = usb_ports()
    probes, probe_error = swd_probes()
    entries = rack_entries(rack) if rack else []
    note = None
    if rack is not None and not rack.served:
        note = f"{args.rack} is a simulated rack that is not served: `rig sim serve --rack {args.rack}` gives its ports"
    if args.json:
        document: dict[str, Any] = {
            "vesc": [p for p in ports if p.kind == "vesc"],
            "relays": [p for p in ports if p.kind != "vesc"],
            "probes": probes,
            "probe_error": probe_error,
        }
        if rack is not None:
            boards = [{"name": b.name, "kind": b.kind, "url": b.url or None} for b in rack.relays]
            document["rack"] = {
                "name": rack.name,
                "file": str(args.rack),
                "note": note,
                "stations": entries,
                "relay_boards": boards,
            }
        emit_json(document)
        return 0
    console = make_console()
    _print_ports(console, "VESC ports", [p for p in ports if p.kind == "vesc"])
    _print_ports(console, "relay boards", [p for p in ports if p.kind != "vesc"])
    _print_probes(console, probes, probe_error)
    if rack is not None:
        _print_rack(console, rack, entries, note)
    return 0


def _print_ports(console: Console, title: str, ports: list[UsbPort]) -> None:
    if not ports:
        console.print(f"{title}: none")
        return
    table = Table(title=title)
    for column in ("device", "stable name", "USB id", "serial number", "kind", "product"):
        table.add_column(column, overflow="fold")
    for p in ports:
        table.add_row(p.device, p.by_id or "", p.usb_id, p.serial_number or "", p.kind, p.product or "")
    console.print(table)


def _print_probes(console: Console, probes: list[Probe], error: str | None) -> None:
    if error:
        console.print(f"[red]SWD probes: {error}[/]")
    if not probes:
        if not error:
            console.print("SWD probes: none")
        return
    table = Table(title="SWD probes")
    for column in ("unique id", "vendor", "product", "description"):
        table.add_column(column, overflow="fold")
    for p in probes:
        table.add_row(p.unique_id, p.vendor, p.product, p.description)
    console.print(table)


def _print_rack(console: Console, rack: Rack, entries: list[RackEntry], note: str | None) -> None:
    table = Table(title=f"rack {rack.name}")
    for column in ("station", "port", "now", "USB serial", "relay", "supply", "SWD probe"):
        table.add_column(column, overflow="fold")
    for e in entries:
        now = e.present or "[red]absent[/]"
        table.add_row(
            e.station, e.port or "", now, e.usb_serial or "", e.relay or "", e.supply or "", e.swd_probe or ""
        )
    console.print(table)
    if note:
        console.print(f"[yellow]{note}[/]")
