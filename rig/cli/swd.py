"""`rig swd flash|erase|verify`: program, erase and verify a board over SWD through pyocd (F4, F5).

The probe is reached either through a rack file (`--rack FILE --station S`: the station's [station.swd] probe,
target, clock and connect mode) or directly (`--probe ID [--target T]`; ID is a USB probe's unique id, or
`remote:HOST:PORT` of a pyocd probe server such as the one `rig sim serve` prints). `--frequency` and
`--under-reset` apply to both. Either way the command runs in a station session (rig.station.session): it holds
the station's lease, checks every image before anything is erased (a .hex is split into its firmware and
bootloader parts, each checked; a firmware for other hardware is refused when the board's hardware is known),
backs up the configs of a board that answers over USB and restores them, and refuses to touch the bootloader
sector or mass erase without --allow-destructive. A rich progress bar on stderr follows the progress callback;
erase, program and verify times are reported separately (`--json`: one object on stdout).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, Progress, TaskID, TaskProgressColumn, TextColumn, TimeElapsedColumn

from rig.cli.leases import leases_of
from rig.cli.output import make_console
from rig.cli.session import add_state_options, permit, session_json, tell
from rig.device.memory import BOOTLOADER_BASE, BOOTLOADER_SIZE, FLASH_BASE
from rig.errors import RigError
from rig.firmware.image import Image, flash_segments, load_for_swd
from rig.hardware.swd import ConnectMode, SwdSession
from rig.hardware.swd_target import TARGET_NAME
from rig.station.rack import Rack, Station, SwdSpec, load_rack
from rig.station.session import StationSession
from rig.station.state import StateDir

ADDRESS_NAMES = {"firmware": FLASH_BASE, "bootloader": BOOTLOADER_BASE}
_SUFFIXES = {"k": 1e3, "m": 1e6}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `swd flash|erase|verify` to the `rig` command line."""
    swd = subparsers.add_parser("swd", help="program, erase and verify boards over SWD (pyocd)")
    sub = swd.add_subparsers(dest="swd_command", required=True, metavar="ACTION")

    flash = sub.add_parser(
        "flash",
        help="program a .hex (merged images too) or a .bin, then verify by reading back",
        description="Program an image with pyocd (smart flash off: every page erased and written), then read it "
        f"back and compare. A .bin needs --address: firmware at {FLASH_BASE:#010x}, "
        f"bootloader at {BOOTLOADER_BASE:#010x}.",
    )
    flash.add_argument("image", type=Path, help=".hex or .bin file")
    _address_option(flash)
    flash.add_argument("--chip-erase", action="store_true", help="mass erase first instead of erasing sectors")
    flash.add_argument("--no-verify", action="store_true", help="skip reading the image back")
    _target_options(flash, run_flash)

    erase = sub.add_parser("erase", help="mass erase, or erase the sectors of an address range")
    mode = erase.add_mutually_exclusive_group(required=True)
    mode.add_argument("--mass", action="store_true", help="erase the whole flash (clears read-out protection)")
    mode.add_argument(
        "--sector-range",
        nargs=2,
        type=_integer,
        metavar=("START", "LEN"),
        help=f"erase every sector touching START..START+LEN (e.g. {BOOTLOADER_BASE:#010x} {BOOTLOADER_SIZE:#x}: "
        "the bootloader sector)",
    )
    _target_options(erase, run_erase)

    verify = sub.add_parser("verify", help="read an image's ranges back and compare")
    verify.add_argument("image", type=Path, help=".hex or .bin file")
    _address_option(verify)
    _target_options(verify, run_verify)


def _address_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--address",
        type=_address,
        default=None,
        help=f"where a .bin goes: an address ({BOOTLOADER_BASE:#010x}) or 'firmware' / 'bootloader'",
    )


def _target_options(parser: argparse.ArgumentParser, func: Callable[[argparse.Namespace], int]) -> None:
    where = parser.add_argument_group("probe (a rack station, or a probe id)")
    probe = where.add_mutually_exclusive_group(required=True)
    probe.add_argument("--rack", type=Path, help="rack file; use with --station")
    probe.add_argument("--probe", metavar="ID", help="probe unique id, or remote:HOST:PORT of a pyocd probe server")
    where.add_argument("--station", help="station name in the rack file")
    where.add_argument("--target", help=f"pyocd target type (default from the rack, else {TARGET_NAME})")
    where.add_argument("--frequency", type=_hertz, help="SWD clock, e.g. 4000000, 4M, 500k")
    where.add_argument("--under-reset", action="store_true", help="connect with the MCU held in reset")
    parser.add_argument("--hw", help="the board's hardware name, checked against the image's (when it cannot answer)")
    parser.add_argument(
        "--allow-destructive", action="store_true", help="allow a mass erase and writing the bootloader sector"
    )
    parser.add_argument("--allow-wrong-hw", action="store_true", help="program an image for other hardware")
    add_state_options(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object (no progress bar)")
    parser.set_defaults(func=func, parser=parser)


# --- argument types ----------------------------------------------------------------------------------


def _integer(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer (decimal, or 0x... hex)") from None


def _address(text: str) -> int:
    return ADDRESS_NAMES[text.lower()] if text.lower() in ADDRESS_NAMES else _integer(text)


def _hertz(text: str) -> int:
    scale = _SUFFIXES.get(text[-1:].lower(), 1.0)
    try:
        value = float(text[:-1] if scale != 1.0 else text) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a frequency (e.g. 4000000, 4M, 500k)") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: the frequency must be positive")
    return int(value)


# --- the commands ------------------------------------------------------------------------------------


def run_flash(args: argparse.Namespace) -> int:
    images = load_images(args)
    bar = ProgressBar(enabled=not args.json)
    with open_probe_session(args) as session:
        swd = configured(args, session.swd(bar))
        with bar, _connected(swd, bar) as connect_s:
            result = session.swd_program(images, chip_erase=args.chip_erase, verify=not args.no_verify, swd=swd)
    report = {
        "command": "flash",
        **_where(swd),
        "image": str(args.image),
        "segments": _segments(images),
        "connect_s": connect_s,
        **asdict(result),
        "verified": not args.no_verify,
        **session_json(session),
    }
    _print(args, report, _flash_text)
    return 0


def run_erase(args: argparse.Namespace) -> int:
    bar = ProgressBar(enabled=not args.json)
    with open_probe_session(args) as session:
        swd = configured(args, session.swd(bar))
        with bar, _connected(swd, bar) as connect_s:
            if args.mass:
                task = bar.busy("mass erase")
                erase_s = session.swd_erase(mass=True, swd=swd)
                report: dict[str, Any] = {"mode": "mass"}
            else:
                start, length = args.sector_range
                task = bar.busy("sector erase")
                erase_s = session.swd_erase(start=start, length=length, swd=swd)
                report = {"mode": "sectors", "start": start, "length": length}
            bar.done(task)
    report = {
        "command": "erase",
        **_where(swd),
        **report,
        "connect_s": connect_s,
        "erase_s": erase_s,
        **session_json(session),
    }
    _print(args, report, _erase_text)
    return 0


def run_verify(args: argparse.Namespace) -> int:
    images = load_images(args)
    bar = ProgressBar(enabled=not args.json)
    with open_probe_session(args) as session:
        swd = configured(args, session.swd(bar))
        with bar, _connected(swd, bar) as connect_s:
            verify_s = swd.verify(flash_segments(images))
    size = sum(len(i.data) for i in images)
    report = {
        "command": "verify",
        **_where(swd),
        "image": str(args.image),
        "segments": _segments(images),
        "image_bytes": size,
        "connect_s": connect_s,
        "verify_s": verify_s,
        "verified": True,
    }
    _print(args, report, lambda r: f"verified {r['image']} ({r['image_bytes']} bytes) in {r['verify_s']:.3f} s")
    return 0


def load_images(args: argparse.Namespace) -> tuple[Image, ...]:
    """The checked images of the file: ImageError (exit 1) for a missing, corrupt, truncated or foreign file."""
    if args.address is not None and args.image.suffix.lower() != ".bin":
        args.parser.error("--address is for .bin images; a .hex carries its own addresses")
    return load_for_swd(args.image, args.address, hw_names=(args.hw,) if args.hw else ())


@contextmanager
def open_probe_session(args: argparse.Namespace) -> Iterator[StationSession]:
    """A session on --rack/--station, or on a probe-only station around --probe."""
    if args.probe:
        if args.station:
            args.parser.error("--station goes with --rack, not with --probe")
        station = Station(name=f"probe {args.probe}", swd=SwdSpec(args.probe, args.target or TARGET_NAME))
        rack = Rack(name="probe", stations=(station,))
    else:
        if not args.station:
            args.parser.error("--rack needs --station")
        rack = load_rack(args.rack)
    state = StateDir.at(args.state_dir or rack.state_dir)
    session = StationSession(
        rack,
        rack.stations[0].name if args.probe else args.station,
        state=state,
        leases=leases_of(args, rack, state),
        permit=permit(args),
        lease_wait_s=args.lease_wait,
    )
    with session:
        try:
            yield session
        except RigError:
            tell(args, session, failed=True)
            raise
        tell(args, session)


def configured(args: argparse.Namespace, swd: SwdSession) -> SwdSession:
    """The station's SWD settings with the command line's overrides."""
    overrides: dict[str, Any] = {}
    if args.target:
        overrides["target"] = args.target
    if args.frequency:
        overrides["frequency_hz"] = args.frequency
    if args.under_reset:
        overrides["connect_mode"] = ConnectMode.UNDER_RESET
    swd.config = replace(swd.config, **overrides)
    return swd


@contextmanager
def _connected(session: SwdSession, bar: ProgressBar) -> Iterator[float]:
    """Open the session (bounded, retried by rig.hardware.swd) for the block; yields the seconds the connect took."""
    task = bar.busy(f"connect {session.config.probe_id}")
    started = time.monotonic()
    with session:
        connect_s = time.monotonic() - started
        bar.done(task)
        yield connect_s


def _where(swd: SwdSession) -> dict[str, Any]:
    config = swd.config
    return {
        "probe": config.probe_id,
        "target": config.target,
        "frequency_hz": config.frequency_hz,
        "connect_mode": config.connect_mode.value,
    }


def _segments(images: Sequence[Image]) -> list[dict[str, int]]:
    return [{"address": address, "bytes": len(data)} for address, data in flash_segments(images)]


# --- output ------------------------------------------------------------------------------------------


class ProgressBar:
    """rich progress on stderr, fed by rig.hardware.swd's (phase, fraction) callback from its worker thread.

    pyocd reports each phase from 0 to 1 once per flash region (a merged image has two), so every change of
    phase starts a new bar: erase, program, erase #2, program #2, verify.
    """

    def __init__(self, enabled: bool) -> None:
        self._progress = Progress(
            TextColumn("{task.description:<14}"),
            BarColumn(),
            TaskProgressColumn(),
            TimeElapsedColumn(),
            console=make_console(stderr=True),
            disable=not enabled,
        )
        self._phase: str | None = None
        self._task: TaskID | None = None
        self._seen: dict[str, int] = {}

    def __call__(self, phase: str, done: int, total: int) -> None:
        if phase != self._phase or self._task is None:
            self._phase = phase
            self._seen[phase] = self._seen.get(phase, 0) + 1
            label = phase if self._seen[phase] == 1 else f"{phase} #{self._seen[phase]}"
            self._task = self._progress.add_task(label, total=total)
        self._progress.update(self._task, completed=done, total=total)

    def busy(self, what: str) -> TaskID:
        """A bar with no measure of progress (a connect, a mass erase) until done()."""
        self._phase = None
        return self._progress.add_task(what, total=None)

    def done(self, task: TaskID) -> None:
        self._progress.update(task, total=1.0, completed=1.0)

    def __enter__(self) -> ProgressBar:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()


def _print(args: argparse.Namespace, report: dict[str, Any], text: Callable[[dict[str, Any]], str]) -> None:
    print(json.dumps(report) if args.json else text(report))


def _flash_text(r: dict[str, Any]) -> str:
    where = ", ".join(f"{s['bytes']} bytes at {s['address']:#010x}" for s in r["segments"])
    lines = [f"programmed {r['image']} ({where}) through {r['probe']} ({r['target']})"]
    lines.append(f"  erase   {r['erase_s']:8.3f} s")
    lines.append(f"  program {r['program_s']:8.3f} s  ({r['programmed_bytes']} bytes written)")
    lines.append(f"  verify  {r['verify_s']:8.3f} s" if r["verified"] else "  verify  skipped")
    return "\n".join(lines)


def _erase_text(r: dict[str, Any]) -> str:
    what = "whole flash" if r["mode"] == "mass" else f"sectors of {r['start']:#010x} +{r['length']:#x}"
    return f"erased {what} through {r['probe']} ({r['target']}) in {r['erase_s']:.3f} s"
