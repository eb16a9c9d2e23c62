"""COMM_PACKET_ID per firmware version (facts sheet section 2).

:class:`Cmd` names every command by its id in current firmware (3.63 onward). :func:`command_table`
gives, for one firmware version, the id each command has on the wire and the command each id means:
firmware up to 3.00 has no SET_HANDBRAKE, so every id from 10 up is one lower; commands only exist
from the version that added them; id 79 is BM_MEM_READ in 3.62 and GET_DECODED_BALANCE from 3.63.
"""

from __future__ import annotations

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
    """Commands by their id in firmware 3.63 and later."""

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


V3_00, V3_62 = fw("3.00"), fw("3.62")

# The first version that has each command range (facts sheet section 2, diffed per tag).
_ADDED_IN: tuple[tuple[range, FirmwareVersion], ...] = (
    (range(38, 64), fw("3.48")),
    (range(64, 66), fw("3.52")),
    (range(66, 73), fw("3.54")),
    (range(73, 75), fw("3.59")),
    (range(75, 79), fw("3.60")),
    (range(79, 83), fw("3.63")),
)


def _since(cmd: Cmd) -> FirmwareVersion | None:
    for ids, version in _ADDED_IN:
        if cmd in ids:
            return version
    return None


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


@lru_cache(maxsize=64)
def command_table(version: FirmwareVersion) -> CommandTable:
    """The command table of a firmware version."""
    to_wire: dict[Cmd, int] = {}
    for cmd in Cmd:
        since = _since(cmd)
        if since is not None and version < since:
            continue
        if version <= V3_00:
            if cmd == Cmd.SET_HANDBRAKE:
                continue
            to_wire[cmd] = cmd - 1 if cmd > Cmd.SET_HANDBRAKE else int(cmd)
        else:
            to_wire[cmd] = int(cmd)
    if version == V3_62:  # only 3.62 had BM_MEM_READ at 79; 3.63 moved it to 80
        to_wire[Cmd.BM_MEM_READ] = 79
    return CommandTable(version, to_wire, {v: k for k, v in to_wire.items()})


LATEST = command_table(fw("6.02"))
