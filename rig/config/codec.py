"""Config blobs by field: decode a blob into named values, encode named values into a blob, byte-exact.

Two encoders, because VESC Tool and the firmware quantize scaled doubles differently (research notes
config-schemas.md section 2.2):

- ``Encoding.VESC_TOOL`` (what the rig sends, as VESC Tool does): value x scale in double precision,
  rounded half away from zero; a double read back is code / scale in double precision.
- ``Encoding.FIRMWARE`` (what a board sends back, and what rig.sim stores): the value is a float32,
  value x scale is computed in float32 and truncated toward zero. A code written by VESC Tool can come
  back one lower (0.0007 at scale 10000 reads back as 0.0006).

``float32_auto`` is the same in both: sign, 8-bit exponent and 23-bit mantissa from ``frexp``, which is
the IEEE-754 binary32 pattern for every normal float; values below 1.5e-38 (and -0.0) are sent as 0.
Decoding then encoding with the same encoder gives back the bytes the firmware or VESC Tool wrote
(a float32_auto pattern no encoder writes, a subnormal or an exponent of 255, is not kept: the firmware
would not keep it either).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum

from rig.config.schema import INT_BYTES, Field, Schema, Value, ValueType, WireType
from rig.errors import ConfigError, Diagnosis
from rig.protocol.codecs import ConfigBlob

FLOAT32_AUTO_ZERO_BELOW = 1.5e-38
_INT_FORMAT = {WireType.U8: ">B", WireType.I8: ">b", WireType.U16: ">H", WireType.I16: ">h"}
_INT_FORMAT |= {WireType.U32: ">I", WireType.I32: ">i"}


class Encoding(StrEnum):
    VESC_TOOL = "vesc-tool"
    FIRMWARE = "firmware"


def to_float32(x: float) -> float:
    """x rounded to the nearest float32 (beyond the float32 range: an infinity, as C converts it)."""
    try:
        return float(struct.unpack(">f", struct.pack(">f", x))[0])
    except OverflowError:
        return math.copysign(math.inf, x)


def encode_float32_auto(x: float) -> bytes:
    """VESC's float32_auto of a finite x (taken as a float32 first)."""
    x = to_float32(x)
    if abs(x) < FLOAT32_AUTO_ZERO_BELOW:
        x = 0.0
    mantissa, exponent = math.frexp(x)
    word = 0
    if abs(mantissa) >= 0.5:
        word = ((exponent + 126) & 0xFF) << 23 | int((abs(mantissa) - 0.5) * 2.0 * 8388608.0) & 0x7FFFFF
    if mantissa < 0:
        word |= 0x80000000
    return struct.pack(">I", word)


def decode_float32_auto(data: bytes) -> float:
    (word,) = struct.unpack(">I", data)
    exponent, mantissa = (word >> 23) & 0xFF, word & 0x7FFFFF
    if exponent == 0 and mantissa == 0:
        value = 0.0
    elif exponent == 0xFF:
        value = math.inf if mantissa == 0 else math.nan
    else:
        value = math.ldexp(mantissa / 16777216.0 + 0.5, exponent - 126)
    return -value if word & 0x80000000 else value


def _round_half_away(x: float) -> int:
    return int(math.floor(x + 0.5)) if x >= 0 else int(math.ceil(x - 0.5))


def _wrap(value: int, bits: int) -> int:
    """The low `bits` of a two's-complement integer, as a signed number."""
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >= 1 << (bits - 1) else value


def _firmware_code(value: float, scale: float, bits: int) -> int:
    """(intN_t)(value * scale) in float32 on a Cortex-M4: truncated, saturated to int32, then cut to N bits."""
    product = to_float32(to_float32(value) * to_float32(scale))
    if math.isnan(product):
        return 0
    code = max(-(2**31), min(2**31 - 1, int(product) if math.isfinite(product) else int(math.copysign(2**31, product))))
    return _wrap(code, bits)


def scaled_code(field: Field, value: float, encoding: Encoding) -> int:
    """The integer a scaled double is sent as; ConfigError when it does not fit (VESC Tool would wrap it)."""
    bits = 16 if field.wire == WireType.F16_SCALED else 32
    if encoding == Encoding.FIRMWARE:
        return _firmware_code(value, field.scale, bits)
    code = _round_half_away(value * field.scale)
    low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    if not low <= code <= high:
        raise ConfigError(
            f"{field.name}: {value:g} x {field.scale:g} = {code} does not fit int{bits} "
            f"({low / field.scale:g}..{high / field.scale:g})"
        )
    return code


def int_range(wire: WireType) -> tuple[int, int]:
    bits = INT_BYTES[wire] * 8
    signed = wire in (WireType.I8, WireType.I16, WireType.I32)
    return (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)


def encode_field(field: Field, value: Value, encoding: Encoding = Encoding.VESC_TOOL) -> bytes:
    """One field's bytes; ConfigError when the value does not fit its wire type."""
    if field.type == ValueType.DOUBLE:
        number = float(value)
        if not math.isfinite(number) or math.isinf(to_float32(number)):
            raise ConfigError(f"{field.name}: {number} is not a finite float32, it cannot be sent")
        if field.wire == WireType.F32_AUTO:
            return encode_float32_auto(number)
        code = scaled_code(field, number, encoding)
        return struct.pack(">h" if field.wire == WireType.F16_SCALED else ">i", code)
    if field.type == ValueType.INT:
        number = int(value)
        low, high = int_range(field.wire)
        if not low <= number <= high:
            raise ConfigError(f"{field.name}: {number} is out of range {low}..{high} ({field.wire.name})")
        return struct.pack(_INT_FORMAT[field.wire], number)
    if field.type == ValueType.BOOL:
        return b"\x01" if value else b"\x00"
    if field.type in (ValueType.ENUM, ValueType.BITFIELD):
        number = int(value)
        if not -128 <= number <= 255:
            raise ConfigError(f"{field.name}: {number} does not fit the one byte an {field.type.name.lower()} has")
        return bytes((number & 0xFF,))
    if field.type == ValueType.STRING:
        return str(value).encode("utf-8") + b"\x00"
    return b""


def decode_field(field: Field, chunk: bytes, encoding: Encoding = Encoding.VESC_TOOL) -> Value:
    """One field's value from its bytes (a string's bytes without the NUL)."""
    if field.type == ValueType.DOUBLE:
        if field.wire == WireType.F32_AUTO:
            return decode_float32_auto(chunk)
        code = struct.unpack(">h" if field.wire == WireType.F16_SCALED else ">i", chunk)[0]
        if encoding == Encoding.FIRMWARE:
            return to_float32(code / to_float32(field.scale))
        return code / field.scale
    if field.type == ValueType.INT:
        return int(struct.unpack(_INT_FORMAT[field.wire], chunk)[0])
    if field.type == ValueType.BOOL:
        return chunk[0] != 0
    if field.type == ValueType.ENUM:
        return struct.unpack(">b", chunk)[0]  # VESC Tool reads enums as signed bytes
    if field.type == ValueType.BITFIELD:
        return chunk[0]
    if field.type == ValueType.STRING:
        return chunk.decode("utf-8", "replace")
    return 0


@dataclass(frozen=True)
class ConfigValues(Mapping[str, Value]):
    """Every wire field of one config by name, with the schema that gives them meaning."""

    schema: Schema
    data: Mapping[str, Value]

    def __post_init__(self) -> None:
        missing = [name for name in self.schema.names if name not in self.data]
        extra = [name for name in self.data if name not in self.schema]
        if missing or extra:
            raise ConfigError(
                f"values do not match {self.schema.describe()}: "
                + "; ".join(p for p in (_list("missing", missing), _list("unknown", extra)) if p)
            )

    def __getitem__(self, name: str) -> Value:
        return self.data[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.schema.names)

    def __len__(self) -> int:
        return len(self.schema.fields)

    def with_values(self, changes: Mapping[str, Value]) -> ConfigValues:
        """These values with some replaced (names must be fields of the schema)."""
        for name in changes:
            self.schema[name]  # noqa: B018 - raises ConfigError naming an unknown field
        return ConfigValues(self.schema, {**self.data, **changes})


def _list(what: str, names: list[str]) -> str:
    if not names:
        return ""
    more = f" and {len(names) - 5} more" if len(names) > 5 else ""
    return f"{what} {', '.join(names[:5])}{more}"


def split_fields(schema: Schema, data: bytes) -> dict[str, bytes]:
    """The field bytes of a blob by name (after the signature); ConfigError if the length does not fit."""
    out: dict[str, bytes] = {}
    at = 0
    for field in schema.fields:
        size = field.size
        if size is None:
            end = data.find(b"\x00", at)
            if end < 0:
                raise ConfigError(f"{field.name}: string without its NUL at byte {at} ({schema.describe()})")
            out[field.name], at = data[at:end], end + 1
            continue
        if at + size > len(data):
            raise ConfigError(
                f"the {schema.kind.value} blob ends at byte {len(data)} inside field {field.name}: "
                f"{schema.describe()} needs {schema.size} bytes",
                diagnosis=Diagnosis.CONFIG_SIGNATURE_MISMATCH,
            )
        out[field.name], at = data[at : at + size], at + size
    if at != len(data):
        raise ConfigError(
            f"the {schema.kind.value} blob has {len(data)} field bytes, {schema.describe()} describes {at}: "
            "not this schema's layout",
            diagnosis=Diagnosis.CONFIG_SIGNATURE_MISMATCH,
        )
    return out


def check_fits(schema: Schema, blob: ConfigBlob) -> None:
    """ConfigError unless the blob is this schema's kind and signature (when it carries one)."""
    if blob.kind != schema.kind:
        raise ConfigError(f"a {blob.kind.value} blob cannot be read with an {schema.kind.value} schema")
    if blob.signature is not None and blob.signature != schema.signature:
        raise ConfigError(
            f"the {blob.kind.value} blob has signature {blob.signature}, {schema.describe()} has {schema.signature}"
        )


def decode(schema: Schema, blob: ConfigBlob, encoding: Encoding = Encoding.VESC_TOOL) -> ConfigValues:
    """The blob's values by name (signature and length checked against the schema)."""
    check_fits(schema, blob)
    chunks = split_fields(schema, blob.data)
    return ConfigValues(schema, {f.name: decode_field(f, chunks[f.name], encoding) for f in schema.fields})


def encode(values: ConfigValues, encoding: Encoding = Encoding.VESC_TOOL, *, signed: bool = True) -> ConfigBlob:
    """The blob of these values, with the schema's signature (`signed` False: firmware before 3.50)."""
    schema = values.schema
    data = b"".join(encode_field(f, values[f.name], encoding) for f in schema.fields)
    return ConfigBlob(schema.kind, schema.signature if signed else None, data)
