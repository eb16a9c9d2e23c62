"""The `board_record` fixture: a factory record (rig.factory.records) for the station's board in this test.

The record is opened before the test with the board's UID, hardware name and firmware (FW_VERSION),
each ``board_record.check(...)`` is stored at once, and after the test it is finished: FAIL when the
test failed, otherwise PASS or FAIL from the checks. Records go to ``--records PATH`` (default
records.sqlite3 in the state directory); all records of one run (all pytest-xdist workers) share a run id.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from rig.factory.records import FAIL, Record, RecordStore
from rig.station.session import StationSession

if TYPE_CHECKING:
    from rig.plugin.core import RunContext

_RUN_ID = pytest.StashKey[str]()
_FAILED = pytest.StashKey[bool]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("vesc-rig").addoption(
        "--records", default=None, help="per-board record store (SQLite; default: records.sqlite3 in the state dir)"
    )


def run_id(config: pytest.Config) -> str:
    """RIG_RUN_ID if set, else pytest-xdist's id of this test run, else one made for this process."""
    if _RUN_ID not in config.stash:
        config.stash[_RUN_ID] = (
            os.environ.get("RIG_RUN_ID") or os.environ.get("PYTEST_XDIST_TESTRUNUID") or uuid.uuid4().hex
        )
    return config.stash[_RUN_ID]


def failed_so_far(item: pytest.Item) -> bool:
    """Whether any phase of this test has failed yet (setup, call, teardown)."""
    return item.stash.get(_FAILED, False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed:
        item.stash[_FAILED] = True
    return report


@pytest.fixture(scope="session")
def record_store(request: pytest.FixtureRequest, rig_run: RunContext) -> Iterator[RecordStore]:
    """The run's record store."""
    option = request.config.getoption("records")
    with RecordStore(Path(option) if option else rig_run.state.records) as store:
        yield store


@pytest.fixture
def board_record(
    request: pytest.FixtureRequest, station: StationSession, record_store: RecordStore
) -> Iterator[Record]:
    """The record of the station's board for this test, finished after it."""
    held = "esc" in request.fixturenames  # the test holds a connection already: ask through it
    info = request.getfixturevalue("esc").info if held else station.read_board()
    record = record_store.open_record(
        station=station.name,
        uid=(info.uid or b"").hex(),
        hw=info.hw_name or "",
        fw=str(info.version),
        bootloader="",
        run_id=run_id(request.config),
    )
    yield record
    record.finish(FAIL if failed_so_far(request.node) else None)
