"""Config values as people read and write them: parsing settings, showing values with units, TOML.

A setting's value is given as text (``rig config set PORT l_current_max=60``) or as a TOML value (a
rack file's ``[station.config]``): a number for doubles and ints, true/false for bools, an enum's label
(or its index), a bitfield's number. Values are shown in stored units; where VESC Tool shows another
unit (``editorScale``, e.g. Hz stored, kHz shown) the shown form follows in brackets.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from decimal import Decimal

from rig.config.codec import ConfigValues, Encoding, encode_field, int_range
from rig.config.schema import Field, Value, ValueType
from rig.errors import ConfigError

_TRUE = ("true", "on", "yes", "1")
_FALSE = ("false", "off", "no", "0")


def coerce(field: Field, raw: object) -> Value:
    """A setting (text, or a TOML number/bool/string) as the field's value; ConfigError says what fits."""
    if isinstance(raw, str):
        return parse_value(field, raw)
    if field.type == ValueType.BOOL and isinstance(raw, bool):
        return raw
    if isinstance(raw, bool):
        raise ConfigError(f"{field.name} is {_what(field)}, not {str(raw).lower()}")
    if field.type == ValueType.DOUBLE and isinstance(raw, (int, float)):
        return _checked(field, float(raw))
    if field.type in (ValueType.INT, ValueType.ENUM, ValueType.BITFIELD) and isinstance(raw, int):
        return _checked(field, raw)
    if field.type == ValueType.INT and isinstance(raw, float) and raw.is_integer():
        return _checked(field, int(raw))
    raise ConfigError(f"{field.name} is {_what(field)}, not {raw!r}")


def parse_value(field: Field, text: str) -> Value:
    """A value given as text: a number, true/false, an enum label (any case) or index."""
    stripped = text.strip()
    try:
        if field.type == ValueType.DOUBLE:
            return _checked(field, float(stripped))
        if field.type in (ValueType.INT, ValueType.BITFIELD):
            return _checked(field, int(stripped, 0))
    except ValueError:
        raise ConfigError(f"{field.name} is {_what(field)}, not {text!r}") from None
    if field.type == ValueType.BOOL:
        if stripped.lower() in _TRUE:
            return True
        if stripped.lower() in _FALSE:
            return False
        raise ConfigError(f"{field.name} is {_what(field)}, not {text!r}")
    if field.type == ValueType.ENUM:
        labels = [name.lower() for name in field.enum_names]
        if stripped.lower() in labels:
            return labels.index(stripped.lower())
        if stripped.lstrip("-").isdigit():
            return _checked(field, int(stripped))
        raise ConfigError(f"{field.name} is {_what(field)}, not {text!r}")
    if field.type == ValueType.STRING:
        return text
    raise ConfigError(f"{field.name} holds no value (a label in VESC Tool)")


def _checked(field: Field, value: float | int) -> Value:
    """A value in the range its wire type can carry (VESC Tool's editor limits are only warned about)."""
    if field.type == ValueType.DOUBLE:
        encode_field(field, value)  # raises ConfigError when it does not fit
        return float(value)
    if field.type == ValueType.INT:
        low, high = int_range(field.wire)
    elif field.type == ValueType.ENUM:
        low, high = 0, max(len(field.enum_names) - 1, 0)
    else:
        low, high = 0, 255
    if not low <= int(value) <= high:
        raise ConfigError(f"{field.name}: {value} is out of range {low}..{high} ({_what(field)})")
    return int(value)


def _what(field: Field) -> str:
    if field.type == ValueType.ENUM:
        labels = ", ".join(f"{name} ({i})" for i, name in enumerate(field.enum_names))
        return f"an enum of {labels}"
    if field.type == ValueType.BOOL:
        return "a bool (true or false)"
    if field.type == ValueType.BITFIELD:
        return f"a bitfield ({', '.join(field.enum_names) or '8 bits'}; give the number)"
    unit = f" in {field.unit}" if field.unit and field.editor_scale == 1.0 else ""
    return f"a number ({field.type_text}){unit}"


def outside_editor_limits(field: Field, value: Value) -> str | None:
    """Why a value is outside VESC Tool's editor limits (which the firmware does not enforce), or None."""
    if field.type not in (ValueType.DOUBLE, ValueType.INT) or isinstance(value, (bool, str)):
        return None
    low, high = field.minimum, field.maximum
    if low is not None and value < low or high is not None and value > high:
        return f"{field.name} = {value:g} is outside VESC Tool's editor range {low:g}..{high:g}"
    return None


# --- showing values --------------------------------------------------------------------------------


def number_text(field: Field, value: float) -> str:
    """The shortest decimal that encodes to the same bytes as `value`."""
    if not math.isfinite(value):
        return str(value)
    target = encode_field(field, value)
    for digits in range(1, 18):
        text = _plain(f"{value:.{digits}g}")
        try:
            if encode_field(field, float(text)) == target:
                return text
        except ConfigError:
            continue  # rounded out of the wire range: take more digits
    return repr(value)


def _plain(text: str) -> str:
    """60 rather than 6e+01: positional notation where that is not longer than a few zeros."""
    if "e" not in text or not 1e-5 <= abs(float(text)) < 1e15:
        return text
    return format(Decimal(text), "f")


def value_text(field: Field, value: Value) -> str:
    """A value as shown: label and index for enums, number and unit, bits of a bitfield."""
    if field.type == ValueType.ENUM and isinstance(value, int):
        label = field.enum_names[value] if 0 <= value < len(field.enum_names) else "?"
        return f"{label} ({value})"
    if field.type == ValueType.BOOL:
        return "true" if value else "false"
    if field.type == ValueType.BITFIELD and isinstance(value, int):
        bits = [name for i, name in enumerate(field.enum_names) if value >> i & 1]
        return f"{value}" + (f" ({', '.join(bits)})" if bits else "")
    if field.type == ValueType.DOUBLE and isinstance(value, float):
        text = number_text(field, value)
        if field.editor_scale != 1.0 and field.unit:
            return f"{text} ({value * field.editor_scale:.6g} {field.unit})"
        return f"{text} {field.unit}".strip()
    if field.type == ValueType.STRING:
        return json.dumps(value)
    return f"{value} {field.unit}".strip()


def unit_text(field: Field) -> str:
    """The unit of the stored value: the suffix, unless VESC Tool shows it scaled (then the scale too)."""
    if not field.unit:
        return ""
    return field.unit if field.editor_scale == 1.0 else f"{field.unit} / {field.editor_scale:g}"


# --- TOML ------------------------------------------------------------------------------------------


def toml_value(field: Field, value: Value) -> str:
    """A value as TOML: enums by label (rig reads labels and indices), numbers exact, strings quoted."""
    if field.type == ValueType.ENUM and isinstance(value, int) and 0 <= value < len(field.enum_names):
        return json.dumps(field.enum_names[value])
    if field.type == ValueType.BOOL:
        return "true" if value else "false"
    if field.type == ValueType.DOUBLE and isinstance(value, float):
        text = number_text(field, value)
        return text if any(ch in text for ch in ".einf") else text + ".0"
    if field.type == ValueType.STRING:
        return json.dumps(value)
    return str(value)


def toml_table(name: str, values: ConfigValues, header: Mapping[str, object] | None = None) -> str:
    """One config as a TOML table: a key per field in wire order, its type and unit in a comment."""
    lines = [f"[{name}]"]
    for key, value in (header or {}).items():
        lines.append(f"{json.dumps(key)} = {json.dumps(value)}")
    for field in values.schema.fields:
        value = values[field.name]
        notes = [field.type_text]
        if field.unit:
            notes.append(unit_text(field))
        if field.type == ValueType.ENUM:
            notes.append(f"index {value}")
        lines.append(f"{json.dumps(field.name)} = {toml_value(field, value)}  # {', '.join(notes)}")
    return "\n".join(lines) + "\n"


def encoded_equal(field: Field, a: Value, b: Value, encoding: Encoding = Encoding.VESC_TOOL) -> bool:
    """Whether two values put the same bytes on the wire for this field."""
    return encode_field(field, a, encoding) == encode_field(field, b, encoding)
