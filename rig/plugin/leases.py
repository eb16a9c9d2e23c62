"""The lease options of the pytest plugin, and labgrid's own pytest plugin kept out of the rig's runs.

``--lease-backend sqlite|labgrid`` and ``--lg-coordinator HOST:PORT`` choose where the run's station
leases live (rig.station.lease_choice); the rack file's ``lease_backend`` and ``lg_coordinator`` are
the defaults.

labgrid (the optional extra ``vesc-rig[labgrid]``) installs a pytest plugin, entry point ``labgrid``,
that loads in every pytest run of its environment. In labgrid 26.0.1 it re-registers the ``log_format``
ini default (no more file:line in captured logs), wraps the logging plugin's formatters, turns ``-vv``
into live logging, and its ``pytest_runtest_setup`` fails every test that uses a fixture named
``strategy`` (the rig has one) when no labgrid environment is configured. The rig's pyproject passes
``-p no:labgrid``; the hooks here give runs started elsewhere (another project's pytest loading the
rig's plugin) the same: the name is blocked before labgrid's entry point loads, a labgrid plugin that
registered earlier is unregistered before it configures anything, and its ``log_format`` default is
put back. labgrid's ``--lg-coordinator`` means the same as the rig's, so when labgrid registered first
the rig reads that option instead of adding its own.
"""

from __future__ import annotations

import sys
from typing import Any

import pytest

from rig.station.rack import LEASE_BACKENDS

LABGRID_PLUGIN = "labgrid"  # labgrid's pytest11 entry point
LABGRID_MODULE = "labgrid.pytestplugin"


def _labgrid_plugins(manager: pytest.PytestPluginManager) -> list[Any]:
    return [p for p in manager.get_plugins() if getattr(p, "__name__", None) == LABGRID_MODULE]


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    group = parser.getgroup("vesc-rig", "VESC hardware-in-the-loop rig")
    group.addoption(
        "--lease-backend",
        choices=LEASE_BACKENDS,
        default=None,
        help="where station leases live: sqlite (one host) or labgrid (a coordinator); default: the rack's",
    )
    if not _labgrid_plugins(pluginmanager):  # else labgrid's own --lg-coordinator is there, same meaning
        group.addoption(
            "--lg-coordinator",
            default=None,
            metavar="HOST:PORT",
            help="labgrid coordinator for --lease-backend labgrid (default: the rack's, else $LG_COORDINATOR)",
        )


def pytest_plugin_registered(plugin: Any, manager: pytest.PytestPluginManager) -> None:
    """-p no:labgrid, from inside: block the name, and unregister a labgrid plugin that came first."""
    if not manager.is_blocked(LABGRID_PLUGIN):
        manager.set_blocked(LABGRID_PLUGIN)
    for found in _labgrid_plugins(manager):
        manager.unregister(found)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """A labgrid plugin that registered before the rig's already replaced the log_format default: put
    pytest's back (unless the run set one)."""
    labgrid_logging = sys.modules.get("labgrid.logging")  # imported by labgrid's plugin; never import it here
    if labgrid_logging is None:
        return
    from _pytest.logging import DEFAULT_LOG_FORMAT

    if config.option.log_format is None and config.getini("log_format") == labgrid_logging.DEFAULT_FORMAT:
        config.option.log_format = DEFAULT_LOG_FORMAT
