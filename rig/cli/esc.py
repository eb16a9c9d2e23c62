"""One ESC from the command line: `rig info`, `rig update`, `rig bootloader`, `rig config dump|restore|diff`.

URL is what pyserial opens: a device path (best a /dev/serial/by-id name, which follows the board's
USB serial number), the simulator's port symlink, or socket://HOST:PORT / rfc2217://HOST:PORT. An
update needs to see the board go away and come back: with a device path the port's USB serial
number is looked up so the port is found again after re-enumeration (or give it with --usb-serial).

Exit codes: 0 done, 1 rig error (message and diagnosis on stderr), 2 usage, and for `config diff`
3 when the configs differ.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from rig.cli.args import firmware_version, positive_int
from rig.cli.session import add_connection_options, add_state_options, add_target, open_session, session_json
from rig.errors import ConfigError, Diagnosis
from rig.firmware.config import KINDS, ConfigBackup, read_backup
from rig.firmware.image import Image, ImageKind, load_image
from rig.firmware.update import PhaseTimes, UploadResult
from rig.protocol.codecs import ConfigBlob, FwVersionReply
from rig.protocol.commands import FirmwareVersion
from rig.station.session import StationSession

EXIT_DIFFERENT = 3  # `config diff`: both sides read fine, and they differ
DIFF_OFFSETS_SHOWN = 8


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `info`, `update`, `bootloader` and the `config` group."""
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

    config = subparsers.add_parser("config", help="config backups: dump, restore, diff")
    sub = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    dump = sub.add_parser("dump", help="save mcconf and appconf with the firmware they belong to")
    add_target(dump)
    dump.add_argument("-o", "--output", type=Path, required=True, help="backup file to write (JSON)")
    dump.set_defaults(func=run_dump)
    rest = sub.add_parser(
        "restore",
        help="write a backup to an ESC and verify it by reading back",
        description="Refuses a config of another layout (signature, or version before 3.50) or another "
        "hardware unless --force.",
    )
    add_target(rest)
    rest.add_argument("file", type=Path, help="backup file written by `rig config dump`")
    rest.add_argument("--force", action="store_true", help="write without layout and hardware checks")
    rest.set_defaults(func=run_restore)
    diff = sub.add_parser(
        "diff",
        help="compare two backups, or a backup with an ESC",
        description=f"Exit 0 when both configs are the same, {EXIT_DIFFERENT} when they differ.",
    )
    diff.add_argument("a", type=Path, help="backup file")
    diff.add_argument("b", help="backup file, or the URL of an ESC to read now")
    add_connection_options(diff)
    add_state_options(diff)
    diff.set_defaults(func=run_diff)


# --- output ----------------------------------------------------------------------------------------


def plain(value: Any) -> Any:
    """A JSON-ready form: dataclasses as dicts, bytes as hex, versions as text."""
    if isinstance(value, FirmwareVersion):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def emit_json(document: Any) -> None:
    print(json.dumps(plain(document), indent=1))


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
            console=Console(stderr=True),
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
    console = Console()
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
    console = Console()
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
    console = Console()
    console.print(f"{args.url or args.station}: bootloader written ({result.stats.bytes_sent} bytes sent)")
    _print_times(console, image.describe(), result.times, UPLOAD_PHASES)
    return 0


# --- configs ---------------------------------------------------------------------------------------


def _backup_json(backup: ConfigBackup) -> dict[str, Any]:
    return {
        "version": str(backup.version),
        "hw_name": backup.hw_name,
        "uid": backup.uid,
        "configs": {k.value: {"signature": b.signature, "size": len(b.data)} for k, b in backup.blobs.items()},
    }


def run_dump(args: argparse.Namespace) -> int:
    with open_session(args) as session, session.connect() as esc:
        backup = read_backup(esc)
    try:
        backup.save(args.output)
    except OSError as exc:
        raise ConfigError(f"cannot write {args.output}: {exc}", diagnosis=Diagnosis.CONFIG_MIXED) from exc
    if args.json:
        emit_json({"url": args.url, "file": str(args.output), **_backup_json(backup)})
    else:
        print(f"{args.output}: mcconf and appconf of {backup.hw_name} firmware {backup.version} (UID {backup.uid})")
    return 0


def run_restore(args: argparse.Namespace) -> int:
    backup = ConfigBackup.load(args.file)
    with open_session(args) as session:
        info = session.read_board()
        board_hw, board_uid = info.hw_name or "", (info.uid or b"").hex()
        if board_hw != backup.hw_name and not args.force:
            raise ConfigError(
                f"{args.file} was read from hardware {backup.hw_name!r}, {args.url} is {board_hw!r}: refusing to "
                "write another hardware's config (--force to write it anyway)",
                diagnosis=Diagnosis.WRONG_HARDWARE,
            )
        session.restore_backup(backup, force=args.force)
    same_board = board_uid == backup.uid
    if args.json:
        emit_json(
            {
                "url": args.url,
                "file": str(args.file),
                "verified": True,
                "same_board": same_board,
                **session_json(session),
            }
        )
    else:
        note = "" if same_board else f" (read from another board, UID {backup.uid})"
        print(f"{args.url}: mcconf and appconf from {args.file} written and verified{note}")
    return 0


@dataclass(frozen=True)
class BlobDiff:
    """How one config differs between two backups."""

    kind: str
    signature_a: int | None
    signature_b: int | None
    size_a: int
    size_b: int
    differing_bytes: int
    first_offsets: tuple[int, ...]

    @property
    def same(self) -> bool:
        return self.signature_a == self.signature_b and self.size_a == self.size_b and not self.differing_bytes


def blob_diff(a: ConfigBlob, b: ConfigBlob) -> BlobDiff:
    """Byte offsets (in the field bytes, after the signature) where two blobs differ."""
    offsets = [i for i, (x, y) in enumerate(zip(a.data, b.data, strict=False)) if x != y]
    offsets += range(min(len(a.data), len(b.data)), max(len(a.data), len(b.data)))
    return BlobDiff(
        a.kind.value,
        a.signature,
        b.signature,
        len(a.data),
        len(b.data),
        len(offsets),
        tuple(offsets[:DIFF_OFFSETS_SHOWN]),
    )


def run_diff(args: argparse.Namespace) -> int:
    a = ConfigBackup.load(args.a)
    if Path(args.b).is_file():
        b, b_name = ConfigBackup.load(Path(args.b)), args.b
    else:
        with open_session(args, args.b) as session, session.connect() as esc:
            b, b_name = read_backup(esc), f"{args.b} (now)"
    diffs = [blob_diff(a.blobs[kind], b.blobs[kind]) for kind in KINDS]
    same = all(d.same for d in diffs)
    meta = {
        "version": [str(a.version), str(b.version)],
        "hw_name": [a.hw_name, b.hw_name],
        "uid": [a.uid, b.uid],
    }
    if args.json:
        configs = {d.kind: {**plain(d), "same": d.same} for d in diffs}
        emit_json({"a": str(args.a), "b": b_name, "same": same, **meta, "configs": configs})
    else:
        _print_diff(str(args.a), b_name, meta, diffs)
    return 0 if same else EXIT_DIFFERENT


def _print_diff(a_name: str, b_name: str, meta: dict[str, list[str]], diffs: list[BlobDiff]) -> None:
    table = Table(title=f"config: {a_name} vs {b_name}")
    for column in ("", "A", "B", ""):
        table.add_column(column, overflow="fold")
    for key, (x, y) in meta.items():
        table.add_row(key, x, y, "same" if x == y else "[yellow]differs[/]")
    for d in diffs:
        table.add_row(
            f"{d.kind} signature", str(d.signature_a), str(d.signature_b), _same(d.signature_a, d.signature_b)
        )
        table.add_row(f"{d.kind} size", str(d.size_a), str(d.size_b), _same(d.size_a, d.size_b))
        where = ", ".join(str(o) for o in d.first_offsets) + (" …" if d.differing_bytes > len(d.first_offsets) else "")
        count = "1 byte differs" if d.differing_bytes == 1 else f"{d.differing_bytes} bytes differ"
        detail = f"[red]{count}, first at {where}[/]" if d.differing_bytes else "same"
        table.add_row(f"{d.kind} bytes", "", "", detail)
    Console().print(table)


def _same(x: object, y: object) -> str:
    return "same" if x == y else "[red]differs[/]"
