"""The Allure side of the vesc-rig pytest plugin (loaded by rig.plugin.core).

- Inside each test, rig steps (rig.events) become nested Allure steps and rig attachments (FW_VERSION
  of every connect, ...) Allure attachments.
- A step that fails gets the end of its station's link trace, decoded (`rig trace decode`: frames with
  their payloads, the rig's flush labelled, the verdict) under it: the frames that led to the failure.
- A failing test gets its station's whole link trace twice: decoded, and as the raw hex log (what `rig
  trace decode` reads back). ``--rig-attach always`` attaches it to passing tests too, ``never`` attaches
  no trace at all.
- Failed, not Broken: Allure calls a test Failed only for an AssertionError; any other exception makes it
  Broken. A RigError whose diagnosis blames the board (it did not answer, the update did not take, the
  config is mixed, ...) is a product failure, so the results of tests, steps and fixtures that ended with
  one are reported Failed; Broken stays for the rig's own errors (rack file, lease, power control, the
  simulator, ...: RIG_OWN) and for bugs. This is an allure_commons plugin whose `report_result` runs
  before the results are written; allure-pytest has no other way to choose a status (allure-python #377).
- A benchmark that records throughput per phase (``extra_info``, as the flash benchmarks do) gets its
  throughput table and chart (rig.report.throughput_chart) attached to its result (not under
  ``--benchmark-disable``, whose single untimed round measures nothing).
- A failed ``==`` between two configs (ConfigBlob or ConfigBackup) gets a hex diff, attached and shown.
- A RigError gets the note ``[diagnosis: <value>]`` before pytest reports it, so the text is part of
  the failure message everywhere: terminal, JUnit XML, Allure's statusDetails.message. The alluredir's
  categories.json has one category per Diagnosis whose messageRegex matches that note.
- environment.properties in the alluredir: rack, stations, image hashes, the versions of the rig,
  Python, pyocd and pyserial (pytest-xdist workers hand their image hashes to the controller).
"""

from __future__ import annotations

import difflib
import json
import mimetypes
import os
import platform
import re
import threading
from collections.abc import Generator
from importlib import metadata
from pathlib import Path

import allure
import allure_commons
import pytest
from allure_commons._allure import StepContext  # what allure.step(title) returns
from allure_commons.model2 import ExecutableItem, Status, TestResult, TestResultContainer
from allure_commons.types import AttachmentType
from allure_commons.utils import represent

import rig
from rig import events
from rig.captures.decode import decode_log
from rig.captures.render import report_text
from rig.captures.verdict import verdict
from rig.errors import Diagnosis, RigError
from rig.firmware.config import ConfigBackup
from rig.firmware.image import Image
from rig.plugin.records import failed_so_far
from rig.protocol.codecs import ConfigBlob
from rig.report.throughput_chart import rates_of, svg, table
from rig.station.rack import load_rack
from rig.station.session import StationSession
from rig.transport.link import Trace, TraceEntry

ATTACH_WHEN = ("failed", "always", "never")
CATEGORIES_FILE = "categories.json"
ENVIRONMENT_FILE = "environment.properties"
DIFF_ROW_BYTES = 16
STEP_TRACE_ROWS = 40  # rows of the decoded trace under a failed step
STEP_TRACE_CHUNKS = 200  # the end of the trace decoded for them (a whole update is ~800 chunks)
_WORKER_IMAGES = "rig_images"  # key of pytest-xdist's workeroutput

_STATION = pytest.StashKey[StationSession]()
_IMAGES = pytest.StashKey[dict[str, str]]()
_STATUSES = pytest.StashKey["FailedNotBroken"]()


# --- diagnoses and categories ------------------------------------------------------------------------


def diagnosis_tag(diagnosis: Diagnosis) -> str:
    """The text the rig adds to a failure message, and that categories match."""
    return f"[diagnosis: {diagnosis.value}]"


def _regex_escape(text: str) -> str:
    """Escape for both regex dialects that read categories.json: Java (Allure 2) and JavaScript (Allure 3)."""
    return re.sub(r"([\\^$.|?*+()\[\]{}])", r"\\\1", text)


def categories() -> list[dict[str, object]]:
    """One Allure category per Diagnosis, for failed and broken tests.

    Allure 2 matches messageRegex against the whole message (Java's Pattern.matches), Allure 3 searches
    it (JavaScript's RegExp.test); ``[\\s\\S]*`` on both sides works for both, across lines.
    """
    return [
        {
            "name": diagnosis.value[0].upper() + diagnosis.value[1:],
            "messageRegex": rf"[\s\S]*{_regex_escape(diagnosis_tag(diagnosis))}[\s\S]*",
            "matchedStatuses": ["failed", "broken"],
        }
        for diagnosis in Diagnosis
    ]


def _note_diagnosis(exc: RigError) -> None:
    tag = diagnosis_tag(exc.diagnosis)
    if tag not in getattr(exc, "__notes__", ()):
        exc.add_note(tag)


# --- failed or broken --------------------------------------------------------------------------------

# Diagnoses of the rig's own failures: its configuration, its bench hardware, its bookkeeping, the
# simulator. Every other diagnosis says what the board (or the firmware under test) did wrong.
RIG_OWN: frozenset[Diagnosis] = frozenset(
    {
        Diagnosis.RACK_FILE,
        Diagnosis.LEASE,
        Diagnosis.NOT_PERMITTED,
        Diagnosis.WRONG_HARDWARE,  # the run was given an image for other hardware: refused before touching the board
        Diagnosis.POWER_FAILED,
        Diagnosis.PORT_NEVER_WENT,
        Diagnosis.SWD_PROBE_MISSING,
        Diagnosis.SWD_PROBE_BUSY,
        Diagnosis.INTERRUPTED,
        Diagnosis.RECORDS,
        Diagnosis.REPORT,
        Diagnosis.SIM,
    }
)
PRODUCT_TAGS: tuple[str, ...] = tuple(diagnosis_tag(d) for d in Diagnosis if d not in RIG_OWN)


def product_failure(message: str | None) -> bool:
    """Whether a failure message carries the diagnosis of a product failure (the note a RigError gets)."""
    return message is not None and any(tag in message for tag in PRODUCT_TAGS)


def _failed_not_broken(item: ExecutableItem) -> None:
    """Broken -> Failed for this result and its steps where a product failure ended them."""
    details = item.statusDetails
    if item.status == Status.BROKEN and details is not None and product_failure(details.message):
        item.status = Status.FAILED
    for step in item.steps:
        _failed_not_broken(step)


class FailedNotBroken:
    """An allure_commons plugin: product failures are Failed, in tests, steps and fixtures, before writing."""

    @allure_commons.hookimpl(tryfirst=True)
    def report_result(self, result: TestResult) -> None:
        _failed_not_broken(result)

    @allure_commons.hookimpl(tryfirst=True)
    def report_container(self, container: TestResultContainer) -> None:
        for fixture in (*container.befores, *container.afters):
            _failed_not_broken(fixture)


# --- steps and attachments ---------------------------------------------------------------------------


def _attachment_type(mime: str) -> tuple[AttachmentType | str, str | None]:
    """Allure's own type for a known MIME type, else the MIME type and an extension for the file."""
    for known in AttachmentType:
        if known.mime_type == mime:
            return known, None
    return mime, (mimetypes.guess_extension(mime) or ".attach").lstrip(".")


class AllureSteps:
    """A rig.events listener: rig steps become nested Allure steps, rig attachments Allure attachments.

    A step that ends with an exception gets the end of the station's link trace, decoded, before it
    closes (only the innermost step an exception passes through).
    """

    def __init__(self, item: pytest.Item | None = None) -> None:
        self._local = threading.local()
        self._item = item
        self._traced: list[BaseException] = []

    def _open(self) -> list[StepContext]:
        if not hasattr(self._local, "steps"):
            self._local.steps = []
        return self._local.steps

    def step_started(self, title: str, params: dict[str, object]) -> None:
        context = allure.step(title)
        context.params = {name: represent(value) for name, value in params.items()}
        context.__enter__()
        self._open().append(context)

    def step_ended(self, title: str, seconds: float, error: BaseException | None) -> None:
        open_steps = self._open()
        if not open_steps:
            return
        context = open_steps.pop()
        if error is None:
            context.__exit__(None, None, None)
            return
        if isinstance(error, RigError):
            _note_diagnosis(error)  # the step's message carries it too (it decides Failed or Broken)
        if not any(error is seen for seen in self._traced):
            self._traced.append(error)
            self._attach_step_trace(title)
        context.__exit__(type(error), error, error.__traceback__)

    def _attach_step_trace(self, title: str) -> None:
        item = self._item
        station = item.stash.get(_STATION, None) if item is not None else None
        if item is None or station is None or item.config.getoption("rig_attach") == "never":
            return
        text = step_trace(station.name, station.bench.trace, title)
        if text:
            allure.attach(text, name=f"{station.name}: link trace at the failure", attachment_type=AttachmentType.TEXT)

    def attach(self, name: str, body: str | bytes, mime: str) -> None:
        kind, extension = _attachment_type(mime)
        allure.attach(body, name=name, attachment_type=kind, extension=extension)


def step_trace(station: str, trace: Trace, step_title: str, rows: int = STEP_TRACE_ROWS) -> str:
    """The last `rows` rows of the decoded link trace (its last STEP_TRACE_CHUNKS chunks decoded), and the
    verdict on those chunks; empty when nothing went over the link."""
    entries: list[TraceEntry] = trace.entries[-STEP_TRACE_CHUNKS:]
    if not entries:
        return ""
    skipped = "\n" * (1 + len(trace.entries) - len(entries))  # line numbers as in the raw hex attachment
    decoded = decode_log(skipped + "".join(entry.line() + "\n" for entry in entries))
    shown = decoded.events[-rows:]
    head = (
        f"# station {station}, step '{step_title}' failed: the last {len(shown)} rows of its link trace "
        f"(decoded from the last {len(entries)} of {len(trace.entries)} chunks; the first bytes of an excerpt "
        f"may be the end of an earlier frame)\n"
    )
    return head + report_text(decoded, verdict(decoded), shown)


def trace_attachments(station: str, trace: Trace) -> dict[str, str]:
    """The link trace as two texts: decoded frames and raw hex (empty when nothing went over the link)."""
    raw = trace.text()
    if not raw:
        return {}
    summary = (
        f"# station {station}: {len(trace.entries)} chunks, "
        f"{trace.total('tx')} bytes host->ESC (tx), {trace.total('rx')} bytes ESC->host (rx)\n"
    )
    decoded = decode_log(summary + raw)  # the summary is a comment: line numbers are those of the raw attachment
    return {
        f"{station}: link trace, decoded frames": summary + report_text(decoded, verdict(decoded)),
        f"{station}: link trace, raw hex": summary + raw,
    }


def _attach_trace(item: pytest.Item) -> None:
    when = item.config.getoption("rig_attach")
    station = item.stash.get(_STATION, None)
    if station is None or _allure_dir(item.config) is None or when == "never":
        return
    if when == "failed" and not failed_so_far(item):
        return
    for name, text in trace_attachments(station.name, station.bench.trace).items():
        allure.attach(text, name=name, attachment_type=AttachmentType.TEXT)


def attach_throughput(item: pytest.Item) -> None:
    """A benchmark's throughput per phase: table and chart (pytest-benchmark's fixture holds its extra_info)."""
    fixture = getattr(item, "funcargs", {}).get("benchmark")
    if getattr(fixture, "disabled", True):  # --benchmark-disable: one untimed run, its rates mean nothing
        return
    info = getattr(fixture, "extra_info", None)
    rates = rates_of(item.name, info) if isinstance(info, dict) else []
    if rates:
        allure.attach(table(rates), name="throughput per phase", attachment_type=AttachmentType.TEXT)
        chart = svg(rates, title=f"Throughput per phase: {item.name}")
        allure.attach(chart, name="throughput chart", attachment_type=AttachmentType.SVG)


# --- config diffs ------------------------------------------------------------------------------------


def _hex_rows(data: bytes) -> list[str]:
    rows = range(0, len(data), DIFF_ROW_BYTES)
    return [f"{at:06x}: {data[at : at + DIFF_ROW_BYTES].hex(' ')}" for at in rows] or ["(empty)"]


def config_diff(left: ConfigBlob, right: ConfigBlob) -> str:
    """Signatures, sizes and a unified diff (left -, right +) of the hex dumps of two config blobs."""
    changed = sum(a != b for a, b in zip(left.data, right.data, strict=False))
    changed += abs(len(left.data) - len(right.data))
    head = [
        f"{left.kind.value} vs {right.kind.value}: signature {left.signature} vs {right.signature}, "
        f"{len(left.data)} vs {len(right.data)} bytes, {changed} bytes differ"
    ]
    diff = difflib.unified_diff(_hex_rows(left.data), _hex_rows(right.data), "left", "right", n=1, lineterm="")
    return "\n".join([*head, *diff])


def _config_pairs(left: object, right: object) -> list[tuple[ConfigBlob, ConfigBlob]] | None:
    if isinstance(left, ConfigBlob) and isinstance(right, ConfigBlob):
        return [(left, right)]
    if isinstance(left, ConfigBackup) and isinstance(right, ConfigBackup):
        kinds = sorted(set(left.blobs) & set(right.blobs))
        return [(left.blobs[k], right.blobs[k]) for k in kinds if left.blobs[k] != right.blobs[k]]
    return None


# --- the environment ---------------------------------------------------------------------------------


def _image_key(image: Image) -> str:
    hw = "+".join(image.hw_names) or "any"
    version = str(image.version) if image.version else "unversioned"
    return re.sub(r"[^A-Za-z0-9._+-]", "_", f"image.{image.kind.value}.{hw}.{version}.sha256")


def _version_of(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def environment(config: pytest.Config, images: dict[str, str]) -> dict[str, str]:
    """What the report's Environment widget shows for this run."""
    env: dict[str, str] = {}
    if config.getoption("rack", None):
        spec = load_rack(config.getoption("rack"))
        env["rack"] = f"{spec.name} ({'simulated' if spec.simulated else 'hardware'})"
        env["stations"] = ", ".join(s.name for s in spec.select(config.getoption("station")))
    env["rig.version"] = rig.__version__
    env["python.version"] = platform.python_version()
    env["pyocd.version"] = _version_of("pyocd")
    env["pyserial.version"] = _version_of("pyserial")
    return env | dict(sorted(images.items()))


def _properties(values: dict[str, str]) -> str:
    """Java .properties text (keys carry no separators; values have backslashes and line breaks escaped)."""
    escape = str.maketrans({"\\": "\\\\", "\n": "\\n", "\r": "\\r"})
    return "".join(f"{key}={value.translate(escape)}\n" for key, value in values.items())


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


# --- hooks -------------------------------------------------------------------------------------------


def _allure_dir(config: pytest.Config) -> Path | None:
    folder = getattr(config.option, "allure_report_dir", None)
    return Path(folder) if folder else None


def pytest_configure(config: pytest.Config) -> None:
    """Product failures Failed, not Broken, in the Allure results (when Allure records)."""
    if _allure_dir(config) is not None:
        config.stash[_STATUSES] = FailedNotBroken()
        allure_commons.plugin_manager.register(config.stash[_STATUSES])


def pytest_unconfigure(config: pytest.Config) -> None:
    plugin = config.stash.get(_STATUSES, None)
    if plugin is not None:
        allure_commons.plugin_manager.unregister(plugin)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("vesc-rig").addoption(
        "--rig-attach",
        choices=ATTACH_WHEN,
        default="failed",
        help="attach the station's link trace (decoded and raw) to the Allure results of failed tests "
        "(default), of every test, or never; unless never, a failed step gets the end of it, decoded",
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, object, object]:
    """Forward rig steps and attachments to Allure while a test runs (only when Allure records)."""
    if _allure_dir(item.config) is None:
        return (yield)
    listener = AllureSteps(item)
    events.subscribe(listener)
    try:
        return (yield)
    finally:
        events.unsubscribe(listener)


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(
    fixturedef: pytest.FixtureDef[object], request: pytest.FixtureRequest
) -> Generator[None, object, object]:
    """Remember the test's station (for its trace) and every image a fixture hands out (for its hash)."""
    value = yield
    if isinstance(value, StationSession) and isinstance(request.node, pytest.Item):
        request.node.stash[_STATION] = value
    elif isinstance(value, Image):
        request.config.stash.setdefault(_IMAGES, {})[_image_key(value)] = value.sha256
    return value


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Put the diagnosis into the failure message before the report is made; attach the trace at the end."""
    if call.excinfo is not None and isinstance(call.excinfo.value, RigError):
        _note_diagnosis(call.excinfo.value)
    report = yield
    if _allure_dir(item.config) is not None and report.when == "call":
        attach_throughput(item)
    if report.when == "teardown":
        _attach_trace(item)
    return report


def pytest_assertrepr_compare(config: pytest.Config, op: str, left: object, right: object) -> list[str] | None:
    """A failed ``==`` between configs: a hex diff, in the assertion message and as an attachment."""
    pairs = _config_pairs(left, right) if op == "==" else None
    if pairs is None:
        return None
    text = "\n\n".join(config_diff(a, b) for a, b in pairs) or "the configs differ outside their blobs"
    allure.attach(text, name="config diff", attachment_type=AttachmentType.TEXT)
    return [f"{type(left).__name__} differs", *text.splitlines()]


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: object, error: object) -> None:
    """pytest-xdist controller: collect the image hashes a worker saw."""
    output = getattr(node, "workeroutput", {})
    if _WORKER_IMAGES in output:
        config: pytest.Config = node.config  # type: ignore[attr-defined]
        config.stash.setdefault(_IMAGES, {}).update(json.loads(output[_WORKER_IMAGES]))


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Write categories.json and environment.properties (a pytest-xdist worker hands its part over)."""
    config = session.config
    images = config.stash.get(_IMAGES, {})
    if hasattr(config, "workerinput"):
        config.workeroutput[_WORKER_IMAGES] = json.dumps(images)  # type: ignore[attr-defined]
        return
    folder = _allure_dir(config)
    if folder is None:
        return
    folder.mkdir(parents=True, exist_ok=True)
    _write_atomically(folder / CATEGORIES_FILE, json.dumps(categories(), indent=1))
    _write_atomically(folder / ENVIRONMENT_FILE, _properties(environment(config, images)))
