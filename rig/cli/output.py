"""What commands print: JSON documents, and rich tables that do not wrap when the output is a file or pipe."""

from __future__ import annotations

import json
import sys
from dataclasses import fields, is_dataclass
from typing import Any

from rich.console import Console

from rig.protocol.commands import FirmwareVersion

FILE_WIDTH = 200  # columns for tables written to a file or pipe (a terminal uses its own width)


def make_console(*, stderr: bool = False) -> Console:
    """A rich console; when the stream is not a terminal, wide enough that tables do not wrap their rows."""
    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, width=None if stream.isatty() else FILE_WIDTH)


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
