"""The end of a run: what each station did, and why tests skipped on it (per station, one line per reason)."""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest

_OUTCOMES = ("passed", "failed", "skipped", "error")


class StationSummary:
    """Collects the outcome of every station test, by station."""

    def __init__(self) -> None:
        self.outcomes: dict[str, Counter[str]] = defaultdict(Counter)
        self.skips: dict[str, Counter[str]] = defaultdict(Counter)

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        station = dict(report.user_properties).get("station")
        if not isinstance(station, str):
            return
        if report.when == "call" or (report.when == "setup" and not report.passed):
            outcome = "error" if report.when == "setup" and report.failed else report.outcome
            self.outcomes[station][outcome] += 1
            if report.skipped and isinstance(report.longrepr, tuple):
                self.skips[station][str(report.longrepr[2]).removeprefix("Skipped: ")] += 1

    @pytest.hookimpl
    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.outcomes:
            return
        terminalreporter.section("vesc-rig stations")
        for station in sorted(self.outcomes):
            counts = ", ".join(f"{self.outcomes[station][o]} {o}" for o in _OUTCOMES if self.outcomes[station][o])
            terminalreporter.write_line(f"{station}: {counts}")
            for reason, n in self.skips[station].most_common():
                terminalreporter.write_line(f"    skipped {n}x: {reason}")


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(StationSummary(), "vesc-rig-station-summary")
