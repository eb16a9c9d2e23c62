"""rig.report.throughput_chart: reads pytest-benchmark JSON and writes a self-contained SVG bar chart."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from rig.report.throughput_chart import PhaseRate, main, rates_of, read_rates, render, svg, table


def _bench_json(tmp_path: Path) -> Path:
    data = {
        "benchmarks": [
            {
                "name": "test_update_small_image[window1]",
                "extra_info": {
                    "phase_bytes_per_s": {"erase": 65000.0, "write": 48000.0, "total": math.inf},
                    "floor_bytes_per_s": {"erase": 65400.0, "write": 53000.0},
                },
            },
            {"name": "test_rig_codec", "extra_info": {"bytes_per_s": 1e8}},  # no phases: not charted
        ]
    }
    path = tmp_path / "latest.json"
    path.write_text(json.dumps(data).replace("Infinity", "1e999"))
    return path


def test_reads_phases_and_floors(tmp_path: Path) -> None:
    rates = read_rates(_bench_json(tmp_path))
    assert rates == [
        PhaseRate("update_small_image[window1]", "erase", 65000.0, 65400.0),
        PhaseRate("update_small_image[window1]", "write", 48000.0, 53000.0),
    ]


def test_cli_writes_svg_with_labels(tmp_path: Path) -> None:
    out = tmp_path / "charts" / "throughput.svg"
    assert main([str(_bench_json(tmp_path)), "-o", str(out)]) == 0
    text = out.read_text()
    root = ET.fromstring(text.encode())  # well-formed XML
    scripts = [e for e in root.iter() if e.tag.endswith("script")]
    assert all(not any(k.endswith(("src", "href")) for k in e.attrib) for e in scripts), "nothing loaded from the web"
    assert "update_small_image[window1] · write" in text
    assert "floor (modelled device)" in text


def test_nothing_to_chart_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="phase_bytes_per_s"):
        render([], tmp_path / "x.svg")


def test_table_and_svg_of_one_benchmarks_extra_info(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    info = {"phase_bytes_per_s": {"erase": 65000.0, "write": 48000.0}, "floor_bytes_per_s": {"write": 53000.0}}
    rates = rates_of("test_update[6.02-window1]", info)
    text = table(rates)
    assert text.splitlines()[1:] == [
        f"{'update[6.02-window1] · erase':<48} {65.0:10.1f} {'-':>11} {'-':>9}",
        f"{'update[6.02-window1] · write':<48} {48.0:10.1f} {53.0:11.1f} {48 / 53:9.2f}",
    ]
    assert ET.fromstring(svg(rates)).tag.endswith("svg")
    assert rates_of("test_codec", {"bytes_per_s": 1.0}) == []
    assert main([str(_bench_json(tmp_path)), "-o", str(tmp_path / "t.svg")]) == 0
    assert "update_small_image[window1] · write" in capsys.readouterr().out  # the CLI prints the table
