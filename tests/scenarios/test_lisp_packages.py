"""Lisp scripts and packages after a firmware update (6.00+).

The Lisp code lives in sector 10, inside the new-app buffer (6.06+: the LispBM image in sector 8 too), so
every ERASE_NEW_APP takes it with it, and no tool puts it back on its own (research fw-flash.md 7: VESC
Tool re-installs a package only by hand). The rig has to notice the package is gone, install it again
and prove it is the same code, running.
"""

from __future__ import annotations

import pytest
from generation_steps import PACKAGE, install_package, read_code

from rig.firmware.image import Image
from rig.protocol.commands import Cmd
from rig.station.configs import ConfigCare
from rig.station.session import StationSession
from rig.station.strategy import Running, StationStrategy


def test_a_package_is_gone_after_an_update_and_comes_back_verified(
    station: StationSession,
    config_backup: ConfigCare,
    baseline_firmware: Image,
    firmware: Image,
    strategy: StationStrategy,
) -> None:
    strategy.transition(Running(baseline_firmware))
    with station.connect() as esc:
        if not esc.table.has(Cmd.LISP_WRITE_CODE):
            pytest.skip(f"firmware {esc.version} has no LispBM (6.00+)")
        install_package(esc)
        assert read_code(esc) == PACKAGE.data

    station.update(firmware)
    with station.connect() as esc:
        assert read_code(esc) is None, "the package survived the update: the new-app buffer was not erased"
        install_package(esc)  # the rig puts it back ...
        assert read_code(esc) == PACKAGE.data  # ... and proves it is the same code

    station.update(baseline_firmware)
    with station.connect() as esc:
        assert read_code(esc) is None  # the rollback takes it again: the board ends as it began
