"""Config read and write: defaults and the original, each read back equal, signatures checked (F8)."""

from __future__ import annotations

from rig.firmware.config import ConfigBackup, write_verified
from rig.client.esc import Esc
from rig.protocol.codecs import SIGNATURE_SINCE, ConfigKind


def test_config_round_trip(esc: Esc, config_backup: ConfigBackup) -> None:
    version = config_backup.version
    for kind in ConfigKind:
        original = esc.get_config(kind)
        default = esc.get_config(kind, default=True)
        assert original == config_backup.blobs[kind]
        if version >= SIGNATURE_SINCE:
            assert original.signature is not None and original.signature == default.signature
        else:
            assert original.signature is None and default.signature is None
        assert len(default.data) == len(original.data), "default and current config differ in layout"

        write_verified(esc, default, version)
        assert esc.get_config(kind) == default
        write_verified(esc, original, version)
        assert esc.get_config(kind) == original
