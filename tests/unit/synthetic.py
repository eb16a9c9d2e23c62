"""The synthetic firmware 6.90 -> 6.91 (rig.device.firmware.SYNTHETIC) for tests of an update that changes
the config layout: the project's own schemas (fixtures/schemas) let the rig migrate the configs by field, as
it does with VESC Tool's schemas on a real rack. Every other behaviour of the synthetic firmware is 6.06's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rig.client.esc import Esc
from rig.config.codec import ConfigValues, Value, decode, encode
from rig.config.source import SchemaSource
from rig.firmware.config import write_verified
from rig.protocol.codecs import ConfigBlob, ConfigKind

SCHEMAS = Path(__file__).resolve().parents[2] / "fixtures" / "schemas"
SOURCE = SchemaSource.resolve([SCHEMAS])
OLD, NEW = "6.90", "6.91"  # mcconf and appconf layouts both differ
CHANGED = {"l_current_max": 50.0, "foc_motor_r": 0.125}  # fields both layouts have, away from the defaults


def rack(*stations: dict[str, Any], name: str = "syn", **keys: Any) -> dict[str, Any]:
    """A simulated rack on the synthetic firmware with the schemas named (stations default to 6.90, hw 60);
    `keys` are further top-level keys (relay, supply, ...)."""
    filled = [{**s, "sim": {"hw": "60", "fw": OLD, **s.get("sim", {})}} for s in stations]
    return {"name": name, "simulated": True, "schemas": str(SCHEMAS), "station": filled, **keys}


def values(blob: ConfigBlob) -> ConfigValues:
    assert blob.signature is not None
    return decode(SOURCE.by_signature(blob.kind, blob.signature), blob)


def configure(esc: Esc) -> dict[str, Value]:
    """Write CHANGED into the board's mcconf (verified); the mcconf values after, by field."""
    written = values(esc.get_config(ConfigKind.MCCONF)).with_values(CHANGED)
    return dict(values(write_verified(esc, encode(written), esc.version, exact=False)))


def mcconf_now(esc: Esc) -> dict[str, Value]:
    return dict(values(esc.get_config(ConfigKind.MCCONF)))
