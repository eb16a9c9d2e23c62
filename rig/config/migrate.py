"""Restore a config taken on one layout onto another, by field name, as VESC Tool loads a saved config.

The new layout's values (what the board holds after an update: its defaults) are the base; every field
both layouts have gets the old value where that is certain, and everything else is listed, never
guessed:

- same type: carried (a double into another scale or wire type is re-quantized and listed as converted;
  an int that does not fit the new wire type is not migrated);
- enums: carried by label; the label's index may move (listed); a label the new layout lacks is not
  migrated (VESC Tool would keep the raw index: 6.05's app_to_use index 9 is no longer "Balance");
- bitfields: carried when the bit labels are the same or every set bit's label still exists;
- type changed: double to int only for a whole number that fits, int to double when it fits; any other
  change (enum to int, bool to int, ...) is not migrated;
- vanished fields (only in the old layout) are dropped, new fields keep the board's value; both listed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from rig.config.codec import ConfigValues, decode, decode_field, encode_field
from rig.config.diff import enum_label
from rig.config.schema import Field, Value, ValueType
from rig.config.source import SchemaSource
from rig.config.text import value_text
from rig.errors import ConfigError
from rig.protocol.codecs import ConfigBlob, ConfigKind
from rig.protocol.commands import FirmwareVersion


class Outcome(StrEnum):
    CARRIED = "carried"
    CONVERTED = "converted"
    RELABELLED = "carried by label"
    NOT_MIGRATED = "not migrated"
    VANISHED = "vanished"
    NEW = "new"


@dataclass(frozen=True)
class FieldMigration:
    """What became of one field: the old value, the value the new config holds, and why."""

    name: str
    outcome: Outcome
    old: str | None
    new: str | None
    reason: str = ""

    def line(self) -> str:
        old = "-" if self.old is None else self.old
        new = "-" if self.new is None else self.new
        return f"{self.name}: {old} -> {new} [{self.outcome.value}]" + (f" {self.reason}" if self.reason else "")


@dataclass(frozen=True)
class Migration:
    """One config carried from an old layout onto a new one."""

    kind: ConfigKind
    old_signature: int
    new_signature: int
    values: ConfigValues  # the new layout's values to write
    fields: tuple[FieldMigration, ...]

    def count(self, outcome: Outcome) -> int:
        return sum(1 for f in self.fields if f.outcome == outcome)

    @property
    def listed(self) -> tuple[FieldMigration, ...]:
        """Every field that was not simply carried."""
        return tuple(f for f in self.fields if f.outcome != Outcome.CARRIED)

    def summary(self) -> str:
        counts = ", ".join(f"{self.count(o)} {o.value}" for o in Outcome if self.count(o))
        return f"{self.kind.value} {self.old_signature} -> {self.new_signature}: {counts}"

    def lines(self) -> list[str]:
        return [self.summary(), *(f"  {self.kind.value}.{f.line()}" for f in self.listed)]

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "old_signature": self.old_signature,
            "new_signature": self.new_signature,
            "counts": {o.value: self.count(o) for o in Outcome},
            "fields": [vars(f) | {"outcome": f.outcome.value} for f in self.listed],
        }


def migrate(old: ConfigValues, onto: ConfigValues) -> Migration:
    """`onto` (the new layout's values) with every field `old` can give it for certain; the rest listed."""
    if old.schema.kind != onto.schema.kind:
        raise ConfigError(f"cannot migrate a {old.schema.kind.value} onto an {onto.schema.kind.value}")
    result: list[FieldMigration] = []
    changes: dict[str, Value] = {}
    for new_field in onto.schema.fields:
        old_field = old.schema.get(new_field.name)
        if old_field is None:
            keep = value_text(new_field, onto[new_field.name])
            result.append(FieldMigration(new_field.name, Outcome.NEW, None, keep, "the board's value kept"))
            continue
        value, outcome, reason = carry(old_field, old[old_field.name], new_field)
        old_text = value_text(old_field, old[old_field.name])
        if value is None:
            keep = value_text(new_field, onto[new_field.name])
            result.append(FieldMigration(new_field.name, Outcome.NOT_MIGRATED, old_text, keep, reason))
            continue
        changes[new_field.name] = value
        result.append(FieldMigration(new_field.name, outcome, old_text, value_text(new_field, value), reason))
    for old_field in old.schema.fields:
        if old_field.name not in onto.schema:
            old_text = value_text(old_field, old[old_field.name])
            result.append(FieldMigration(old_field.name, Outcome.VANISHED, old_text, None, "dropped"))
    values = onto.with_values(changes)
    return Migration(onto.schema.kind, old.schema.signature, onto.schema.signature, values, tuple(result))


def carry(old_field: Field, value: Value, new_field: Field) -> tuple[Value | None, Outcome, str]:
    """The value a new field gets from an old one (None: not migrated), the outcome and the reason."""
    if old_field.type != new_field.type:
        return _retyped(old_field, value, new_field)
    kind = new_field.type
    if kind == ValueType.ENUM:
        return _enum(old_field, value, new_field)
    if kind == ValueType.BITFIELD:
        return _bits(old_field, value, new_field)
    if kind in (ValueType.DOUBLE, ValueType.INT):
        fitted = _fits(new_field, value)
        if fitted is None:
            return None, Outcome.NOT_MIGRATED, f"{value} does not fit {new_field.type_text}"
        if old_field.type_text == new_field.type_text:
            return fitted, Outcome.CARRIED, ""
        return fitted, Outcome.CONVERTED, f"{old_field.type_text} -> {new_field.type_text}"
    return value, Outcome.CARRIED, ""


def _fits(field: Field, value: Value) -> Value | None:
    """The value as the field holds it after the wire (re-quantized), or None if it does not fit."""
    try:
        return decode_field(field, encode_field(field, value))
    except (ConfigError, OverflowError, ValueError):
        return None


def _retyped(old_field: Field, value: Value, new_field: Field) -> tuple[Value | None, Outcome, str]:
    change = f"{old_field.type_text} -> {new_field.type_text}"
    if old_field.type == ValueType.DOUBLE and new_field.type == ValueType.INT:
        if not (isinstance(value, float) and math.isfinite(value) and value.is_integer()):
            return None, Outcome.NOT_MIGRATED, f"{change}: {value:g} is not a whole number"
        fitted = _fits(new_field, int(value))
    elif old_field.type == ValueType.INT and new_field.type == ValueType.DOUBLE:
        fitted = _fits(new_field, float(value))
        if fitted is not None and fitted != float(value):
            return None, Outcome.NOT_MIGRATED, f"{change}: {value} is not exact in the new wire type"
    else:
        return None, Outcome.NOT_MIGRATED, f"{change}: no certain conversion"
    if fitted is None:
        return None, Outcome.NOT_MIGRATED, f"{change}: {value} does not fit"
    return fitted, Outcome.CONVERTED, change


def _enum(old_field: Field, value: Value, new_field: Field) -> tuple[Value | None, Outcome, str]:
    if old_field.enum_names == new_field.enum_names:
        return value, Outcome.CARRIED, ""
    label = enum_label(old_field, value)
    if label is None:
        return None, Outcome.NOT_MIGRATED, f"index {value} has no label in the old layout"
    if label not in new_field.enum_names:
        return None, Outcome.NOT_MIGRATED, f"label {label!r} does not exist in the new layout"
    index = new_field.enum_names.index(label)
    moved = f"index {value} -> {index}" if index != value else f"index {value} kept"
    return index, Outcome.RELABELLED, f"labels changed; {label!r}: {moved}"


def _bits(old_field: Field, value: Value, new_field: Field) -> tuple[Value | None, Outcome, str]:
    if old_field.enum_names == new_field.enum_names:
        return value, Outcome.CARRIED, ""
    assert isinstance(value, int)
    bits = [i for i in range(8) if value >> i & 1]
    labels = [old_field.enum_names[i] if i < len(old_field.enum_names) else None for i in bits]
    if any(label is None or label not in new_field.enum_names for label in labels):
        return None, Outcome.NOT_MIGRATED, f"bits {bits} have no certain place in the new bit labels"
    moved = sum(1 << new_field.enum_names.index(label) for label in labels if label is not None)
    return moved, Outcome.RELABELLED, f"bit labels changed; bits {value:#04x} -> {moved:#04x}"


def migrate_blob(
    old: ConfigBlob, now: ConfigBlob, source: SchemaSource, versions: tuple[FirmwareVersion, FirmwareVersion]
) -> Migration:
    """A blob of one layout carried onto a board's blob of another, by the schemas of both signatures."""
    if old.signature is None or now.signature is None:
        raise ConfigError(
            f"firmware {versions[0]} -> {versions[1]}: a config without a signature (before 3.50) cannot be "
            "matched to a schema, so it is not migrated by field"
        )
    before = decode(source.by_signature(old.kind, old.signature, version=versions[0]), old)
    after = decode(source.by_signature(now.kind, now.signature, version=versions[1]), now)
    return migrate(before, after)
