"""The CAN id and baud across an update, with and without a power cut during the bootloader's copy.

A firmware built with 6fe2d789 (later release_6_06 builds, 7.00, 7.01) keeps controller_id and
can_baud_rate in g_backup, a struct in CCM RAM that survives the jump and the bootloader's reset, and
takes them from there when the update has wiped the EEPROM: the board stays on its bus even where the
rig cannot restore the config (the layout changed). Power lost during the copy takes CCM with it: the
board (recovered over SWD) comes back on the default id and 500 kbit/s, and only the rig's config backup
brings the bus settings back. The firmware-side behaviour is observed inside a config-care path, before
the rig's restore at its end.
"""

from __future__ import annotations

import pytest

from rig.device.firmware import APPCONF_CAN_BAUD_OFFSET, CAN_BAUD_KBITS, DEFAULT_CAN_BAUD, RELEASES, profile_for
from rig.errors import Diagnosis, UpdateError
from rig.firmware.image import Image
from rig.protocol import codecs as c
from rig.protocol.codecs import ConfigBlob, ConfigKind
from rig.protocol.commands import Cmd, FirmwareVersion
from rig.station.configs import ConfigCare
from rig.station.session import StationSession
from rig.station.strategy import Running, StationStrategy

BUS_ID = 42
BUS_KBITS = 250


def _keeps(version: FirmwareVersion | None) -> bool:
    return version is not None and profile_for(version).can_identity_backup


def _bus(station: StationSession) -> tuple[int, int]:
    """(controller_id, can_baud_rate as kbit/s) from the board's appconf."""
    with station.connect() as esc:
        data = esc.get_config(ConfigKind.APPCONF).data
    return data[0], CAN_BAUD_KBITS[data[APPCONF_CAN_BAUD_OFFSET]]


def _move_to_bus(station: StationSession) -> None:
    """CAN_UPDATE_BAUD_ALL (6.06+) sets the baud (stored); the id goes in with a verified appconf write."""
    with station.connect() as esc:
        refused = esc.request(c.CanUpdateBaudAll(333), Cmd.CAN_UPDATE_BAUD_ALL)
        assert refused == c.StatusReply(Cmd.CAN_UPDATE_BAUD_ALL, False), "333 kbit/s is no CAN_BAUD"
        done = esc.request(c.CanUpdateBaudAll(BUS_KBITS), Cmd.CAN_UPDATE_BAUD_ALL, timeout_s=5.0)
        assert done == c.StatusReply(Cmd.CAN_UPDATE_BAUD_ALL, True)
        blob = esc.get_config(ConfigKind.APPCONF)
        version = esc.version
    station.write_config(ConfigBlob(blob.kind, blob.signature, bytes((BUS_ID,)) + blob.data[1:]), made_for=version)
    assert _bus(station) == (BUS_ID, BUS_KBITS)


def _require_backup(baseline: Image, candidate: Image | None = None) -> None:
    for image in (baseline, candidate or baseline):
        if not _keeps(image.version):
            pytest.skip(f"firmware {image.version} does not keep the CAN id and baud across an update (6fe2d789)")


def test_can_id_and_baud_survive_an_update(
    station: StationSession,
    config_backup: ConfigCare,
    baseline_firmware: Image,
    firmware: Image,
    strategy: StationStrategy,
) -> None:
    _require_backup(baseline_firmware, firmware)
    strategy.transition(Running(baseline_firmware))
    _move_to_bus(station)
    with station.preserving_configs("CAN id and baud across an update", path=True):
        station.update(firmware)
        with station.connect() as esc:
            default = esc.get_config(ConfigKind.APPCONF, default=True).data
            now = esc.get_config(ConfigKind.APPCONF).data
        assert (now[0], CAN_BAUD_KBITS[now[APPCONF_CAN_BAUD_OFFSET]]) == (BUS_ID, BUS_KBITS), "CAN id/baud lost"
        # everything else is the new firmware's default: the update did wipe the config
        assert now[1:APPCONF_CAN_BAUD_OFFSET] + now[APPCONF_CAN_BAUD_OFFSET + 1 :] == (
            default[1:APPCONF_CAN_BAUD_OFFSET] + default[APPCONF_CAN_BAUD_OFFSET + 1 :]
        )
    station.update(baseline_firmware)
    assert _bus(station) == (BUS_ID, BUS_KBITS)  # kept by the firmware on the way back too


@pytest.mark.sim_only
@pytest.mark.swd
@pytest.mark.destructive
def test_a_power_cut_during_the_copy_loses_them_and_the_rig_brings_them_back(
    station: StationSession,
    config_backup: ConfigCare,
    sim,  # noqa: ANN001 - rig.plugin.core.SimHandle
    baseline_firmware: Image,
    firmware: Image,
    bootloader: Image,
    strategy: StationStrategy,
) -> None:
    _require_backup(baseline_firmware)
    first = min(r.version for r in RELEASES if _keeps(r.version))
    if baseline_firmware.version != first:  # a bricked board and an SWD recovery: shown once, on the first
        pytest.skip(
            f"shown once, on the first release that keeps them ({first}); {baseline_firmware.version} keeps them too"
        )
    strategy.transition(Running(baseline_firmware))
    _move_to_bus(station)
    with station.preserving_configs("power cut during the copy", path=True) as care:
        sim.fault("reset_during_copy", at=0.5)
        with pytest.raises(UpdateError) as caught:
            station.update(firmware)
        assert caught.value.diagnosis == Diagnosis.UNRESPONSIVE_AFTER_UPDATE  # half an app: bricked
        station.swd_program([bootloader, baseline_firmware], chip_erase=True)  # the technician's way back
        sim.power(False)
        sim.power(True)
        assert station.spec.sim is not None
        factory = (station.spec.sim.node.can_id, CAN_BAUD_KBITS[DEFAULT_CAN_BAUD])  # HW default id, 500 kbit/s
        assert _bus(station) == factory, "CAN id/baud survived a power cut: CCM RAM is not volatile in the model"
    local = next(n for n in care.nodes if n.node == "local")
    assert local.changed and local.restored and local.verified, local.describe()
    assert _bus(station) == (BUS_ID, BUS_KBITS)  # the rig's backup, not the firmware, brought them back
