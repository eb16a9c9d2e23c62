"""A config schema: the fields of an mcconf or appconf in wire order, read from VESC Tool's XML format.

The format (``<ConfigParams>``) is what VESC Tool keeps per firmware version in
``res/config/<version>/parameters_{mcconf,appconf}.xml`` and writes from *Developer -> Parameter Editor
-> Save XML*: ``<Params>`` holds one element per parameter (its tag is the name; children ``type``,
``vTx``, ``vTxDoubleScale``, ``valDouble``/``valInt``/``valString``, ``enumNames``, ``suffix``,
``editorScale``, limits, help texts), ``<SerOrder>`` the names that go on the wire, in order. Only the
wire fields are kept here; UI-only parameters and help texts are dropped.

The signature (:func:`signature_text`, as VESC Tool computes it): for every wire name, the name, the
value type number, the wire type number and the enum labels, concatenated, then CRC-32C of the UTF-8
text. Scales, limits and defaults are not in it, so a schema with a wrong scale still matches: the size
is checked against the firmware too (rig.device.config_layouts), scales can only be checked against
the firmware's sources (``rig config schemas check --bldc``).

The schema files are not part of this project (VESC Tool is GPL-3.0); docs/config-schemas.md says where
they come from.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from functools import cached_property

from rig.errors import ConfigError, Diagnosis
from rig.protocol.codecs import ConfigKind

log = logging.getLogger(__name__)

Value = float | int | bool | str


class SchemaError(ConfigError):
    """A schema file that cannot be read or does not describe a config the rig can encode."""

    diagnosis = Diagnosis.CONFIG_SCHEMA_MISSING


class ValueType(IntEnum):
    """What a parameter holds (VESC Tool's ``type`` element)."""

    UNDEFINED = 0  # help texts and labels: nothing on the wire
    DOUBLE = 1
    INT = 2
    STRING = 3
    ENUM = 4
    BOOL = 5
    BITFIELD = 6


class WireType(IntEnum):
    """How a number goes on the wire (VESC Tool's ``vTx`` element; 0 for enum, bool and bitfield)."""

    NONE = 0
    U8 = 1
    I8 = 2
    U16 = 3
    I16 = 4
    U32 = 5
    I32 = 6
    F16_SCALED = 7  # int16 of value x scale
    F32_SCALED = 8  # int32 of value x scale
    F32_AUTO = 9  # "float32_auto": sign, exponent, mantissa from frexp (IEEE-754 for normal floats)


INT_BYTES = {WireType.U8: 1, WireType.I8: 1, WireType.U16: 2, WireType.I16: 2, WireType.U32: 4, WireType.I32: 4}
DOUBLE_BYTES = {WireType.F16_SCALED: 2, WireType.F32_SCALED: 4, WireType.F32_AUTO: 4}
ONE_BYTE_TYPES = (ValueType.ENUM, ValueType.BOOL, ValueType.BITFIELD)


@dataclass(frozen=True)
class Field:
    """One wire field of a config."""

    name: str
    type: ValueType
    wire: WireType = WireType.NONE
    scale: float = 1.0  # for F16_SCALED / F32_SCALED
    default: Value = 0
    long_name: str = ""
    suffix: str = ""  # the unit VESC Tool shows, after editor_scale ("A", "kHz", "µH")
    editor_scale: float = 1.0  # shown value = stored value x editor_scale
    minimum: float | None = None  # VESC Tool's editor limits (the firmware does not enforce them)
    maximum: float | None = None
    enum_names: tuple[str, ...] = ()  # enum labels by index; bit labels (bit 0 first) for a bitfield
    max_len: int = 0  # strings

    @property
    def size(self) -> int | None:
        """Bytes on the wire; None for a string (NUL-terminated, variable)."""
        if self.type == ValueType.DOUBLE:
            return DOUBLE_BYTES[self.wire]
        if self.type == ValueType.INT:
            return INT_BYTES[self.wire]
        if self.type in ONE_BYTE_TYPES:
            return 1
        if self.type == ValueType.STRING:
            return None
        return 0

    @property
    def unit(self) -> str:
        return self.suffix.strip()

    @property
    def type_text(self) -> str:
        """The value type with its wire type ("double/F16_SCALED x100", "enum", "int/U8")."""
        if self.type == ValueType.DOUBLE:
            scaled = f" x{self.scale:g}" if self.wire in (WireType.F16_SCALED, WireType.F32_SCALED) else ""
            return f"double/{self.wire.name}{scaled}"
        if self.type == ValueType.INT:
            return f"int/{self.wire.name}"
        return self.type.name.lower()


@dataclass(frozen=True)
class Schema:
    """The wire fields of one config layout, in wire order."""

    kind: ConfigKind
    fields: tuple[Field, ...]
    source: str = ""  # where it was read from (for messages)
    _by_name: dict[str, Field] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {f.name: f for f in self.fields})

    @cached_property
    def signature(self) -> int:
        return crc32c(signature_text(self.fields).encode("utf-8"))

    @property
    def size(self) -> int | None:
        """Field bytes after the signature; None when a string is on the wire."""
        sizes = [f.size for f in self.fields]
        return None if None in sizes else sum(s for s in sizes if s is not None)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __getitem__(self, name: str) -> Field:
        try:
            return self._by_name[name]
        except KeyError:
            raise ConfigError(f"{self.kind.value} has no field {name!r} ({self.describe()})") from None

    def get(self, name: str) -> Field | None:
        return self._by_name.get(name)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    def defaults(self) -> dict[str, Value]:
        """The values the schema file carries (VESC Tool's last saved values, not any board's defaults)."""
        return {f.name: f.default for f in self.fields}

    def describe(self) -> str:
        return f"{self.kind.value} schema {self.signature} from {self.source or 'memory'}"


def signature_text(fields: tuple[Field, ...]) -> str:
    """The text VESC Tool hashes: per field its name, type number, wire type number and enum labels."""
    return "".join(f"{f.name}{int(f.type)}{int(f.wire)}{''.join(f.enum_names)}" for f in fields)


def _crc32c_table() -> tuple[int, ...]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return tuple(table)


_CRC32C = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli, reflected, init and final xor 0xFFFFFFFF); crc32c(b"123456789") = 0xE3069283."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC32C[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


# --- reading the XML -----------------------------------------------------------------------------------


def parse_schema(data: bytes, kind: ConfigKind, source: str = "<memory>") -> Schema:
    """The wire fields of a ``<ConfigParams>`` document; SchemaError names the file and the problem."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise SchemaError(f"{source}: not XML: {exc}") from exc
    if root.tag != "ConfigParams":
        raise SchemaError(f"{source}: root element is <{root.tag}>, a VESC Tool schema has <ConfigParams>")
    params = {el.tag: el for el in root.findall("Params/*")}
    order = [(el.text or "").strip() for el in root.findall("SerOrder/ser")]
    if not order:
        raise SchemaError(f"{source}: no <SerOrder> names: not a config schema")
    missing = [name for name in order if name not in params]
    if missing:
        raise SchemaError(f"{source}: <SerOrder> names without a <Params> entry: {', '.join(missing[:5])}")
    return Schema(kind, tuple(_field(params[name], source) for name in order), source)


def _as_sent(value: int, wire: WireType) -> int:
    """An int default as VESC Tool puts it on the wire (older files hold -1 for a uint8 hall table: 255)."""
    bits = INT_BYTES[wire] * 8
    value &= (1 << bits) - 1
    signed = wire in (WireType.I8, WireType.I16, WireType.I32)
    return value - (1 << bits) if signed and value >= 1 << (bits - 1) else value


def _field(el: ET.Element, source: str) -> Field:
    children: dict[str, str] = {}
    enum_names: list[str] = []
    for child in el:
        text = child.text or ""
        if child.tag == "enumNames":
            enum_names.append(text)
        else:
            children[child.tag] = text

    def number(tag: str, convert: Callable[[str], float], default: float | None, strict: bool = False) -> float | None:
        """A number child; text that is no number reads as 0, as VESC Tool's QString::toInt/toDouble do
        (a 5.00 file holds "1,000"), except where it decides the layout (`strict`)."""
        text = children.get(tag, "").strip()
        if not text:
            return default
        try:
            return convert(text)
        except ValueError:
            if strict:
                raise SchemaError(f"{source}: {el.tag}: <{tag}> {text!r} is not a number") from None
            log.debug("%s: %s: <%s> %r is not a number, read as 0 (as VESC Tool does)", source, el.tag, tag, text)
            return 0

    try:
        kind = ValueType(int(number("type", int, 0, strict=True) or 0))
        wire = WireType(int(number("vTx", int, 0, strict=True) or 0))
    except ValueError as exc:
        raise SchemaError(f"{source}: {el.tag}: {exc}") from None
    if kind == ValueType.DOUBLE and wire not in DOUBLE_BYTES:
        raise SchemaError(f"{source}: {el.tag}: a double needs a wire type 7, 8 or 9, not {int(wire)}")
    if kind == ValueType.INT and wire not in INT_BYTES:
        raise SchemaError(f"{source}: {el.tag}: an int needs a wire type 1-6, not {int(wire)}")
    is_double = kind == ValueType.DOUBLE
    low = number("minDouble" if is_double else "minInt", float, None)
    high = number("maxDouble" if is_double else "maxInt", float, None)
    default: Value
    if kind == ValueType.DOUBLE:
        default = float(number("valDouble", float, 0.0) or 0.0)
    elif kind == ValueType.STRING:
        default = children.get("valString", "")
    elif kind == ValueType.BOOL:
        default = bool(number("valInt", int, 0))
    else:
        default = int(number("valInt", int, 0) or 0)
        if kind == ValueType.INT:
            default = _as_sent(default, wire)
    return Field(
        name=el.tag,
        type=kind,
        wire=wire,
        scale=float(number("vTxDoubleScale", float, 1.0, strict=True) or 1.0),
        default=default,
        long_name=children.get("longName", ""),
        suffix=children.get("suffix", ""),
        editor_scale=float(number("editorScale", float, 1.0) or 1.0),
        minimum=low,
        maximum=high,
        enum_names=tuple(enum_names),
        max_len=int(number("maxLen", int, 0) or 0),
    )
