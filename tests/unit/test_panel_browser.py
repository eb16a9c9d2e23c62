"""The operator panel in a real browser: Debian's Chromium, headless, driven by Playwright with
executable_path (Playwright never downloads a browser here), on the embedded simulated rack served in this
process; page and panel on 127.0.0.1.

An operator scans two labels (typed, then Enter, as a barcode scanner does), starts both boards, one with a
fault: the page shows one PASS and one FAIL in plain words. A third board is stopped mid-flash and answers on its
old firmware afterwards. The records are in the list, a failed one shows its step log and decoded trace, and the
export downloads the same records as `rig records export`. The server restarts under the open page, which
reconnects and shows the same truth.

Chromium comes from scripts/install-chromium.sh (apt). When it cannot be had the test fails with the script's
complaint: a missing browser is a misconfigured machine, not a reason for a green run.

The run takes the screenshots docs/panel.md shows (idle, running, pass-fail, record): into the test's
temporary folder, or into $RIG_PANEL_SCREENSHOTS (`make panel-screenshots` renews docs/panel/ that way).
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Locator, Page, expect, sync_playwright
from test_panel import make_panel

from rig.cli import main
from rig.errors import Diagnosis
from rig.panel.server import PanelServer
from rig.panel.words import PLAIN
from rig.sim.serve import SimRack
from rig.station.session import StationSession
from rig.station.state import StateDir

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS_ENV = "RIG_PANEL_SCREENSHOTS"
INSTALL_BOUND_S = 600.0
RUN_MS = 60_000  # a bring-up on the simulated rack takes a few seconds; this bounds a stuck one
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def chromium() -> Path:
    """Debian's Chromium, installed by scripts/install-chromium.sh when missing; the test fails if it cannot be."""
    script = REPO / "scripts" / "install-chromium.sh"
    try:
        done = subprocess.run([str(script)], capture_output=True, text=True, timeout=INSTALL_BOUND_S, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{script} did not finish within {INSTALL_BOUND_S:g} s")
    if done.returncode != 0:
        pytest.fail(f"no Chromium for the panel's browser test: {script} failed: {done.stderr.strip()[-500:]}")
    return Path(done.stdout.strip().splitlines()[-1])


@pytest.fixture
def browser(chromium: Path, tmp_path: Path) -> Iterator[BrowserContext]:
    """A headless Chromium with a fresh profile; downloads allowed (the export)."""
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=str(chromium),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1360, "height": 900},
            accept_downloads=True,
        )
        try:
            yield context
        finally:
            context.close()


def card(page: Page, station: str) -> Locator:
    return page.locator(f'[data-station="{station}"]')


def scan(page: Page, label: str) -> None:
    """What a barcode scanner does: type into the focused field, then Enter."""
    page.keyboard.type(label)
    page.keyboard.press("Enter")


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Where the screenshots go: $RIG_PANEL_SCREENSHOTS, else the test's own folder."""
    folder = Path(os.environ.get(SCREENSHOTS_ENV) or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def shoot(page: Page, folder: Path, name: str) -> None:
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)
    assert (folder / f"{name}.png").stat().st_size > 0


def test_an_operator_session_in_the_browser(
    sim_rack: SimRack, browser: BrowserContext, shots: Path, tmp_path: Path
) -> None:
    state = StateDir.at(tmp_path / "state")
    panel = make_panel(sim_rack, state)
    server = PanelServer(panel, port=0).start()
    try:
        page = browser.new_page()
        page.goto(server.url)
        expect(page.locator("#conn")).to_have_text("live")
        expect(page.locator(".station")).to_have_count(6)  # the embedded rack's stations
        expect(card(page, "esc-602").locator(".verdict")).to_have_text("IDLE")
        shoot(page, shots, "idle")

        # two boards scanned in a row: after Enter the next station's field has the focus
        sim_rack.fault("esc-340", "bootloader_rejects")  # F2: its firmware update will not take
        card(page, "esc-602").locator(".label-input").click()
        scan(page, "SN-0001")
        expect(card(page, "esc-602").locator(".next-label")).to_have_text("next board: SN-0001")
        scan(page, "SN-0002")
        expect(card(page, "esc-340").locator(".next-label")).to_have_text("next board: SN-0002")
        page.locator("#start-all").click()
        expect(page.locator("#message")).to_contain_text("started: esc-602, esc-340")
        expect(card(page, "esc-602").locator(".verdict")).to_have_text("PASS", timeout=RUN_MS)
        expect(card(page, "esc-340").locator(".verdict")).to_have_text("FAIL", timeout=RUN_MS)
        good, bad = card(page, "esc-602"), card(page, "esc-340")
        expect(good.locator(".f-label")).to_have_text("SN-0001")
        expect(good.locator(".f-uid")).to_have_text(sim_rack.device("esc-602").spec.uid.hex())
        expect(good.locator(".f-fw")).to_have_text("6.05")
        expect(bad.locator(".what")).to_have_text(PLAIN[Diagnosis.BOOTLOADER_MISSING].what)
        expect(bad.locator(".remedy")).to_have_text(PLAIN[Diagnosis.BOOTLOADER_MISSING].remedy)
        expect(bad.locator(".left")).to_have_text("board: running firmware 3.40; powered off")
        expect(bad.locator(".start")).to_be_hidden()  # it stays off until acknowledged
        expect(bad.locator(".ack")).to_be_visible()
        expect(page.locator("#counts")).to_contain_text(f"1 × {Diagnosis.BOOTLOADER_MISSING.value}")

        # a third board stopped mid-flash (a slow link makes the upload last a few seconds)
        sim_rack.fault("esc-502", "link_slow", delay_s=0.01)
        card(page, "esc-502").locator(".label-input").click()
        scan(page, "SN-0003")
        card(page, "esc-502").locator(".start").click()
        third = card(page, "esc-502")
        expect(third.locator(".step")).to_contain_text("firmware over USB", timeout=RUN_MS)
        expect(third.locator(".bytes")).to_contain_text("write")  # the upload is under way
        shoot(page, shots, "running")
        third.locator(".stop").click()
        expect(third.locator(".verdict")).to_have_text("STOPPED", timeout=RUN_MS)
        expect(third.locator(".detail-text")).to_contain_text("before the jump on esc-502")
        sim_rack.fault("esc-502", "link_slow", on=False)
        shoot(page, shots, "pass-fail")
        with StationSession(sim_rack.resolved, "esc-502", state=state) as session:  # the panel let it go
            session.power_on()  # the flow powered the stopped board off
            assert str(session.read_board().version) == "5.02"  # its old firmware, not the 5.03 it was getting

        # the records: labels in the list, a failed board's step log and decoded trace
        rows = page.locator("#record-list tbody tr")
        expect(rows).to_have_count(3)
        expect(page.locator("#record-list tbody")).to_contain_text("SN-0003")
        page.locator("#record-list tbody tr", has_text="SN-0002").click()
        detail = page.locator("#record-detail")
        expect(detail.locator("h3")).to_contain_text("SN-0002 on esc-340, FAIL")
        expect(detail.locator("tr.failed", has_text="firmware over USB")).to_have_count(1)
        expect(detail).to_contain_text("JUMP_TO_BOOTLOADER")  # the decoded trace excerpt
        expect(detail).to_contain_text("Trace excerpt")
        shoot(page, shots, "record")

        # the failed board acknowledged: its station may start again
        bad.locator(".ack").click()
        expect(bad.locator(".verdict")).to_have_text("IDLE")
        expect(bad.locator(".start")).to_be_visible()

        # the export: the same records as `rig records export`
        exported = {}
        for kind in ("csv", "json"):
            with page.expect_download() as download:
                page.locator(f"#export-{kind}").click()
            exported[kind] = Path(download.value.path()).read_text()
            cli = tmp_path / f"cli.{kind}"
            assert main(["records", "export", "--db", str(state.records), "--format", kind, "-o", str(cli)]) == 0
            assert exported[kind] == cli.read_text()
        labels = {row["record"]: row["label"] for row in csv.DictReader(io.StringIO(exported["csv"]))}
        assert sorted(labels.values()) == ["SN-0001", "SN-0002", "SN-0003"]
        assert {r["label"]: r["status"] for r in json.loads(exported["json"])} == {
            "SN-0001": "PASS",
            "SN-0002": "FAIL",
            "SN-0003": "FAIL",
        }

        # the server restarts under the open page: it reconnects and shows the same truth
        port = server.port
        server.stop()
        expect(page.locator("#conn")).to_have_text("reconnecting…")
        panel.close()
        panel = make_panel(sim_rack, state)
        server = PanelServer(panel, port=port).start()
        expect(page.locator("#conn")).to_have_text("live", timeout=15_000)
        expect(good.locator(".verdict")).to_have_text("PASS")
        expect(third.locator(".verdict")).to_have_text("STOPPED")
        expect(third.locator(".what")).to_have_text(PLAIN[Diagnosis.INTERRUPTED].what)
        expect(bad.locator(".verdict")).to_have_text("IDLE")
        assert panel.stations["esc-502"].as_json()["last"]["outcome"]["diagnosis"] == Diagnosis.INTERRUPTED.value
    finally:
        server.stop()
        assert panel.close() == []
