"""The HTML report, made by the real Allure 3 command line from the tiny scenario's results and opened in
headless Chromium over HTTP (127.0.0.1), without screenshots: the page's DOM after its scripts ran.

It shows the suites and tests, the failure grouped under its diagnosis, the failed update as **Failed** with
the decoded link trace attached under the step that failed, and the rig's own refusal as **Broken**.

The set-up scripts install Allure (npm) and Chromium (apt) when missing. When they cannot, because the
package registry cannot be reached (exit status 3: no network), this test is skipped with that reason: a
machine without network cannot get a browser, and that is no fault of the code. Any other failure of the
scripts (Node.js or npm missing, no root for apt, a broken install) fails the test, loudly.
"""

from __future__ import annotations

import functools
import json
import re
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from test_reporting import FAILING, OUTCOMES, RIG_OWN_FAILURE, SCENARIO_MODULE, run_scenario

from rig.report.allure_html import how_to_open, main, without_analytics

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]
INSTALL_BOUND_S = 600.0  # a first install downloads Allure (npm) or Chromium (apt)
OFFLINE = 3  # the set-up scripts' exit status when the package registry cannot be reached
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
STEP_TRACE = "esc-602: link trace at the failure"


def _installed(script: str) -> Path:
    """Run a set-up script (idempotent); the path it prints. Skip only when it reports no network."""
    try:
        done = subprocess.run(
            [str(ROOT / "scripts" / script)], capture_output=True, text=True, timeout=INSTALL_BOUND_S, check=False
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"scripts/{script} did not finish within {INSTALL_BOUND_S:g} s")
    if done.returncode == OFFLINE:
        pytest.skip(f"scripts/{script}: no network: {done.stderr.strip().splitlines()[-1]}")
    if done.returncode != 0:
        pytest.fail(f"scripts/{script} failed ({done.returncode}): {done.stderr.strip()[-800:]}")
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


# --- the page's DOM ------------------------------------------------------------------------------------

_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


@dataclass
class Node:
    """An element of the rendered page: its tag, attributes, children and text."""

    tag: str
    attrs: dict[str, str]
    children: list[Node] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)

    def text(self) -> str:
        parts = [*self.texts, *(child.text() for child in self.children)]
        return " ".join(" ".join(parts).split())

    def find(self, testid: str) -> list[Node]:
        """Elements below this one (this one included) with that data-testid, in document order."""
        here = [self] if self.attrs.get("data-testid") == testid else []
        return here + [found for child in self.children for found in child.find(testid)]


class _Tree(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.root = Node("document", {})
        self.stack = [self.root]
        self.skip = 0  # inside <script> or <style>

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self.skip += 1
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in _VOID:
            self.stack.append(node)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self.skip -= 1
        for depth in range(len(self.stack) - 1, 0, -1):
            if self.stack[depth].tag == tag:
                del self.stack[depth:]
                break

    def handle_data(self, data: str) -> None:
        if not self.skip and data.strip():
            self.stack[-1].texts.append(data)


def rendered(browser: Path, url: str, profile: Path) -> Node:
    """The page's DOM once its scripts have run (headless Chromium's --dump-dom)."""
    done = subprocess.run(
        [str(browser), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", url],
        capture_output=True,
        text=True,
        timeout=BROWSER_BOUND_S,
        check=False,
    )
    assert done.returncode == 0, f"chromium failed on {url}: {done.stderr[-1000:]}"
    tree = _Tree()
    tree.feed(done.stdout)
    return tree.root


def report_ids(report: Path) -> dict[str, str]:
    """Test name -> the id the report's own pages use for it (its test-results.json)."""
    by_id = json.loads((report / "test-results.json").read_text())["byId"]
    return {entry["name"]: test_id for test_id, entry in by_id.items()}


def step_titled(page: Node, title: str) -> Node:
    steps = [s for s in page.find("test-result-step") if s.find("test-result-step-title")[0].text() == title]
    assert len(steps) == 1, f"{len(steps)} steps titled {title!r}"
    return steps[0]


def test_report_in_a_browser(  # noqa: PLR0913 - the fixtures it needs
    pytester: pytest.Pytester,
    allure_cli: Path,
    chromium: Path,
    served: tuple[Path, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run = run_scenario(pytester)
    assert run.outcomes == OUTCOMES
    capsys.readouterr()  # what pytester printed
    folder, base = served
    assert main([str(run.results), "-o", str(folder), "--allure", str(allure_cli)]) == 0
    assert capsys.readouterr().out == how_to_open(folder, allure_cli)
    page = (folder / "index.html").read_text()
    assert not re.search(r"""(src|href)=["']https?://""", page), "the report page loads something from the web"

    results = rendered(chromium, f"{base}/index.html", tmp_path / "profile-results").text()
    assert SCENARIO_MODULE in results, "the suite (test module) is not in the results tree"
    for test in ("test_board_answers[esc-602]", FAILING, "test_config_check", RIG_OWN_FAILURE):
        assert test in results
    assert "sim (simulated)" in results, "the environment (rack) is not shown"

    grouped = rendered(chromium, f"{base}/index.html#/categories", tmp_path / "profile-categories").text()
    assert CATEGORY in grouped, "the failure is not grouped under its diagnosis"
    assert "Product errors" in grouped, "the plain assertion failure is not in Allure's default category"
    assert "Timeout" not in grouped, "a category without failures is shown"

    ids = report_ids(folder)
    failed = rendered(chromium, f"{base}/index.html#/{ids[FAILING]}", tmp_path / "profile-failed")
    assert [n.text() for n in failed.find("test-result-status-failed")] == ["Failed"], "the update is not Failed"
    assert not failed.find("test-result-status-broken")
    step = step_titled(failed, "check the new version")
    header = step.find("test-result-step-header")[0]
    assert header.find("tree-leaf-status-failed"), "the step that failed is not shown failed"
    attached = [a.text() for a in step.find("test-result-attachment-header")]
    assert any(STEP_TRACE in a for a in attached), f"no decoded trace under the failed step: {attached}"
    assert not step_titled(failed, "write image").find("test-result-attachment-header"), "trace under a passed step"

    broken = rendered(chromium, f"{base}/index.html#/{ids[RIG_OWN_FAILURE]}", tmp_path / "profile-broken")
    assert [n.text() for n in broken.find("test-result-status-broken")] == ["Broken"], "the rig's own error"


def test_how_to_open_says_http_both_ways() -> None:
    text = how_to_open(Path("reports/allure-report"), Path(".allure/node_modules/.bin/allure"))
    assert "over HTTP" in text and "file://" in text
    assert ".allure/node_modules/.bin/allure open reports/allure-report" in text
    assert "python3 -m http.server --bind 127.0.0.1 --directory reports/allure-report 8000" in text


def test_analytics_tag_is_taken_out_and_nothing_else() -> None:
    page = (
        '<div id="app"></div>\n    <script async src="https://www.googletagmanager.com/gtag/js?id=G-X"></script>\n'
        "    <script>\n        window.dataLayer = window.dataLayer || [];\n"
        "        function gtag(){dataLayer.push(arguments);}\n"
        "        gtag('js', new Date());\n    </script>\n    <script>window.allure = {};</script>"
    )
    assert without_analytics(page) == '<div id="app"></div>\n    \n    <script>window.allure = {};</script>'
