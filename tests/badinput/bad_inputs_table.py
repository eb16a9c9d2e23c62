"""The bad-input catalogue: every bad image the rig is fed through each entry point, the error a user sees,
and what must survive. docs/bad-inputs.md is generated from this table (test_bad_inputs_doc.py keeps it current)."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from intelhex import IntelHex

from rig.device.memory import FLASH_BASE
from rig.sim.image import make_bootloader_image, make_firmware_image

HW, VERSION = "60", "6.02"  # the board under test runs this; its own image is the good one
ENTRY_POINTS = ("rig update", "rig swd flash", "pytest --firmware", "rig factory --firmware")
SURVIVES = "the board answers on its old firmware, flash byte for byte unchanged"


def _good() -> bytes:
    return make_firmware_image(HW, "6.05")


def _bin(data: bytes) -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        path = folder / "fw.bin"
        path.write_bytes(data)
        return path

    return write


def _hex(lines: Callable[[list[str]], list[str]]) -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        good = IntelHex()
        good.frombytes(_good()[:0x1000], offset=FLASH_BASE)
        path = folder / "fw.hex"
        good.write_hex_file(str(path))
        path.write_text("\n".join(lines(path.read_text().splitlines())) + "\n")
        return path

    return write


def _foreign(folder: Path) -> Path:
    path = folder / "410" / "VESC_default.bin"  # a desktop-tool folder names the hardware: 410, not 60
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(make_firmware_image("410", "6.05"))
    return path


@dataclass(frozen=True)
class BadInput:
    name: str
    what: str
    make: Callable[[Path], Path]  # writes the file into a folder, returns its path
    error: str  # what the user sees (a fragment of the message), at every entry point
    diagnosis: str


CASES = (
    BadInput("random", "524280 random bytes", _bin(random.Random(1).randbytes(524280)), "is not in RAM", "bad image"),
    BadInput("zero-filled", "524280 zero bytes", _bin(bytes(524280)), "is not in RAM", "bad image"),
    BadInput("empty", "an empty file", _bin(b""), "empty firmware image", "bad image"),
    BadInput(
        "oversize",
        "800 KB (past the app region)",
        _bin(_good() + bytes(300_000)),
        "larger than the firmware region",
        "bad image",
    ),
    BadInput(
        "truncated",
        "a 6.05 .bin cut at 450000 of its 524280 bytes",
        _bin(_good()[:450_000]),
        "truncated or padded",
        "bad image",
    ),
    BadInput(
        "record-garbled",
        "a 6.05 .bin whose integrity record (its last 8 bytes) is garbage",
        _bin(_good()[:-8] + bytes(range(1, 9))),
        "neither the build's placeholder nor a valid record",
        "bad image",
    ),
    BadInput(
        "bootloader",
        "a bootloader image given as firmware",
        _bin(make_bootloader_image()),
        "points outside",
        "bad image",
    ),
    BadInput("foreign", "firmware for hardware 410 (a 60 board)", _foreign, "410", "wrong hardware"),
    BadInput(
        "hex-truncated",
        "a .hex without its end-of-file record",
        _hex(lambda lines: lines[:-1]),
        "no end-of-file record",
        "bad image",
    ),
    BadInput(
        "hex-corrupt",
        "a .hex with a bad record checksum",
        _hex(lambda lines: [lines[0][:-2] + "00", *lines[1:]]),
        "corrupt hex file",
        "bad image",
    ),
)


def table_markdown() -> str:
    """The table as docs/bad-inputs.md holds it."""
    lines = [
        "# Bad inputs: refused before anything is erased",
        "",
        "Generated from `tests/badinput/bad_inputs_table.py`",
        "(`tests/badinput/test_bad_inputs_doc.py` keeps it current).",
        f"Every input is fed through every entry point ({', '.join(f'`{e}`' for e in ENTRY_POINTS)}) to a",
        f"simulated board on firmware {VERSION}, hardware {HW}; each must be refused with the error below, and",
        f"afterwards: {SURVIVES}.",
        "",
        "| input | what it is | the error a user sees (part of it) | diagnosis |",
        "|---|---|---|---|",
    ]
    lines += [f"| {c.name} | {c.what} | `{c.error}` | {c.diagnosis} |" for c in CASES]
    lines += ["", f"{len(CASES)} inputs x {len(ENTRY_POINTS)} entry points = {len(CASES) * len(ENTRY_POINTS)} cases."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(table_markdown(), end="")
