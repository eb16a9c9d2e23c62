"""F10: every update wipes the settings; the rig's backup brings them back, verified."""

from __future__ import annotations

import pytest
from scenario_steps import ensure_running

from rig.firmware.config import ConfigBackup, read_backup, restore, write_verified
from rig.errors import ConfigError
from rig.firmware.image import Image
from rig.protocol.codecs import ConfigKind
from rig.station.bench import StationRig


def test_config_survives_update_because_the_rig_restores_it(
    station: StationRig, config_backup: ConfigBackup, baseline_firmware: Image, firmware: Image, allow_wrong_hw: bool
) -> None:
    ensure_running(station, baseline_firmware, allow_wrong_hw=allow_wrong_hw)
    with station.connect() as esc:
        defaults = {kind: esc.get_config(kind, default=True) for kind in ConfigKind}
        if station.spec.sim is not None:  # a configured board, so the wipe shows (never done on hardware)
            blob = esc.get_config(ConfigKind.APPCONF)
            changed = bytes([blob.data[0] ^ 0x01]) + blob.data[1:]
            write_verified(esc, type(blob)(blob.kind, blob.signature, changed), esc.version)
        before = read_backup(esc)

    station.update(firmware, allow_wrong_hw=allow_wrong_hw)
    signed = before.blobs[ConfigKind.MCCONF].signature is not None
    with station.connect() as esc:
        wiped = {kind: esc.get_config(kind) for kind in ConfigKind}
        assert {k: b.data for k, b in wiped.items()} == {k: b.data for k, b in defaults.items()}, (
            "the update did not reset the config to the defaults"
        )
        if signed:  # the signature vouches for the layout on the new firmware too
            restore(esc, before)
            assert {kind: esc.get_config(kind) for kind in ConfigKind} == before.blobs
        else:  # before 3.50 nothing vouches for the layout across versions: the rig must refuse
            with pytest.raises(ConfigError):
                restore(esc, before)

    station.update(baseline_firmware, allow_wrong_hw=allow_wrong_hw)
    with station.connect() as esc:
        restore(esc, before)
        assert {kind: esc.get_config(kind) for kind in ConfigKind} == before.blobs
