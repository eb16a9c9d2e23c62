"""One ESC from the command line: `rig info`, `rig update`, `rig bootloader` (configs: rig.cli.config).

URL is what pyserial opens: a device path (best a /dev/serial/by-id name, which follows the board's
USB serial number), the simulator's port symlink, or socket://HOST:PORT / rfc2217://HOST:PORT. An
update needs to see the board go away and come back: with a device path the port's USB serial
number is looked up so the port is found again after re-enumeration (or give it with --usb-serial).

Exit codes: 0 done, 1 rig error (message and diagnosis on stderr), 2 usage.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from rig.cli.args import firmware_version, positive_int
from rig.cli.output import emit_json, make_console, plain
from rig.cli.session import add_target, open_session, session_json
from rig.firmware.image import Image, ImageKind, load_image
from rig.firmware.update import PhaseTimes, UploadResult
from rig.protocol.codecs import FwVersionReply
from rig.station.session import StationSession


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `info`, `update`, `bootloader`."""
    info = subparsers.add_parser("info", help="firmware, hardware, UID and telemetry of one ESC")
    add_target(info)
    info.set_defaults(func=run_info)

    update = subparsers.add_parser(
        "update",
        help="update an ESC's firmware over USB, as VESC Tool does",
        description="Refuse an image for other hardware before anything is erased, erase the new-app buffer, "
        "write the image, jump to the bootloader, wait for the board to come back and prove it runs the image.",
    )
    add_target(update, wrong_hw=True)
    update.add_argument("image", type=Path, help="firmware .bin/.hex, or a desktop-tool folder (<hw>/VESC_default.bin)")
    update.add_argument("--version", type=firmware_version, help="the image's firmware version (checked after)")
    update.add_argument("--hw", help="the hardware a plain .bin is built for (a folder names it already)")
    update.add_argument("--window", type=positive_int, default=1, help="chunks in flight (default %(default)s)")
    update.add_argument("--all-can", action="store_true", help="update every CAN node too (same hardware only)")
    update.set_defaults(func=run_update)

    boot = subparsers.add_parser("bootloader", help="write a bootloader over USB (the firmware keeps running)")
    add_target(boot, destructive=True, wrong_hw=True)
    boot.add_argument("image", type=Path, help="bootloader .bin/.hex, or a folder (<hw>/*.bin or generic.bin)")
    boot.add_argument("--window", type=positive_int, default=1, help="chunks in flight (default %(default)s)")
    boot.add_argument("--all-can", action="store_true", help="write it to every CAN node too")
    boot.set_defaults(func=run_bootloader)


# --- output ----------------------------------------------------------------------------------------


def fw_fields(info: FwVersionReply) -> dict[str, Any]:
    """Every FW_VERSION field the board sent, plus the version as text."""
    sent = {k: v for k, v in plain(info).items() if v is not None}
    return {"version": str(info.version), **sent}


def _kv_table(title: str, rows: dict[str, Any]) -> Table:
    table = Table(title=title, show_header=False)
    table.add_column(style="bold", overflow="fold")
    table.add_column(overflow="fold")
    for key, value in rows.items():
        table.add_row(key, str(value))
    return table


def image_json(image: Image) -> dict[str, Any]:
    return {
        "kind": image.kind.value,
        "source": image.source,
        "size": len(image.data),
        "sha256": image.sha256,
        "hw_names": list(image.hw_names),
        "version": str(image.version) if image.version else None,
    }


UPLOAD_PHASES = ("erase_s", "write_s")  # a bootloader upload has no boot or ready phase


def times_json(times: PhaseTimes, phases: tuple[str, ...] | None = None) -> dict[str, float]:
    """Seconds per phase (all of PhaseTimes, or `phases`) and the total."""
    spent = {k: round(v, 4) for k, v in asdict(times).items() if phases is None or k in phases}
    return {**spent, "total_s": round(times.total_s, 4)}


class PhaseBar:
    """The Progress callback of rig.firmware.update as a rich progress bar on stderr, one bar per phase."""

    def __init__(self, enabled: bool) -> None:
        self.progress = Progress(
            TextColumn("{task.description:<10}"),
            BarColumn(),
            DownloadColumn(),
            TimeElapsedColumn(),
            console=make_console(stderr=True),
            disable=not enabled,
        )
        self.tasks: dict[str, TaskID] = {}

    def __call__(self, phase: str, done: int, total: int) -> None:
        if phase not in self.tasks:
            self.finish()
            self.tasks[phase] = self.progress.add_task(phase, total=total)
        self.progress.update(self.tasks[phase], completed=done, total=total)

    def finish(self) -> None:
        """Mark every phase so far as complete (rig.firmware.update reports a phase's start, not always its end)."""
        for task in self.tasks.values():
            self.progress.update(task, completed=self.progress.tasks[task].total)

    def __enter__(self) -> PhaseBar:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.finish()
        self.progress.stop()


def _upload_json(upload: UploadResult, phases: tuple[str, ...] | None = None) -> dict[str, Any]:
    return {
        "image": image_json(upload.image),
        "times": times_json(upload.times, phases),
        "stats": asdict(upload.stats),
        "compressed": upload.compressed,
    }


def _print_times(console: Console, what: str, times: PhaseTimes, phases: tuple[str, ...] | None = None) -> None:
    console.print(what, highlight=False)
    table = Table()
    table.add_column("phase")
    table.add_column("seconds", justify="right")
    for key, seconds in times_json(times, phases).items():
        table.add_row(key.removesuffix("_s"), f"{seconds:.3f}", style="bold" if key == "total_s" else None)
    console.print(table)


# --- info ------------------------------------------------------------------------------------------


def run_info(args: argparse.Namespace) -> int:
    with open_session(args) as session, session.connect() as esc:
        assert esc.info is not None
        info = fw_fields(esc.info)
        values = esc.values()
        port = session.bench.locator.current()
    telemetry = {f.name: getattr(values, f.name) for f in values.present()}
    if args.json:
        emit_json({"url": args.url, "port": port, "fw_version": info, "values": telemetry})
        return 0
    console = make_console()
    console.print(_kv_table(f"{args.url or args.station} ({port})", info))
    console.print(_kv_table("GET_VALUES", telemetry))
    return 0


# --- images and uploads ----------------------------------------------------------------------------


def image_for(path: Path, kind: ImageKind, session: StationSession, args: argparse.Namespace) -> Image:
    """A file is loaded as it is; a folder is searched for the board's hardware (read from the board)."""
    hw_name = session.read_board().hw_name or "" if path.is_dir() else ""
    hw = (args.hw,) if getattr(args, "hw", None) else ()
    return load_image(path, kind, hw_name, hw_names=hw, version=getattr(args, "version", None))


def run_update(args: argparse.Namespace) -> int:
    with open_session(args) as session:
        image = image_for(args.image, ImageKind.FIRMWARE, session, args)
        with PhaseBar(not args.json) as bar:
            result = session.update(image, window=args.window, progress=bar, all_can=args.all_can)
    if args.json:
        emit_json(
            {
                "url": args.url,
                **_upload_json(result.upload),
                "before": fw_fields(result.before),
                "after": fw_fields(result.after),
                "proof": result.proof,
                "nodes": {node: str(info.version) for node, info in result.nodes.items()},
                **session_json(session),
            }
        )
        return 0
    console = make_console()
    where = args.url or args.station
    change = f"{result.before.version} -> [bold green]{result.after.version}[/]"
    console.print(f"{where}: firmware {change} ({result.proof})")
    _print_times(console, image.describe(), result.times)
    return 0


def run_bootloader(args: argparse.Namespace) -> int:
    with open_session(args) as session:
        image = image_for(args.image, ImageKind.BOOTLOADER, session, args)
        with PhaseBar(not args.json) as bar:
            result = session.upload_bootloader(image, window=args.window, progress=bar, all_can=args.all_can)
    if args.json:
        emit_json({"url": args.url, **_upload_json(result, UPLOAD_PHASES), **session_json(session)})
        return 0
    console = make_console()
    console.print(f"{args.url or args.station}: bootloader written ({result.stats.bytes_sent} bytes sent)")
    _print_times(console, image.describe(), result.times, UPLOAD_PHASES)
    return 0
