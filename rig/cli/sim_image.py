"""`rig sim image --hw 60 --version 6.02 -o fw.bin` (or `--bootloader`): write a simulated image.

Images are deterministic (same arguments, same bytes): a firmware image of the profile's realistic
size with 0xFF padding, or a 5.5 KB bootloader image for sector 11.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rig.device.firmware import PROFILES
from rig.sim.errors import SimError
from rig.sim.image import make_bootloader_image, make_firmware_image, read_descriptor


def add_image_command(sim_subparsers: argparse._SubParsersAction) -> None:
    """Add `image` to the `rig sim` group's sub-parsers."""
    image = sim_subparsers.add_parser(
        "image",
        help="write a deterministic simulated firmware or bootloader image",
        description="Write a firmware image that the simulated ESC runs (its descriptor names the hardware "
        "and the firmware profile), or with --bootloader a bootloader image for sector 11.",
    )
    image.add_argument("--hw", default=None, help="hardware name, e.g. 60 or 410 (bootloader default: generic)")
    image.add_argument("--version", choices=sorted(PROFILES), help="firmware profile (required without --bootloader)")
    image.add_argument("--size", type=int, default=None, help="image size in bytes (default: the profile's)")
    image.add_argument("--bootloader", action="store_true", help="write a bootloader image instead")
    image.add_argument("-o", "--output", type=Path, required=True, help="output .bin file")
    image.set_defaults(func=run_image)


def run_image(args: argparse.Namespace) -> int:
    if args.bootloader:
        data = make_bootloader_image(args.hw or "generic")
    else:
        if args.version is None or args.hw is None:
            raise SimError(" --hw and --version are required for a firmware image")
        data = make_firmware_image(args.hw, args.version, args.size)
    args.output.write_bytes(data)
    descriptor = read_descriptor(data)
    assert descriptor is not None
    what = "bootloader" if args.bootloader else f"firmware {descriptor.version}"
    print(f"{args.output}: {what} for hw {descriptor.hw_name}, {len(data)} bytes")
    return 0
