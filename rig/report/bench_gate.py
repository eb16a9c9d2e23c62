"""The benchmark regression gate: compares the device time a host caused, not how long the host took.

Wall-clock times of the simulated benchmarks move with the load of a shared machine; the simulator's
modelled device time (``extra_info["device_s"]``: erase, programming, USB frames, reboots, as the device
model charges them) moves only when the host makes the device do more work (more frames, resends, extra
erases, a slower path). The gate fails when a benchmark's device time grows beyond the tolerance; wall
times are reported beside it, never gated. Benchmarks without device time (the codec comparison with
pyvesc, which measures this host's CPU) are reported only.

Usage: ``python -m rig.report.bench_gate BASELINE.json LATEST.json [--tolerance 0.02] [--floor-s 0.005]``
(the JSON files pytest-benchmark writes with ``--benchmark-json`` / ``--benchmark-save``). Exit 1 on a
regression, 2 on unusable input.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TOLERANCE = 0.02  # relative growth of device time that is a regression
FLOOR_S = 0.005  # and at least this much (modelled rounding of a few frames is not a regression)


@dataclass(frozen=True)
class Comparison:
    name: str
    baseline_s: float | None
    latest_s: float | None
    baseline_wall_s: float | None
    latest_wall_s: float | None

    @property
    def gated(self) -> bool:
        return self.baseline_s is not None and self.latest_s is not None

    def regressed(self, tolerance: float, floor_s: float) -> bool:
        if not self.gated:
            return False
        assert self.baseline_s is not None and self.latest_s is not None
        grown = self.latest_s - self.baseline_s
        return grown > floor_s and grown > tolerance * self.baseline_s


def _benchmarks(path: Path) -> dict[str, dict[str, Any]]:
    try:
        doc = json.loads(path.read_text())
        return {b["fullname"]: b for b in doc["benchmarks"]}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SystemExit(f"{path}: not a pytest-benchmark JSON report ({exc})") from None


def _device_s(bench: dict[str, Any] | None) -> float | None:
    value = (bench or {}).get("extra_info", {}).get("device_s")
    return float(value) if isinstance(value, int | float) else None


def _wall_s(bench: dict[str, Any] | None) -> float | None:
    stats = (bench or {}).get("stats") or {}
    return float(stats["min"]) if "min" in stats else None


def compare(baseline: Path, latest: Path) -> list[Comparison]:
    old, new = _benchmarks(baseline), _benchmarks(latest)
    return [
        Comparison(
            name, _device_s(old.get(name)), _device_s(new.get(name)), _wall_s(old.get(name)), _wall_s(new.get(name))
        )
        for name in sorted(set(old) | set(new))
    ]


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rig.report.bench_gate", description=__doc__.splitlines()[0])
    parser.add_argument("baseline", type=Path)
    parser.add_argument("latest", type=Path)
    parser.add_argument("--tolerance", type=float, default=TOLERANCE, help="relative growth (default %(default)s)")
    parser.add_argument("--floor-s", type=float, default=FLOOR_S, help="absolute growth (default %(default)s s)")
    args = parser.parse_args(argv)
    rows = compare(args.baseline, args.latest)
    if not any(r.gated for r in rows):
        print("bench gate: no benchmark has device time in both reports; nothing to compare", file=sys.stderr)
        return 2
    failed = [r for r in rows if r.regressed(args.tolerance, args.floor_s)]
    print(
        f"{'benchmark':<60} {'device s (base)':>15} {'device s (now)':>15} {'wall s (base)':>13} {'wall s (now)':>13}"
    )
    for r in rows:
        mark = "REGRESSED" if r in failed else ("" if r.gated else "(reported only)")
        print(
            f"{r.name[-60:]:<60} {_fmt(r.baseline_s):>15} {_fmt(r.latest_s):>15} "
            f"{_fmt(r.baseline_wall_s):>13} {_fmt(r.latest_wall_s):>13} {mark}"
        )
    print(
        f"bench gate: {len(failed)} of {sum(r.gated for r in rows)} gated benchmarks regressed "
        f"(device time +{args.tolerance:.0%} and +{args.floor_s:g} s); wall times are reported, not gated"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
