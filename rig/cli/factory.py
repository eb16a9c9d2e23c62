"""`rig factory --rack FILE`: bring up blank boards on many stations at once (rig.factory.flow), with records.

Each station runs in its own thread (at most --jobs at a time; a station's probe, relay and port are its
own). Every board gets a record in the record store (--records, SQLite: `rig records` reads it), and the
end is a PASS/FAIL table per board; exit 0 only when every board passed, 1 otherwise.

Images: --firmware (a .bin/.hex, or a desktop-tool folder with --hw), --bootloader (a file, or a folder:
the hardware's sub-folder or generic.bin), and for the two-stage flow an optional --swd-firmware (the
firmware SWD writes before the USB update; an older release makes the version prove the update). Images not
given come from each station's [station.images] in the rack (firmware: the target, baseline: what SWD writes
first, bootloader); a served simulated rack has them for every station.

A simulated rack file must be served (`rig sim serve`, then use the resolved rack.toml), or served
in-process for the run with --serve.
"""

from __future__ import annotations

import argparse
import sys
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console, JustifyMethod
from rich.markup import escape
from rich.table import Table

from rig import interrupts
from rig.cli.args import firmware_version
from rig.cli.output import emit_json, make_console
from rig.cli.sim import served
from rig.errors import Diagnosis, ImageError, RigError
from rig.events import subscribe, unsubscribe
from rig.factory.flow import BoardResult, FactoryPlan, Limits, Range, bring_up
from rig.factory.records import FAIL, PASS, RecordStore
from rig.firmware.image import Image, ImageKind, load_bootloader, load_firmware, load_from_folder, load_image
from rig.protocol.commands import FirmwareVersion
from rig.station.permissions import Permission, Permit
from rig.station.rack import LIMIT_NAMES, Rack, Station, StationImages, load_rack
from rig.station.session import StationSession
from rig.station.state import StateDir

DEFAULT_JOBS = 8
_LIMITS = LIMIT_NAMES


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `factory` to the `rig` command line."""
    factory = subparsers.add_parser(
        "factory",
        help="bring up blank boards: SWD, power cycle, firmware, checks with limits, config defaults, records",
        description="Bring up the board of every (chosen) station, stations in parallel: SWD mass erase, bootloader "
        "and firmware programmed and verified, power cycle, the target firmware over USB (unless --merged), "
        "identity and telemetry checks with limits, config defaults written and verified. Every step goes to "
        "the board's record. Exit 0 only when every board passed.",
    )
    _add_options(factory)
    factory.set_defaults(func=run_factory)


def rack_only_options(rack: Path) -> argparse.Namespace:
    """The options of `rig factory --rack RACK` with nothing else given: images and limits come from the rack file
    (what `rig panel` runs)."""
    parser = argparse.ArgumentParser(add_help=False)
    _add_options(parser)
    return parser.parse_args(["--rack", str(rack)])


def _add_options(factory: argparse.ArgumentParser) -> None:
    factory.add_argument("--rack", type=Path, required=True, help="rack file (a resolved one for a simulated rack)")
    factory.add_argument("--station", action="append", default=[], help="only these stations or tags (repeatable)")
    images = factory.add_argument_group("images (generated on a simulated rack when not given)")
    images.add_argument("--firmware", type=Path, help="target firmware: .bin/.hex, or a desktop-tool folder")
    images.add_argument("--bootloader", type=Path, help="bootloader: .bin/.hex, or a folder (<hw>/*.bin, generic.bin)")
    images.add_argument("--swd-firmware", type=Path, help="two-stage flow: the firmware SWD writes before the update")
    images.add_argument("--hw", help="the hardware the images are for (needed for a plain .bin or a folder)")
    images.add_argument("--version", type=firmware_version, help="the target firmware's version (checked)")
    images.add_argument("--merged", action="store_true", help="SWD writes bootloader + target firmware; no USB update")
    images.add_argument("--allow-wrong-hw", action="store_true", help="accept a board of other hardware (dangerous)")
    images.add_argument(
        "--allow-destructive", action="store_true", help="also erase boards that already answer over USB"
    )
    checks = factory.add_argument_group("checks")
    defaults = Limits()
    for name in _LIMITS:
        default = getattr(defaults, name)
        checks.add_argument(
            f"--{name.replace('_', '-')}",
            metavar="LOW:HIGH",
            type=_range_text,
            help=f"limits of {name} (default {default}; `none` for no limit)",
        )
    checks.add_argument("--no-defaults", action="store_true", help="do not write the config defaults")
    factory.add_argument("--records", type=Path, help="record store (default: records.sqlite3 in the state dir)")
    factory.add_argument("--state-dir", type=Path, help="records and leases (default: the rack's, else per user)")
    factory.add_argument("--run-id", help="run id stored in every record (default: made from the time)")
    factory.add_argument("--jobs", type=_positive, default=DEFAULT_JOBS, help="stations at once (default %(default)s)")
    factory.add_argument("--serve", action="store_true", help="serve a simulated rack in-process for the run")
    factory.add_argument("--json", action="store_true", help="one JSON document on stdout")


def _range_text(text: str) -> str:
    try:
        Range.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


# --- plans -----------------------------------------------------------------------------------------


def _load(path: Path, kind: ImageKind, hw: str | None, version: FirmwareVersion | None = None) -> Image:
    """A file as it is (named hardware, if any), or the image for `hw` in a desktop-tool folder."""
    if path.is_dir():
        if not hw and kind == ImageKind.FIRMWARE:
            raise ImageError(f"{path} is a folder: name the hardware with --hw to pick the image in it")
        return load_from_folder(path, hw or "", kind, version=version)
    if kind == ImageKind.BOOTLOADER:
        return load_bootloader(path, hw_names=(hw,) if hw else ())
    return load_firmware(path, hw_names=(hw,) if hw else (), version=version)


@dataclass(frozen=True)
class _Given:
    """The images given on the command line (None: not given)."""

    firmware: Image | None
    bootloader: Image | None
    swd_firmware: Image | None


def _given(args: argparse.Namespace) -> _Given:
    firmware = _load(args.firmware, ImageKind.FIRMWARE, args.hw, args.version) if args.firmware else None
    bootloader = _load(args.bootloader, ImageKind.BOOTLOADER, args.hw) if args.bootloader else None
    swd = _load(args.swd_firmware, ImageKind.FIRMWARE, args.hw) if args.swd_firmware else None
    return _Given(firmware, bootloader, swd)


def _from_rack(spec: Station, hw: str) -> _Given:
    """The station's [station.images]: its firmware is the target, its baseline what SWD writes first."""
    images = spec.images or StationImages()
    if images.firmware is None or images.bootloader is None:
        raise ImageError(
            f"station {spec.name} has no firmware and bootloader images: give --firmware and --bootloader, or "
            "put them in its [station.images] (a served simulated rack has them)"
        )

    def load(path: str, version: str | None) -> Image:
        parsed = FirmwareVersion.parse(version) if version else None
        return load_image(Path(path), ImageKind.FIRMWARE, hw, version=parsed)

    swd = load(images.baseline, images.baseline_version) if images.baseline else None
    return _Given(
        load(images.firmware, images.firmware_version),
        load_image(Path(images.bootloader), ImageKind.BOOTLOADER, hw),
        swd,
    )


def plans(args: argparse.Namespace, rack: Rack, stations: tuple[Station, ...]) -> dict[str, FactoryPlan]:
    """One plan per station: the images given, the rest from the station's images in the rack; limits from
    the rack's [limits], the station's [station.limits], then the command line."""
    given = _given(args)
    given_limits = {name: getattr(args, name) for name in _LIMITS}
    out = {}
    for spec in stations:
        limits = Limits().override(**rack.limits).override(**spec.limits).override(**given_limits)
        images = given
        if None in (given.firmware, given.bootloader):
            made = _from_rack(spec, args.hw or spec.hw or "")
            images = _Given(
                given.firmware or made.firmware,
                given.bootloader or made.bootloader,
                given.swd_firmware or (made.swd_firmware if given.firmware is None else None),
            )
        assert images.firmware is not None and images.bootloader is not None
        out[spec.name] = FactoryPlan(
            images.firmware,
            images.bootloader,
            merged=args.merged,
            limits=limits,
            write_defaults=not args.no_defaults,
            allow_wrong_hw=args.allow_wrong_hw,
            swd_firmware=images.swd_firmware,
        )
    return out


# --- the run ---------------------------------------------------------------------------------------


def run_station(rack: Rack, spec: Station, plan: FactoryPlan, context: FactoryContext) -> BoardResult:
    """One station's bring-up in a station session (its lease held) and its own record-store connection
    (SQLite connections are per thread)."""
    if interrupts.requested():  # stopped before this station's turn: nothing touched
        return BoardResult(spec.name, FAIL, None, failed_step="not started", diagnosis=Diagnosis.INTERRUPTED.value)
    session = StationSession(rack, spec.name, state=context.state, permit=context.permit)
    try:
        session.open()
    except RigError as exc:
        return BoardResult(spec.name, FAIL, None, failed_step="setup", diagnosis=exc.diagnosis.value, reason=str(exc))
    try:
        with RecordStore(context.records) as store:
            return bring_up(session, plan, store, context.run_id)
    finally:
        session.close()


@dataclass(frozen=True)
class FactoryContext:
    """What every station's bring-up of one run shares."""

    state: StateDir
    permit: Permit
    records: Path
    run_id: str


def factory_permit(args: argparse.Namespace, rack: Rack) -> Permit:
    """Bringing up blank boards erases and programs the whole flash by nature; a board that already answers over
    USB (firmware and settings on it) only with --allow-destructive or the rack's [factory] erase_answering_boards;
    other hardware only if asked."""
    granted = {Permission.MASS_ERASE, Permission.BOOTLOADER_ERASE}
    by = "the factory (bringing up blank boards)"
    if args.allow_destructive or rack.erase_answering_boards:
        granted.add(Permission.ERASE_ANSWERING_BOARD)
        by += "; boards that answer over USB: " + ("--allow-destructive" if args.allow_destructive else "the rack")
    if args.allow_wrong_hw:
        granted.add(Permission.WRONG_HARDWARE)
    return Permit(frozenset(granted), by)


def run_all(rack: Rack, chosen: dict[str, FactoryPlan], context: FactoryContext, jobs: int) -> list[BoardResult]:
    """Every chosen station's bring-up, at most `jobs` at once; results in the order of `chosen`."""
    # Create the store (WAL mode, schema) before the threads: several connections opening a NEW SQLite
    # file at once fail at once with "database is locked" (switching to WAL takes an exclusive lock).
    RecordStore(context.records).close()
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="factory") as pool:
        futures = [pool.submit(run_station, rack, rack.station(name), plan, context) for name, plan in chosen.items()]
        return [future.result() for future in futures]


class StepLines:
    """rig.events listener: one line on stderr as each factory step of a station ends."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._local = threading.local()

    def step_started(self, title: str, params: dict[str, object]) -> None:
        stack = self._stack()
        stack.append(f"{params.get('station', '')}: {title.removeprefix('factory: ')}")

    def step_ended(self, title: str, seconds: float, error: BaseException | None) -> None:
        what = self._stack().pop()
        if title.startswith("factory: "):
            outcome = "[green]ok[/]" if error is None else f"[red]failed[/] ({escape(str(error))})"
            self.console.print(f"{escape(what)} {outcome} {seconds:.2f} s", highlight=False)

    def attach(self, name: str, body: str | bytes, mime: str) -> None:
        pass  # evidence goes to reports, not to the terminal

    def _stack(self) -> list[str]:
        if not hasattr(self._local, "stack"):
            self._local.stack = []
        return self._local.stack


def run_factory(args: argparse.Namespace) -> int:
    spec = load_rack(args.rack)
    run_id = args.run_id or f"factory-{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    stderr = make_console(stderr=True)
    listener = StepLines(stderr)
    state = StateDir.at(args.state_dir or spec.state_dir)
    records = args.records or state.records
    context = FactoryContext(state, factory_permit(args, spec), records, run_id)
    with served(spec, args.rack, args.serve) as rack:
        chosen = plans(args, rack, rack.select(args.station))
        if not args.json:
            subscribe(listener)
        try:
            results = run_all(rack, chosen, context, args.jobs)
        finally:
            unsubscribe(listener)
    ok = all(r.verdict == PASS for r in results)
    if args.json:
        emit_json({"rack": rack.name, "run_id": run_id, "records": str(records), "ok": ok, "boards": results})
    else:
        console = make_console()
        console.print(table(rack.name, run_id, results))
        print(f"records: {records} (run {run_id})")
    for r in results:
        if r.verdict != PASS:
            print(f"rig factory: station {r.station}: {r.verdict}: {failure(r)}", file=sys.stderr)
    return 0 if ok else 1


# --- output ----------------------------------------------------------------------------------------


def failure(result: BoardResult) -> str:
    """Why a board failed, in one line: the step and its diagnosis, or the checks out of limits."""
    if result.failed_step:
        return f"{result.failed_step} [{result.diagnosis}]: {result.reason}"
    return result.reason or "no verdict"


def table(rack_name: str, run_id: str, results: list[BoardResult]) -> Table:
    out = Table(title=f"rack {rack_name}: factory run {run_id}")
    for column in ("station", "verdict", "record", "UID", "hw", "firmware", "failed", "left", "time"):
        folds = column in ("failed", "left")
        justify: JustifyMethod = "right" if column in ("record", "time") else "left"
        out.add_column(column, overflow="fold", no_wrap=not folds, justify=justify, ratio=1 if folds else None)
    for r in results:
        verdict = "[green]PASS[/]" if r.verdict == PASS else f"[red]{r.verdict}[/]"
        out.add_row(
            r.station,
            verdict,
            "-" if r.record_id is None else str(r.record_id),
            r.uid or "-",
            r.hw or "-",
            r.fw or "-",
            "" if r.verdict == PASS else escape(failure(r)),
            escape(r.left),
            f"{r.seconds:.1f} s",
        )
    return out
