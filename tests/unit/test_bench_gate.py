"""The benchmark regression gate compares modelled device time, never wall time."""

from __future__ import annotations

import json
from pathlib import Path

from rig.report.bench_gate import main


def report(path: Path, device_s: dict[str, float | None], wall_s: float) -> Path:
    benchmarks = []
    for name, device in device_s.items():
        extra = {} if device is None else {"device_s": device}
        benchmarks.append({"fullname": name, "extra_info": extra, "stats": {"min": wall_s}})
    path.write_text(json.dumps({"benchmarks": benchmarks}))
    return path


def test_unchanged_device_time_passes_whatever_the_wall_clock_did(tmp_path: Path) -> None:
    base = report(tmp_path / "base.json", {"update": 25.0, "pyvesc codec": None}, wall_s=1.0)
    loaded = report(tmp_path / "now.json", {"update": 25.0, "pyvesc codec": None}, wall_s=3.0)  # a busy machine
    assert main([str(base), str(loaded)]) == 0


def test_more_device_time_is_a_regression(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    base = report(tmp_path / "base.json", {"update": 25.0, "config": 0.43}, wall_s=1.0)
    slower = report(tmp_path / "now.json", {"update": 26.0, "config": 0.432}, wall_s=1.0)
    assert main([str(base), str(slower)]) == 1
    out = capsys.readouterr().out
    assert "update" in out and "REGRESSED" in out and "1 of 2 gated benchmarks regressed" in out


def test_reports_without_device_time_are_not_a_green_run(tmp_path: Path) -> None:
    base = report(tmp_path / "base.json", {"pyvesc codec": None}, wall_s=1.0)
    assert main([str(base), str(base)]) == 2
