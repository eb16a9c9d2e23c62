"""Small steps the scenarios share."""

from __future__ import annotations

from rig.station.bench import UpdateResult


def assert_phases(result: UpdateResult) -> None:
    """Every phase of an update was measured."""
    times = result.times
    assert min(times.erase_s, times.write_s, times.boot_s, times.ready_s) >= 0.0
    assert times.total_s > 0.0
    assert result.upload.stats.bytes_sent > 0
