"""labgrid's own pytest plugin stays out of runs that load the rig's plugin, whichever registers first.

The runs here are pytest child processes in a bare project (no ini, so no ``-p no:labgrid`` from the
rig's pyproject): labgrid's entry point would load and, among other things, fail every test that uses a
fixture named ``strategy`` ("'NoneType' object has no attribute 'config'") and replace pytest's log format.
"""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

PROJECT = """
import logging

import pytest
from _pytest.logging import DEFAULT_LOG_FORMAT


@pytest.fixture
def strategy():  # the rig's plugin has a fixture of this name too; labgrid's hooks look for it
    return "ours"


def test_labgrid_is_out(request, strategy, caplog):
    manager = request.config.pluginmanager
    assert strategy == "ours"
    assert not manager.has_plugin("labgrid") and manager.is_blocked("labgrid")
    assert not [p for p in manager.get_plugins() if getattr(p, "__name__", "") == "labgrid.pytestplugin"]
    assert request.config.getoption("log_format") in (None, DEFAULT_LOG_FORMAT)
    assert request.config.getoption("lg_coordinator") == "lab:20408"
    assert request.config.getoption("lease_backend") == "labgrid"
    logging.getLogger("rig.test").warning("hello")
    assert "test_project.py:" in caplog.text  # pytest's own format: file and line
"""


@pytest.mark.parametrize("first", [[], ["-p", "labgrid.pytestplugin"]], ids=["entry-points", "labgrid-first"])
def test_labgrids_pytest_plugin_is_kept_out(pytester: pytest.Pytester, first: list[str]) -> None:
    pytester.makepyfile(test_project=PROJECT)
    result = pytester.runpytest_subprocess(*first, "--lg-coordinator", "lab:20408", "--lease-backend", "labgrid")
    result.assert_outcomes(passed=1)
    assert "current_level" not in result.stdout.str()  # labgrid's -vv handling never ran
