"""F10: every update wipes the settings; the station session's backup brings them back, verified.

The evidence is the session's config care for the update: the config read after the update differed
from the one before (the firmware wiped it), and the session wrote the backup back and read it back
equal. Where the layout changed (another signature; or, before 3.50, another version), the session
must not write the old blob: it keeps the backup and says why.
"""

from __future__ import annotations

from pathlib import Path

from rig.firmware.config import read_backup
from rig.firmware.image import Image
from rig.protocol.codecs import ConfigBlob, ConfigKind
from rig.station.configs import ConfigCare
from rig.station.session import StationSession
from rig.station.strategy import Running, StationStrategy


def _configs(station: StationSession) -> dict[ConfigKind, ConfigBlob]:
    with station.connect() as esc:
        return read_backup(esc).blobs


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
    if station.spec.sim is not None:  # a configured board, so a wipe shows (never done to a board of hardware)
        middle = len(current.data) // 2  # opaque bytes: no field is known to be safe to change on hardware
        changed = current.data[:middle] + bytes([current.data[middle] ^ 0x01]) + current.data[middle + 1 :]
        station.write_config(ConfigBlob(current.kind, current.signature, changed), made_for=version)
    before = _configs(station)

    station.update(firmware)
    care = station.report.configs[-1]
    local = next(n for n in care.nodes if n.node == "local")
    assert care.operation.startswith("update to"), care.operation
    same_layout = before[ConfigKind.MCCONF].signature is not None and all(
        care.local.blobs[k].signature == _configs(station)[k].signature for k in ConfigKind
    )
    if same_layout:
        assert local.changed, "the update did not wipe the config (F10 not reproduced, or nothing was checked)"
        assert local.restored and local.verified, local.describe()
        assert _configs(station) == before
        assert not Path(local.file).exists(), "a verified backup was kept"
    else:  # the layout changed: the old blob must not be written, the backup must stay
        assert not local.verified and "layout changed" in local.note, local.describe()
        assert Path(local.file).is_file()

    station.update(baseline_firmware)
    if same_layout:
        assert _configs(station) == before
