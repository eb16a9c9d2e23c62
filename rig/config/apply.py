"""Settings by field name (``l_current_max=60``), applied to a board's configs and checked after the write.

Used by ``rig config set`` and by the factory flow (defaults from the rack file). A setting names a field
of either config; ``mcconf:NAME`` or ``appconf:NAME`` says which when both have it. The board's configs
are decoded with the schema of their signature (firmware before 3.50 sends none: the schema must be
chosen explicitly), the settings replace their fields, the new blobs go through the station session
(undo backup, layout guard, read back), and every field is then checked against the read-back
(rig.config.verify): what the firmware clamped is reported, never hidden.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rig.config.codec import ConfigValues, decode, encode
from rig.config.schema import Schema, Value
from rig.config.source import SchemaSource
from rig.config.text import coerce, outside_editor_limits
from rig.config.verify import FieldCheck, changed, check_written
from rig.errors import ConfigError
from rig.protocol.codecs import ConfigBlob, ConfigKind
from rig.protocol.commands import FirmwareVersion

if TYPE_CHECKING:
    from rig.station.session import StationSession

KIND_PREFIXES = {f"{kind.value}:": kind for kind in ConfigKind}


@dataclass(frozen=True)
class Assignment:
    """One setting: a field (of a given config, or of whichever has it) and its raw value."""

    name: str
    raw: object
    kind: ConfigKind | None = None

    @classmethod
    def parse(cls, text: str) -> Assignment:
        """`NAME=VALUE` or `mcconf:NAME=VALUE` / `appconf:NAME=VALUE`."""
        name, sep, value = text.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ConfigError(f"{text!r} is not NAME=VALUE (for example l_current_max=60)")
        for prefix, kind in KIND_PREFIXES.items():
            if name.startswith(prefix):
                return cls(name.removeprefix(prefix), value, kind)
        return cls(name, value)

    def __str__(self) -> str:
        return f"{self.kind.value + ':' if self.kind else ''}{self.name}={self.raw}"


def assignments_from(fields: Mapping[str, Mapping[str, object]]) -> list[Assignment]:
    """Settings given per config ({"mcconf": {name: value}, ...}, as a rack file's config tables hold them)."""
    return [Assignment(name, raw, ConfigKind(kind)) for kind, values in fields.items() for name, raw in values.items()]


def board_schemas(
    blobs: Mapping[ConfigKind, ConfigBlob],
    source: SchemaSource,
    version: FirmwareVersion,
    chosen: FirmwareVersion | None = None,
) -> dict[ConfigKind, Schema]:
    """The schema of each blob: by its signature, or (firmware before 3.50, no signature) of the `chosen`
    version's folder; ConfigError when an unsigned blob has no chosen schema or a size does not match."""
    out = {}
    for kind, blob in blobs.items():
        if blob.signature is not None:
            schema = source.by_signature(kind, blob.signature, version=version)
        elif chosen is None:
            raise ConfigError(
                f"firmware {version} sends its {kind.value} without a signature (before 3.50): the rig cannot tell "
                "which schema fits; choose one explicitly (--schema-version VERSION names res/config/VERSION)"
            )
        else:
            schema = source.for_version(kind, chosen)
        if schema.size != len(blob.data):
            raise ConfigError(
                f"{schema.describe()} describes {schema.size} field bytes, the board's {kind.value} (firmware "
                f"{version}) has {len(blob.data)}: not its layout"
            )
        out[kind] = schema
    return out


def resolve(assignments: Iterable[Assignment], schemas: Mapping[ConfigKind, Schema]) -> dict[ConfigKind, dict]:
    """The settings by config and field, each value checked against its field's type."""
    out: dict[ConfigKind, dict[str, Value]] = {}
    for setting in assignments:
        kinds = [setting.kind] if setting.kind else [k for k, s in schemas.items() if setting.name in s]
        if setting.kind is not None and setting.kind not in schemas:
            raise ConfigError(f"{setting}: the board's {setting.kind.value} is not being written")
        if not kinds or setting.name not in schemas[kinds[0]]:
            raise ConfigError(f"{setting}: no such field{_close(setting.name, schemas)}")
        if len(kinds) > 1:
            raise ConfigError(
                f"{setting}: both configs have {setting.name}; write mcconf:{setting.name}=… or appconf:…"
            )
        kind = kinds[0]
        out.setdefault(kind, {})[setting.name] = coerce(schemas[kind][setting.name], setting.raw)
    return out


def _close(name: str, schemas: Mapping[ConfigKind, Schema]) -> str:
    names = [n for schema in schemas.values() for n in schema.names]
    close = difflib.get_close_matches(name, names, n=3)
    return f" (did you mean {', '.join(close)}?)" if close else ""


@dataclass
class SettingsPlan:
    """The board's configs now, the configs to send, and what was asked for."""

    version: FirmwareVersion
    current: dict[ConfigKind, ConfigValues]
    sent: dict[ConfigKind, ConfigValues]
    asked: dict[ConfigKind, dict[str, Value]]
    signed: bool = True  # firmware 3.50+: blobs carry the signature
    warnings: list[str] = field(default_factory=list)

    @property
    def blobs(self) -> list[ConfigBlob]:
        """The blobs to write: only configs whose bytes change."""
        out = []
        for kind, values in self.sent.items():
            blob = encode(values, signed=self.signed)
            if blob != encode(self.current[kind], signed=self.signed):
                out.append(blob)
        return out


def plan(
    blobs: Mapping[ConfigKind, ConfigBlob],
    assignments: Iterable[Assignment],
    source: SchemaSource,
    version: FirmwareVersion,
    chosen: FirmwareVersion | None = None,
) -> SettingsPlan:
    """Decode the board's configs and put the settings in (nothing is written yet)."""
    assignments = list(assignments)
    kinds = {a.kind for a in assignments}
    wanted = dict(blobs) if None in kinds else {k: b for k, b in blobs.items() if k in kinds}
    schemas = board_schemas(wanted, source, version, chosen)
    asked = resolve(assignments, schemas)
    current = {kind: decode(schemas[kind], wanted[kind]) for kind in asked}
    sent = {kind: current[kind].with_values(values) for kind, values in asked.items()}
    warnings = [
        w
        for kind, values in asked.items()
        for name, value in values.items()
        if (w := outside_editor_limits(schemas[kind][name], value))
    ]
    signed = all(blob.signature is not None for blob in wanted.values())
    return SettingsPlan(version, current, sent, asked, signed, warnings)


@dataclass
class SettingsResult:
    """After the write: a check per asked field and per other field the firmware changed."""

    plan: SettingsPlan
    checks: list[FieldCheck]
    written: list[ConfigKind]

    @property
    def changed_by_firmware(self) -> list[FieldCheck]:
        return changed(self.checks)


def write_settings(session: StationSession, settings: SettingsPlan, *, force: bool = False) -> SettingsResult:
    """Write the planned configs through the session (undo backup, layout guard), read back, check by field."""
    blobs = settings.blobs
    if blobs:
        session.write_config(*blobs, made_for=settings.version, force=force, exact=False)
    checks: list[FieldCheck] = []
    with session.connect() as esc:
        for kind, sent in settings.sent.items():
            got = decode(sent.schema, esc.get_config(kind))
            checks += check_written(sent, got, settings.asked[kind])
    return SettingsResult(settings, checks, [b.kind for b in blobs])
