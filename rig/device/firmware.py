"""Firmware behaviour as data: what each firmware version does, one table row per profiled version.

Every behaviour that differs between firmware versions is a field here: the simulator reads the field
instead of comparing versions, and the host reads the same table (config signatures, boot times).
Sources (vesc-protocol-facts.md, vedderb/bldc tags): decoder and receive timeout (packet.c), command ids
(datatypes.h), FW_VERSION fields (commands.c), config signatures and sizes (confgenerator.h/.c;
3.40: commands.c), image end (linker scripts), JUMP without a bootloader (flash_helper.c, timeout.c).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from rig.device.config_layouts import RELEASED_LAYOUTS
from rig.errors import Diagnosis, RigError
from rig.protocol.codecs import ConfigKind
from rig.protocol.commands import Cmd, CommandTable, FirmwareVersion, command_table, fw
from rig.protocol.framing import MAX_PAYLOAD_3_40, MAX_PAYLOAD_3_48
from rig.protocol.values import ValueField, value_fields_for


class UnknownFirmware(RigError):
    """A firmware version the table has no behaviour for."""

    diagnosis = Diagnosis.UNSUPPORTED


class DecoderKind(StrEnum):
    """Which packet decoder the firmware runs (facts sheet section 1)."""

    LEGACY = "legacy"  # <= 3.40: state machine, a failed frame's bytes are lost
    RESYNC = "resync"  # >= 3.48: buffered, skips one byte and rescans


# The first version whose FW_VERSION reply carries each optional field (facts sheet section 3).
FW_VERSION_FIELDS_SINCE: tuple[tuple[str, FirmwareVersion], ...] = (
    ("hw_name", fw("3.07")),
    ("uid", fw("3.09")),
    ("pairing_done", fw("3.48")),
    ("test_version", fw("5.00")),
    ("hw_type", fw("5.02")),
    ("custom_cfg_num", fw("5.02")),
    ("has_phase_filters", fw("5.03")),
    ("qml_hw", fw("5.03")),
    ("qml_app", fw("5.03")),
    ("nrf_flags", fw("6.00")),
    ("fw_name", fw("6.00")),
    ("hw_conf_crc", fw("7.00")),  # HEAD only; 6.02 does not send it (research section 5)
)


def fw_version_fields_for(version: FirmwareVersion) -> tuple[str, ...]:
    """The optional FW_VERSION reply fields a firmware version sends, in wire order."""
    return tuple(name for name, since in FW_VERSION_FIELDS_SINCE if version >= since)


@dataclass(frozen=True)
class ConfigLayout:
    """One serialized config of a firmware: its signature (None before 3.50) and its field bytes."""

    kind: ConfigKind
    signature: int | None
    size: int  # bytes after the signature


@dataclass(frozen=True)
class FirmwareProfile:
    """The behaviour of one firmware version, as data."""

    name: str
    version: FirmwareVersion
    decoder: DecoderKind
    rx_timeout_s: float | None  # partial frame dropped after this idle time; None = kept forever
    max_payload: int
    legacy_tx_framing: bool  # <= 3.40 frames a 256-byte reply as `02 00` (encode_frame_legacy)
    mcconf: ConfigLayout
    appconf: ConfigLayout
    write_reply_offset: bool  # WRITE_NEW_APP_DATA reply carries the u32 offset (>= 5.00)
    selective_bit14_bug: bool  # GET_VALUES_SELECTIVE sends tacho_abs for any non-zero mask (3.48-3.56)
    app_size: int  # size of the firmware .bin (image end)
    jump_watchdog_s: float | None  # JUMP with no bootloader: IWDG reset after this; None = hangs
    boot_s: float  # reset to USB enumeration (inference from main.c, research section 10)
    terminal_echo: bool  # TERMINAL_CMD first prints "-> <cmd> \n" (>= 6.00)
    terminal_ping: bool  # the terminal has "ping" -> "pong" (3.40 yes, 6.02 no)
    print_max: int  # longer PRINT text is cut here and the NUL sent too (buffer 255 / 400, research 3)

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

    def config(self, kind: ConfigKind) -> ConfigLayout:
        return self.mcconf if kind == ConfigKind.MCCONF else self.appconf


# (mcconf, appconf) signatures of released firmware 3.55-7.01 (rig.device.config_layouts, with the sizes).
CONFIG_SIGNATURES: dict[FirmwareVersion, tuple[int, int]] = {
    version: (layouts[ConfigKind.MCCONF].signature, layouts[ConfigKind.APPCONF].signature)
    for version, layouts in RELEASED_LAYOUTS.items()
}


def _layouts(version: str, mc_size: int, app_size: int) -> dict[str, ConfigLayout]:
    """The config layouts of a profiled version: signatures from CONFIG_SIGNATURES (none before 3.50)."""
    mc_sig, app_sig = CONFIG_SIGNATURES.get(fw(version), (None, None))
    return {
        "mcconf": ConfigLayout(ConfigKind.MCCONF, mc_sig, mc_size),
        "appconf": ConfigLayout(ConfigKind.APPCONF, app_sig, app_size),
    }


IWDG_SLOWEST_S = 32.0  # reload 4000 / prescaler 256 at 32 kHz LSI (B: timeout.c, FW >= 3.49)

PROFILES: dict[str, FirmwareProfile] = {
    p.name: p
    for p in (
        FirmwareProfile(
            name="3.40",
            version=fw("3.40"),
            decoder=DecoderKind.LEGACY,
            rx_timeout_s=1.0,
            max_payload=MAX_PAYLOAD_3_40,
            legacy_tx_framing=True,
            **_layouts("3.40", 340, 162),  # B@3.40 commands.c, counted (research section 6)
            write_reply_offset=False,
            selective_bit14_bug=False,
            app_size=200 * 1024,  # "~200 KB" (facts 6); exact size unverified
            jump_watchdog_s=None,  # 3.40 jump only disables the WWDG: hangs until power cycle
            boot_s=1.6,
            terminal_echo=False,
            terminal_ping=True,
            print_max=253,
        ),
        FirmwareProfile(
            name="3.55",
            version=fw("3.55"),
            decoder=DecoderKind.RESYNC,
            rx_timeout_s=1.0,
            max_payload=MAX_PAYLOAD_3_48,
            legacy_tx_framing=False,
            **_layouts("3.55", 399, 166),  # B@3.55 confgenerator.h/.c, counted
            write_reply_offset=False,
            selective_bit14_bug=True,
            app_size=280 * 1024,  # unverified: 3.5x images are not gap-filled to a fixed end
            jump_watchdog_s=IWDG_SLOWEST_S,
            boot_s=1.6,
            terminal_echo=False,
            terminal_ping=True,
            print_max=253,
        ),
        FirmwareProfile(
            name="5.02",
            version=fw("5.02"),
            decoder=DecoderKind.RESYNC,
            rx_timeout_s=1.0,
            max_payload=MAX_PAYLOAD_3_48,
            legacy_tx_framing=False,
            **_layouts("5.02", 453, 414),  # B@5.02 confgenerator.h/.c, counted
            write_reply_offset=True,
            selective_bit14_bug=False,
            app_size=393208,
            jump_watchdog_s=IWDG_SLOWEST_S,
            boot_s=5.0,
            terminal_echo=False,
            terminal_ping=False,
            print_max=253,
        ),
        FirmwareProfile(
            name="6.02",
            version=fw("6.02"),
            decoder=DecoderKind.RESYNC,
            rx_timeout_s=None,
            max_payload=MAX_PAYLOAD_3_48,
            legacy_tx_framing=False,
            **_layouts("6.02", 477, 489),  # B@release_6_02 confgenerator.h (= tag 6.00)
            write_reply_offset=True,
            selective_bit14_bug=False,
            app_size=524280,
            jump_watchdog_s=IWDG_SLOWEST_S,
            boot_s=5.0,
            terminal_echo=True,
            terminal_ping=False,
            print_max=398,
        ),
    )
}


def profile_for(version: str | FirmwareVersion) -> FirmwareProfile:
    """The profile a firmware version ("6.02") behaves as; UnknownFirmware names the known ones.

    A version without a profile of its own (a release candidate "6.03", say) behaves as the closest
    profiled version below it in the same major series; it still reports its own version number.
    """
    wanted = version if isinstance(version, FirmwareVersion) else FirmwareVersion.parse(version)
    below = [p for p in PROFILES.values() if p.version.major == wanted.major and p.version <= wanted]
    if not below:
        raise UnknownFirmware(
            f"no simulated firmware profile {wanted} or below it in series {wanted.major}; "
            f"profiles: {', '.join(PROFILES)}"
        )
    profile = max(below, key=lambda p: p.version)
    layouts = RELEASED_LAYOUTS.get(wanted)
    if layouts is not None and wanted != profile.version:  # a release whose own layouts are known
        mc, app = layouts[ConfigKind.MCCONF], layouts[ConfigKind.APPCONF]
        profile = replace(
            profile,
            mcconf=ConfigLayout(ConfigKind.MCCONF, mc.signature, mc.size),
            appconf=ConfigLayout(ConfigKind.APPCONF, app.signature, app.size),
        )
    return profile
