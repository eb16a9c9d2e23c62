"""Firmware behaviour as data: the releases a user can name, and every behaviour by version range.

:data:`RELEASES` lists each firmware version that exists (3.40 to 7.01), the ref and commit of
vedderb/bldc it was read at and what it reports. Every behaviour that differs between versions is a
:class:`~rig.device.facts.Behaviour` here (or in rig.protocol for the wire: command ids, GET_VALUES
layout; or rig.device.app_image for the .bin), each range with the commit it was read at (research notes
fw-protocol.md, fw-flash.md, config-schemas.md; docs/firmware-facts.md lists what they corrected).
:func:`profile_for` gathers the values for one release into a :class:`FirmwareProfile`; the simulator
reads the profile instead of comparing versions, and the host reads the same tables (config signatures,
FW_VERSION fields, boot times). A version that was never released (3.41-3.47, 6.01, 6.03, 6.04) has no
profile: :class:`UnknownFirmware` says so. :data:`SYNTHETIC` names the two versions the tests invent
(6.90, 6.91: config layouts of the project's own), labelled as such.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from rig.device.app_image import ImageLayout, layout_for
from rig.device.facts import Behaviour, facts
from rig.errors import Diagnosis, RigError
from rig.protocol.codecs import ConfigKind
from rig.protocol.commands import Cmd, CommandTable, FirmwareVersion, command_table, fw
from rig.protocol.framing import MAX_PAYLOAD_3_40, MAX_PAYLOAD_3_48
from rig.protocol.values import ValueField, value_fields_for


class UnknownFirmware(RigError):
    """A firmware version that was never released (or is outside 3.40 .. 7.01)."""

    diagnosis = Diagnosis.UNSUPPORTED


# --- the releases ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Release:
    """A firmware version as released: the vedderb/bldc ref and commit it was read at, and what it reports."""

    version: FirmwareVersion
    ref: str
    commit: str  # full hash: FW_INFO (6.06+) reports it as GIT_COMMIT_HASH
    date: str  # commit date, ISO
    test_version: int = 0  # FW_TEST_VERSION_NUMBER: 0 = release, N = beta N
    note: str = ""
    synthetic: bool = False  # not a firmware: a version the project's tests invent (see SYNTHETIC)


def _release(version: str, ref: str, commit: str, date: str, test: int = 0, note: str = "") -> Release:
    return Release(fw(version), ref, commit, date, test, note)


RELEASES: tuple[Release, ...] = (
    _release("3.40", "tag 3.40", "43c3bbaf91f5052a35b75c2ff17b5fe99fad94d1", "2018-07-23"),
    _release(
        "3.48", "tag 3.48", "123bb00ab4d8aa2fef8bc9e3c0edb283a1c552ad", "2019-02-18", note="3.41-3.47 never existed"
    ),
    _release("3.49", "tag 3.49", "f9ce429447fbe6e4cc0e036118f1e26a16ad3d3b", "2019-03-01"),
    _release("3.50", "tag 3.50", "01e72eb55575776419fb40335619f8d1ba666ce6", "2019-03-01"),
    _release("3.51", "tag 3.51", "35c1c72ab45a72437d1d371ffedd1f43f69c4c03", "2019-03-04"),
    _release("3.52", "tag 3.52", "65298263b6ff09791b014d36d787632e90f73ed7", "2019-03-10"),
    _release("3.53", "tag 3.53", "39bb8a6b09d3fbb3a1d6e7b08649438d4f338bcd", "2019-03-20"),
    _release("3.54", "tag 3.54", "1161f8417c124953895fe703ae4d3d4da5308148", "2019-03-31"),
    _release("3.55", "tag 3.55", "e09bc7ce22498cd0b139147c58b95bc12d856e55", "2019-04-14"),
    _release("3.56", "tag 3.56", "404bbcf64b33f8e6655d7ee67e034bde82524705", "2019-05-03"),
    _release("3.57", "tag 3.57", "a141e750bb667cd828e9fd5e5b185724f22fae0b", "2019-05-16"),
    _release(
        "3.58",
        "8619ccf4 'Updated compiled FWs'",
        "8619ccf4f39941cf869d0d80409e4d7b8edcca25",
        "2019-07-01",
        note="the shipped 3.58 binaries; the tag 3.58 (30aabb77) still has the 3.57 appconf",
    ),
    _release("3.59", "tag 3.59", "602db7435be1808911cc67176529eb5c6901ccba", "2019-09-03"),
    _release("3.60", "tag 3.60", "a233367be812e6babebcad87071b587214f19aeb", "2019-09-08"),
    _release(
        "3.61",
        "tag 3.61",
        "eb6f5945ce1b052276afd0070cfcd94dd1c8bda8",
        "2019-09-09",
        note="the git tag 3.62 (db6ba047) also reports 3.61 and has 79 = BM_MEM_READ: not modelled",
    ),
    _release("3.62", "dfc3ed23 'Final v3.62'", "dfc3ed23196d8ba8d0c8b345edfb8a862da3fa48", "2019-09-27"),
    _release("3.63", "tag 3.63", "23e61925b6555296575ea75389a17e44efffc7fa", "2019-12-05"),
    _release("3.64", "tag 3.64", "5e4f6759361543f8e227aa50d4b9a7f8d7ea46f3", "2019-12-19"),
    _release("3.65", "tag 3.65", "210ec40d746236264fc9ec6bd95384d171488331", "2019-12-22"),
    _release("3.66", "tag 3.66", "b002e5d78ef03a5a02bc9582863f3fbf57059f1d", "2020-01-12"),
    _release("3.67", "tag 3.67", "ffbc6eb89b951c0d3df735045ffa2dd15039c8b9", "2020-01-20"),
    _release("4.00", "tag 4.00", "b6949d60dcca4dc8757ebd035889b8d214e66636", "2020-01-28"),
    _release("4.01", "tag 4.01", "97ef43cff8ab7f92a9767b40e6985dca4de72527", "2020-02-01"),
    _release(
        "4.02",
        "tag 4.02",
        "5df92463f3830ccc23595604c968c02ccdadabda",
        "2020-02-27",
        note="the later tag v4.02 (42092c64) also reports 4.02 and adds ids 86-89: not modelled",
    ),
    _release("5.00", "tag v5.00 (= v5.01)", "634b82b482f9b5e16a7c578fcff0328cdb65c612", "2020-04-27"),
    _release("5.01", "tag 5.01 (= tag 5.00)", "80fffdea7340f3b7d4faea63f24339c2212ab62f", "2020-04-27"),
    _release("5.02", "tag 5.02", "3f670137e27e6e383fa79c50cc6b1fa85aab1554", "2021-01-11"),
    _release("5.03", "tag 5.03", "92efab4896850ae18d26c56dbe39a683a5083d99", "2022-01-16"),
    _release("6.00", "tag 6.00", "4b822f0f944918957c55391ca0672925153f3fde", "2022-12-08"),
    _release(
        "6.02", "release_6_02", "f7c2b34e1cff2234cae98be3abf0cd50e249558f", "2023-03-12", note="6.01 never existed"
    ),
    _release(
        "6.05",
        "release_6_05 (release commit 820e853e)",
        "a0d40e2c5a42c810888d8c379307e6b0a118a125",
        "2024-12-04",
        note="6.03 and 6.04 never existed",
    ),
    _release(
        "6.06",
        "release_6_06 tip (release commit b0931d01)",
        "94b305ec124b67b0161f2d3d85c4d5b35e48edc5",
        "2026-04-23",
        note="the release build b0931d01 reports 6.06 too but lacks the CAN id/baud backup (6fe2d789)",
    ),
    _release(
        "7.00", "release_7_00 tip (release commit 26af6948)", "93628b069609bae3e6599bed92283b937fc0154e", "2026-08-13"
    ),
    _release("7.01", "master (beta)", "b9d287b3b8323f4b02618b02dc55e57d54a84996", "2026-08-13", test=1),
)

SYNTHETIC: tuple[Release, ...] = tuple(
    Release(
        fw(version),
        "synthetic",
        "",
        "2026-08-13",
        note="never a firmware: the project's own config schemas (fixtures/schemas) give its configs, for the "
        "tests of config layouts and migration; every other behaviour is that of the release before it",
        synthetic=True,
    )
    for version in ("6.90", "6.91")
)
"""Versions the tests invent to have two config layouts of their own; a simulator of one needs its schemas."""

_BY_VERSION = {r.version: r for r in (*RELEASES, *SYNTHETIC)}

NEVER_RELEASED: dict[str, str] = {
    "3.41-3.47": "123bb00a 'Major 2019 update' took the minor version from 40 to 48",
    "6.01": "b858f3e9 'Moved release into beta 6.02'",
    "6.03-6.04": "514ed372 'Moved to 6.05 beta'",
}


def release(version: str | FirmwareVersion) -> Release:
    """The release of `version`; UnknownFirmware (naming the releases) if there is none."""
    wanted = version if isinstance(version, FirmwareVersion) else FirmwareVersion.parse(version)
    found = _BY_VERSION.get(wanted)
    if found is None:
        never = "; ".join(f"{v} never existed ({why})" for v, why in NEVER_RELEASED.items())
        # the synthetic versions stay out of the message: they are for the project's tests
        raise UnknownFirmware(
            f"no firmware {wanted} was released; modelled: {', '.join(str(r.version) for r in RELEASES)} ({never})"
        )
    return found


def series(version: FirmwareVersion) -> tuple[Release, ...]:
    """The versions `version` is one of: SYNTHETIC for a synthetic version, else RELEASES."""
    return SYNTHETIC if any(r.version == version for r in SYNTHETIC) else RELEASES


def next_release(version: FirmwareVersion) -> Release | None:
    """The first version after `version` in its series, or None after the newest."""
    return next((r for r in series(version) if r.version > version), None)


# --- behaviours ----------------------------------------------------------------------------------------


class DecoderKind(StrEnum):
    """Which packet decoder the firmware runs (fw-protocol.md section 3)."""

    LEGACY = "legacy"  # <= 3.40: state machine, a failed frame's bytes are lost
    RESYNC = "resync"  # >= 3.48: buffered, skips one byte and rescans


class LispOnErase(StrEnum):
    """What ERASE_NEW_APP does to a running LispBM program first."""

    NONE = "no LispBM"
    RESTART = "lispif_restart without code: the program stops"
    STOP = "lispif_stop"


DECODER: Behaviour[DecoderKind] = Behaviour(
    "decoder",
    "the packet decoder (packet.c)",
    facts(
        ("2.03", DecoderKind.LEGACY, "tag 3.40 43c3bbaf packet.c: per-byte state machine (compiled and driven)"),
        ("3.48", DecoderKind.RESYNC, "123bb00a (tag 3.48) packet.c: buffered try_decode_packet"),
    ),
)
MAX_PAYLOAD: Behaviour[int] = Behaviour(
    "max payload",
    "PACKET_MAX_PL_LEN: longer frames are rejected by the decoder",
    facts(
        ("2.03", MAX_PAYLOAD_3_40, "tag 3.40 43c3bbaf packet.h"),
        ("3.48", MAX_PAYLOAD_3_48, "123bb00a packet.h #ifndef default; no hwconf overrides it (3.48 .. master)"),
    ),
)
RX_TIMEOUT_TICKS: Behaviour[int | None] = Behaviour(
    "receive timeout",
    "PACKET_RX_TIMEOUT: 1 ms timer ticks a partial frame survives (it is reset on tick N+1); None = kept forever",
    facts(
        ("2.03", 2, "tag 3.27 f1411573 packet.c (unsigned char rx_timeout)"),
        ("3.29", 1000, "73d52d3b 'increase packet timeout for bluetooth' (tag 3.29)"),
        ("5.03", None, "b412ac3c 'Moved packet handler state to caller' removed packet_timerfunc"),
    ),
)
LEGACY_TX_FRAMING: Behaviour[bool] = Behaviour(
    "256-byte reply framed 02 00",
    "send side encodes len <= 256 with the 1-byte header",
    facts(("2.03", True, "tag 3.40 43c3bbaf packet.c"), ("3.48", False, "123bb00a packet.c")),
)
SELECTIVE_BIT14_BUG: Behaviour[bool] = Behaviour(
    "GET_VALUES_SELECTIVE bit-14 bug",
    "`mask && (1 << 14)`: tachometer_abs is sent for any non-zero mask",
    facts(
        ("2.03", False, "no GET_VALUES_SELECTIVE before 3.48"),
        ("3.48", True, "123bb00a commands.c (checked in tags 3.48, 3.51, 3.56)"),
        ("3.57", False, "a141e750 (tag 3.57) 'fixed issue 94'"),
    ),
)
WRITE_REPLY_OFFSET: Behaviour[bool] = Behaviour(
    "WRITE_NEW_APP_DATA reply offset",
    "the reply carries the request's u32 offset after the ok byte",
    facts(("2.03", False, "tag 4.02 5df92463 commands.c"), ("5.00", True, "988dfd4e (in tag v5.00)")),
)
FW_VERSION_FIELDS: Behaviour[tuple[str, ...]] = Behaviour(
    "FW_VERSION fields",
    "the optional fields the FW_VERSION reply carries after major and minor, in wire order",
    facts(
        ("2.03", (), "tag 3.00 commands.c: major and minor only"),
        ("3.07", ("hw_name",), "5dbc94c5 (tag 3.07)"),
        ("3.09", ("hw_name", "uid"), "bb2bfa3b (tag 3.09)"),
        ("3.48", ("hw_name", "uid", "pairing_done"), "123bb00a"),
        ("5.00", ("hw_name", "uid", "pairing_done", "test_version"), "1b67dc26 (5.00 beta 1)"),
        (
            "5.02",
            ("hw_name", "uid", "pairing_done", "test_version", "hw_type", "custom_cfg_num"),
            "c77f9247 (5.02 beta 10)",
        ),
        (
            "5.03",
            ("hw_name", "uid", "pairing_done", "test_version", "hw_type", "custom_cfg_num")
            + ("has_phase_filters", "qml_hw", "qml_app"),
            "69c6939b, 5767b703 (5.03 betas 2, 25)",
        ),
        (
            "6.00",
            ("hw_name", "uid", "pairing_done", "test_version", "hw_type", "custom_cfg_num")
            + ("has_phase_filters", "qml_hw", "qml_app", "nrf_flags", "fw_name"),
            "c0a928e0, d290f61d (6.00 betas 7, 44)",
        ),
        (
            "6.05",
            ("hw_name", "uid", "pairing_done", "test_version", "hw_type", "custom_cfg_num")
            + ("has_phase_filters", "qml_hw", "qml_app", "nrf_flags", "fw_name", "hw_conf_crc"),
            "341a7e67 (6.05 beta 28 'Added cache support'); nothing added in 6.06, 7.00, master",
        ),
    ),
)


@dataclass(frozen=True)
class ConfigLayout:
    """One serialized config of a firmware: its signature (None before 3.50) and its field bytes."""

    kind: ConfigKind
    signature: int | None
    size: int  # bytes after the signature


def _configs(mc_sig: int | None, app_sig: int | None, mc: int, app: int) -> tuple[ConfigLayout, ConfigLayout]:
    return ConfigLayout(ConfigKind.MCCONF, mc_sig, mc), ConfigLayout(ConfigKind.APPCONF, app_sig, app)


CONFIGS: Behaviour[tuple[ConfigLayout, ConfigLayout]] = Behaviour(
    "config layouts",
    "(mcconf, appconf): MCCONF/APPCONF_SIGNATURE of confgenerator.h (3.50+) and the bytes serialized after it",
    facts(
        ("3.39", _configs(None, None, 340, 162), "tags 3.39, 3.40 commands.c (no signature), counted"),
        ("3.48", _configs(None, None, 379, 165), "tags 3.48, 3.49 commands.c, counted"),
        ("3.50", _configs(1753222668, 3794395266, 379, 165), "01e72eb5 confgenerator.h (tags 3.50, 3.51)"),
        ("3.52", _configs(1753222668, 1146628643, 379, 166), "tags 3.52-3.54"),
        ("3.55", _configs(503309878, 725102789, 399, 166), "e09bc7ce (tags 3.55, 3.56)"),
        ("3.57", _configs(503309878, 1962523771, 399, 166), "a141e750 (tag 3.57)"),
        ("3.58", _configs(503309878, 1099508905, 399, 170), "8619ccf4 (the shipped 3.58; VESC Tool's 3.58 XML)"),
        ("3.59", _configs(503309878, 2074596585, 399, 243), "602db743 (tag 3.59)"),
        ("3.60", _configs(503309878, 543202478, 399, 252), "a233367b (tag 3.60)"),
        ("3.61", _configs(503309878, 583966563, 399, 260), "eb6f5945 (tag 3.61; also tag 3.62 db6ba047)"),
        ("3.62", _configs(503309878, 783041200, 399, 327), "dfc3ed23 'Final v3.62'"),
        ("3.63", _configs(3875075384, 783041200, 399, 327), "23e61925 (tag 3.63)"),
        ("3.64", _configs(793836781, 783041200, 399, 327), "5e4f6759 (tag 3.64)"),
        ("3.65", _configs(2967846088, 783041200, 404, 327), "210ec40d (tag 3.65)"),
        ("3.66", _configs(1671830952, 783041200, 406, 327), "b002e5d7 (tag 3.66)"),
        ("3.67", _configs(1722487670, 783041200, 424, 327), "ffbc6eb8 (tag 3.67)"),
        ("4.00", _configs(657785302, 511269002, 429, 327), "b6949d60 (tag 4.00)"),
        ("4.01", _configs(3632471335, 2964134872, 429, 327), "97ef43cf (tag 4.01)"),
        ("4.02", _configs(3632471335, 1232755601, 429, 363), "5df92463, 42092c64 (tags 4.02, v4.02)"),
        ("5.00", _configs(3698540221, 2460147246, 433, 385), "634b82b4, 80fffdea (5.00, 5.01)"),
        ("5.02", _configs(2211848314, 3264926020, 453, 414), "3f670137 (tag 5.02)"),
        ("5.03", _configs(2525666056, 3733512279, 480, 472), "92efab48 (tag 5.03)"),
        ("6.00", _configs(776184161, 486554156, 477, 489), "4b822f0f, f7c2b34e (6.00, release_6_02)"),
        ("6.05", _configs(1065524471, 2099347128, 473, 274), "release_6_05 (balance app moved out of appconf)"),
        ("6.06", _configs(788332866, 2099347128, 479, 274), "release_6_06"),
        ("7.00", _configs(1470992211, 2384027283, 484, 280), "release_7_00"),
        ("7.01", _configs(2466726157, 982638166, 484, 280), "master b9d287b3 (beta: changes while master moves)"),
    ),
)
HARD_FAULT_EXIT_S: Behaviour[float | None] = Behaviour(
    "hard fault in a flash command or after JUMP",
    "seconds until a fault there resets the MCU (a jump to an erased bootloader sector, a write past the "
    "end of flash); None = it hangs until a power cycle",
    facts(
        ("2.03", None, "tag 3.40 43c3bbaf: JUMP and the flash commands only disable the WWDG clock"),
        ("3.49", 11.2, "f9ce4294 (tag 3.49): IWDG slowest = reload 1400, prescaler 256 at 32 kHz LSI"),
        ("3.50", 32.0, "01e72eb5 (tag 3.50): IWDG slowest = reload 4000, prescaler 256 (21.8-60 s with LSI spread)"),
        ("6.06", 0.0, "0b3a8c87 (release_6_06): fault handlers call main_stop_motor_and_reset()"),
    ),
)
BOOT_S: Behaviour[float] = Behaviour(
    "boot time",
    "reset until USB enumerates (an estimate read from main.c; not measured on hardware)",
    facts(
        ("2.03", 1.6, "estimate for tag 3.40 main.c (earlier research notes section 10)"),
        ("5.00", 5.0, "estimate for tags 5.02 and 6.00 main.c; where between 3.40 and 5.02 it grew is not known"),
    ),
)
TERMINAL_ECHO: Behaviour[bool] = Behaviour(
    "terminal echo",
    'terminal_process_string first prints "-> <cmd> \\n"',
    facts(("2.03", False, "tag 5.03 terminal.c"), ("6.00", True, "f7a2e4c6 (6.00 beta 62)")),
)
TERMINAL_PING: Behaviour[bool] = Behaviour(
    "terminal ping",
    'the terminal command "ping" answers "pong"',
    facts(("2.03", True, "tags 3.40 .. 5.03 terminal.c"), ("6.00", False, "7cacf99e (6.00 beta 74) 'Some cleanup'")),
)
PRINT_MAX: Behaviour[int] = Behaviour(
    "PRINT length",
    "characters of commands_printf text; longer text is cut and sent with its NUL",
    facts(
        ("2.03", 253, "print_buffer[255], vsnprintf(..., 254) (tags .. 5.03)"),
        ("6.00", 398, "9527f94c PRINT_BUFFER_SIZE 400"),
    ),
)
PRINT_TO_LAST_BLOCKING: Behaviour[bool] = Behaviour(
    "PRINT routing",
    "PRINT goes to the port that last sent a blocking command (dropped before any since boot); before 3.51 "
    "to the port that sent the last packet",
    facts(
        ("2.03", False, "tag 3.50 commands.c"), ("3.51", True, "35c1c72a 'Commands restructuring for thread safety'")
    ),
)
LISP_ON_ERASE: Behaviour[LispOnErase] = Behaviour(
    "LispBM on ERASE_NEW_APP",
    "what ERASE_NEW_APP does to a running LispBM program before erasing",
    facts(
        ("2.03", LispOnErase.NONE, "no LispBM before 6.00"),
        ("6.00", LispOnErase.RESTART, "a5f198df 'Stop lbm completely before erasing firmware' (6.00 beta 84)"),
        ("6.06", LispOnErase.STOP, "1e6fc13d (6.06 beta 4) lispif_stop()"),
    ),
)
LISP_CODE_SECTOR: Behaviour[int | None] = Behaviour(
    "LispBM code sector",
    "the sector holding the Lisp code record (LISP_BASE); None = no LispBM",
    facts(("2.03", None, "no LispBM before 6.00"), ("6.00", 10, "tag 6.00 flash_helper.c LISP_BASE 10")),
)
LISP_CONST_SECTOR: Behaviour[int | None] = Behaviour(
    "LispBM const heap / image sector",
    "where the flash const heap (6.05) or LBM image (6.06+) lives; every ERASE_NEW_APP erases it",
    facts(
        ("2.03", None, "none before 6.05"),
        ("6.05", 10, "6cdeebad move-to-flash: in the code sector after the code"),
        ("6.06", 8, "2398b7c5 LISP_CONST_BASE 8"),
    ),
)
PACKAGE_NVM_SECTOR: Behaviour[int | None] = Behaviour(
    "package NVM sector",
    "the sector flash_helper_read/write/wipe_nvm use (native libraries of packages); wipe_nvm erases all of it",
    facts(
        ("2.03", None, "no read_nvm before 6.02"),
        ("6.02", 8, "3ed72ec1 flash_helper_*_nvm on sector 8 (every update erases it)"),
        ("6.06", 11, "3bcc9039 'Towards lbm image support': sector 11, the bootloader sector, no offset past it"),
    ),
)
ERASE_CODE_CHECKS_FIRST_BYTE_ONLY: Behaviour[bool] = Behaviour(
    "LISP_ERASE_CODE empty-sector check",
    "flash_helper_erase_code skips the erase when it thinks the sector is empty; its loop never advances, "
    "so a sector whose first byte is 0xFF is reported erased without being erased",
    facts(("2.03", False, "release_6_05 flash_helper.c: no pre-check"), ("6.06", True, "release_6_06 flash_helper.c")),
)
CAN_IDENTITY_BACKUP: Behaviour[bool] = Behaviour(
    "CAN id and baud kept across an update",
    "g_backup in CCM RAM (.ram4, 0x10000000) carries controller_id and can_baud_rate through the bootloader "
    "(lost when power is cut); restored when the EEPROM backup is gone",
    facts(
        ("2.03", False, "not in release_6_05 nor in the 6.06 release commit b0931d01"),
        ("6.06", True, "6fe2d789 (release_6_06 after the release; 00bc35be on release_7_00 and master)"),
    ),
)
RMSG_SLOTS: Behaviour[int] = Behaviour(
    "LISP_RMSG slots",
    "RMSG_SLOT_NUM (canmsg-recv slots)",
    facts(("6.05", 5, "05de2f61 (6.05 beta 10)"), ("6.06", 8, "c00622cc")),
)
FLASH_CHECK_PASS_S: Behaviour[float | None] = Behaviour(
    "runtime flash check pass",
    "seconds for one pass of the background CRC check (1 KiB every 6 ms); a corruption is seen at the end "
    "of the next full pass and resets the MCU; None = no runtime check",
    facts(
        ("2.03", None, "no flash CRC before 3.56"),
        ("3.56", 2.11, "4fceb73d (tag 3.56): 352 chunks of 1 KiB every 6 ms"),
        ("6.00", 2.88, "480 chunks (APP_MAX_SIZE 512 KiB, f6baa653)"),
    ),
)
BEHAVIOURS: tuple[Behaviour[Any], ...] = (
    DECODER,
    MAX_PAYLOAD,
    RX_TIMEOUT_TICKS,
    LEGACY_TX_FRAMING,
    SELECTIVE_BIT14_BUG,
    WRITE_REPLY_OFFSET,
    FW_VERSION_FIELDS,
    CONFIGS,
    HARD_FAULT_EXIT_S,
    BOOT_S,
    TERMINAL_ECHO,
    TERMINAL_PING,
    PRINT_MAX,
    PRINT_TO_LAST_BLOCKING,
    LISP_ON_ERASE,
    LISP_CODE_SECTOR,
    LISP_CONST_SECTOR,
    PACKAGE_NVM_SECTOR,
    ERASE_CODE_CHECKS_FIRST_BYTE_ONLY,
    CAN_IDENTITY_BACKUP,
    RMSG_SLOTS,
    FLASH_CHECK_PASS_S,
)

RX_TICK_S = 0.001  # msec_timer: packet_timerfunc(), then chThdSleepMilliseconds(1) at a 10 kHz system tick
SHUTDOWN_RPM_LIMIT = 100.0  # COMM_SHUTDOWN is ignored while |ERPM| > this and force != 1 (dcbac819)
FLASH_CHECK_PASSES = 2  # the result is looked at only at the end of a pass: detection takes one to two passes
APPCONF_CAN_BAUD_OFFSET = 15  # can_baud_rate in the appconf after the signature (confgenerator.c 6.00 .. master)
APPCONF_CAN_BAUD_SINCE = fw("6.00")  # the offset above holds from tag 6.00 (5.02 had it at 12)
DEFAULT_CAN_BAUD = 2  # APPCONF_CAN_BAUD_RATE = CAN_BAUD_500K (appconf_default.h)
FIRST_BOOT_S = 0.2  # first boot after an update: reset until the integrity record is written (an estimate)
CAN_BAUD_KBITS = (125, 250, 500, 1000, 10, 20, 50, 75, 100)  # CAN_BAUD enum index -> kbit/s (datatypes.h)


def fw_version_fields_for(version: FirmwareVersion) -> tuple[str, ...]:
    """The optional FW_VERSION reply fields a firmware version sends, in wire order."""
    return FW_VERSION_FIELDS.at(version) if version >= FW_VERSION_FIELDS.facts[0].since else ()


# (mcconf, appconf) signatures of every release that has them (3.50 on), for the host's layout checks.
CONFIG_SIGNATURES: dict[FirmwareVersion, tuple[int, int]] = {
    r.version: (mc.signature, app.signature)
    for r in RELEASES
    for mc, app in (CONFIGS.at(r.version),)
    if mc.signature is not None and app.signature is not None
}


# --- the profile of one release ----------------------------------------------------------------------


@dataclass(frozen=True)
class FirmwareProfile:
    """The behaviour of one release, gathered from the tables above."""

    release: Release
    decoder: DecoderKind
    rx_timeout_ticks: int | None
    max_payload: int
    legacy_tx_framing: bool
    mcconf: ConfigLayout
    appconf: ConfigLayout
    write_reply_offset: bool
    selective_bit14_bug: bool
    image: ImageLayout
    hard_fault_exit_s: float | None
    boot_s: float
    terminal_echo: bool
    terminal_ping: bool
    print_max: int
    print_to_last_blocking: bool
    lisp_on_erase: LispOnErase
    lisp_code_sector: int | None
    lisp_const_sector: int | None
    package_nvm_sector: int | None
    erase_code_checks_first_byte_only: bool
    can_identity_backup: bool
    flash_check_pass_s: float | None

    @property
    def name(self) -> str:
        return str(self.release.version)

    @property
    def version(self) -> FirmwareVersion:
        return self.release.version

    @property
    def rx_timeout_s(self) -> float | None:
        """Idle time after which a partial frame is gone: reset on tick N+1 (research section 3.1)."""
        ticks = self.rx_timeout_ticks
        return None if ticks is None else (ticks + 1) * RX_TICK_S

    @property
    def commands(self) -> CommandTable:
        return command_table(self.version)

    @property
    def fw_version_fields(self) -> tuple[str, ...]:
        return fw_version_fields_for(self.version)

    @property
    def value_fields(self) -> tuple[ValueField, ...]:
        return value_fields_for(self.version)

    @property
    def signed_configs(self) -> bool:
        return self.mcconf.signature is not None

    @property
    def erase_bootloader(self) -> bool:
        """ERASE_BOOTLOADER exists (3.59+)."""
        return self.commands.has(Cmd.ERASE_BOOTLOADER)

    @property
    def all_can(self) -> bool:
        """The *_ALL_CAN update commands and PING_CAN exist (ids from 3.48)."""
        return self.commands.has(Cmd.ERASE_NEW_APP_ALL_CAN)

    @property
    def rmsg_slots(self) -> int:
        return RMSG_SLOTS.at(self.version) if self.commands.has(Cmd.LISP_RMSG) else 0

    def config(self, kind: ConfigKind) -> ConfigLayout:
        return self.mcconf if kind == ConfigKind.MCCONF else self.appconf


def profile_for(version: str | FirmwareVersion) -> FirmwareProfile:
    """How release `version` ("6.06") behaves; UnknownFirmware for a version that was never released."""
    found = release(version)
    v = found.version
    mcconf, appconf = CONFIGS.at(v)
    return FirmwareProfile(
        release=found,
        decoder=DECODER.at(v),
        rx_timeout_ticks=RX_TIMEOUT_TICKS.at(v),
        max_payload=MAX_PAYLOAD.at(v),
        legacy_tx_framing=LEGACY_TX_FRAMING.at(v),
        mcconf=mcconf,
        appconf=appconf,
        write_reply_offset=WRITE_REPLY_OFFSET.at(v),
        selective_bit14_bug=SELECTIVE_BIT14_BUG.at(v),
        image=layout_for(v),
        hard_fault_exit_s=HARD_FAULT_EXIT_S.at(v),
        boot_s=BOOT_S.at(v),
        terminal_echo=TERMINAL_ECHO.at(v),
        terminal_ping=TERMINAL_PING.at(v),
        print_max=PRINT_MAX.at(v),
        print_to_last_blocking=PRINT_TO_LAST_BLOCKING.at(v),
        lisp_on_erase=LISP_ON_ERASE.at(v),
        lisp_code_sector=LISP_CODE_SECTOR.at(v),
        lisp_const_sector=LISP_CONST_SECTOR.at(v),
        package_nvm_sector=PACKAGE_NVM_SECTOR.at(v),
        erase_code_checks_first_byte_only=ERASE_CODE_CHECKS_FIRST_BYTE_ONLY.at(v),
        can_identity_backup=CAN_IDENTITY_BACKUP.at(v),
        flash_check_pass_s=FLASH_CHECK_PASS_S.at(v),
    )


PROFILES: dict[str, FirmwareProfile] = {str(r.version): profile_for(r.version) for r in RELEASES}
