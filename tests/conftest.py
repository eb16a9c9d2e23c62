"""The project's own test runs keep their state (backups, records, leases) out of the user's state directory."""

from __future__ import annotations

import os

import pytest

from rig.station.state import ENV


@pytest.fixture(scope="session", autouse=True)
def private_state_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """$VESC_RIG_STATE_DIR for this run (and the processes it starts), unless the caller set one."""
    if not os.environ.get(ENV):
        os.environ[ENV] = str(tmp_path_factory.mktemp("state"))
    return os.environ[ENV]
