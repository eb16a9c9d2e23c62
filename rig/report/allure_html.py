"""The HTML report from allure-results, made by the real Allure 3 command line.

Allure 3 (npm package ``allure``, installed into ``.allure/`` by ``scripts/install-allure.sh``) needs
only Node.js; Allure 2 would need a Java runtime as well. Allure 3's default report (its "awesome"
plugin) takes categories from the report's config file, not from ``categories.json`` in the results
(only its Allure 2 compatible plugins read that), so the config written here carries the categories
of the results' ``categories.json``: the pytest plugin (rig.plugin.allure) stays the one source.

The report works offline: generating it needs no network, and the page loads nothing from outside its
folder once Allure's analytics tag (Google Tag Manager, which its template always adds) is taken out.
A browser does not let the page load its data from ``file://``, so it is opened over HTTP: ``allure
open`` or any static server (``python3 -m http.server``); :func:`how_to_open` says so.

Usage: ``python -m rig.report.allure_html reports/allure-results -o reports/allure-report [--allure PATH]``
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from rig.errors import Diagnosis, RigError

log = logging.getLogger(__name__)

DEFAULT_ALLURE = Path(".allure") / "node_modules" / ".bin" / "allure"
GENERATE_BOUND_S = 300.0
REPORT_NAME = "vesc-rig"
SUITE_LABELS = ["parentSuite", "suite", "subSuite"]  # the results tree by suite, as allure-pytest labels them
# Allure 3's page template loads Google's gtag.js and reports each opening of the report (analyticsEnable).
_ANALYTICS = re.compile(
    r"<script async src=\"https://www\.googletagmanager\.com/gtag/js[^\"]*\"></script>\s*<script>.*?gtag\(.*?</script>",
    re.S,
)


class ReportError(RigError):
    """The results or the Allure command line are missing, or the report could not be made."""

    diagnosis = Diagnosis.REPORT


def report_config(results: Path, output: Path, name: str = REPORT_NAME) -> dict[str, object]:
    """The Allure 3 config (allurerc.json) for one report: its name, output and categories."""
    config: dict[str, object] = {
        "name": name,
        "output": str(output.resolve()),
        "plugins": {"awesome": {"options": {"reportName": name, "groupBy": SUITE_LABELS}}},
    }
    categories = results / "categories.json"
    if categories.is_file():
        config["categories"] = json.loads(categories.read_text(encoding="utf-8"))
    return config


def generate(
    results: Path,
    output: Path,
    *,
    allure: Path = DEFAULT_ALLURE,
    name: str = REPORT_NAME,
    bound_s: float = GENERATE_BOUND_S,
) -> Path:
    """Run ``allure generate`` on `results` into `output`; the report's index.html."""
    if not any(results.glob("*-result.json")):
        raise ReportError(f"no Allure results in {results}: run the tests with --alluredir {results} first")
    if not allure.is_file():
        raise ReportError(f"no Allure command line at {allure}: run scripts/install-allure.sh")
    with tempfile.TemporaryDirectory(prefix="vesc-rig-allure-") as tmp:
        config = Path(tmp) / "allurerc.json"
        config.write_text(json.dumps(report_config(results, output, name), indent=1), encoding="utf-8")
        command = [str(allure), "generate", str(results), "--config", str(config), "--output", str(output)]
        log.info("%s", " ".join(command))
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=bound_s, check=False)
        except subprocess.TimeoutExpired as exc:
            raise ReportError(f"allure generate did not finish within {bound_s:g} s") from exc
    if done.returncode != 0:
        raise ReportError(f"allure generate failed ({done.returncode}): {(done.stderr or done.stdout)[-2000:]}")
    index = output / "index.html"
    if not index.is_file():
        raise ReportError(f"allure generate finished but wrote no {index}")
    index.write_text(without_analytics(index.read_text(encoding="utf-8")), encoding="utf-8")
    return index


def without_analytics(page: str) -> str:
    """The report page without Allure's analytics tag (it would load gtag.js from Google on every opening)."""
    return _ANALYTICS.sub("", page)


def how_to_open(report: Path, allure: Path = DEFAULT_ALLURE) -> str:
    """How to look at a report: over HTTP, since a browser refuses the report's data from file://."""
    folder = str(report)
    return (
        f"Allure report: {report / 'index.html'}\n"
        "Open it over HTTP (a browser does not let it load its data from file://), with either of:\n"
        f"  {allure} open {folder}\n"
        f"  python3 -m http.server --bind 127.0.0.1 --directory {folder} 8000   # then http://127.0.0.1:8000/\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rig.report.allure_html", description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="the allure-results folder (pytest --alluredir)")
    parser.add_argument("-o", "--output", type=Path, default=Path("reports/allure-report"), help="report folder")
    parser.add_argument(
        "--allure", type=Path, default=DEFAULT_ALLURE, help=f"the Allure 3 CLI (default {DEFAULT_ALLURE})"
    )
    parser.add_argument("--name", default=REPORT_NAME, help="the report's title")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        index = generate(args.results, args.output, allure=args.allure, name=args.name)
    except ReportError as exc:
        print(f"allure report: {exc}", file=sys.stderr)
        return 1
    print(how_to_open(index.parent, args.allure), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
