"""rig.protocol.commands: command ids per firmware version (facts sheet section 2)."""

from __future__ import annotations

import pytest

from rig.errors import ProtocolError, UnsupportedCommand
from rig.protocol.commands import ADDITIONS, LATEST, LEGACY_LAYOUTS, Cmd, FirmwareVersion, added_in, command_table, fw


def test_firmware_version_parse_and_order() -> None:
    assert fw("3.40") == FirmwareVersion(3, 40)
    assert fw(" 6.02 ") == FirmwareVersion(6, 2)
    assert fw("6.2") == fw("6.02")  # the minor part is an integer
    assert str(fw("6.2")) == "6.02" and str(fw("3.40")) == "3.40"
    assert fw("3.9") < fw("3.40") < fw("3.48") < fw("5.03") < fw("6.00")
    assert sorted([fw("5.3"), fw("3.62"), fw("3.63"), fw("3.00")]) == [fw("3.00"), fw("3.62"), fw("3.63"), fw("5.03")]
    assert fw("3.48") >= fw("3.48") and not fw("3.48") > fw("3.48")


@pytest.mark.parametrize("text", ["", "3", "3.40.1", "three.forty", "3.x", "v3.40"])
def test_firmware_version_parse_errors(text: str) -> None:
    with pytest.raises(ProtocolError, match="MAJOR.MINOR"):
        fw(text)


def test_stable_ids_from_3_07() -> None:
    for version in ("3.07", "3.40", "5.03", "6.02"):
        table = command_table(fw(version))
        assert table.id(Cmd.FW_VERSION) == 0
        assert table.id(Cmd.GET_VALUES) == 4
        assert table.id(Cmd.SET_MCCONF) == 13
        assert table.id(Cmd.SET_APPCONF) == 16
        assert table.id(Cmd.TERMINAL_CMD) == 20
        assert table.id(Cmd.PRINT) == 21
        assert table.id(Cmd.REBOOT) == 29
        assert table.id(Cmd.ALIVE) == 30
        assert table.id(Cmd.FORWARD_CAN) == 34
        assert table.cmd(31) == Cmd.GET_DECODED_PPM


def test_firmware_3_00_has_no_handbrake_and_ids_from_10_are_one_lower() -> None:
    table = command_table(fw("3.00"))
    assert not table.has(Cmd.SET_HANDBRAKE)
    with pytest.raises(UnsupportedCommand, match="SET_HANDBRAKE.*3.00"):
        table.id(Cmd.SET_HANDBRAKE)
    assert table.id(Cmd.SET_POS) == 9  # below 10: unchanged
    expected = {
        Cmd.SET_DETECT: 10,
        Cmd.SET_MCCONF: 12,
        Cmd.GET_MCCONF: 13,
        Cmd.SET_APPCONF: 15,
        Cmd.GET_APPCONF: 16,
        Cmd.TERMINAL_CMD: 19,
        Cmd.PRINT: 20,
        Cmd.REBOOT: 28,
        Cmd.ALIVE: 29,
        Cmd.FORWARD_CAN: 33,
        Cmd.CUSTOM_APP_DATA: 35,
    }
    for cmd, wire in expected.items():
        assert table.id(cmd) == wire
        assert table.cmd(wire) == cmd
    assert not table.has(Cmd.NRF_START_PAIRING)  # 2.10-3.00 end at 35 CUSTOM_APP_DATA
    assert table.cmd(36) is None
    # 3.01-3.06 never existed: 3.00 went straight to 3.07, which renumbered (5dbc94c5)
    assert command_table(fw("3.05")).id(Cmd.SET_MCCONF) == 12
    assert command_table(fw("3.07")).id(Cmd.SET_MCCONF) == 13
    assert command_table(fw("3.07")).id(Cmd.NRF_START_PAIRING) == 37


@pytest.mark.parametrize(
    ("version", "wire"),
    [
        # research fw-protocol.md 2.2: the rule "one lower" holds only for 2.10-3.00
        ("2.10", {Cmd.REBOOT: 28, Cmd.ALIVE: 29, Cmd.DETECT_HALL_FOC: 27, Cmd.CUSTOM_APP_DATA: 35}),
        ("2.09", {Cmd.DETECT_ENCODER: 26, Cmd.REBOOT: 27, Cmd.FORWARD_CAN: 32, Cmd.CUSTOM_APP_DATA: 34}),
        ("2.07", {Cmd.DETECT_ENCODER: 26, Cmd.REBOOT: 27, Cmd.FORWARD_CAN: 32}),
        ("2.03", {Cmd.DETECT_MOTOR_FLUX_LINKAGE: 25, Cmd.REBOOT: 26, Cmd.ALIVE: 27, Cmd.FORWARD_CAN: 31}),
    ],
)
def test_tables_before_3_07_as_their_datatypes_h(version: str, wire: dict[Cmd, int]) -> None:
    table = command_table(fw(version))
    for cmd, wire_id in wire.items():
        assert table.id(cmd) == wire_id, cmd
    assert table.id(Cmd.SET_MCCONF) == 12 and not table.has(Cmd.SET_HANDBRAKE)


def test_2_03_to_2_08_lack_what_later_tables_have() -> None:
    assert not command_table(fw("2.06")).has(Cmd.DETECT_ENCODER)
    assert not command_table(fw("2.09")).has(Cmd.DETECT_HALL_FOC)
    assert not command_table(fw("2.08")).has(Cmd.SET_CHUCK_DATA)
    assert command_table(fw("2.09")).has(Cmd.SET_CHUCK_DATA)
    ends = {v: max(command_table(fw(v)).from_wire) for v in ("2.03", "2.07", "2.09", "2.10")}
    assert ends == {"2.03": 31, "2.07": 32, "2.09": 34, "2.10": 35}  # 32, 33, 35, 36 entries


def test_firmware_1_x_knows_only_the_ids_that_never_changed() -> None:
    table = command_table(fw("1.14"))
    assert sorted(table.from_wire) == list(range(10))
    assert not table.has(Cmd.REBOOT)


def test_ids_79_and_80_in_the_released_3_62() -> None:
    """The released 3.62 (dfc3ed23 "Final v3.62") has 79 GET_DECODED_BALANCE and 80 BM_MEM_READ; the git tag 3.62
    is a development build that reports 3.61 (not modelled), and 3.61 has neither."""
    v361, v362, v363 = command_table(fw("3.61")), command_table(fw("3.62")), command_table(fw("3.63"))
    assert v362.cmd(79) == Cmd.GET_DECODED_BALANCE and v362.id(Cmd.BM_MEM_READ) == 80
    assert v361.cmd(79) is None and not v361.has(Cmd.BM_MEM_READ)
    assert not v362.has(Cmd.WRITE_NEW_APP_DATA_LZO)
    assert v363.id(Cmd.WRITE_NEW_APP_DATA_LZO) == 81 and v363.id(Cmd.BM_WRITE_FLASH_LZO) == 83
    assert LATEST.cmd(79) == Cmd.GET_DECODED_BALANCE


def test_6_05_to_7_01_ids_and_the_pinlock_placeholders() -> None:
    v602, v605, v606, v701 = (command_table(fw(v)) for v in ("6.02", "6.05", "6.06", "7.01"))
    assert max(v602.from_wire) == 151
    assert v605.id(Cmd.LISP_RMSG) == 152 and v605.id(Cmd.SHUTDOWN) == 156
    assert not v605.has(Cmd.FW_INFO) and not v605.has(Cmd.MOTOR_ESTOP)
    assert (v606.id(Cmd.FW_INFO), v606.id(Cmd.CAN_UPDATE_BAUD_ALL), v606.id(Cmd.MOTOR_ESTOP)) == (157, 158, 159)
    for pinlock in (153, 154, 155):  # commented out in datatypes.h (dcbac819): not commands
        assert v605.cmd(pinlock) is None and v701.cmd(pinlock) is None
    assert v701.to_wire == v606.to_wire  # 7.00 and 7.01 add nothing


def test_every_addition_names_the_commit_it_was_read_at() -> None:
    assert ADDITIONS[0].since == fw("3.07")
    assert all(row.source for row in ADDITIONS) and all(row.source for row in LEGACY_LAYOUTS)
    assert added_in(Cmd.BM_MAP_PINS_DEFAULT).since == fw("3.59")  # not 3.54 (602db743)
    assert added_in(Cmd.SET_BATTERY_CUT).since == fw("5.00")
    assert {cmd for row in ADDITIONS for cmd in row.commands} == set(Cmd)


@pytest.mark.parametrize(
    ("cmd", "first"),
    [
        (Cmd.GPD_SET_FSW, "3.48"),
        (Cmd.GET_VALUES_SELECTIVE, "3.48"),
        (Cmd.PING_CAN, "3.48"),
        (Cmd.JUMP_TO_BOOTLOADER_ALL_CAN, "3.48"),
        (Cmd.TERMINAL_CMD_SYNC, "3.52"),
        (Cmd.BM_CONNECT, "3.54"),
        (Cmd.ERASE_BOOTLOADER, "3.59"),
        (Cmd.ERASE_BOOTLOADER_ALL_CAN, "3.59"),
        (Cmd.PLOT_INIT, "3.60"),
        (Cmd.BM_MAP_PINS_NRF5X, "3.59"),
        (Cmd.GET_DECODED_BALANCE, "3.62"),
        (Cmd.BM_MEM_READ, "3.62"),
        (Cmd.SET_CURRENT_REL, "3.64"),
        (Cmd.CAN_FWD_FRAME, "4.00"),
        (Cmd.GET_IMU_CALIBRATION, "5.00"),
        (Cmd.SET_ODOMETER, "5.02"),
        (Cmd.GET_STATS, "5.03"),
        (Cmd.LISP_READ_CODE, "6.00"),
        (Cmd.SHUTDOWN, "6.05"),
        (Cmd.MOTOR_ESTOP, "6.06"),
    ],
)
def test_commands_exist_only_from_their_version(cmd: Cmd, first: str) -> None:
    version = fw(first)
    before = FirmwareVersion(version.major, version.minor - 1) if version.minor else FirmwareVersion(3, 67)
    assert command_table(version).id(cmd) == int(cmd)
    assert command_table(version).cmd(int(cmd)) == cmd
    with pytest.raises(UnsupportedCommand, match=f"{cmd.name} does not exist in firmware {before}"):
        command_table(before).id(cmd)
    assert command_table(before).cmd(int(cmd)) is None  # the id is free before


def test_erase_bootloader_missing_in_3_40() -> None:
    with pytest.raises(UnsupportedCommand) as info:
        command_table(fw("3.40")).id(Cmd.ERASE_BOOTLOADER)
    assert info.value.diagnosis == "unsupported by this firmware"


def test_tables_are_consistent_both_ways() -> None:
    for version in ("1.10", "2.05", "2.09", "3.00", "3.40", "3.48", "3.62", "3.63", "6.02", "7.01"):
        table = command_table(fw(version))
        assert len(table.to_wire) == len(table.from_wire)  # no two commands share an id
        for cmd, wire in table.to_wire.items():
            assert table.cmd(wire) == cmd
    assert command_table(fw("3.40")) is command_table(fw("3.40"))  # cached
