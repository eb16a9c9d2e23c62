"""`rig sim image --hw 60 --version 6.02 -o fw.bin` (or `--bootloader`): write a simulated image.

Images are deterministic (same arguments, same bytes): a firmware image laid out as its release's .bin is
(size, gap fill, the integrity-record placeholder from 3.56; any release 3.40 .. 7.01), or a bootloader
for sector 11 of either generation (2022: heatshrink, 5280 bytes generic; 2015: none, 3792 bytes).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rig.device.firmware import PROFILES
from rig.device.update_format import BootloaderGeneration
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
    image.add_argument("--version", choices=sorted(PROFILES), help="firmware release (required without --bootloader)")
    image.add_argument("--size", type=int, default=None, help="image size in bytes (default: the profile's)")
    image.add_argument("--bootloader", action="store_true", help="write a bootloader image instead")
    image.add_argument(
        "--generation",
        choices=[g.value for g in BootloaderGeneration],
        default=BootloaderGeneration.CURRENT.value,
        help="bootloader generation: 2022 decompresses heatshrink (6.x images need it), 2015 does not",
    )
    image.add_argument("-o", "--output", type=Path, required=True, help="output .bin file")
    image.set_defaults(func=run_image)


def run_image(args: argparse.Namespace) -> int:
    if args.bootloader:
        data = make_bootloader_image(args.hw or "generic", BootloaderGeneration(args.generation))
    else:
        if args.version is None or args.hw is None:
            raise SimError(" --hw and --version are required for a firmware image")
        data = make_firmware_image(args.hw, args.version, args.size)
    args.output.write_bytes(data)
    descriptor = read_descriptor(data)
    assert descriptor is not None
    what = f"bootloader ({args.generation})" if args.bootloader else f"firmware {descriptor.version}"
    print(f"{args.output}: {what} for hw {descriptor.hw_name}, {len(data)} bytes")
    return 0
