"""Factory bring-up of one blank board: SWD, power cycle, firmware, identity, telemetry, config, a record.

The flow (one board, `bring_up`):

1. Power on (a board left off by an earlier failed run does not answer SWD). SWD: connect (in the
   station's connect mode; if the target does not answer, again under reset, F5),
   mass erase (also clears read-out protection), program the bootloader *and* a firmware as one
   merged hex, verify by reading back (F4).
2. Power cycle through the station's relay or supply, with proof (F9): the board now boots what SWD wrote.
3. Two-stage flow (``merged=False``, the default): the target firmware over USB, through the
   bootloader just written (StationSession.update), which proves the bootloader works (F1/F2
   are caught at the factory, not in the field). Merged flow (``merged=True``): SWD wrote the target
   firmware already; nothing goes over USB.
4. Identity (firmware version, hardware name, UID) and telemetry (input voltage, FET and motor
   temperature, fault code) against `Limits`; every CAN peer the rack lists on the target version.
5. Config defaults: GET_*CONF_DEFAULT with the rack file's factory settings by field name (rig.config.apply;
   per hardware `[[config]]`, per station `[station.config]`), written (SET), read back: the defaults equal,
   every setting checked by field and recorded as ``config <kind>.<field>`` (clamped by the firmware: failed).

Why the firmware always goes over SWD: a blank STM32 with only a bootloader runs nothing that speaks
USB (the VESC bootloader has no USB of its own; it only copies the new-app buffer), so a USB update
needs a firmware already running. The two-stage flow writes `swd_firmware` (default: the target
itself) with the bootloader; give an older release as `swd_firmware` and the version change proves
the bootloader copied the image (with the same version, only the re-enumeration shows the jump).

Every step is reported through rig.events and stored in the board's record (rig.factory.records) as soon as
it ends: a check named after the step (seconds, or its error), then every identity and telemetry check
with its limits. A run killed part way leaves every check written so far (the record has no verdict:
INCOMPLETE). A board that fails a step is powered off (where the station has a relay or supply) and
the record says which step failed, its diagnosis, and what the board had reached ("left"); so is a
board with a check out of limits.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import NoReturn

from rig.config.apply import assignments_from, plan
from rig.config.codec import decode, encode
from rig.config.source import SchemaSource
from rig.config.verify import check_written
from rig.device.memory import UID_BYTES
from rig.errors import ImageError, RigError
from rig.events import Progress, step
from rig.factory.records import FAIL, CheckResult, Record, RecordStore
from rig.firmware.config import KINDS
from rig.firmware.image import Image, ImageKind
from rig.hardware.power import PowerCycleResult
from rig.hardware.swd import FlashResult, SwdSession
from rig.protocol.codecs import FwVersionReply
from rig.protocol.commands import FirmwareVersion
from rig.protocol.values import Values
from rig.station.bench import UpdateResult
from rig.station.session import StationSession
from rig.station.strategy import StationStrategy, StepFailed
from rig.transport.link import Trace

log = logging.getLogger(__name__)

FAULT_NONE = 0  # mc_fault_code FAULT_CODE_NONE
TRACE_EVIDENCE = "trace excerpt"  # a failed board's record: the last bytes on its port (rig.captures decodes them)
TRACE_EXCERPT_LINES = 60
TRACE_EXCERPT_CHARS = 24_000


@dataclass(frozen=True)
class Range:
    """Inclusive limits of one measurement; None: no limit on that side."""

    low: float | None
    high: float | None
    unit: str = ""

    @classmethod
    def parse(cls, text: str, unit: str = "") -> Range:
        """`LOW:HIGH`, `LOW:` or `:HIGH` (one side open), or `none` (no limit at all)."""
        if text.strip().lower() == "none":
            return cls(None, None, unit)
        low_text, sep, high_text = text.partition(":")
        if not sep:
            raise ValueError(f"{text!r} is not LOW:HIGH (either side may be empty), or none")
        try:
            low = float(low_text) if low_text.strip() else None
            high = float(high_text) if high_text.strip() else None
        except ValueError:
            raise ValueError(f"{text!r}: the limits must be numbers (LOW:HIGH)") from None
        if low is not None and high is not None and low > high:
            raise ValueError(f"{text!r}: the low limit is above the high one")
        return cls(low, high, unit)

    def __str__(self) -> str:
        if self.low is None and self.high is None:
            return "no limit"
        low = "" if self.low is None else f"{self.low:g}"
        high = "" if self.high is None else f"{self.high:g}"
        return f"{low}..{high} {self.unit}".strip()


@dataclass(frozen=True)
class Limits:
    """Telemetry limits of a board at rest on the bench; the fault code must always be 0 (no fault).

    Defaults: input voltage 8..60 V (the VESC 6 input range; narrow it to the station's supply), FET and
    motor temperature 0..60 °C (room temperature; below 0 is an open or missing NTC, above 60 at idle a
    short or a FET heating). A board without a motor NTC needs `temp_motor` opened up (Range.parse("none")).
    """

    v_in: Range = Range(8.0, 60.0, "V")
    temp_fet: Range = Range(0.0, 60.0, "°C")
    temp_motor: Range = Range(0.0, 60.0, "°C")

    def override(self, **texts: str | None) -> Limits:
        """These limits with some replaced from `LOW:HIGH` texts (a rack file or command line); None keeps one."""
        changes = {name: Range.parse(text, getattr(self, name).unit) for name, text in texts.items() if text}
        return replace(self, **changes)


@dataclass(frozen=True)
class FactoryPlan:
    """What a board is brought up with (see the module docstring for the two flows)."""

    firmware: Image  # the target firmware the board leaves the factory with
    bootloader: Image
    merged: bool = False  # True: SWD writes bootloader + target firmware, nothing goes over USB
    limits: Limits = field(default_factory=Limits)
    write_defaults: bool = True
    allow_wrong_hw: bool = False
    swd_firmware: Image | None = None  # two-stage flow: the firmware SWD writes (default: `firmware`)

    def __post_init__(self) -> None:
        for name, kind in (("firmware", ImageKind.FIRMWARE), ("bootloader", ImageKind.BOOTLOADER)):
            image = getattr(self, name)
            if image.kind != kind:
                raise ImageError(f"{image.source} is a {image.kind.value} image, the plan needs a {kind.value}")
        if self.swd_firmware is not None and self.swd_firmware.kind != ImageKind.FIRMWARE:
            raise ImageError(f"{self.swd_firmware.source} is not a firmware image")
        if not self.firmware.hw_names and not self.allow_wrong_hw:
            raise ImageError(
                f"cannot tell which hardware {self.firmware.source} is for: name the hardware, use a desktop-tool "
                "folder, or allow any hardware explicitly"
            )

    @property
    def swd_image(self) -> Image:
        """The firmware SWD writes next to the bootloader."""
        return self.firmware if self.merged or self.swd_firmware is None else self.swd_firmware


@dataclass
class BoardResult:
    """The outcome of one board: verdict, where it failed and why, and the state it was left in."""

    station: str
    verdict: str
    record_id: int | None
    uid: str = ""
    hw: str = ""
    fw: str = ""
    label: str = ""  # as the operator entered it
    failed_step: str | None = None
    diagnosis: str | None = None
    reason: str | None = None
    failed_checks: tuple[str, ...] = ()
    left: str = ""
    seconds: float = 0.0
    session: list[str] = field(default_factory=list)  # what the station session did (lease, config care)


class _StepFailed(Exception):
    """A step raised a RigError; it is already in the record."""

    def __init__(self, name: str, error: RigError) -> None:
        super().__init__(name)
        self.name = name
        self.error = error


class _BringUp:
    """One board's bring-up: the steps, and what the board has reached so far."""

    def __init__(
        self, session: StationSession, plan: FactoryPlan, record: Record, progress: Progress | None = None
    ) -> None:
        self.session = session
        self.plan = plan
        self.record = record
        self.progress = progress
        self.reached = "not touched"
        self.info: FwVersionReply | None = None  # what the board last reported
        self.uid_recorded = False
        self.identity_noted = False

    @contextmanager
    def step(self, name: str, **params: object) -> Iterator[None]:
        """A reported step; its time (or its error) is stored as a check of that name when it ends."""
        started = time.monotonic()
        try:
            with step(f"factory: {name}", station=self.session.name, **params):
                yield
        except RigError as exc:
            self.fail(name, exc)
        self.record.check(name, round(time.monotonic() - started, 3), unit="s", passed=True)

    def fail(self, name: str, exc: RigError) -> NoReturn:
        self.record.check(name, f"[{exc.diagnosis.value}] {exc}", passed=False)
        raise _StepFailed(name, exc) from exc

    # --- the steps -----------------------------------------------------------------------------------

    def run(self) -> None:
        strategy = StationStrategy(self.session)
        peers = len(self.session.spec.can_ids) > 1
        try:
            strategy.provision(
                bootloader=self.plan.bootloader,
                swd_firmware=self.plan.swd_image,
                firmware=None if self.plan.merged else self.plan.firmware,
                all_can=peers,
                on_step=self.provisioned,
                progress=self.progress,
            )
        except StepFailed as failed:
            self.fail(failed.name, failed.error)
        with self.step("connect"):
            esc = self.session.connect()
        with esc:
            self.info = esc.info
            assert self.info is not None  # connect() reads FW_VERSION
            self.reached = f"running firmware {self.info.version}"
            self.record.note_firmware(str(self.info.version))
            with self.step("identity"):
                self.identity(self.info)
            with self.step("telemetry"):
                self.telemetry(esc.values())
            if peers:
                with self.step("CAN nodes"):
                    for node, client in self.session.nodes(esc)[1:]:
                        self.version_check(f"CAN {node} fw_version", client.fw_version().version)
        if self.plan.write_defaults:
            with self.step("config defaults"):
                self.write_defaults()

    def provisioned(self, name: str, seconds: float, value: object) -> None:
        """A provisioning step ended: its time, and what it proved, go to the record."""
        self.record.check(name, round(seconds, 3), unit="s", passed=True)
        if isinstance(value, SwdSession):
            self.record.check("swd connect mode", value.config.connect_mode.value)
        elif name == "swd mass erase":
            self.reached = "flash erased"
        elif isinstance(value, FlashResult):
            self.record.check("swd verified", value.image_bytes, unit="B")
            self.reached = "bootloader and firmware written over SWD"
            self.record.note_firmware(str(self.plan.swd_image.version or ""), image_label(self.plan.bootloader))
        elif isinstance(value, PowerCycleResult):
            self.record.check("power cycle proof", value.proof)
            self.reached = "running the firmware written over SWD"
        elif isinstance(value, UpdateResult):
            self.noted(value.before)
            self.record.check("usb update", f"{value.before.version} -> {value.after.version} ({value.proof})")
            self.reached = f"running firmware {value.after.version}"

    def write_defaults(self) -> None:
        """GET_*CONF_DEFAULT of the board with the rack file's settings by field (its hardware's [[config]] and
        the station's [station.config]), written through the session; read back equal, each setting checked
        by field and recorded (a setting the firmware clamped fails its check)."""
        assert self.info is not None
        with self.session.connect() as esc:
            defaults = {kind: esc.get_config(kind, default=True) for kind in KINDS}
        settings = self.session.rack.factory_settings(self.session.spec)
        if not settings:
            self.session.write_config(*defaults.values(), made_for=self.info.version)
            for blob in defaults.values():
                self.record.check(f"{blob.kind.value} defaults verified", len(blob.data), unit="B")
            return
        rack, state = self.session.rack, self.session.state
        source = SchemaSource.resolve(rack_schemas=rack.schemas, cache=state.schemas)
        planned = plan(defaults, assignments_from(settings.fields), source, self.info.version)
        blobs = {**defaults, **{kind: encode(values) for kind, values in planned.sent.items()}}
        self.session.write_config(*blobs.values(), made_for=self.info.version, exact=False)
        with self.session.connect() as esc:
            back = {kind: esc.get_config(kind) for kind in KINDS}
        for kind, blob in blobs.items():
            if kind not in planned.sent:
                self.record.check(
                    f"{kind.value} defaults verified", len(blob.data), unit="B", passed=back[kind] == blob
                )
                continue
            sent = planned.sent[kind]
            for check in check_written(sent, decode(sent.schema, back[kind]), planned.asked[kind]):
                self.record.check(
                    f"config {kind.value}.{check.name}", check.got_value, unit=check.unit, passed=check.ok
                )

    def identity(self, info: FwVersionReply) -> None:
        self.version_check("fw_version", info.version)
        fits = self.plan.firmware.fits_hw(info.hw_name or "")
        self.record.check("hw_name", info.hw_name or "", passed=bool(fits) or self.plan.allow_wrong_hw)
        self.uid_check(info)

    def uid_check(self, info: FwVersionReply) -> None:
        uid = info.uid or b""
        self.noted(info)
        self.record.check("uid", uid.hex(), passed=len(uid) == UID_BYTES)
        self.uid_recorded = True

    def noted(self, info: FwVersionReply) -> None:
        """Put the board's identity into its record the first time the board reports it."""
        if info.uid and not self.identity_noted:
            self.record.note_identity(info.uid.hex(), info.hw_name)
            self.identity_noted = True

    def version_check(self, name: str, version: FirmwareVersion) -> None:
        expected = self.plan.firmware.version
        self.record.check(name, str(version), passed=expected is None or version == expected)

    def telemetry(self, values: Values) -> None:
        limits = self.plan.limits
        for name in ("v_in", "temp_fet", "temp_motor"):
            bound: Range = getattr(limits, name)
            self.record.check(name, getattr(values, name), bound.low, bound.high, bound.unit)
        self.record.check("fault", values.fault, FAULT_NONE, FAULT_NONE)

    # --- failure -------------------------------------------------------------------------------------

    def leave(self) -> str:
        """Power a failed board off where the station can; say what it reached and how it was left."""
        reached = self.now_running() or self.reached
        if not self.session.has_power:
            return f"{reached}; left powered (the station has no relay or supply)"
        try:
            self.session.power(False)
        except RigError as exc:
            return f"{reached}; could not power it off ({exc}), left as it was"
        return f"{reached}; powered off"

    def now_running(self) -> str | None:
        """What the board runs now, if it answers (noted in the record), else None."""
        try:
            if self.session.probe() is None:
                return None
            with self.session.connect(bound_s=self.session.bench.bounds.answer_s) as esc:
                self.info = esc.info
                assert self.info is not None
        except RigError as exc:
            log.info("%s: no answer while leaving it: %s", self.session.name, exc)
            return None
        self.record.note_firmware(str(self.info.version))
        if not self.uid_recorded:
            self.uid_check(self.info)
        return f"running firmware {self.info.version}"


def image_label(image: Image) -> str:
    """An image as a record shows it: its version (if known), file name and the start of its SHA-256."""
    version = f"{image.version} " if image.version else ""
    return f"{version}{Path(image.source).name} {image.sha256[:12]}"


def planned_steps(session: StationSession, plan: FactoryPlan) -> tuple[str, ...]:
    """The names of the steps `bring_up` takes on this station with this plan, in order (for "step N of M")."""
    steps = ["power on"] if session.has_power else []
    steps += ["swd connect", "swd mass erase", "swd program", "power cycle"]
    steps += [] if plan.merged else ["firmware over USB"]
    steps += ["connect", "identity", "telemetry"]
    steps += ["CAN nodes"] if len(session.spec.can_ids) > 1 else []
    steps += ["config defaults"] if plan.write_defaults else []
    return tuple(steps)


def trace_excerpt(trace: Trace) -> str:
    """The last lines of a port's trace (at most TRACE_EXCERPT_LINES and about TRACE_EXCERPT_CHARS), in the
    text form `rig trace decode` reads; the first line may start part way into a frame."""
    lines = [entry.line() for entry in trace.entries[-TRACE_EXCERPT_LINES:]]
    while len(lines) > 1 and sum(len(line) + 1 for line in lines) > TRACE_EXCERPT_CHARS:
        lines.pop(0)
    return "".join(line + "\n" for line in lines)


def bring_up(
    session: StationSession,
    plan: FactoryPlan,
    store: RecordStore,
    run_id: str,
    *,
    label: str = "",
    progress: Progress | None = None,
) -> BoardResult:
    """Bring up the station's (blank) board; every step and check is stored in its record as it ends.

    A step that fails (any RigError) ends the bring-up. A board with a failed step or a check out of
    limits is powered off where the station can, and its record gets the state it was left in ("left"),
    the end of its port's trace and verdict FAIL; the failing step's check holds its diagnosis and message.
    Anything else (a bug, KeyboardInterrupt) propagates and leaves the record without a verdict (INCOMPLETE).
    `label` is the board's label as the operator entered it; `progress` follows SWD programming and the upload.
    """
    started = time.monotonic()
    hw = plan.firmware.hw_names[0] if plan.firmware.hw_names else ""
    record = store.open_record(session.name, "", hw, "", image_label(plan.bootloader), run_id, label=label)
    run = _BringUp(session, plan, record, progress)
    result = BoardResult(session.name, FAIL, record.id, hw=hw, label=label)
    log.info("%s: factory bring-up (record %d, run %s)", session.name, record.id, run_id)
    with step("factory bring-up", station=session.name, record=record.id):
        try:
            run.run()
        except _StepFailed as failed:
            result.failed_step, result.reason = failed.name, str(failed.error)
            result.diagnosis = failed.error.diagnosis.value
        failed_checks = [c for c in record.read().checks if not c.passed]
        if failed_checks:
            result.left = run.leave()
            record.check("left", result.left)
            if session.trace.entries:
                record.attach(TRACE_EVIDENCE, trace_excerpt(session.trace))
        else:
            result.left = run.reached
        result.verdict = record.finish()
    result.failed_checks = tuple(c.name for c in failed_checks)
    if result.failed_step is None and failed_checks:
        result.reason = "failed checks: " + ", ".join(_describe(c) for c in failed_checks)
    if run.info is not None:
        result.uid = (run.info.uid or b"").hex()
        result.hw = run.info.hw_name or hw
        result.fw = str(run.info.version)
    result.seconds = time.monotonic() - started
    result.session = session.report.describe()
    log.info("%s: %s (%s)", session.name, result.verdict, result.reason or result.left)
    return result


def _describe(check: CheckResult) -> str:
    """`v_in = 24.1 not in 30..60 V`, or `hw_name = 75` for a check without limits."""
    if check.low is None and check.high is None:
        return f"{check.name} = {check.value}"
    return f"{check.name} = {check.value} not in {Range(check.low, check.high, check.unit)}"
