"""Typed payload codecs, both directions (host and simulated device share them).

A payload is ``[command id][body]``. Each message is a dataclass with ``cmd``, ``pack()`` (the body)
and ``unpack(body)``. Which optional fields a reply carries is decided by the data (a field left at
None is not sent), so a firmware profile chooses the fields and the host parses whatever is there,
as VESC Tool does (a field is parsed only if enough bytes remain). All multi-byte fields are
big-endian (firmware util/buffer.c).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar

from rig.errors import PayloadError
from rig.protocol.commands import Cmd, CommandTable, FirmwareVersion, fw
from rig.protocol.values import VALUE_FIELDS, Values, decode_fields, encode_field, leading_fields, selective_fields

U32 = struct.Struct(">I")
I32 = struct.Struct(">i")
I16X2 = struct.Struct(">hh")
U16 = struct.Struct(">H")


def _u32(body: bytes, at: int, what: str) -> int:
    if len(body) < at + 4:
        raise PayloadError(f"{what}: need 4 bytes at offset {at}, payload has {len(body)}")
    return U32.unpack_from(body, at)[0]


def _i32(body: bytes, at: int, what: str) -> int:
    if len(body) < at + 4:
        raise PayloadError(f"{what}: need 4 bytes at offset {at}, payload has {len(body)}")
    return I32.unpack_from(body, at)[0]


def _ok(body: bytes, what: str) -> bool:
    if not body:
        raise PayloadError(f"{what}: reply carries no status byte")
    return body[0] != 0


def _cstring(body: bytes, at: int) -> tuple[str, int]:
    """A NUL-terminated string starting at `at`; returns the text and the offset after the NUL."""
    end = body.find(b"\0", at)
    if end < 0:
        raise PayloadError(f"unterminated string at offset {at}")
    return body[at:end].decode("latin-1"), end + 1


# --- FW_VERSION ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FwVersionRequest:
    cmd: ClassVar[Cmd] = Cmd.FW_VERSION

    def pack(self) -> bytes:
        return b""

    @classmethod
    def unpack(cls, body: bytes) -> FwVersionRequest:
        return cls()


@dataclass(frozen=True)
class FwVersionReply:
    """COMM_FW_VERSION reply; each optional field exists from the firmware version in its comment.

    Fields are sent in order and the first None ends the reply (facts sheet section 3).
    """

    cmd: ClassVar[Cmd] = Cmd.FW_VERSION
    major: int
    minor: int
    hw_name: str | None = None  # 3.07
    uid: bytes | None = None  # 3.09, 12 bytes
    pairing_done: int | None = None  # 3.48
    test_version: int | None = None  # 5.00, 0 = release
    hw_type: int | None = None  # 5.02: 0 VESC, 1 BMS, 2 custom module
    custom_cfg_num: int | None = None  # 5.02
    has_phase_filters: int | None = None  # 5.03
    qml_hw: int | None = None  # 5.03
    qml_app: int | None = None  # 5.03
    nrf_flags: int | None = None  # 6.00
    fw_name: str | None = None  # 6.00
    hw_conf_crc: int | None = None  # 6.05 (341a7e67)

    _U8_FIELDS: ClassVar[tuple[str, ...]] = (
        "pairing_done",
        "test_version",
        "hw_type",
        "custom_cfg_num",
        "has_phase_filters",
        "qml_hw",
        "qml_app",
        "nrf_flags",
    )

    @property
    def version(self) -> FirmwareVersion:
        return FirmwareVersion(self.major, self.minor)

    def pack(self) -> bytes:
        out = bytearray((self.major, self.minor))
        if self.hw_name is None:
            return bytes(out)
        out += self.hw_name.encode("latin-1") + b"\0"
        if self.uid is None:
            return bytes(out)
        if len(self.uid) != 12:
            raise PayloadError(f"STM32 UID must be 12 bytes, not {len(self.uid)}")
        out += self.uid
        for name in self._U8_FIELDS:
            value = getattr(self, name)
            if value is None:
                return bytes(out)
            out.append(value)
        if self.fw_name is None:
            return bytes(out)
        out += self.fw_name.encode("latin-1") + b"\0"
        if self.hw_conf_crc is not None:
            out += U32.pack(self.hw_conf_crc)
        return bytes(out)

    @classmethod
    def unpack(cls, body: bytes) -> FwVersionReply:
        if len(body) < 2:
            raise PayloadError(f"FW_VERSION reply needs major and minor, got {len(body)} bytes")
        values: dict[str, object] = {"major": body[0], "minor": body[1]}
        at = 2
        if at < len(body):
            values["hw_name"], at = _cstring(body, at)
        if len(body) - at < 12:  # every later field comes after the UID
            return cls(**values)  # type: ignore[arg-type]
        values["uid"], at = bytes(body[at : at + 12]), at + 12
        for name in cls._U8_FIELDS:
            if at >= len(body):
                break
            values[name], at = body[at], at + 1
        if at < len(body):
            values["fw_name"], at = _cstring(body, at)
        if len(body) - at >= 4:
            values["hw_conf_crc"], at = U32.unpack_from(body, at)[0], at + 4
        return cls(**values)  # type: ignore[arg-type]


# --- GET_VALUES ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GetValues:
    cmd: ClassVar[Cmd] = Cmd.GET_VALUES

    def pack(self) -> bytes:
        return b""

    @classmethod
    def unpack(cls, body: bytes) -> GetValues:
        return cls()


@dataclass(frozen=True)
class ValuesReply:
    """GET_VALUES reply: the fields present in `values`, in order."""

    cmd: ClassVar[Cmd] = Cmd.GET_VALUES
    values: Values

    def pack(self) -> bytes:
        present = self.values.present()
        if present != VALUE_FIELDS[: len(present)]:
            raise PayloadError("GET_VALUES fields must be a leading run: set every field up to the last")
        return b"".join(encode_field(f, getattr(self.values, f.name)) for f in present)

    @classmethod
    def unpack(cls, body: bytes) -> ValuesReply:
        return cls(Values(**decode_fields(body, leading_fields(len(body)), 0)))  # type: ignore[arg-type]


@dataclass(frozen=True)
class GetValuesSelective:
    cmd: ClassVar[Cmd] = Cmd.GET_VALUES_SELECTIVE
    mask: int

    def pack(self) -> bytes:
        return U32.pack(self.mask)

    @classmethod
    def unpack(cls, body: bytes) -> GetValuesSelective:
        return cls(_u32(body, 0, "GET_VALUES_SELECTIVE"))


@dataclass(frozen=True)
class ValuesSelectiveReply:
    """GET_VALUES_SELECTIVE reply: the mask the device used, then the fields whose bit is set."""

    cmd: ClassVar[Cmd] = Cmd.GET_VALUES_SELECTIVE
    mask: int
    values: Values

    def pack(self) -> bytes:
        chosen = selective_fields(self.mask)
        return U32.pack(self.mask) + b"".join(encode_field(f, getattr(self.values, f.name)) for f in chosen)

    @classmethod
    def unpack(cls, body: bytes) -> ValuesSelectiveReply:
        mask = _u32(body, 0, "GET_VALUES_SELECTIVE reply")
        return cls(mask, Values(**decode_fields(body, selective_fields(mask), 4)))  # type: ignore[arg-type]


# --- firmware and bootloader upload ----------------------------------------------------------------


@dataclass(frozen=True)
class JumpToBootloader:
    """JUMP_TO_BOOTLOADER (no reply); `all_can` selects the _ALL_CAN variant (3.48+)."""

    all_can: bool = False

    @property
    def cmd(self) -> Cmd:
        return Cmd.JUMP_TO_BOOTLOADER_ALL_CAN if self.all_can else Cmd.JUMP_TO_BOOTLOADER

    def pack(self) -> bytes:
        return b""

    @classmethod
    def unpack(cls, body: bytes, all_can: bool = False) -> JumpToBootloader:
        return cls(all_can)


@dataclass(frozen=True)
class EraseNewApp:
    """ERASE_NEW_APP: `size` is the image size WITHOUT the 6-byte header, as VESC Tool sends it."""

    size: int
    all_can: bool = False

    @property
    def cmd(self) -> Cmd:
        return Cmd.ERASE_NEW_APP_ALL_CAN if self.all_can else Cmd.ERASE_NEW_APP

    def pack(self) -> bytes:
        return U32.pack(self.size)

    @classmethod
    def unpack(cls, body: bytes, all_can: bool = False) -> EraseNewApp:
        return cls(_u32(body, 0, "ERASE_NEW_APP"), all_can)


@dataclass(frozen=True)
class WriteNewAppData:
    """WRITE_NEW_APP_DATA: bytes at 0x08080000 + offset (no bounds check in the firmware)."""

    offset: int
    data: bytes
    all_can: bool = False

    @property
    def cmd(self) -> Cmd:
        return Cmd.WRITE_NEW_APP_DATA_ALL_CAN if self.all_can else Cmd.WRITE_NEW_APP_DATA

    def pack(self) -> bytes:
        return U32.pack(self.offset) + self.data

    @classmethod
    def unpack(cls, body: bytes, all_can: bool = False) -> WriteNewAppData:
        return cls(_u32(body, 0, "WRITE_NEW_APP_DATA"), bytes(body[4:]), all_can)


@dataclass(frozen=True)
class EraseBootloader:
    """ERASE_BOOTLOADER (3.59+): erases sector 11."""

    all_can: bool = False

    @property
    def cmd(self) -> Cmd:
        return Cmd.ERASE_BOOTLOADER_ALL_CAN if self.all_can else Cmd.ERASE_BOOTLOADER

    def pack(self) -> bytes:
        return b""

    @classmethod
    def unpack(cls, body: bytes, all_can: bool = False) -> EraseBootloader:
        return cls(all_can)


@dataclass(frozen=True)
class StatusReply:
    """`[id][ok]` replies: ERASE_NEW_APP and ERASE_BOOTLOADER (replied locally, also for _ALL_CAN),
    LISP_ERASE_CODE, LISP_SET_RUNNING, CAN_UPDATE_BAUD_ALL."""

    command: Cmd
    ok: bool

    @property
    def cmd(self) -> Cmd:
        return self.command

    def pack(self) -> bytes:
        return bytes((int(self.ok),))

    @classmethod
    def unpack(cls, body: bytes, command: Cmd) -> StatusReply:
        return cls(command, _ok(body, command.name))


@dataclass(frozen=True)
class WriteNewAppDataReply:
    """`[3][ok]`, with the echoed u32 offset appended from firmware 5.00."""

    cmd: ClassVar[Cmd] = Cmd.WRITE_NEW_APP_DATA
    ok: bool
    offset: int | None = None

    def pack(self) -> bytes:
        status = bytes((int(self.ok),))
        return status if self.offset is None else status + U32.pack(self.offset)

    @classmethod
    def unpack(cls, body: bytes) -> WriteNewAppDataReply:
        ok = _ok(body, "WRITE_NEW_APP_DATA")
        if len(body) == 1:
            return cls(ok)
        return cls(ok, _u32(body, 1, "WRITE_NEW_APP_DATA reply offset"))


# --- motor control (no reply) ---------------------------------------------------------------------


@dataclass(frozen=True)
class SetRpm:
    """SET_RPM: hold `erpm` electrical RPM (no reply)."""

    cmd: ClassVar[Cmd] = Cmd.SET_RPM
    erpm: int

    def pack(self) -> bytes:
        return I32.pack(self.erpm)

    @classmethod
    def unpack(cls, body: bytes) -> SetRpm:
        return cls(_i32(body, 0, "SET_RPM"))


@dataclass(frozen=True)
class SetCurrent:
    """SET_CURRENT: motor current in amperes, sent as int32 milliamperes (no reply); 0 releases the motor."""

    cmd: ClassVar[Cmd] = Cmd.SET_CURRENT
    amps: float

    def pack(self) -> bytes:
        return I32.pack(round(self.amps * 1000))

    @classmethod
    def unpack(cls, body: bytes) -> SetCurrent:
        return cls(_i32(body, 0, "SET_CURRENT") / 1000)


@dataclass(frozen=True)
class MotorEstop:
    """MOTOR_ESTOP (6.06+, 43bcd2b0): release the motor and ignore input for `ms` (no reply)."""

    cmd: ClassVar[Cmd] = Cmd.MOTOR_ESTOP
    ms: int

    def pack(self) -> bytes:
        return U16.pack(self.ms)

    @classmethod
    def unpack(cls, body: bytes) -> MotorEstop:
        if len(body) < 2:
            raise PayloadError(f"MOTOR_ESTOP needs a u16 time, got {len(body)} bytes")
        return cls(U16.unpack_from(body)[0])


@dataclass(frozen=True)
class Shutdown:
    """SHUTDOWN (6.05+, dcbac819): ignored while |ERPM| > 100 unless `force`; `restart` resets through the
    watchdog instead of powering off. No reply in any case."""

    cmd: ClassVar[Cmd] = Cmd.SHUTDOWN
    force: bool = False
    restart: bool = False

    def pack(self) -> bytes:
        return bytes((int(self.force), int(self.restart)))

    @classmethod
    def unpack(cls, body: bytes) -> Shutdown:
        if len(body) < 2:  # the firmware reads both bytes without a length check: what follows is stale
            raise PayloadError(f"SHUTDOWN needs force and restart bytes, got {len(body)}")
        return cls(body[0] == 1, body[1] == 1)


# --- 6.06: FW_INFO and CAN baud ----------------------------------------------------------------------


@dataclass(frozen=True)
class FwInfoRequest:
    cmd: ClassVar[Cmd] = Cmd.FW_INFO

    def pack(self) -> bytes:
        return b""

    @classmethod
    def unpack(cls, body: bytes) -> FwInfoRequest:
        return cls()


@dataclass(frozen=True)
class FwInfoReply:
    """FW_INFO (6.06+, 38f44a72): version, test number, the git hash it was built from, the user's hash.

    A hash longer than 46 characters is left out entirely, NUL included (the firmware's quirk)."""

    cmd: ClassVar[Cmd] = Cmd.FW_INFO
    major: int
    minor: int
    test_version: int
    git_hash: str | None
    user_git_hash: str | None = ""

    MAX_HASH: ClassVar[int] = 46

    def pack(self) -> bytes:
        out = bytes((self.major, self.minor, self.test_version))
        for text in (self.git_hash, self.user_git_hash):
            if text is not None and len(text) <= self.MAX_HASH:
                out += text.encode("latin-1") + b"\0"
        return out

    @classmethod
    def unpack(cls, body: bytes) -> FwInfoReply:
        if len(body) < 3:
            raise PayloadError(f"FW_INFO reply needs major, minor and test version, got {len(body)} bytes")
        texts: list[str | None] = [None, None]
        at = 3
        for i in range(2):
            if at >= len(body):
                break
            texts[i], at = _cstring(body, at)
        return cls(body[0], body[1], body[2], texts[0], texts[1])


@dataclass(frozen=True)
class CanUpdateBaudAll:
    """CAN_UPDATE_BAUD_ALL (6.06+, c778f17a): every node to `kbits` kbit/s, then this one (after `delay_ms`
    without CAN); stored in the appconf. Answered [158, ok] (ok 0 for a rate the firmware does not know)."""

    cmd: ClassVar[Cmd] = Cmd.CAN_UPDATE_BAUD_ALL
    kbits: int
    delay_ms: int = 0

    def pack(self) -> bytes:
        return I16X2.pack(self.kbits, self.delay_ms)

    @classmethod
    def unpack(cls, body: bytes) -> CanUpdateBaudAll:
        if len(body) < I16X2.size:
            raise PayloadError(f"CAN_UPDATE_BAUD_ALL needs kbits and delay (2 x i16), got {len(body)} bytes")
        return cls(*I16X2.unpack_from(body))


# --- LispBM code (6.00+) --------------------------------------------------------------------------------


@dataclass(frozen=True)
class LispEraseCode:
    """LISP_ERASE_CODE: stops LispBM and erases the code sector (the size VESC Tool sends is not used)."""

    cmd: ClassVar[Cmd] = Cmd.LISP_ERASE_CODE
    size: int = 0

    def pack(self) -> bytes:
        return I32.pack(self.size)

    @classmethod
    def unpack(cls, body: bytes) -> LispEraseCode:
        return cls(_i32(body, 0, "LISP_ERASE_CODE") if len(body) >= 4 else 0)


@dataclass(frozen=True)
class LispWriteCode:
    """LISP_WRITE_CODE: program `data` at `offset` into the code sector (the record, header included)."""

    cmd: ClassVar[Cmd] = Cmd.LISP_WRITE_CODE
    offset: int
    data: bytes

    def pack(self) -> bytes:
        return U32.pack(self.offset) + self.data

    @classmethod
    def unpack(cls, body: bytes) -> LispWriteCode:
        return cls(_u32(body, 0, "LISP_WRITE_CODE"), bytes(body[4:]))


@dataclass(frozen=True)
class LispWriteCodeReply:
    cmd: ClassVar[Cmd] = Cmd.LISP_WRITE_CODE
    ok: bool
    offset: int

    def pack(self) -> bytes:
        return bytes((int(self.ok),)) + U32.pack(self.offset)

    @classmethod
    def unpack(cls, body: bytes) -> LispWriteCodeReply:
        return cls(_ok(body, "LISP_WRITE_CODE"), _u32(body, 1, "LISP_WRITE_CODE reply offset"))


@dataclass(frozen=True)
class LispReadCode:
    """LISP_READ_CODE: `length` bytes of the code from `offset` (at most 502 per request)."""

    cmd: ClassVar[Cmd] = Cmd.LISP_READ_CODE
    length: int
    offset: int

    def pack(self) -> bytes:
        return I32.pack(self.length) + I32.pack(self.offset)

    @classmethod
    def unpack(cls, body: bytes) -> LispReadCode:
        return cls(_i32(body, 0, "LISP_READ_CODE"), _i32(body, 4, "LISP_READ_CODE"))


@dataclass(frozen=True)
class LispCodeReply:
    """[130, total i32, offset i32, data]; total 0 when the sector holds no valid code."""

    cmd: ClassVar[Cmd] = Cmd.LISP_READ_CODE
    total: int
    offset: int
    data: bytes = b""

    def pack(self) -> bytes:
        return I32.pack(self.total) + I32.pack(self.offset) + self.data

    @classmethod
    def unpack(cls, body: bytes) -> LispCodeReply:
        return cls(_i32(body, 0, "LISP_READ_CODE reply"), _i32(body, 4, "LISP_READ_CODE reply"), bytes(body[8:]))


@dataclass(frozen=True)
class LispSetRunning:
    """LISP_SET_RUNNING: start (load the stored code) or pause LispBM; answered [133, ok]."""

    cmd: ClassVar[Cmd] = Cmd.LISP_SET_RUNNING
    running: bool

    def pack(self) -> bytes:
        return bytes((int(self.running),))

    @classmethod
    def unpack(cls, body: bytes) -> LispSetRunning:
        if not body:
            raise PayloadError("LISP_SET_RUNNING needs a running byte")
        return cls(body[0] != 0)


@dataclass(frozen=True)
class LispRmsg:
    """LISP_RMSG (6.05+, 05de2f61): bytes for a LispBM program waiting in (canmsg-recv slot ...). No reply."""

    cmd: ClassVar[Cmd] = Cmd.LISP_RMSG
    slot: int
    data: bytes = b""

    def pack(self) -> bytes:
        return bytes((self.slot,)) + self.data

    @classmethod
    def unpack(cls, body: bytes) -> LispRmsg:
        if not body:
            raise PayloadError("LISP_RMSG needs a slot byte")
        return cls(body[0], bytes(body[1:]))


# --- configuration ---------------------------------------------------------------------------------


class ConfigKind(StrEnum):
    MCCONF = "mcconf"
    APPCONF = "appconf"


_GET = {ConfigKind.MCCONF: Cmd.GET_MCCONF, ConfigKind.APPCONF: Cmd.GET_APPCONF}
_GET_DEFAULT = {ConfigKind.MCCONF: Cmd.GET_MCCONF_DEFAULT, ConfigKind.APPCONF: Cmd.GET_APPCONF_DEFAULT}
_SET = {ConfigKind.MCCONF: Cmd.SET_MCCONF, ConfigKind.APPCONF: Cmd.SET_APPCONF}
_CONFIG_KIND = {cmd: kind for table in (_GET, _GET_DEFAULT, _SET) for kind, cmd in table.items()}
SIGNATURE_SINCE = fw("3.50")


@dataclass(frozen=True)
class ConfigBlob:
    """A serialized mcconf or appconf: the u32 signature (firmware 3.50+) and the field bytes."""

    kind: ConfigKind
    signature: int | None
    data: bytes

    def pack(self) -> bytes:
        return self.data if self.signature is None else U32.pack(self.signature) + self.data

    @classmethod
    def unpack(cls, kind: ConfigKind, body: bytes, signed: bool) -> ConfigBlob:
        if not signed:
            return cls(kind, None, bytes(body))
        return cls(kind, _u32(body, 0, f"{kind.value} signature"), bytes(body[4:]))


@dataclass(frozen=True)
class GetConfig:
    """GET_MCCONF / GET_APPCONF, or their _DEFAULT variants."""

    kind: ConfigKind
    default: bool = False

    @property
    def cmd(self) -> Cmd:
        return (_GET_DEFAULT if self.default else _GET)[self.kind]

    def pack(self) -> bytes:
        return b""


@dataclass(frozen=True)
class ConfigReply:
    """The reply to GetConfig: the same command id and the blob."""

    blob: ConfigBlob
    default: bool = False

    @property
    def cmd(self) -> Cmd:
        return (_GET_DEFAULT if self.default else _GET)[self.blob.kind]

    def pack(self) -> bytes:
        return self.blob.pack()


@dataclass(frozen=True)
class SetConfig:
    """SET_MCCONF / SET_APPCONF; acked by the 1-byte payload [id], or not at all on a wrong signature."""

    blob: ConfigBlob

    @property
    def cmd(self) -> Cmd:
        return _SET[self.blob.kind]

    def pack(self) -> bytes:
        return self.blob.pack()


@dataclass(frozen=True)
class SetConfigAck:
    kind: ConfigKind

    @property
    def cmd(self) -> Cmd:
        return _SET[self.kind]

    def pack(self) -> bytes:
        return b""


# --- housekeeping, CAN and terminal ----------------------------------------------------------------


@dataclass(frozen=True)
class Reboot:
    cmd: ClassVar[Cmd] = Cmd.REBOOT

    def pack(self) -> bytes:
        return b""

    @classmethod
    def unpack(cls, body: bytes) -> Reboot:
        return cls()


@dataclass(frozen=True)
class Alive:
    cmd: ClassVar[Cmd] = Cmd.ALIVE

    def pack(self) -> bytes:
        return b""

    @classmethod
    def unpack(cls, body: bytes) -> Alive:
        return cls()


@dataclass(frozen=True)
class ForwardCan:
    """FORWARD_CAN: run `inner` (a whole payload, id included) on CAN node `node_id`."""

    cmd: ClassVar[Cmd] = Cmd.FORWARD_CAN
    node_id: int
    inner: bytes

    def pack(self) -> bytes:
        return bytes((self.node_id,)) + self.inner

    @classmethod
    def unpack(cls, body: bytes) -> ForwardCan:
        if len(body) < 2:
            raise PayloadError(f"FORWARD_CAN needs a node id and an inner payload, got {len(body)} bytes")
        return cls(body[0], bytes(body[1:]))


@dataclass(frozen=True)
class PingCan:
    cmd: ClassVar[Cmd] = Cmd.PING_CAN

    def pack(self) -> bytes:
        return b""

    @classmethod
    def unpack(cls, body: bytes) -> PingCan:
        return cls()


@dataclass(frozen=True)
class PingCanReply:
    """PING_CAN reply: the CAN ids that answered (10 ms per id probed in the firmware)."""

    cmd: ClassVar[Cmd] = Cmd.PING_CAN
    node_ids: tuple[int, ...] = field(default_factory=tuple)

    def pack(self) -> bytes:
        return bytes(self.node_ids)

    @classmethod
    def unpack(cls, body: bytes) -> PingCanReply:
        return cls(tuple(body))


@dataclass(frozen=True)
class TerminalCmd:
    """TERMINAL_CMD: text for the firmware terminal (sent NUL-terminated as VESC Tool does)."""

    cmd: ClassVar[Cmd] = Cmd.TERMINAL_CMD
    text: str

    def pack(self) -> bytes:
        return self.text.encode("latin-1") + b"\0"

    @classmethod
    def unpack(cls, body: bytes) -> TerminalCmd:
        return cls(bytes(body).split(b"\0", 1)[0].decode("latin-1"))


@dataclass(frozen=True)
class Print:
    """PRINT: text from the firmware (terminal output and warnings)."""

    cmd: ClassVar[Cmd] = Cmd.PRINT
    text: str

    def pack(self) -> bytes:
        return self.text.encode("latin-1")

    @classmethod
    def unpack(cls, body: bytes) -> Print:
        return cls(bytes(body).rstrip(b"\0").decode("latin-1"))


@dataclass(frozen=True)
class Unknown:
    """A payload whose id the codec does not decode in this direction; kept whole."""

    wire_id: int
    body: bytes

    def pack(self) -> bytes:
        return self.body


Message = (
    FwVersionRequest
    | FwVersionReply
    | GetValues
    | ValuesReply
    | GetValuesSelective
    | ValuesSelectiveReply
    | JumpToBootloader
    | EraseNewApp
    | WriteNewAppData
    | EraseBootloader
    | StatusReply
    | WriteNewAppDataReply
    | GetConfig
    | ConfigReply
    | SetConfig
    | SetConfigAck
    | Reboot
    | Alive
    | ForwardCan
    | PingCan
    | PingCanReply
    | TerminalCmd
    | Print
    | SetRpm
    | SetCurrent
    | MotorEstop
    | Shutdown
    | FwInfoRequest
    | FwInfoReply
    | CanUpdateBaudAll
    | LispEraseCode
    | LispWriteCode
    | LispWriteCodeReply
    | LispReadCode
    | LispCodeReply
    | LispSetRunning
    | LispRmsg
)


def encode(message: Message, table: CommandTable) -> bytes:
    """The payload of a message for the firmware version of `table`."""
    return bytes((table.id(message.cmd),)) + message.pack()


def _split(payload: bytes, table: CommandTable) -> tuple[Cmd | None, bytes]:
    if not payload:
        raise PayloadError("empty payload")
    return table.cmd(payload[0]), payload[1:]


def decode_request(payload: bytes, table: CommandTable) -> Message | Unknown:
    """Decode a host-to-device payload (what the simulated firmware receives)."""
    cmd, body = _split(payload, table)
    signed = table.version >= SIGNATURE_SINCE
    match cmd:
        case Cmd.JUMP_TO_BOOTLOADER | Cmd.JUMP_TO_BOOTLOADER_ALL_CAN:
            return JumpToBootloader(cmd == Cmd.JUMP_TO_BOOTLOADER_ALL_CAN)
        case Cmd.ERASE_NEW_APP | Cmd.ERASE_NEW_APP_ALL_CAN:
            return EraseNewApp.unpack(body, cmd == Cmd.ERASE_NEW_APP_ALL_CAN)
        case Cmd.WRITE_NEW_APP_DATA | Cmd.WRITE_NEW_APP_DATA_ALL_CAN:
            return WriteNewAppData.unpack(body, cmd == Cmd.WRITE_NEW_APP_DATA_ALL_CAN)
        case Cmd.ERASE_BOOTLOADER | Cmd.ERASE_BOOTLOADER_ALL_CAN:
            return EraseBootloader(cmd == Cmd.ERASE_BOOTLOADER_ALL_CAN)
        case Cmd.GET_MCCONF | Cmd.GET_APPCONF | Cmd.GET_MCCONF_DEFAULT | Cmd.GET_APPCONF_DEFAULT:
            return GetConfig(_CONFIG_KIND[cmd], cmd in _GET_DEFAULT.values())
        case Cmd.SET_MCCONF | Cmd.SET_APPCONF:
            return SetConfig(ConfigBlob.unpack(_CONFIG_KIND[cmd], body, signed))
        case _ if cmd in _REQUESTS:
            return _REQUESTS[cmd].unpack(body)
    return Unknown(payload[0], bytes(body))


def decode_reply(payload: bytes, table: CommandTable) -> Message | Unknown:
    """Decode a device-to-host payload (what the host receives)."""
    cmd, body = _split(payload, table)
    signed = table.version >= SIGNATURE_SINCE
    match cmd:
        case _ if cmd in _STATUS_REPLIES:
            assert cmd is not None
            return StatusReply.unpack(body, cmd)
        case Cmd.GET_MCCONF | Cmd.GET_APPCONF | Cmd.GET_MCCONF_DEFAULT | Cmd.GET_APPCONF_DEFAULT:
            return ConfigReply(ConfigBlob.unpack(_CONFIG_KIND[cmd], body, signed), cmd in _GET_DEFAULT.values())
        case Cmd.SET_MCCONF | Cmd.SET_APPCONF:
            return SetConfigAck(_CONFIG_KIND[cmd])
        case _ if cmd in _REPLIES:
            return _REPLIES[cmd].unpack(body)
    return Unknown(payload[0], bytes(body))


_STATUS_REPLIES = frozenset(
    (Cmd.ERASE_NEW_APP, Cmd.ERASE_BOOTLOADER, Cmd.LISP_ERASE_CODE, Cmd.LISP_SET_RUNNING, Cmd.CAN_UPDATE_BAUD_ALL)
)
_REQUESTS = {
    c.cmd: c
    for c in (
        FwVersionRequest,
        GetValues,
        GetValuesSelective,
        Reboot,
        Alive,
        ForwardCan,
        PingCan,
        TerminalCmd,
        SetRpm,
        SetCurrent,
        MotorEstop,
        Shutdown,
        FwInfoRequest,
        CanUpdateBaudAll,
        LispEraseCode,
        LispWriteCode,
        LispReadCode,
        LispSetRunning,
        LispRmsg,
    )
}
_REPLIES = {
    c.cmd: c
    for c in (
        FwVersionReply,
        ValuesReply,
        ValuesSelectiveReply,
        WriteNewAppDataReply,
        PingCanReply,
        Print,
        FwInfoReply,
        LispWriteCodeReply,
        LispCodeReply,
    )
}
