"""Config read and write: defaults and the original, each read back equal, signatures checked (F8)."""

from __future__ import annotations

from rig.protocol.codecs import SIGNATURE_SINCE, ConfigKind
from rig.station.configs import ConfigCare
from rig.station.session import StationSession


def test_config_round_trip(station: StationSession, config_backup: ConfigCare) -> None:
    before = config_backup.local
    version = before.version
    for kind in ConfigKind:
        with station.connect() as esc:
            original = esc.get_config(kind)
            default = esc.get_config(kind, default=True)
        assert original == before.blobs[kind]
        if version >= SIGNATURE_SINCE:
            assert original.signature is not None and original.signature == default.signature
        else:
            assert original.signature is None and default.signature is None
        assert len(default.data) == len(original.data), "default and current config differ in layout"

        station.write_config(default, made_for=version)
        with station.connect() as esc:
            assert esc.get_config(kind) == default
        station.write_config(original, made_for=version)
        with station.connect() as esc:
            assert esc.get_config(kind) == original
