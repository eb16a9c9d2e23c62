"""SHUTDOWN (156, 6.05+) and MOTOR_ESTOP (159, 6.06+) answered as each firmware defines them.

Neither has a reply. SHUTDOWN is ignored while the motor turns faster than 100 ERPM unless forced;
with restart it resets through the watchdog. MOTOR_ESTOP releases the motor and ignores input for the
given time. Firmware without the command ignores its id like any unknown one (dcbac819, 43bcd2b0).
On the simulator the motor "turns" at the ERPM SET_RPM asks for, so this is a simulator scenario.
"""

from __future__ import annotations

import pytest

from rig.client.esc import Esc
from rig.errors import LinkLost, RigTimeout
from rig.protocol import codecs as c
from rig.protocol.commands import Cmd
from rig.protocol.framing import encode_frame
from rig.station.configs import ConfigCare
from rig.station.session import StationSession
from rig.transport.presence import wait_gone

pytestmark = pytest.mark.sim_only
SPIN_ERPM = 2000


def _raw(esc: Esc, payload: bytes) -> None:
    """Send a payload whether or not the firmware's table knows its id (an unknown id must be ignored)."""
    esc.link.write(encode_frame(payload))


def _turning(esc: Esc) -> float:
    erpm = esc.values().erpm
    assert erpm is not None
    return erpm


QUIET_S = 0.5  # a board that stays must stay this long (a late reset still fails the commands after it)
GONE_S = 5.0  # a board that resets must be gone within this


def _resets(station: StationSession, esc: Esc, payload: bytes, *, expected: bool) -> bool:
    """Send `payload`; whether the board went away (a reset): waited for up to GONE_S when one is expected,
    else QUIET_S."""
    before = station.bench.locator.identity()
    _raw(esc, payload)
    try:
        wait_gone(station.bench.locator, before, station.answers, GONE_S if expected else QUIET_S)
    except RigTimeout:
        return False
    return True


def test_shutdown_and_estop_as_the_version_defines(
    station: StationSession,
    config_backup: ConfigCare,
    sim,  # noqa: ANN001 - rig.plugin.core.SimHandle
) -> None:
    with station.connect() as esc:
        table = esc.table
        esc.send(c.SetRpm(SPIN_ERPM))
        assert _turning(esc) == SPIN_ERPM

        # SHUTDOWN with restart, not forced, while the motor turns: 6.05+ refuse it, older firmware ignores the id
        assert not _resets(station, esc, bytes((156, 0, 1)), expected=False)
        assert _turning(esc) == SPIN_ERPM

        _raw(esc, bytes((159,)) + (400).to_bytes(2, "big"))  # MOTOR_ESTOP for 400 ms
        if table.has(Cmd.MOTOR_ESTOP):
            assert _turning(esc) == 0, "MOTOR_ESTOP did not release the motor"
            esc.send(c.SetRpm(SPIN_ERPM))  # inside the 400 ms: ignored
            assert _turning(esc) == 0, "input was not ignored after MOTOR_ESTOP"
        else:
            assert _turning(esc) == SPIN_ERPM, f"firmware {table.version} acted on id 159"
            esc.send(c.SetCurrent(0))  # release the motor the old way
            assert _turning(esc) == 0

        # the motor stands: SHUTDOWN with restart resets the board on 6.05+, nothing happens before
        try:
            reset = _resets(station, esc, bytes((156, 0, 1)), expected=table.has(Cmd.SHUTDOWN))
        except LinkLost:
            reset = True
        assert reset is table.has(Cmd.SHUTDOWN), f"firmware {table.version}: reset={reset}"
    with station.connect() as esc:  # whatever happened, the board answers again
        assert esc.info is not None and esc.info.version == table.version
