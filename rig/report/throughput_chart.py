"""Throughput per phase as a table and an SVG chart, from a pytest-benchmark JSON file or one benchmark's extra_info.

Usage: ``python -m rig.report.throughput_chart reports/benchmarks/latest.json -o reports/benchmarks/throughput.svg``
(the table is printed). The Allure side of the pytest plugin attaches both to each benchmark's result.

Every benchmark whose ``extra_info`` holds ``phase_bytes_per_s`` (a phase -> bytes/s mapping, as the
flash benchmarks write it) becomes one bar per phase; ``floor_bytes_per_s`` beside it, where present,
is the modelled device's limit for the same image. The SVG is self-contained: it loads nothing
(pygal's tooltip script is left out; only its inline config object remains).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import pygal
from pygal.style import CleanStyle

log = logging.getLogger(__name__)

RIG_KEY = "phase_bytes_per_s"
FLOOR_KEY = "floor_bytes_per_s"


@dataclass(frozen=True)
class PhaseRate:
    """One bar pair: a benchmark's phase, its measured and its floor throughput (bytes/s)."""

    benchmark: str
    phase: str
    rig: float
    floor: float | None

    @property
    def label(self) -> str:
        return f"{self.benchmark} · {self.phase}"


def _finite(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def rates_of(benchmark: str, extra_info: dict[str, object]) -> list[PhaseRate]:
    """The per-phase throughputs one benchmark recorded in its extra_info (none when it records none)."""
    measured, floors = extra_info.get(RIG_KEY), extra_info.get(FLOOR_KEY) or {}
    if not isinstance(measured, dict) or not isinstance(floors, dict):
        return []
    name = benchmark.removeprefix("test_")
    rates = []
    for phase, value in measured.items():
        rig = _finite(value)
        if rig is not None:
            rates.append(PhaseRate(name, phase, rig, _finite(floors.get(phase))))
    return rates


def read_rates(path: Path) -> list[PhaseRate]:
    """The per-phase throughputs recorded in a pytest-benchmark JSON file."""
    data = json.loads(Path(path).read_text())
    return [
        rate
        for bench in data.get("benchmarks", [])
        for rate in rates_of(bench.get("name", "?"), bench.get("extra_info", {}))
    ]


def table(rates: list[PhaseRate]) -> str:
    """The rates as a text table (kB/s), with the floor and rig / floor where the floor is known."""
    rows = [f"{'benchmark · phase':<48} {'rig kB/s':>10} {'floor kB/s':>11} {'rig/floor':>9}"]
    for rate in rates:
        floor = f"{rate.floor / 1000:11.1f}" if rate.floor else f"{'-':>11}"
        ratio = f"{rate.rig / rate.floor:9.2f}" if rate.floor else f"{'-':>9}"
        rows.append(f"{rate.label:<48} {rate.rig / 1000:10.1f} {floor} {ratio}")
    return "\n".join(rows) + "\n"


def svg(rates: list[PhaseRate], *, title: str = "Flash throughput per phase") -> bytes:
    """A horizontal bar chart (kB/s) of `rates` as a self-contained SVG document."""
    if not rates:
        raise ValueError(f"no per-phase throughput ({RIG_KEY}) in the benchmark data")
    chart = pygal.HorizontalBar(
        title=f"{title} (kB/s)",
        style=CleanStyle,
        js=[],  # self-contained: no tooltip script fetched from the web
        width=900,
        height=max(300, 40 * len(rates) + 120),
        legend_at_bottom=True,
        print_values=True,
        value_formatter=lambda v: f"{v:.1f}",
    )
    chart.x_labels = [rate.label for rate in rates]
    chart.add("rig", [rate.rig / 1000 for rate in rates])
    if any(rate.floor is not None for rate in rates):
        chart.add("floor (modelled device)", [None if rate.floor is None else rate.floor / 1000 for rate in rates])
    rendered: bytes = chart.render()
    return rendered


def render(rates: list[PhaseRate], out: Path, *, title: str = "Flash throughput per phase") -> Path:
    """Write the chart of `rates` to `out`."""
    document = svg(rates, title=title)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(document)
    log.info("wrote %s (%d bars)", out, len(rates))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rig.report.throughput_chart", description=__doc__.splitlines()[0])
    parser.add_argument("json", type=Path, help="pytest-benchmark JSON (--benchmark-json)")
    parser.add_argument("-o", "--output", type=Path, default=Path("reports/benchmarks/throughput.svg"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        rates = read_rates(args.json)
        render(rates, args.output, title=f"Flash throughput per phase: {args.json.name}")
    except (OSError, ValueError) as exc:  # json.JSONDecodeError is a ValueError
        parser.error(str(exc))
    print(table(rates), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
