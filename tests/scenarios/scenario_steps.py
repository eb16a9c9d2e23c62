"""Small steps the scenarios share."""

from __future__ import annotations

from rig.firmware.image import Image
from rig.station.bench import StationRig, UpdateResult


def ensure_running(station: StationRig, image: Image, *, allow_wrong_hw: bool, all_can: bool = False) -> None:
    """Bring the station's board(s) to `image`'s version if they run something else."""
    with station.connect() as esc:
        assert esc.info is not None
        versions = {esc.info.version} | {client.fw_version().version for node, client in station.nodes(esc) if node}
    if versions != {image.version}:
        station.update(image, allow_wrong_hw=allow_wrong_hw, all_can=all_can)


def assert_phases(result: UpdateResult) -> None:
    """Every phase of an update was measured."""
    times = result.times
    assert min(times.erase_s, times.write_s, times.boot_s, times.ready_s) >= 0.0
    assert times.total_s > 0.0
    assert result.upload.stats.bytes_sent > 0
