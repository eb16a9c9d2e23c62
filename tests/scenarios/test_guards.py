"""F6 and F8: the rig refuses what would damage a board, before anything is written."""

from __future__ import annotations

from dataclasses import replace

import pytest

from rig.captures.decode import decode_log
from rig.captures.directions import Role
from rig.errors import ConfigError, Diagnosis, WrongHardware
from rig.firmware.config import check_writable
from rig.firmware.image import Image
from rig.protocol.codecs import ConfigKind
from rig.protocol.commands import Cmd
from rig.station.permissions import Permission
from rig.station.session import StationSession


def _sent_commands(station: StationSession) -> set[str]:
    return {e.command for e in decode_log(station.trace.text()).frames(Role.TO_ESC) if e.command}


def test_image_for_other_hardware_is_refused_before_erasing(station: StationSession, firmware: Image) -> None:
    if station.permit.allows(Permission.WRONG_HARDWARE):
        pytest.skip("--allow-wrong-hw turns this guard off")
    with station.connect() as esc:
        assert esc.info is not None
        hw, version = esc.info.hw_name, esc.info.version
    other = replace(firmware, hw_names=("not-" + (hw or "x"),))
    with pytest.raises(WrongHardware) as caught:
        station.update(other)
    assert caught.value.diagnosis == Diagnosis.WRONG_HARDWARE
    assert Cmd.ERASE_NEW_APP.name not in _sent_commands(station), "the buffer was erased before the guard"
    with station.connect() as esc:
        assert esc.info is not None and (esc.info.hw_name, esc.info.version) == (hw, version)


def test_config_of_another_layout_is_refused(station: StationSession) -> None:
    with station.connect() as esc:
        assert esc.info is not None
        version = esc.info.version
        for kind in ConfigKind:
            blob = esc.get_config(kind)
            if blob.signature is None:  # before 3.50: only the firmware version vouches for the layout
                other_version = replace(version, minor=version.minor + 1)
                with pytest.raises(ConfigError) as caught:
                    check_writable(esc, blob, other_version)
            else:
                with pytest.raises(ConfigError) as caught:
                    check_writable(esc, replace(blob, signature=blob.signature ^ 0x5A5A5A5A), version)
            assert caught.value.diagnosis == Diagnosis.CONFIG_SIGNATURE_MISMATCH
            check_writable(esc, blob, version)  # its own config passes
    assert not {Cmd.SET_MCCONF.name, Cmd.SET_APPCONF.name} & _sent_commands(station)


@pytest.mark.sim_only
@pytest.mark.destructive
@pytest.mark.usefixtures("config_backup")
def test_simulated_board_accepts_wrong_hardware_like_a_real_one(
    station: StationSession, baseline_firmware: Image, firmware: Image
) -> None:
    """The guard is the only protection: the (simulated) firmware takes any image, as the real one does."""
    from rig.sim.image import make_firmware_image

    assert firmware.version is not None
    other_hw = "410" if "60" in firmware.hw_names else "60"
    wrong = replace(firmware, data=make_firmware_image(other_hw, str(firmware.version)), hw_names=(other_hw,))
    with station.allowing(Permission.WRONG_HARDWARE, by="this scenario (the guard's forced path)"):
        result = station.update(wrong)
        assert result.after.hw_name == other_hw
        station.update(replace(baseline_firmware, hw_names=(other_hw,)))
    with station.connect() as esc:
        assert esc.info is not None and esc.info.hw_name in baseline_firmware.hw_names
