"""COMM_PACKET_ID per firmware version, from datatypes.h of every tag and release branch (vedderb/bldc).

:class:`Cmd` names every command by its id in firmware 3.07 and later. :func:`command_table` gives, for
one firmware version, the id each command has on the wire and the command each id means. The history is
data (:data:`ADDITIONS`, :data:`LEGACY_LAYOUTS`), each row with the version it holds from and the commit
it was read at (research notes fw-protocol.md section 2, fw-commands.csv):

- from 3.07 (5dbc94c5 "FW 3.7", which inserted SET_HANDBRAKE at 10) ids are only appended; a command
  exists from the release that added it. The one exception: BM_MEM_READ sat at 79 in development builds
  of 3.62 (the git tag ``3.62`` itself reports 3.61), and the released 3.62 has 79 GET_DECODED_BALANCE,
  80 BM_MEM_READ (f34d0159);
- 2.10 to 3.00 lack SET_HANDBRAKE and NRF_START_PAIRING, so their ids 10-35 are the 3.07 ids 11-36;
  2.03-2.09 differ again from id 26 (no DETECT_HALL_FOC, and before 2.07 no DETECT_ENCODER either);
  1.x tables differ beyond id 9 and are not modelled: only ids 0-9 (the same in every version) are known.
- firmware 3.01-3.06 never existed (3.00 went to 3.07), so those versions read as 3.00.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum
from functools import lru_cache, total_ordering

from rig.errors import ProtocolError, UnsupportedCommand


@total_ordering
@dataclass(frozen=True)
class FirmwareVersion:
    """A firmware version as FW_VERSION reports it: 3.40 is major 3, minor 40."""

    major: int
    minor: int

    @classmethod
    def parse(cls, text: str) -> FirmwareVersion:
        """Parse "6.02" or "3.40" (the minor part is an integer, so "6.2" is 6.02)."""
        try:
            major, minor = text.strip().split(".")
            return cls(int(major), int(minor))
        except ValueError:
            raise ProtocolError(f"not a firmware version (want MAJOR.MINOR such as 6.02): {text!r}") from None

    def __lt__(self, other: FirmwareVersion) -> bool:
        return (self.major, self.minor) < (other.major, other.minor)

    def __str__(self) -> str:
        return f"{self.major}.{self.minor:02d}"


def fw(text: str) -> FirmwareVersion:
    """Shorthand for :meth:`FirmwareVersion.parse`."""
    return FirmwareVersion.parse(text)


class Cmd(IntEnum):
    """Commands by their id in firmware 3.07 and later (ids only get appended from 3.07 on; 79/80 settled in
    3.62). 153-155 (COMM_PINLOCK1..3) are commented-out placeholders in datatypes.h, not commands."""

    FW_VERSION = 0
    JUMP_TO_BOOTLOADER = 1
    ERASE_NEW_APP = 2
    WRITE_NEW_APP_DATA = 3
    GET_VALUES = 4
    SET_DUTY = 5
    SET_CURRENT = 6
    SET_CURRENT_BRAKE = 7
    SET_RPM = 8
    SET_POS = 9
    SET_HANDBRAKE = 10
    SET_DETECT = 11
    SET_SERVO_POS = 12
    SET_MCCONF = 13
    GET_MCCONF = 14
    GET_MCCONF_DEFAULT = 15
    SET_APPCONF = 16
    GET_APPCONF = 17
    GET_APPCONF_DEFAULT = 18
    SAMPLE_PRINT = 19
    TERMINAL_CMD = 20
    PRINT = 21
    ROTOR_POSITION = 22
    EXPERIMENT_SAMPLE = 23
    DETECT_MOTOR_PARAM = 24
    DETECT_MOTOR_R_L = 25
    DETECT_MOTOR_FLUX_LINKAGE = 26
    DETECT_ENCODER = 27
    DETECT_HALL_FOC = 28
    REBOOT = 29
    ALIVE = 30
    GET_DECODED_PPM = 31
    GET_DECODED_ADC = 32
    GET_DECODED_CHUK = 33
    FORWARD_CAN = 34
    SET_CHUCK_DATA = 35
    CUSTOM_APP_DATA = 36
    NRF_START_PAIRING = 37
    GPD_SET_FSW = 38
    GPD_BUFFER_NOTIFY = 39
    GPD_BUFFER_SIZE_LEFT = 40
    GPD_FILL_BUFFER = 41
    GPD_OUTPUT_SAMPLE = 42
    GPD_SET_MODE = 43
    GPD_FILL_BUFFER_INT8 = 44
    GPD_FILL_BUFFER_INT16 = 45
    GPD_SET_BUFFER_INT_SCALE = 46
    GET_VALUES_SETUP = 47
    SET_MCCONF_TEMP = 48
    SET_MCCONF_TEMP_SETUP = 49
    GET_VALUES_SELECTIVE = 50
    GET_VALUES_SETUP_SELECTIVE = 51
    EXT_NRF_PRESENT = 52
    EXT_NRF_ESB_SET_CH_ADDR = 53
    EXT_NRF_ESB_SEND_DATA = 54
    EXT_NRF_ESB_RX_DATA = 55
    EXT_NRF_SET_ENABLED = 56
    DETECT_MOTOR_FLUX_LINKAGE_OPENLOOP = 57
    DETECT_APPLY_ALL_FOC = 58
    JUMP_TO_BOOTLOADER_ALL_CAN = 59
    ERASE_NEW_APP_ALL_CAN = 60
    WRITE_NEW_APP_DATA_ALL_CAN = 61
    PING_CAN = 62
    APP_DISABLE_OUTPUT = 63
    TERMINAL_CMD_SYNC = 64
    GET_IMU_DATA = 65
    BM_CONNECT = 66
    BM_ERASE_FLASH_ALL = 67
    BM_WRITE_FLASH = 68
    BM_REBOOT = 69
    BM_DISCONNECT = 70
    BM_MAP_PINS_DEFAULT = 71
    BM_MAP_PINS_NRF5X = 72
    ERASE_BOOTLOADER = 73
    ERASE_BOOTLOADER_ALL_CAN = 74
    PLOT_INIT = 75
    PLOT_DATA = 76
    PLOT_ADD_GRAPH = 77
    PLOT_SET_GRAPH = 78
    GET_DECODED_BALANCE = 79
    BM_MEM_READ = 80
    WRITE_NEW_APP_DATA_LZO = 81
    WRITE_NEW_APP_DATA_ALL_CAN_LZO = 82
    BM_WRITE_FLASH_LZO = 83
    SET_CURRENT_REL = 84
    CAN_FWD_FRAME = 85
    SET_BATTERY_CUT = 86
    SET_BLE_NAME = 87
    SET_BLE_PIN = 88
    SET_CAN_MODE = 89
    GET_IMU_CALIBRATION = 90
    GET_MCCONF_TEMP = 91
    GET_CUSTOM_CONFIG_XML = 92
    GET_CUSTOM_CONFIG = 93
    GET_CUSTOM_CONFIG_DEFAULT = 94
    SET_CUSTOM_CONFIG = 95
    BMS_GET_VALUES = 96
    BMS_SET_CHARGE_ALLOWED = 97
    BMS_SET_BALANCE_OVERRIDE = 98
    BMS_RESET_COUNTERS = 99
    BMS_FORCE_BALANCE = 100
    BMS_ZERO_CURRENT_OFFSET = 101
    JUMP_TO_BOOTLOADER_HW = 102
    ERASE_NEW_APP_HW = 103
    WRITE_NEW_APP_DATA_HW = 104
    ERASE_BOOTLOADER_HW = 105
    JUMP_TO_BOOTLOADER_ALL_CAN_HW = 106
    ERASE_NEW_APP_ALL_CAN_HW = 107
    WRITE_NEW_APP_DATA_ALL_CAN_HW = 108
    ERASE_BOOTLOADER_ALL_CAN_HW = 109
    SET_ODOMETER = 110
    PSW_GET_STATUS = 111
    PSW_SWITCH = 112
    BMS_FWD_CAN_RX = 113
    BMS_HW_DATA = 114
    GET_BATTERY_CUT = 115
    BM_HALT_REQ = 116
    GET_QML_UI_HW = 117
    GET_QML_UI_APP = 118
    CUSTOM_HW_DATA = 119
    QMLUI_ERASE = 120
    QMLUI_WRITE = 121
    IO_BOARD_GET_ALL = 122
    IO_BOARD_SET_PWM = 123
    IO_BOARD_SET_DIGITAL = 124
    BM_MEM_WRITE = 125
    BMS_BLNC_SELFTEST = 126
    GET_EXT_HUM_TMP = 127
    GET_STATS = 128
    RESET_STATS = 129
    LISP_READ_CODE = 130
    LISP_WRITE_CODE = 131
    LISP_ERASE_CODE = 132
    LISP_SET_RUNNING = 133
    LISP_GET_STATS = 134
    LISP_PRINT = 135
    BMS_SET_BATT_TYPE = 136
    BMS_GET_BATT_TYPE = 137
    LISP_REPL_CMD = 138
    LISP_STREAM_CODE = 139
    FILE_LIST = 140
    FILE_READ = 141
    FILE_WRITE = 142
    FILE_MKDIR = 143
    FILE_REMOVE = 144
    LOG_START = 145
    LOG_STOP = 146
    LOG_CONFIG_FIELD = 147
    LOG_DATA_F32 = 148
    SET_APPCONF_NO_STORE = 149
    GET_GNSS = 150
    LOG_DATA_F64 = 151
    LISP_RMSG = 152
    SHUTDOWN = 156
    FW_INFO = 157
    CAN_UPDATE_BAUD_ALL = 158
    MOTOR_ESTOP = 159


@dataclass(frozen=True)
class Addition:
    """Commands a release appended (at their 3.07+ ids), and the commit the ids were read at."""

    since: FirmwareVersion
    commands: tuple[Cmd, ...]
    source: str


def _ids(*ranges: Iterable[int]) -> tuple[Cmd, ...]:
    return tuple(Cmd(i) for ids in ranges for i in ids)


ADDITIONS: tuple[Addition, ...] = (
    Addition(fw("3.07"), _ids(range(0, 38)), "5dbc94c5 (tag 3.07): SET_HANDBRAKE inserted at 10, 37 NRF_START_PAIRING"),
    Addition(fw("3.48"), _ids(range(38, 64)), "123bb00a (tag 3.48) 'Major 2019 update'"),
    Addition(fw("3.52"), _ids(range(64, 66)), "65298263 (tag 3.52)"),
    Addition(fw("3.54"), _ids(range(66, 71)), "1161f841 (tag 3.54)"),
    Addition(fw("3.59"), _ids(range(71, 75)), "602db743 (tag 3.59): BM_MAP_PINS_* and ERASE_BOOTLOADER(_ALL_CAN)"),
    Addition(fw("3.60"), _ids(range(75, 79)), "a233367b (tag 3.60)"),
    Addition(fw("3.62"), _ids((79, 80)), "f34d0159 / dfc3ed23 'Final v3.62': 79 GET_DECODED_BALANCE, 80 BM_MEM_READ"),
    Addition(fw("3.63"), _ids(range(81, 84)), "23e61925 (tag 3.63): LZO writes"),
    Addition(fw("3.64"), _ids((84,)), "ceb8b7bf (tag 3.64)"),
    Addition(fw("4.00"), _ids((85,)), "b6949d60 (tag 4.00)"),
    Addition(
        fw("5.00"), _ids(range(86, 91)), "51f0fcea, f7964e20, 7869b34c (tag v5.00; 86-89 also in late 4.02 builds)"
    ),
    Addition(fw("5.02"), _ids(range(91, 111)), "tag 5.02 3f670137 (6509065c and others)"),
    Addition(fw("5.03"), _ids(range(111, 130)), "tag 5.03 92efab48"),
    Addition(fw("6.00"), _ids(range(130, 152)), "tag 6.00 4b822f0f"),
    Addition(fw("6.05"), _ids((152, 156)), "05de2f61 LISP_RMSG, dcbac819 SHUTDOWN (release_6_05 a0d40e2c)"),
    Addition(fw("6.06"), _ids((157, 158, 159)), "38f44a72, c778f17a, 43bcd2b0 (release_6_06 94b305ec)"),
)
MODERN_SINCE = ADDITIONS[0].since

_MODERN_10_TO_26 = _ids(range(11, 27))  # SET_DETECT .. DETECT_MOTOR_FLUX_LINKAGE: ids 10-25 before 3.07


@dataclass(frozen=True)
class LegacyLayout:
    """A pre-3.07 COMM_PACKET_ID enum: the commands in wire order (id 0 first)."""

    since: FirmwareVersion
    order: tuple[Cmd, ...]
    source: str


_FIRST_TEN = _ids(range(0, 10))
LEGACY_LAYOUTS: tuple[LegacyLayout, ...] = (
    LegacyLayout(fw("0.00"), _FIRST_TEN, "ids 0-9 are the same in every tag; 1.x differ beyond (not modelled)"),
    LegacyLayout(
        fw("2.03"),
        _FIRST_TEN
        + _MODERN_10_TO_26
        + (Cmd.REBOOT, Cmd.ALIVE, Cmd.GET_DECODED_PPM, Cmd.GET_DECODED_ADC, Cmd.GET_DECODED_CHUK, Cmd.FORWARD_CAN),
        "tags 2.03-2.06 datatypes.h (32 entries)",
    ),
    LegacyLayout(
        fw("2.07"),
        _FIRST_TEN
        + _MODERN_10_TO_26
        + (Cmd.DETECT_ENCODER, Cmd.REBOOT, Cmd.ALIVE, Cmd.GET_DECODED_PPM, Cmd.GET_DECODED_ADC)
        + (Cmd.GET_DECODED_CHUK, Cmd.FORWARD_CAN),
        "tags 2.07, 2.08 datatypes.h (33 entries)",
    ),
    LegacyLayout(
        fw("2.09"),
        _FIRST_TEN
        + _MODERN_10_TO_26
        + (Cmd.DETECT_ENCODER, Cmd.REBOOT, Cmd.ALIVE, Cmd.GET_DECODED_PPM, Cmd.GET_DECODED_ADC)
        + (Cmd.GET_DECODED_CHUK, Cmd.FORWARD_CAN, Cmd.SET_CHUCK_DATA, Cmd.CUSTOM_APP_DATA),
        "tag 2.09 datatypes.h (35 entries)",
    ),
    LegacyLayout(
        fw("2.10"),
        _FIRST_TEN + _ids(range(11, 37)),
        "tags 2.10-3.00 datatypes.h (36 entries; 3.00 went straight to 3.07)",
    ),
)


@dataclass(frozen=True)
class CommandTable:
    """The wire ids of one firmware version, both ways."""

    version: FirmwareVersion
    to_wire: dict[Cmd, int]
    from_wire: dict[int, Cmd]

    def id(self, cmd: Cmd) -> int:
        """Wire id of a command; UnsupportedCommand if this firmware does not have it."""
        try:
            return self.to_wire[cmd]
        except KeyError:
            raise UnsupportedCommand(f"{cmd.name} does not exist in firmware {self.version}") from None

    def cmd(self, wire_id: int) -> Cmd | None:
        """The command a wire id means in this firmware, or None for an unknown id."""
        return self.from_wire.get(wire_id)

    def has(self, cmd: Cmd) -> bool:
        return cmd in self.to_wire


def added_in(cmd: Cmd) -> Addition:
    """The row of :data:`ADDITIONS` that brought `cmd` (at its 3.07+ id)."""
    return next(row for row in ADDITIONS if cmd in row.commands)


@lru_cache(maxsize=128)
def command_table(version: FirmwareVersion) -> CommandTable:
    """The command table of a firmware version."""
    if version < MODERN_SINCE:
        layout = max((row for row in LEGACY_LAYOUTS if row.since <= version), key=lambda row: row.since)
        to_wire = {cmd: wire for wire, cmd in enumerate(layout.order)}
    else:
        to_wire = {cmd: int(cmd) for row in ADDITIONS if row.since <= version for cmd in row.commands}
    return CommandTable(version, to_wire, {v: k for k, v in to_wire.items()})


LATEST = command_table(fw("7.01"))
