"""The mcconf/appconf layout of every released firmware with published config schemas, as plain numbers.

For each firmware version: the u32 signature it sends in front of its GET_MCCONF/GET_APPCONF reply
(``MCCONF_SIGNATURE``/``APPCONF_SIGNATURE`` of bldc ``confgenerator.h``) and the number of field bytes
after the signature (counted in ``confgenerator_serialize_*``). These are facts about the firmware, not
the schemas themselves: the schemas (names, types, scales, defaults) stay in the user's VESC Tool copy
(rig.config.source, docs/config-schemas.md). rig.config checks every schema it loads against this table.

Source: vedderb/bldc at the tag or release branch of each version (research notes config-schemas.md
section 3). Where a tag does not hold the released state: 3.58 is the rebuilt release 8619ccf4 (the tag
still has 3.57's appconf), 3.62 is "Final v3.62" dfc3ed23 (the tag still says 3.61). 7.01 is a beta
(FW_TEST_VERSION_NUMBER 1, master b9d287b3): its signatures change while master moves.

Signatures repeat across versions (6.00 and 6.02 share both), so a signature names a layout, not a
version: look schemas up by signature, use the version for messages.
"""

from __future__ import annotations

from dataclasses import dataclass

from rig.device.firmware import CONFIGS
from rig.protocol.codecs import ConfigKind
from rig.protocol.commands import FirmwareVersion, fw


@dataclass(frozen=True)
class ReleasedLayout:
    """One config of a released firmware: its signature and the bytes of fields after it."""

    signature: int
    size: int


# The versions VESC Tool publishes schemas for (its res/config/<version>/ folders); their signatures and sizes
# are the firmware's, kept once in rig.device.firmware (CONFIGS, with the commit each was read at).
PUBLISHED = (
    "3.55", "3.56", "3.57", "3.58", "3.59", "3.60", "3.61", "3.62", "3.63", "3.64", "3.65", "3.66",
    "4.00", "4.01", "4.02", "5.00", "5.01", "5.02", "5.03", "6.00", "6.02", "6.05", "6.06", "7.00", "7.01",
)  # fmt: skip


def _released(version: FirmwareVersion) -> dict[ConfigKind, ReleasedLayout]:
    layouts = {}
    for layout in CONFIGS.at(version):
        assert layout.signature is not None, f"{version} publishes a schema, so it has a signature"
        layouts[layout.kind] = ReleasedLayout(layout.signature, layout.size)
    return layouts


RELEASED_LAYOUTS: dict[FirmwareVersion, dict[ConfigKind, ReleasedLayout]] = {
    fw(version): _released(fw(version)) for version in PUBLISHED
}


# The vedderb/bldc ref each row was read from (rig config schemas check --bldc compares against it).
BLDC_REFS: dict[FirmwareVersion, str] = {
    fw(version): ref
    for version, ref in {
        **{v: v for v in ("3.55", "3.56", "3.57", "3.59", "3.60", "3.61", "3.63", "3.64", "3.65", "3.66")},
        **{v: v for v in ("4.00", "4.01", "4.02", "5.02", "5.03", "6.00")},
        "3.58": "8619ccf4",  # "Updated compiled FWs" after the 3.58 tag: the released 3.58
        "3.62": "dfc3ed23",  # "Final v3.62" (the tag 3.62 still says 3.61)
        "5.00": "v5.00",  # the tag "5.00" carries 5.01
        "5.01": "5.00",
        "6.02": "release_6_02",
        "6.05": "release_6_05",
        "6.06": "release_6_06",
        "7.00": "release_7_00",
        "7.01": "b9d287b3",  # master when the table was read; 7.01 is a beta and moves
    }.items()
}


def released_layout(version: FirmwareVersion, kind: ConfigKind) -> ReleasedLayout | None:
    """The layout firmware `version` has for `kind`, or None when the table does not know the version."""
    layouts = RELEASED_LAYOUTS.get(version)
    return None if layouts is None else layouts[kind]


def versions_with(kind: ConfigKind, signature: int) -> tuple[FirmwareVersion, ...]:
    """The released versions whose `kind` has this signature (several versions share layouts)."""
    return tuple(v for v, layouts in RELEASED_LAYOUTS.items() if layouts[kind].signature == signature)
