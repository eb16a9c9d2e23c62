"""The stations of a rack as the operator panel runs them: labels, bring-ups, stops, acknowledgements.

No web code here: the web app (rig.panel.app) calls these methods and sends :meth:`Panel.snapshot` to the page.

- A station starts only with a label for its board, never while a bring-up runs on it, and never while a failed
  board waits for its acknowledgement (the factory flow powered it off; it stays off until then).
- Each bring-up runs in its own thread, in its own station session (the station's lease held), with the
  factory's permit made from the rack (rig.cli.factory.factory_permit): the page has no way to widen it.
- Stop asks that station's session alone to stop at its next safe point (StationSession.request_stop): the
  flow records the stop as the failing step, powers the board off, and the board keeps the firmware it had.
- The outcome shown is always read back from the board's record, and each station's last record and whether
  it was acknowledged are kept in the state directory, so a restarted panel shows the same truth.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from rig.durable import write_durably
from rig.errors import Diagnosis, RigError
from rig.events import subscribe, unsubscribe
from rig.factory.flow import FactoryPlan, bring_up, planned_steps
from rig.factory.records import PASS, BoardRecord, RecordError, RecordStore
from rig.panel import BadRequest, PanelError
from rig.panel.views import DailyCounts, daily_counts, outcome, seconds_between, start_of_today, summary
from rig.station.permissions import Permit
from rig.station.rack import Rack, Station
from rig.station.session import StationSession
from rig.station.state import StateDir

log = logging.getLogger(__name__)

LABEL_MAX = 64
STOP_BY = "the operator's stop on the panel"
CLOSE_BOUND_S = 300.0  # closing: how long running bring-ups get to reach a safe point and clean up
STEP_PREFIX = "factory: "  # rig.factory.flow's and the strategy's step titles


class Phase(StrEnum):
    """What a station's card shows."""

    IDLE = "idle"
    RUNNING = "running"
    STOPPING = "stopping"
    PASS = "pass"
    FAIL = "fail"


def clean_label(text: object) -> str:
    """A board label as scanned or typed: printable, 1 to LABEL_MAX characters, spaces around it dropped."""
    if not isinstance(text, str):
        raise BadRequest(f"a label is text, not {type(text).__name__}")
    label = text.strip()
    if not label:
        raise BadRequest("the label is empty: scan or type the board's label")
    if len(label) > LABEL_MAX:
        raise BadRequest(f"the label is {len(label)} characters long; at most {LABEL_MAX}")
    if not label.isprintable():
        raise BadRequest(f"the label {label!r} holds control characters")
    return label


@dataclass
class Run:
    """A bring-up in progress on one station (touched by its thread and the web app, under the panel's lock)."""

    label: str
    started_at: float  # time.time()
    started_mono: float
    thread: threading.Thread | None = None
    session: StationSession | None = None
    store: RecordStore | None = None  # the run thread's own connection (SQLite connections are per thread)
    steps: tuple[str, ...] = ()
    stop_wanted: bool = False
    record_id: int | None = None
    step: str | None = None
    step_index: int = 0
    progress: tuple[str, int, int] | None = None  # phase, done, total
    board: dict[str, str] = field(default_factory=dict)  # uid, hw, fw as the record learns them

    def as_json(self) -> dict[str, Any]:
        phase, done, total = self.progress or ("", 0, 0)
        return {
            "label": self.label,
            "started_at": self.started_at,
            "elapsed_s": time.monotonic() - self.started_mono,
            "record_id": self.record_id,
            "step": self.step,
            "step_index": self.step_index,
            "steps_total": len(self.steps),
            "steps": list(self.steps),
            "progress": {"phase": phase, "done": done, "total": total} if self.progress else None,
            "stop_wanted": self.stop_wanted,
            **self.board,
        }


@dataclass
class LastBoard:
    """The station's last board, as its record says, and whether an operator acknowledged a failure."""

    record: BoardRecord
    acknowledged: bool

    @property
    def needs_ack(self) -> bool:
        return self.record.status != PASS and not self.acknowledged

    def as_json(self) -> dict[str, Any]:
        ended = outcome(self.record)
        return {
            **summary(self.record),
            "outcome": ended.as_json(),
            "stopped": ended.diagnosis == Diagnosis.INTERRUPTED.value,  # by the operator, or the panel closing
            "elapsed_s": seconds_between(self.record.started, self.record.finished),
            "acknowledged": self.acknowledged,
            "needs_ack": self.needs_ack,
        }


@dataclass
class PanelStation:
    spec: Station
    plan: FactoryPlan
    label: str = ""  # the next board's label
    run: Run | None = None
    last: LastBoard | None = None
    notice: str | None = None  # why the last action on it was refused, or did not start

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def phase(self) -> Phase:
        if self.run is not None:
            return Phase.STOPPING if self.run.stop_wanted else Phase.RUNNING
        if self.last is None:
            return Phase.IDLE
        if self.last.record.status == PASS:
            return Phase.PASS
        return Phase.FAIL if self.last.needs_ack else Phase.IDLE

    def refusal(self) -> str | None:
        """Why this station cannot start now, or None."""
        if self.run is not None:
            return "a bring-up is running on it"
        if self.last is not None and self.last.needs_ack:
            return "acknowledge the failed board first (it stays powered off until then)"
        if not self.label:
            return "scan or type the board's label first"
        return None

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "phase": self.phase.value,
            "hw": self.spec.hw,
            "target_fw": str(self.plan.firmware.version or ""),
            "label": self.label,
            "run": None if self.run is None else self.run.as_json(),
            "last": None if self.last is None else self.last.as_json(),
            "can_start": self.refusal() is None,
            "notice": self.notice,
        }


class Panel:
    """Every station of a rack, their bring-ups, and what the operator may do to them (thread-safe)."""

    def __init__(
        self,
        rack: Rack,
        plans: dict[str, FactoryPlan],
        *,
        state: StateDir,
        permit: Permit,
        records: Path,
        run_id: str,
    ) -> None:
        self.rack = rack
        self.state = state
        self.permit = permit
        self.records = records
        self.run_id = run_id
        self.server_id = os.urandom(4).hex()  # the page sees a restart by this changing
        self.version = 0  # bumped at every change the page should see
        self.finished = 0  # bring-ups ended since start: the page refetches its records when it changes
        self.closing = False
        self._lock = threading.Condition()
        self._counts: tuple[tuple[int, str], DailyCounts] | None = None
        RecordStore(records).close()  # create it (WAL, schema) before any thread opens it
        self.stations = {name: PanelStation(rack.station(name), plan) for name, plan in plans.items()}
        with RecordStore(records) as store:
            for station in self.stations.values():
                station.last = self._saved(station, store)
        subscribe(self)

    # --- what the page shows --------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Everything the page shows, as JSON (the day's counts read from the record store)."""
        counts = self.counts()
        with self._lock:
            return {
                "rack": self.rack.name,
                "server_id": self.server_id,
                "version": self.version,
                "finished": self.finished,
                "run_id": self.run_id,
                "permit": self.permit.by,
                "erase_answering_boards": self.rack.erase_answering_boards,
                "stations": [s.as_json() for s in self.stations.values()],
                "counts": counts.as_json(),
            }

    def wait_change(self, after: int, timeout_s: float) -> int:
        """The version once it differs from `after` (or the panel is closing), or after timeout_s as it is."""
        with self._lock:
            self._lock.wait_for(lambda: self.version != after or self.closing, timeout_s)
            return self.version

    def counts(self) -> DailyCounts:
        """Today's boards from the record store (read again when a bring-up ended or the day changed)."""
        key = (self.finished, start_of_today())
        if self._counts is None or self._counts[0] != key:
            self._counts = (key, daily_counts(self.today()))
        return self._counts[1]

    def today(self, **filters: str | None) -> list[BoardRecord]:
        """Today's records of this rack's stations (rig.factory.records filters: station, uid, verdict, label)."""
        with RecordStore(self.records) as store:
            found = store.records(since=start_of_today(), **filters)
        return [r for r in found if r.station in self.stations]

    def record(self, record_id: int) -> tuple[BoardRecord, dict[str, str]]:
        """One record and its evidence."""
        with RecordStore(self.records) as store:
            return store.record(record_id), store.evidence(record_id)

    # --- what the operator does -----------------------------------------------------------------------

    def set_label(self, name: str, text: object) -> str:
        """The next board's label on a station (also while the current one runs)."""
        label = clean_label(text)
        with self._lock:
            station = self._station(name)
            station.label, station.notice = label, None
            self._changed()
        return label

    def start(self, name: str) -> None:
        """Start the bring-up of the station's next board; PanelError says why not."""
        with self._lock:
            station = self._station(name)
            why = "the panel is shutting down" if self.closing else station.refusal()
            if why is not None:
                station.notice = f"not started: {why}"
                self._changed()
                raise PanelError(f"station {name}: not started: {why}")
            run = Run(station.label, time.time(), time.monotonic())
            run.thread = threading.Thread(target=self._run, args=(station, run), name=f"panel-{name}", daemon=True)
            station.run, station.label, station.notice = run, "", None
            self._changed()
        run.thread.start()

    def start_all(self) -> dict[str, Any]:
        """Start every station that can start now; the others are listed with the reason (and left as they are)."""
        started, skipped = [], {}
        for name, station in self.stations.items():
            with self._lock:
                why = station.refusal()
            if why is not None:
                skipped[name] = why
                continue
            try:
                self.start(name)
                started.append(name)
            except PanelError as exc:  # it changed in between (another browser started it)
                skipped[name] = str(exc)
        return {"started": started, "skipped": skipped}

    def stop(self, name: str) -> None:
        """Ask the station's bring-up to stop at its next safe point."""
        with self._lock:
            station = self._station(name)
            if station.run is None:
                raise PanelError(f"station {name}: nothing runs on it to stop")
            station.run.stop_wanted = True
            if station.run.session is not None:
                station.run.session.request_stop(STOP_BY)
            self._changed()
        log.info("%s: stop requested from the panel", name)

    def acknowledge(self, name: str) -> None:
        """The operator has seen the failed board (and taken it out): the station may start again."""
        with self._lock:
            station = self._station(name)
            last = station.last
            if last is None or not last.needs_ack:
                raise PanelError(f"station {name}: no failed board waits for an acknowledgement")
            station.last = LastBoard(last.record, acknowledged=True)
            self._remember(station, last.record.id, acknowledged=True)
            self._changed()

    def close(self, bound_s: float = CLOSE_BOUND_S) -> list[str]:
        """Stop every running bring-up at its next safe point and wait (bounded) for it to end; the stations
        still running when the bound ran out."""
        with self._lock:
            self.closing = True
            runs = [s.run for s in self.stations.values() if s.run is not None]
            for run in runs:
                run.stop_wanted = True
                if run.session is not None:
                    run.session.request_stop("the panel shutting down")
            self._changed()
        deadline = time.monotonic() + bound_s
        for run in runs:
            assert run.thread is not None
            run.thread.join(max(0.0, deadline - time.monotonic()))
        unsubscribe(self)
        still = [s.name for s in self.stations.values() if s.run is not None]
        if still:
            log.warning("still running after %g s: %s", bound_s, ", ".join(still))
        return still

    # --- a bring-up -----------------------------------------------------------------------------------

    def _run(self, station: PanelStation, run: Run) -> None:
        session = StationSession(self.rack, station.name, state=self.state, permit=self.permit)
        try:
            session.open()
        except RigError as exc:  # held by another run, say: no board was touched, no record made
            with self._lock:
                station.run, station.label = None, station.label or run.label
                station.notice = f"not started: {exc}"
                self._changed()
            return
        record: BoardRecord | None = None
        try:
            with RecordStore(self.records) as store:
                with self._lock:
                    run.session, run.store, run.steps = session, store, planned_steps(session, station.plan)
                    if run.stop_wanted:
                        session.request_stop(STOP_BY)
                    self._changed()
                result = bring_up(
                    session,
                    station.plan,
                    store,
                    self.run_id,
                    label=run.label,
                    progress=lambda phase, done, total: self._progress(run, phase, done, total),
                )
                assert result.record_id is not None
                record = store.record(result.record_id)
        except Exception:  # a bug or a record store that failed: the record (if any) has no verdict
            log.exception("%s: the bring-up ended without a verdict", station.name)
        finally:
            session.close()
        self._ended(station, run, record)

    def _ended(self, station: PanelStation, run: Run, record: BoardRecord | None) -> None:
        if record is None and run.record_id is not None:
            try:
                record = self.record(run.record_id)[0]
            except RecordError as exc:
                log.error("%s: record %d unreadable: %s", station.name, run.record_id, exc)
        with self._lock:
            station.run = None
            self.finished += 1
            if record is None:
                station.notice = "the bring-up failed before its record was written (see the panel's log)"
            else:
                station.last = LastBoard(record, acknowledged=record.status == PASS)
                self._remember(station, record.id, acknowledged=record.status == PASS)
            self._changed()
        log.info("%s: %s", station.name, "no record" if record is None else f"record {record.id} {record.status}")

    def _progress(self, run: Run, phase: str, done: int, total: int) -> None:
        with self._lock:
            run.progress = (phase, done, total)
            self._changed()

    # rig.events listener: the factory's steps of each running station

    def step_started(self, title: str, params: dict[str, object]) -> None:
        run = self._own_run(params)
        if run is None:
            return
        record = params.get("record")
        if title == "factory bring-up" and isinstance(record, int):
            self._remember(self.stations[str(params["station"])], record, acknowledged=False)
        with self._lock:
            if title == "factory bring-up":
                run.record_id = record if isinstance(record, int) else None
            elif title.startswith(STEP_PREFIX):
                run.step = title.removeprefix(STEP_PREFIX)
                if run.step in run.steps:
                    run.step_index = run.steps.index(run.step) + 1
                run.progress = None
            self._changed()

    def step_ended(self, title: str, seconds: float, error: BaseException | None) -> None:
        run = self._own_run(None)
        if run is None or run.store is None or run.record_id is None or not title.startswith(STEP_PREFIX):
            return
        found = run.store.record(run.record_id)  # the run's own thread and connection
        with self._lock:
            run.board = {k: v for k, v in (("uid", found.uid), ("hw", found.hw), ("fw", found.fw)) if v}
            self._changed()

    def attach(self, name: str, body: str | bytes, mime: str) -> None:
        pass  # evidence goes to the record, not to the page

    def _own_run(self, params: dict[str, object] | None) -> Run | None:
        """The run whose thread this is (steps of other threads and other stations are not ours)."""
        me = threading.current_thread()
        with self._lock:
            for station in self.stations.values():
                if station.run is not None and station.run.thread is me:
                    if params is not None and params.get("station") != station.name:
                        return None
                    return station.run
        return None

    # --- inside -----------------------------------------------------------------------------------------

    def _station(self, name: str) -> PanelStation:
        station = self.stations.get(name)
        if station is None:
            raise UnknownStation(f"no station {name!r} on rack {self.rack.name}; stations: {', '.join(self.stations)}")
        return station

    def _changed(self) -> None:
        """Under the lock: the page has something new to show."""
        self.version += 1
        self._lock.notify_all()

    def _saved_file(self, station: PanelStation) -> Path:
        return self.state.root / "panel" / f"{self.rack.name}__{station.name}.json".replace("/", "_")

    def _remember(self, station: PanelStation, record_id: int, *, acknowledged: bool) -> None:
        """The station's last record, kept for a restarted panel: from the moment the record is opened, so a panel
        that dies during the bring-up comes back showing that board (without verdict, to be acknowledged)."""
        saved = {"record_id": record_id, "acknowledged": acknowledged}
        write_durably(self._saved_file(station), json.dumps(saved))

    def _saved(self, station: PanelStation, store: RecordStore) -> LastBoard | None:
        """The station's last board as an earlier panel left it (None: none, or its record is gone)."""
        path = self._saved_file(station)
        if not path.is_file():
            return None
        try:
            saved = json.loads(path.read_text())
            return LastBoard(store.record(int(saved["record_id"])), bool(saved["acknowledged"]))
        except (OSError, ValueError, KeyError, TypeError, RecordError) as exc:
            log.warning("%s: %s ignored (%s)", station.name, path, exc)
            return None


class UnknownStation(PanelError):
    """The page named a station the rack does not have."""
