"""The HTML report, made by the real Allure 3 command line from the tiny scenario's results and opened in
headless Chromium over HTTP (127.0.0.1): its suites, tests and the failure's diagnosis category are there.

The set-up scripts install Allure (npm) and Chromium (apt) when missing; without them (no network, no
root) this test is skipped with the reason.
"""

from __future__ import annotations

import functools
import html
import re
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from test_reporting import FAILING, SCENARIO_MODULE, run_scenario

from rig.report.allure_html import generate

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]
INSTALL_BOUND_S = 600.0  # a first install downloads Allure (npm) or Chromium (apt)
BROWSER_BOUND_S = 60.0
RENDER_BUDGET_MS = 10_000  # virtual time for the report's scripts to fetch its data and draw
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    f"--virtual-time-budget={RENDER_BUDGET_MS}",
    "--dump-dom",
)
CATEGORY = "Update did not take: bootloader missing or rejected the image"


def _installed(script: str) -> Path:
    """Run a set-up script (idempotent); the path it prints, or skip with its complaint."""
    try:
        done = subprocess.run(
            [str(ROOT / "scripts" / script)], capture_output=True, text=True, timeout=INSTALL_BOUND_S, check=False
        )
    except subprocess.TimeoutExpired:
        pytest.skip(f"scripts/{script} did not finish within {INSTALL_BOUND_S:g} s")
    if done.returncode != 0:
        pytest.skip(f"scripts/{script} failed: {done.stderr.strip()[-500:]}")
    return Path(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def allure_cli() -> Path:
    return _installed("install-allure.sh")


@pytest.fixture(scope="module")
def chromium() -> Path:
    return _installed("install-chromium.sh")


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass


@pytest.fixture
def served() -> Iterator[tuple[Path, str]]:
    """A folder served over HTTP on an ephemeral port of 127.0.0.1: (folder, base URL)."""
    with tempfile.TemporaryDirectory(prefix="vesc-rig-report-") as tmp:
        handler = functools.partial(_QuietHandler, directory=tmp)
        with ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
            thread = threading.Thread(target=server.serve_forever, daemon=True)
            thread.start()
            try:
                yield Path(tmp), f"http://127.0.0.1:{server.server_address[1]}"
            finally:
                server.shutdown()
                thread.join(timeout=5)


def visible_text(browser: Path, url: str, profile: Path) -> str:
    """The page's text once its scripts have run (headless Chromium's --dump-dom), scripts and styles left out."""
    done = subprocess.run(
        [str(browser), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", url],
        capture_output=True,
        text=True,
        timeout=BROWSER_BOUND_S,
        check=False,
    )
    assert done.returncode == 0, f"chromium failed on {url}: {done.stderr[-1000:]}"
    dom = re.sub(r"<(script|style)\b.*?</\1>", " ", done.stdout, flags=re.S | re.I)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", dom)))


def test_report_shows_suites_and_the_diagnosis_category(
    pytester: pytest.Pytester, allure_cli: Path, chromium: Path, served: tuple[Path, str], tmp_path: Path
) -> None:
    run = run_scenario(pytester)
    assert run.outcomes == {"passed": 1, "failed": 2}
    folder, base = served
    index = generate(run.results, folder, allure=allure_cli)
    assert index == folder / "index.html"

    results = visible_text(chromium, f"{base}/index.html", tmp_path / "profile-results")
    assert SCENARIO_MODULE in results, "the suite (test module) is not in the results tree"
    for test in ("test_board_answers[esc-602]", FAILING, "test_config_check"):
        assert test in results
    assert "sim (simulated)" in results, "the environment (rack) is not shown"

    grouped = visible_text(chromium, f"{base}/index.html#/categories", tmp_path / "profile-categories")
    assert CATEGORY in grouped, "the failure is not grouped under its diagnosis"
    assert "Product errors" in grouped, "the plain assertion failure is not in Allure's default category"
    assert "Timeout" not in grouped, "a category without failures is shown"
