"""What differs between two configs, field by field, with units; across layouts by field name.

Within one layout a field differs when its bytes differ. Across layouts (another signature) a field is
compared by name: it differs when the old value, put into the new field, would not give the new bytes;
enums are compared by label; fields only one side has, and fields whose type changed, are listed.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from rig.config.codec import ConfigValues, decode, encode_field
from rig.config.schema import Field, Value, ValueType
from rig.config.source import SchemaSource
from rig.config.text import value_text
from rig.errors import ConfigError
from rig.protocol.codecs import ConfigBlob, ConfigKind


class Change(StrEnum):
    CHANGED = "changed"
    RETYPED = "type changed"
    REMOVED = "only in A"
    ADDED = "only in B"


@dataclass(frozen=True)
class FieldDiff:
    """One field that differs: its name, unit, and the old and new value as text (None: not there)."""

    kind: ConfigKind
    name: str
    change: Change
    unit: str
    old: str | None
    new: str | None
    note: str = ""

    def line(self) -> str:
        old = "-" if self.old is None else self.old
        new = "-" if self.new is None else self.new
        note = f"  ({self.note})" if self.note else ""
        return f"{self.kind.value}.{self.name}: {old} -> {new} [{self.change.value}]{note}"


def enum_label(field: Field, value: Value) -> str | None:
    if isinstance(value, int) and 0 <= value < len(field.enum_names):
        return field.enum_names[value]
    return None


def same_value(old_field: Field, old: Value, new_field: Field, new: Value) -> bool:
    """Whether an old value means what a new one does: the same bytes in the new field; enums by label."""
    if old_field.type == ValueType.ENUM and new_field.type == ValueType.ENUM:
        return enum_label(old_field, old) == enum_label(new_field, new) and (
            enum_label(old_field, old) is not None or old == new
        )
    try:
        return encode_field(new_field, old) == encode_field(new_field, new)
    except (ConfigError, ValueError, TypeError):
        return False


def diff_values(a: ConfigValues, b: ConfigValues) -> list[FieldDiff]:
    """The fields of `a` and `b` (one kind) that differ, in b's order, then the ones only `a` has."""
    kind = b.schema.kind
    out: list[FieldDiff] = []
    for new_field in b.schema.fields:
        old_field = a.schema.get(new_field.name)
        new_text = value_text(new_field, b[new_field.name])
        if old_field is None:
            out.append(FieldDiff(kind, new_field.name, Change.ADDED, new_field.unit, None, new_text))
            continue
        old, new = a[old_field.name], b[new_field.name]
        old_text = value_text(old_field, old)
        if old_field.type_text != new_field.type_text:
            note = f"{old_field.type_text} -> {new_field.type_text}"
            out.append(FieldDiff(kind, new_field.name, Change.RETYPED, new_field.unit, old_text, new_text, note))
        elif not same_value(old_field, old, new_field, new):
            out.append(FieldDiff(kind, new_field.name, Change.CHANGED, new_field.unit, old_text, new_text))
    for old_field in a.schema.fields:
        if old_field.name not in b.schema:
            old_text = value_text(old_field, a[old_field.name])
            out.append(FieldDiff(kind, old_field.name, Change.REMOVED, old_field.unit, old_text, None))
    return out


def diff_text(diffs: list[FieldDiff], title: str = "") -> str:
    """A plain-text table of field differences (for logs and report attachments)."""
    lines = [title] if title else []
    if not diffs:
        return "\n".join([*lines, "no field differs"]) + "\n"
    width = max(len(f"{d.kind.value}.{d.name}") for d in diffs)
    for d in diffs:
        name = f"{d.kind.value}.{d.name}".ljust(width)
        old = "-" if d.old is None else d.old
        new = "-" if d.new is None else d.new
        note = f"  ({d.note})" if d.note else ""
        lines.append(f"{name}  {old} -> {new}  [{d.change.value}]{note}")
    return "\n".join(lines) + "\n"


def diff_blobs(
    a: dict[ConfigKind, ConfigBlob], b: dict[ConfigKind, ConfigBlob], source: SchemaSource
) -> list[FieldDiff]:
    """Field differences between two boards' (or one board's, at two times) signed configs, by the schemas
    of their signatures; SchemaMissing when a schema is not in the source, ConfigError without signatures."""
    out: list[FieldDiff] = []
    for kind in a:
        values = []
        for blob in (a[kind], b[kind]):
            if blob.signature is None:
                raise ConfigError(f"a {kind.value} without a signature (before 3.50) names no schema to diff it by")
            values.append(decode(source.by_signature(kind, blob.signature), blob))
        out += diff_values(values[0], values[1])
    return out
