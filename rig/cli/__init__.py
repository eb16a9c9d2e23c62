"""The `rig` command line: one module per command group, each registering its sub-commands."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
from importlib import metadata

from rig import interrupts
from rig.errors import RigError

EXIT_INTERRUPTED = 130  # stopped by SIGINT/SIGTERM (at a safe point, after the clean-up)
# Modules under rig.cli that add sub-commands; each has `register(subparsers)`.
COMMAND_MODULES: tuple[str, ...] = (
    "trace",
    "sim",
    "power",
    "swd",
    "devices",
    "esc",
    "config",
    "rack",
    "records",
    "factory",
    "panel",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rig", description="VESC hardware-in-the-loop test rig")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"rig.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point: run a sub-command; a RigError is a user-facing message and exit code 1, never a traceback."""
    parser = build_parser()
    args = parser.parse_args(argv)
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    interrupts.reset()  # a new command (tests run several in one process)
    try:
        with interrupts.stopping_at_safe_points():
            code = int(args.func(args) or 0)
        sys.stdout.flush()
    except RigError as exc:
        code = EXIT_INTERRUPTED if interrupts.requested() else 1
        print(f"rig {args.command}: {exc} [{exc.diagnosis.value}]", file=sys.stderr)
        if getattr(args, "json", False):  # a script reads stdout: the error is a JSON document there too
            error = {"error": str(exc), "diagnosis": exc.diagnosis.value, "command": args.command, "exit": code}
            print(json.dumps(error, indent=1))
        return code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader went away (`rig devices --json | head -1`): nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return EXIT_INTERRUPTED if interrupts.requested() else code


def _version() -> str:
    try:
        return metadata.version("vesc-rig")
    except metadata.PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown (not installed)"


if __name__ == "__main__":
    sys.exit(main())
