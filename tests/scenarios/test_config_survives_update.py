"""F10: every update wipes the settings; the station session's backup brings them back, verified.

The evidence is the session's config care for the update: the config read after the update differed
from the one before (the firmware wiped it), and the session wrote the backup back and read it back
equal. Where the layout changed (another signature; or, before 3.50, another version) the old blob
cannot be written as it is: with the schemas of both layouts (VESC Tool's, through the rack file's
``schemas`` or $VESC_TOOL_SRC; docs/config-schemas.md) the session carries it over by field name and
lists what it could not carry; without them it keeps the backup and says why. Either way the field diff
between the configs before and after the update goes to the report (rig.events.attach).
"""

from __future__ import annotations

from pathlib import Path

from rig.config.codec import ConfigValues, decode, encode
from rig.config.diff import diff_blobs, diff_text
from rig.errors import ConfigError
from rig.events import attach
from rig.firmware.config import read_backup
from rig.firmware.image import Image
from rig.protocol.codecs import ConfigBlob, ConfigKind
from rig.station.configs import ConfigCare
from rig.station.session import StationSession
from rig.station.strategy import Running, StationStrategy

SETTING = "l_current_max"  # an mcconf field of every layout from 3.55 to 7.01


def _configs(station: StationSession) -> dict[ConfigKind, ConfigBlob]:
    with station.connect() as esc:
        return read_backup(esc).blobs


def _named(station: StationSession, blob: ConfigBlob) -> ConfigValues | None:
    """The blob by field, when the session's schema source has its layout."""
    schema = None if blob.signature is None else station.keeper.schemas.find(blob.kind, blob.signature)
    return None if schema is None else decode(schema, blob)


def _attach_field_diff(station: StationSession, title: str, before: dict, after: dict) -> None:
    try:
        text = diff_text(diff_blobs(before, after, station.keeper.schemas), title)
    except ConfigError as exc:
        sizes = ", ".join(f"{k.value} {before[k].signature} -> {after[k].signature}" for k in ConfigKind)
        text = f"{title}\nno field diff ({exc})\nsignatures: {sizes}\n"
    attach(title, text)


def test_config_survives_update_because_the_rig_restores_it(
    station: StationSession,
    config_backup: ConfigCare,
    baseline_firmware: Image,
    firmware: Image,
    strategy: StationStrategy,
) -> None:
    strategy.transition(Running(baseline_firmware))
    with station.connect() as esc:
        version = esc.version
        current = esc.get_config(ConfigKind.MCCONF)
    named = _named(station, current)
    if station.spec.sim is not None:  # a configured board, so a wipe shows (never done to a board of hardware)
        if named is not None and SETTING in named:  # a setting by name: it must survive a layout change too
            changed = encode(named.with_values({SETTING: float(named[SETTING]) - 1.0}))
        else:  # opaque bytes: flip one in the middle (no field is known to be safe to change)
            middle = len(current.data) // 2
            data = current.data[:middle] + bytes([current.data[middle] ^ 0x01]) + current.data[middle + 1 :]
            changed = ConfigBlob(current.kind, current.signature, data)
        station.write_config(changed, made_for=version)
    before = _configs(station)

    station.update(firmware)
    care = station.report.configs[-1]
    local = next(n for n in care.nodes if n.node == "local")
    assert care.operation.startswith("update to"), care.operation
    after = _configs(station)
    _attach_field_diff(station, f"config fields across the update to {firmware.version}", before, after)
    same_layout = before[ConfigKind.MCCONF].signature is not None and all(
        care.local.blobs[k].signature == after[k].signature for k in ConfigKind
    )
    if same_layout:
        assert local.changed, "the update did not wipe the config (F10 not reproduced, or nothing was checked)"
        assert local.restored and local.verified, local.describe()
        assert after == before
        assert not Path(local.file).exists(), "a verified backup was kept"
    elif local.migration:  # the layout changed and both schemas were there: carried over by field name
        attach("config migration by field", "\n".join([local.note, *local.migration]) + "\n")
        assert local.restored and local.verified, local.describe()
        assert not Path(local.file).exists(), "a verified backup was kept"
        old, new = _named(station, before[ConfigKind.MCCONF]), _named(station, after[ConfigKind.MCCONF])
        assert old is not None and new is not None and new[SETTING] == old[SETTING], "the setting did not survive"
    else:  # the layout changed, no schemas for it: the old blob must not be written, the backup must stay
        assert not local.verified and "layout changed" in local.note, local.describe()
        assert "not migrated by field" in local.note, local.note  # and why not (no schema, no signature)
        assert Path(local.file).is_file()

    station.update(baseline_firmware)
    if same_layout:
        assert _configs(station) == before
    elif local.migration:  # back across the layout change: the setting survives that way too
        back = _named(station, _configs(station)[ConfigKind.MCCONF])
        old = _named(station, before[ConfigKind.MCCONF])
        assert back is not None and old is not None and back[SETTING] == old[SETTING]
