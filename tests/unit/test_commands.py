"""rig.protocol.commands: command ids per firmware version (facts sheet section 2)."""

from __future__ import annotations

import pytest

from rig.errors import ProtocolError, UnsupportedCommand
from rig.protocol.commands import LATEST, Cmd, FirmwareVersion, command_table, fw


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
        Cmd.NRF_START_PAIRING: 36,
    }
    for cmd, wire in expected.items():
        assert table.id(cmd) == wire
        assert table.cmd(wire) == cmd
    assert table.cmd(37) is None  # the last id of 3.00 is 36
    # 3.01 already has the handbrake
    assert command_table(fw("3.01")).id(Cmd.SET_MCCONF) == 13


def test_id_79_moved_in_3_63() -> None:
    v362, v363 = command_table(fw("3.62")), command_table(fw("3.63"))
    assert v362.cmd(79) == Cmd.BM_MEM_READ and v362.id(Cmd.BM_MEM_READ) == 79
    assert not v362.has(Cmd.GET_DECODED_BALANCE)
    assert v363.cmd(79) == Cmd.GET_DECODED_BALANCE and v363.id(Cmd.BM_MEM_READ) == 80
    assert v363.id(Cmd.WRITE_NEW_APP_DATA_LZO) == 81 and v363.id(Cmd.WRITE_NEW_APP_DATA_ALL_CAN_LZO) == 82
    assert not v362.has(Cmd.WRITE_NEW_APP_DATA_LZO)
    assert LATEST.cmd(79) == Cmd.GET_DECODED_BALANCE


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
        (Cmd.GET_DECODED_BALANCE, "3.63"),
    ],
)
def test_commands_exist_only_from_their_version(cmd: Cmd, first: str) -> None:
    version = fw(first)
    before = FirmwareVersion(version.major, version.minor - 1)
    assert command_table(version).id(cmd) == int(cmd)
    assert command_table(version).cmd(int(cmd)) == cmd
    with pytest.raises(UnsupportedCommand, match=f"{cmd.name} does not exist in firmware {before}"):
        command_table(before).id(cmd)
    # the id is free before (id 79 excepted: BM_MEM_READ in 3.62)
    assert command_table(before).cmd(int(cmd)) is (Cmd.BM_MEM_READ if cmd == 79 else None)


def test_erase_bootloader_missing_in_3_40() -> None:
    with pytest.raises(UnsupportedCommand) as info:
        command_table(fw("3.40")).id(Cmd.ERASE_BOOTLOADER)
    assert info.value.diagnosis == "unsupported by this firmware"


def test_tables_are_consistent_both_ways() -> None:
    for version in ("3.00", "3.40", "3.48", "3.62", "3.63", "6.02"):
        table = command_table(fw(version))
        assert len(table.to_wire) == len(table.from_wire)  # no two commands share an id
        for cmd, wire in table.to_wire.items():
            assert table.cmd(wire) == cmd
    assert command_table(fw("3.40")) is command_table(fw("3.40"))  # cached
