"""rig.plugin.allure: a tiny scenario run against the simulated rack writes Allure results with rig steps,
the decoded link trace under the failed step and both forms of it on the failed test, a config diff,
categories.json that groups the failure by its diagnosis, and environment.properties; a product failure is
Failed, the rig's own error Broken; the failure's diagnosis is in the JUnit XML too."""

from __future__ import annotations

import hashlib
import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import allure
import pytest
from allure_commons import model2

from rig.captures.decode import decode_log
from rig.captures.directions import Role
from rig.errors import Diagnosis
from rig.factory.records import FAIL, PASS, RecordStore
from rig.plugin.allure import (
    RIG_OWN,
    FailedNotBroken,
    attach_throughput,
    categories,
    config_diff,
    diagnosis_tag,
    product_failure,
)
from rig.protocol.codecs import ConfigBlob, ConfigKind
from rig.protocol.framing import encode_frame
from rig.sim.image import make_firmware_image

pytest_plugins = ["pytester"]

SIM_RACK = Path(__file__).resolve().parents[2] / "fixtures" / "racks" / "sim.toml"
RUN_BOUND_S = 90.0

# F1 from the simulator's fault catalogue: a board without bootloader keeps its old firmware after the jump
SCENARIO = """
import pytest

from rig.protocol.codecs import ConfigBlob, ConfigKind
from rig.protocol.framing import encode_frame


def test_board_answers(station, board_record):
    with station.connect() as esc:
        assert esc.info is not None
    board_record.check("answers", True)


@pytest.mark.sim_only
def test_update_without_bootloader(station, sim, firmware, board_record):
    board_record.check("supply voltage", 24.1, 22.0, 26.0, "V")
    sim.fault("no_bootloader_returns")
    station.update(firmware)


def test_config_check():
    written = ConfigBlob(ConfigKind.MCCONF, 776184161, bytes(range(40)))
    read_back = ConfigBlob(ConfigKind.MCCONF, 776184161, bytes(range(20)) + b"\\xff" + bytes(range(21, 40)))
    assert read_back == written


def test_rig_refuses(station):
    from rig.errors import NotPermitted

    raise NotPermitted("erasing the bootloader needs --allow-destructive")
"""
SCENARIO_MODULE = "test_tiny_scenario"
FAILING = "test_update_without_bootloader[esc-602]"
RIG_OWN_FAILURE = "test_rig_refuses[esc-602]"
OUTCOMES = {"passed": 1, "failed": 3}


@dataclass
class ScenarioRun:
    """The outcome of the tiny scenario and where it wrote its reports."""

    outcomes: dict[str, int]
    results: Path
    junit: Path
    records: Path
    rig_dir: Path

    def tests(self) -> dict[str, dict]:
        found = (json.loads(p.read_text()) for p in self.results.glob("*-result.json"))
        return {t["name"]: t for t in found}

    def attachment(self, test: dict, name: str) -> str:
        (source,) = [a["source"] for a in test["attachments"] if a["name"] == name]
        return (self.results / source).read_text()


def run_scenario(pytester: pytest.Pytester) -> ScenarioRun:
    """Run SCENARIO on station esc-602 of the simulated rack in a fresh pytest process."""
    pytester.makepyfile(**{SCENARIO_MODULE: SCENARIO})
    ini = pytester.makeini("[pytest]\naddopts = -ra\n")  # not the project's: this folder is the rootdir
    results, junit = pytester.path / "allure-results", pytester.path / "junit.xml"
    records, rig_dir = pytester.path / "records.sqlite", pytester.path / "reports"
    outcome = pytester.runpytest_subprocess(
        *("--rack", str(SIM_RACK), "--station", "esc-602", "--rig-dir", str(rig_dir)),
        *("--alluredir", str(results), "--junitxml", str(junit), "--records", str(records)),
        *("-c", str(ini), "--rootdir", str(pytester.path), "-p", "no:cacheprovider", "-p", "no:randomly"),
        timeout=RUN_BOUND_S,
    )
    return ScenarioRun(outcome.parseoutcomes(), results, junit, records, rig_dir)


def _steps(steps: list[dict]) -> list[str]:
    return [name for s in steps for name in (s["name"], *_steps(s.get("steps", [])))]


def _outcomes(scenario: ScenarioRun) -> None:
    assert scenario.outcomes == OUTCOMES


def _rig_steps_become_allure_steps(scenario: ScenarioRun) -> None:
    failing = scenario.tests()[FAILING]
    steps = _steps(failing["steps"])
    for expected in ("connect", "erase new-app buffer", "write image", "jump to bootloader", "check the new version"):
        assert expected in steps
    (write,) = [s for s in failing["steps"] if s["name"] == "write image"]
    assert {p["name"] for p in write["parameters"]} >= {"bytes", "compressed"}
    assert [s["status"] for s in failing["steps"] if s["name"] == "check the new version"] == ["failed"]


def _product_failure_is_failed_the_rigs_own_broken(scenario: ScenarioRun) -> None:
    failing, own = scenario.tests()[FAILING], scenario.tests()[RIG_OWN_FAILURE]
    assert failing["status"] == "failed"  # an UpdateError: the board did not take the update
    assert own["status"] == "broken"  # NotPermitted: the rig refused before touching the board
    assert diagnosis_tag(Diagnosis.NOT_PERMITTED) in own["statusDetails"]["message"]


def _failed_step_gets_the_decoded_trace_around_the_failure(scenario: ScenarioRun) -> None:
    failing = scenario.tests()[FAILING]
    (step,) = [s for s in failing["steps"] if s["name"] == "check the new version"]
    assert [a["name"] for a in step["attachments"]] == ["esc-602: link trace at the failure"]
    excerpt = scenario.attachment(step, "esc-602: link trace at the failure")
    rows = [line for line in excerpt.splitlines() if line.startswith("L")]
    assert len(rows) == 40, "trimmed to the rows before the failure"
    assert "rig flush" in excerpt and "the rig's flush at a connect (1032 zero bytes)" in excerpt
    assert "garbage" not in excerpt, "the flush is not shown as garbage"
    assert re.search(r"->ESC\s+@\d+\s+WRITE_NEW_APP_DATA\s+\d+\s+offset \d+ \(0x[0-9a-f]+\), \d+ bytes", excerpt)
    assert re.search(r"<-ESC\s+@\d+\s+FW_VERSION\s+\d+\s+firmware 6\.02, hw 60, uid [0-9a-f]{24}", excerpt)
    assert "verdict" in excerpt and "unanswered requests: none" in excerpt
    # its line numbers are those of the raw hex attached to the test
    (jump,) = [row for row in rows if "JUMP_TO_BOOTLOADER" in row]
    raw = scenario.attachment(failing, "esc-602: link trace, raw hex").splitlines()
    number = int(jump.split()[0][1:])
    assert raw[number - 1].split("tx: ")[1] == encode_frame(bytes((1,))).hex(" ")
    others = [s for s in _all_steps(failing["steps"]) if s["name"] != "check the new version"]
    assert not any(s.get("attachments") for s in others if s["status"] == "passed")


def _all_steps(steps: list[dict]) -> list[dict]:
    return [x for s in steps for x in (s, *_all_steps(s.get("steps", [])))]


def _failure_message_carries_the_diagnosis(scenario: ScenarioRun) -> None:
    failing = scenario.tests()[FAILING]
    assert diagnosis_tag(Diagnosis.BOOTLOADER_MISSING) in failing["statusDetails"]["message"]
    junit = ET.parse(scenario.junit).getroot()
    (failure,) = [case.find("failure") for case in junit.iter("testcase") if case.get("name") == FAILING]
    assert failure is not None and diagnosis_tag(Diagnosis.BOOTLOADER_MISSING) in (failure.get("message") or "")


def _failed_test_gets_both_forms_of_the_trace(scenario: ScenarioRun) -> None:
    failing = scenario.tests()[FAILING]
    names = {a["name"] for a in failing["attachments"]}
    assert {"FW_VERSION of esc-602", "esc-602: link trace, decoded frames", "esc-602: link trace, raw hex"} <= names
    decoded = scenario.attachment(failing, "esc-602: link trace, decoded frames")
    assert re.search(r"->ESC\s+@\d+\s+FW_VERSION\s+6\s+request", decoded)
    assert "JUMP_TO_BOOTLOADER" in decoded and "verdict" in decoded
    raw = decode_log(scenario.attachment(failing, "esc-602: link trace, raw hex"))
    assert {e.command for e in raw.frames(Role.TO_ESC)} >= {"FW_VERSION", "ERASE_NEW_APP", "WRITE_NEW_APP_DATA"}
    passing = scenario.tests()["test_board_answers[esc-602]"]
    assert not [a for a in passing["attachments"] if "link trace" in a["name"]], "trace attached to a passing test"


def _failed_config_comparison_attaches_a_diff(scenario: ScenarioRun) -> None:
    test = scenario.tests()["test_config_check"]
    assert test["status"] == "failed"
    diff = scenario.attachment(test, "config diff")
    assert "1 bytes differ" in diff
    assert "-000010: 10 11 12 13 ff 15" in diff and "+000010: 10 11 12 13 14 15" in diff  # read_back == written


def _categories_group_the_failure_by_its_diagnosis(scenario: ScenarioRun) -> None:
    written = json.loads((scenario.results / "categories.json").read_text())
    assert written == categories()
    assert len(written) == len(Diagnosis)
    message = scenario.tests()[FAILING]["statusDetails"]["message"]
    # Allure 3 searches with each regex in order; the first match is the test's category
    matched = [c["name"] for c in written if re.search(c["messageRegex"], message)]
    assert matched[0] == "Update did not take: bootloader missing or rejected the image"


def _environment_names_rack_stations_images_and_versions(scenario: ScenarioRun) -> None:
    lines = (scenario.results / "environment.properties").read_text().splitlines()
    env = dict(line.split("=", 1) for line in lines)
    assert env["rack"] == "sim (simulated)" and env["stations"] == "esc-602"
    assert {"rig.version", "python.version", "pyocd.version", "pyserial.version"} <= set(env)
    image = make_firmware_image("60", "6.05")  # the candidate a served simulated rack makes for esc-602
    assert env["image.firmware.60.6.05.sha256"] == hashlib.sha256(image).hexdigest()


def _board_records_of_the_run(scenario: ScenarioRun) -> None:
    with RecordStore(scenario.records) as store:
        found = store.records(station="esc-602")
    assert [r.status for r in found] == [PASS, FAIL]
    assert found[0].uid and found[0].hw == "60" and found[0].fw == "6.02"
    assert [c.name for c in found[1].checks] == ["supply voltage"] and found[1].checks[0].passed
    assert len({r.run_id for r in found}) == 1


def test_tiny_scenario_writes_the_reports(pytester: pytest.Pytester) -> None:
    """One run of the scenario (a few seconds), every part of its reports checked."""
    run = run_scenario(pytester)
    _outcomes(run)
    _rig_steps_become_allure_steps(run)
    _product_failure_is_failed_the_rigs_own_broken(run)
    _failed_step_gets_the_decoded_trace_around_the_failure(run)
    _failure_message_carries_the_diagnosis(run)
    _failed_test_gets_both_forms_of_the_trace(run)
    _failed_config_comparison_attaches_a_diff(run)
    _categories_group_the_failure_by_its_diagnosis(run)
    _environment_names_rack_stations_images_and_versions(run)
    _board_records_of_the_run(run)


# --- pure parts ------------------------------------------------------------------------------------


@pytest.mark.parametrize("diagnosis", list(Diagnosis))
def test_each_category_matches_only_its_own_diagnosis(diagnosis: Diagnosis) -> None:
    message = f"rig.errors.RigError: something\n{diagnosis_tag(diagnosis)}\nmore"
    whole = [c["name"] for c in categories() if re.fullmatch(c["messageRegex"], message)]  # Allure 2: matches()
    assert whole == [diagnosis.value[0].upper() + diagnosis.value[1:]]


def test_categories_do_not_match_a_message_without_a_diagnosis() -> None:
    assert not [c for c in categories() if re.search(c["messageRegex"], "AssertionError: timeout")]


def test_config_diff_of_different_lengths_and_signatures() -> None:
    a = ConfigBlob(ConfigKind.APPCONF, 1, bytes(16))
    b = ConfigBlob(ConfigKind.APPCONF, 2, bytes(17))
    text = config_diff(a, b)
    assert text.splitlines()[0] == "appconf vs appconf: signature 1 vs 2, 16 vs 17 bytes, 1 bytes differ"
    assert "+000010: 00" in text


@pytest.mark.parametrize("diagnosis", list(Diagnosis))
def test_product_failures_and_the_rigs_own(diagnosis: Diagnosis) -> None:
    message = f"rig.errors.RigError: something\n{diagnosis_tag(diagnosis)}"
    assert product_failure(message) is (diagnosis not in RIG_OWN)


def test_rig_own_diagnoses_blame_the_rig() -> None:
    assert {d.name for d in RIG_OWN} == {
        "RACK_FILE", "LEASE", "NOT_PERMITTED", "WRONG_HARDWARE", "POWER_FAILED", "PORT_NEVER_WENT",
        "SWD_PROBE_MISSING", "SWD_PROBE_BUSY", "INTERRUPTED", "RECORDS", "REPORT", "SIM",
    }  # fmt: skip
    assert not product_failure("ZeroDivisionError: division by zero") and not product_failure(None)


def test_failed_not_broken_rewrites_results_and_their_steps() -> None:
    product = model2.StatusDetails(message=f"rig.errors.UpdateError: x\n{diagnosis_tag(Diagnosis.BOOTLOADER_MISSING)}")
    own = model2.StatusDetails(message=f"rig.errors.NotPermitted: x\n{diagnosis_tag(Diagnosis.NOT_PERMITTED)}")
    inner = model2.TestStepResult(name="check", status=model2.Status.BROKEN, statusDetails=product)
    outer = model2.TestStepResult(name="update", status=model2.Status.BROKEN, statusDetails=product, steps=[inner])
    other = model2.TestStepResult(name="erase", status=model2.Status.BROKEN, statusDetails=own)
    result = model2.TestResult(name="t", status=model2.Status.BROKEN, statusDetails=product, steps=[outer, other])
    FailedNotBroken().report_result(result)
    assert [result.status, outer.status, inner.status, other.status] == ["failed", "failed", "failed", "broken"]


BENCHMARK = """
def test_update_speed(benchmark):
    benchmark(lambda: None)
    benchmark.extra_info["phase_bytes_per_s"] = {"erase": 65000.0, "write": 48000.0}
    benchmark.extra_info["floor_bytes_per_s"] = {"write": 53000.0}
"""


def test_benchmark_results_carry_their_throughput(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)  # pytest-benchmark turns itself off under xdist
    pytester.makepyfile(test_bench=BENCHMARK)
    results = pytester.path / "allure-results"
    options = ("--benchmark-min-rounds=1", "--benchmark-max-time=0", "-p", "no:cacheprovider")
    outcome = pytester.runpytest_subprocess("--alluredir", str(results), *options)
    outcome.assert_outcomes(passed=1)
    (test,) = [json.loads(p.read_text()) for p in results.glob("*-result.json")]
    attached = {a["name"]: results / a["source"] for a in test.get("attachments", [])}
    assert set(attached) == {"throughput per phase", "throughput chart"}
    table = attached["throughput per phase"].read_text().splitlines()
    assert table[1].split() == ["update_speed", "·", "erase", "65.0", "-", "-"]
    assert table[2].split() == ["update_speed", "·", "write", "48.0", "53.0", "0.91"]
    assert ET.fromstring(attached["throughput chart"].read_bytes()).tag.endswith("svg")


def test_an_untimed_benchmark_attaches_no_throughput(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under --benchmark-disable pytest-benchmark's fixture is `disabled`: its single round measured nothing."""
    attached: list[str] = []
    monkeypatch.setattr(allure, "attach", lambda body, name, **kw: attached.append(name))
    info = {"phase_bytes_per_s": {"write": 48000.0}}
    for disabled in (True, False):
        item = SimpleNamespace(
            name="test_x", funcargs={"benchmark": SimpleNamespace(disabled=disabled, extra_info=info)}
        )
        attach_throughput(item)  # type: ignore[arg-type]
    assert attached == ["throughput per phase", "throughput chart"]  # only from the timed one
