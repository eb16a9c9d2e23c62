"""The GET_VALUES telemetry layout: fields, scales, SELECTIVE mask bits, and which versions send what.

Facts sheet section 4 (firmware commands.c per tag): f16 x k = int16(v * k), f32 x k = int32(v * k).
How the firmware computes that (util/buffer.c, the same in 3.00 .. master; research fw-protocol.md
section 5): value and scale are C floats and the build uses single-precision constants, so the product
is ONE float32 multiply (round to nearest) and ``vcvt.s32.f32`` then truncates toward zero, saturating
to the int32 range (NaN gives 0). float16 keeps the low 16 bits of that int32 (``sxth``), so values
beyond the int16 range wrap instead of saturating. A double-precision model differs: 0.53 A x 100 is
52 on the firmware (0.53f * 100f = 52.999996), not 53.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

from rig.errors import PayloadError
from rig.protocol.commands import FirmwareVersion, fw


@dataclass(frozen=True)
class ValueField:
    """One GET_VALUES field: struct format, scale (None for integers) and its SELECTIVE mask bit."""

    name: str
    fmt: str
    scale: float | None
    bit: int


VALUE_FIELDS: tuple[ValueField, ...] = (
    ValueField("temp_fet", "h", 10, 0),
    ValueField("temp_motor", "h", 10, 1),
    ValueField("current_motor", "i", 100, 2),
    ValueField("current_in", "i", 100, 3),
    ValueField("id", "i", 100, 4),
    ValueField("iq", "i", 100, 5),
    ValueField("duty", "h", 1000, 6),
    ValueField("erpm", "i", 1, 7),
    ValueField("v_in", "h", 10, 8),
    ValueField("amp_hours", "i", 1e4, 9),
    ValueField("amp_hours_charged", "i", 1e4, 10),
    ValueField("watt_hours", "i", 1e4, 11),
    ValueField("watt_hours_charged", "i", 1e4, 12),
    ValueField("tachometer", "i", None, 13),
    ValueField("tachometer_abs", "i", None, 14),
    ValueField("fault", "B", None, 15),
    ValueField("pid_pos", "i", 1e6, 16),  # 3.34
    ValueField("controller_id", "B", None, 17),  # 3.40
    ValueField("temp_mos1", "h", 10, 18),  # 3.48: the three MOS temperatures share bit 18
    ValueField("temp_mos2", "h", 10, 18),
    ValueField("temp_mos3", "h", 10, 18),
    ValueField("vd", "i", 1000, 19),  # 3.60
    ValueField("vq", "i", 1000, 20),
    ValueField("status", "B", None, 21),  # 5.03
)
_FIELD_INDEX = {f.name: i for i, f in enumerate(VALUE_FIELDS)}

# How many leading VALUE_FIELDS a GET_VALUES reply carries, from each version on (facts sheet 4).
_VALUES_COUNT_SINCE: tuple[tuple[FirmwareVersion, int], ...] = (
    (fw("5.03"), 24),
    (fw("3.60"), 23),
    (fw("3.48"), 21),
    (fw("3.40"), 18),
    (fw("3.34"), 17),
    (fw("0.00"), 16),
)


def value_fields_for(version: FirmwareVersion) -> tuple[ValueField, ...]:
    """The GET_VALUES fields a firmware version sends (3.07 layout onward)."""
    count = next(n for since, n in _VALUES_COUNT_SINCE if version >= since)
    return VALUE_FIELDS[:count]


_F32 = struct.Struct("<f")
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def float32(value: float) -> float:
    """`value` rounded to the nearest IEEE single (what a C float holds)."""
    try:
        return float(_F32.unpack(_F32.pack(value))[0])
    except OverflowError:  # beyond the float32 range: the conversion gives infinity
        return math.copysign(math.inf, value)


def scaled_int32(value: float, scale: float) -> int:
    """The firmware's ``(int32_t)(value * scale)``: a float32 multiply, truncated toward zero, saturated.

    The product of two float32 values is exact in a double (24 + 24 bits < 53), so rounding it once to
    float32 gives exactly the single-precision multiply.
    """
    product = float32(float32(value) * float32(scale))
    if math.isnan(product):
        return 0
    if math.isinf(product):
        return INT32_MAX if product > 0 else INT32_MIN
    return max(INT32_MIN, min(INT32_MAX, math.trunc(product)))


def wrap_int16(raw: int) -> int:
    """The low 16 bits of an int32, as a signed int16 (``sxth``: no saturation)."""
    return (raw + 0x8000) % 0x1_0000 - 0x8000


def encode_field(f: ValueField, value: float | None) -> bytes:
    """One field as the firmware encodes it (float32 multiply, truncation, float16 wrap)."""
    if value is None:
        raise PayloadError(f"GET_VALUES field {f.name} is to be sent but has no value")
    if f.scale is None:
        raw = int(value)
    else:
        raw = scaled_int32(value, f.scale)
        if f.fmt == "h":
            raw = wrap_int16(raw)
    try:
        return struct.pack(">" + f.fmt, raw)
    except struct.error as exc:
        raise PayloadError(f"GET_VALUES field {f.name}={value} does not fit {f.fmt}: {exc}") from None


def decode_fields(body: bytes, chosen: tuple[ValueField, ...], at: int) -> dict[str, float]:
    out: dict[str, float] = {}
    for f in chosen:
        size = struct.calcsize(f.fmt)
        if len(body) - at < size:
            raise PayloadError(f"GET_VALUES truncated inside field {f.name} (offset {at}, {len(body)} bytes)")
        (raw,) = struct.unpack_from(">" + f.fmt, body, at)
        out[f.name] = raw if f.scale is None else raw / f.scale
        at += size
    if at != len(body):
        raise PayloadError(f"GET_VALUES has {len(body) - at} bytes after the last field")
    return out


@dataclass(frozen=True)
class Values:
    """Telemetry of GET_VALUES; a field is None where the reply does not carry it."""

    temp_fet: float | None = None
    temp_motor: float | None = None
    current_motor: float | None = None
    current_in: float | None = None
    id: float | None = None
    iq: float | None = None
    duty: float | None = None
    erpm: float | None = None
    v_in: float | None = None
    amp_hours: float | None = None
    amp_hours_charged: float | None = None
    watt_hours: float | None = None
    watt_hours_charged: float | None = None
    tachometer: int | None = None
    tachometer_abs: int | None = None
    fault: int | None = None
    pid_pos: float | None = None
    controller_id: int | None = None
    temp_mos1: float | None = None
    temp_mos2: float | None = None
    temp_mos3: float | None = None
    vd: float | None = None
    vq: float | None = None
    status: int | None = None

    def present(self) -> tuple[ValueField, ...]:
        """The fields this instance carries, in wire order."""
        return tuple(f for f in VALUE_FIELDS if getattr(self, f.name) is not None)


def leading_fields(size: int) -> tuple[ValueField, ...]:
    """The leading run of fields that a plain GET_VALUES reply of `size` body bytes covers."""
    chosen: list[ValueField] = []
    total = 0
    for f in VALUE_FIELDS:
        if total >= size:
            break
        chosen.append(f)
        total += struct.calcsize(f.fmt)
    return tuple(chosen)


def selective_fields(mask: int, available: tuple[ValueField, ...] = VALUE_FIELDS) -> tuple[ValueField, ...]:
    """The fields a SELECTIVE reply carries for a mask (field present iff its bit is set)."""
    return tuple(f for f in available if mask >> f.bit & 1)
