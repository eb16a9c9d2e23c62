"""Config schemas, signatures and the codec by field (rig.config), on the project's own synthetic schemas.

The synthetic schemas (fixtures/schemas/res/config/6.90 and 6.91, written for these tests) stand in for
VESC Tool's, which the project cannot ship (GPL-3.0; docs/config-schemas.md). Their firmware-side
signatures below were decided once, by computing them, as a firmware build would put them in
confgenerator.h; the simulated firmware 6.90/6.91 must send exactly these. The real schemas are checked
against the real firmware's signatures by `make check-schemas VESC_TOOL_SRC=...`.
"""

from __future__ import annotations

import math
import struct
import subprocess
from pathlib import Path

import pytest
from crccheck.crc import Crc32c
from hypothesis import given, settings
from hypothesis import strategies as st

from rig.config.codec import (
    ConfigValues,
    Encoding,
    decode,
    decode_float32_auto,
    encode,
    encode_field,
    encode_float32_auto,
    split_fields,
)
from rig.config.firmware_check import field_problems, firmware_layout
from rig.config.schema import Field, Schema, SchemaError, ValueType, WireType, crc32c, parse_schema, signature_text
from rig.config.source import SchemaSource
from rig.config.text import coerce, parse_value, toml_value, value_text
from rig.errors import ConfigError
from rig.protocol.codecs import ConfigBlob, ConfigKind
from rig.protocol.commands import fw

SCHEMAS = Path(__file__).resolve().parents[2] / "fixtures" / "schemas"
# The "firmware" signature and field bytes of each synthetic layout (what confgenerator.h would hold).
SYNTHETIC = {
    ("6.90", ConfigKind.MCCONF): (2583585907, 63),
    ("6.90", ConfigKind.APPCONF): (3336673524, 18),
    ("6.91", ConfigKind.MCCONF): (3785288155, 64),
    ("6.91", ConfigKind.APPCONF): (163331833, 22),
}


def schema(version: str, kind: ConfigKind) -> Schema:
    return SchemaSource.resolve([SCHEMAS]).for_version(kind, fw(version))


# --- signature -----------------------------------------------------------------------------------------


def test_crc32c_is_castagnoli() -> None:
    assert crc32c(b"123456789") == 0xE3069283  # the check value of CRC-32C
    text = signature_text(schema("6.90", ConfigKind.MCCONF).fields).encode()
    assert crc32c(text) == Crc32c.calc(text)  # an independent implementation


@pytest.mark.parametrize(("version", "kind"), list(SYNTHETIC))
def test_every_shipped_schema_has_its_firmware_signature_and_size(version: str, kind: ConfigKind) -> None:
    found = schema(version, kind)
    assert (found.signature, found.size) == SYNTHETIC[version, kind]


def test_signature_text_is_names_types_wire_types_and_labels() -> None:
    text = signature_text(schema("6.90", ConfigKind.MCCONF).fields)
    assert text.startswith("motor_type40TrapezoidalDCOld driveField orientedl_current_max19l_current_min19")
    assert "foc_sample_v0_v750m_hall_extra_samples22" in text  # bool 5 / no wire type; int 2 / int8 2
    assert text.endswith("sensor_flags60HallEncoderResolverbrake_enabled50")
    assert "help_limits" not in text and "motor_label" not in text  # UI-only and unserialized params


def test_scales_are_not_in_the_signature() -> None:
    """Why sizes (and, against firmware sources, scales) are checked too: a wrong scale keeps the signature."""
    base = schema("6.90", ConfigKind.MCCONF)
    fields = tuple(Field(**{**vars(f), "scale": 7.0}) if f.name == "l_erpm_start" else f for f in base.fields)
    assert Schema(base.kind, fields).signature == base.signature


# --- float32_auto and the two encoders -----------------------------------------------------------------


SENT_FLOATS = st.floats(width=32, allow_nan=False, allow_infinity=False, allow_subnormal=False).filter(
    lambda x: x == 0 or abs(x) >= 1.5e-38  # below that float32_auto sends 0
)


@given(SENT_FLOATS)
def test_float32_auto_is_ieee_binary32_for_normal_floats(x: float) -> None:
    expected = struct.pack(">f", 0.0 if x == 0 else x)
    assert encode_float32_auto(x) == expected
    assert decode_float32_auto(expected) == (0.0 if x == 0 else x)


def test_float32_auto_flushes_tiny_values_and_negative_zero() -> None:
    assert encode_float32_auto(1e-38) == b"\0\0\0\0"
    assert encode_float32_auto(-0.0) == b"\0\0\0\0"
    assert encode_float32_auto(-2.5) == struct.pack(">f", -2.5)


def test_firmware_truncates_where_vesc_tool_rounds() -> None:
    """Research notes 2.2: the firmware keeps code / scale as a float32 and sends (int16)(value x scale)."""
    ratio = Field("ratio", ValueType.DOUBLE, WireType.F16_SCALED, 10000.0)
    assert encode_field(ratio, 0.0007) == struct.pack(">h", 7)  # VESC Tool: round(7.000000000000001)
    sent = ConfigBlob(ConfigKind.MCCONF, None, struct.pack(">h", 7))
    stored = decode(Schema(ConfigKind.MCCONF, (ratio,)), sent, Encoding.FIRMWARE)["ratio"]
    assert stored == struct.unpack(">f", struct.pack(">f", 7 / 10000))[0]  # the float32 the firmware keeps
    assert encode_field(ratio, stored, Encoding.FIRMWARE) == struct.pack(">h", 6)  # and sends back one lower
    assert encode_field(ratio, 0.00005) == struct.pack(">h", 1)  # half away from zero
    assert encode_field(ratio, -0.00005) == struct.pack(">h", -1)


def test_out_of_range_values_are_refused_not_wrapped() -> None:
    count = Field("count", ValueType.INT, WireType.U8)
    with pytest.raises(ConfigError, match="count: 256 is out of range 0..255"):
        encode_field(count, 256)
    ratio = Field("ratio", ValueType.DOUBLE, WireType.F16_SCALED, 10000.0)
    with pytest.raises(ConfigError, match="does not fit int16"):
        encode_field(ratio, 4.0)
    with pytest.raises(ConfigError, match="not a finite float32"):
        encode_field(Field("x", ValueType.DOUBLE, WireType.F32_AUTO), 1e39)


# --- byte-exact decode and encode ------------------------------------------------------------------------


def _canonical_blob(data: st.DataObject, found: Schema) -> bytes:
    """Field bytes an encoder can write: any int, any byte, float32_auto words of normal floats (or 0)."""
    out = b""
    for field in found.fields:
        if field.wire == WireType.F32_AUTO:
            out += encode_float32_auto(data.draw(SENT_FLOATS))
        elif field.type == ValueType.BOOL:
            out += bytes((data.draw(st.integers(0, 1)),))
        else:
            assert field.size is not None
            out += data.draw(st.binary(min_size=field.size, max_size=field.size))
    return out


@pytest.mark.parametrize(("version", "kind"), list(SYNTHETIC))
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_decode_then_encode_gives_the_same_bytes(version: str, kind: ConfigKind, data: st.DataObject) -> None:
    found = schema(version, kind)
    blob = ConfigBlob(kind, found.signature, _canonical_blob(data, found))
    assert encode(decode(found, blob)) == blob  # (Encoding.FIRMWARE is not byte-exact: the firmware is not)


def test_defaults_encode_field_by_field() -> None:
    found = schema("6.90", ConfigKind.MCCONF)
    blob = encode(ConfigValues(found, found.defaults()))
    chunks = split_fields(found, blob.data)
    assert blob.signature == 2583585907 and len(blob.data) == 63
    assert chunks["motor_type"] == b"\x03"
    assert chunks["l_current_max"] == struct.pack(">f", 60.0)  # float32_auto
    assert chunks["l_current_max_scale"] == struct.pack(">h", 10000)  # 1.0 x 10000
    assert chunks["foc_gain"] == struct.pack(">i", -125000)  # -1.25 x 100000
    assert chunks["count_u16"] == struct.pack(">H", 50000)
    assert chunks["count_i32"] == struct.pack(">i", -70000)
    assert chunks["hall_table__0"] == b"\xff"  # the file says -1 for a uint8: sent as 255
    assert chunks["sensor_flags"] == b"\x05" and chunks["brake_enabled"] == b"\x01"


def test_a_blob_of_another_layout_is_refused() -> None:
    found = schema("6.90", ConfigKind.MCCONF)
    good = encode(ConfigValues(found, found.defaults()))
    with pytest.raises(ConfigError, match="signature 1"):
        decode(found, ConfigBlob(found.kind, 1, good.data))
    with pytest.raises(ConfigError, match="ends at byte 62 inside field brake_enabled"):
        decode(found, ConfigBlob(found.kind, None, good.data[:-1]))  # unsigned (before 3.50): the length
    with pytest.raises(ConfigError, match="64 field bytes, mcconf schema 2583585907 .* describes 63"):
        decode(found, ConfigBlob(found.kind, None, good.data + b"\0"))
    with pytest.raises(ConfigError, match="appconf blob cannot be read with an mcconf schema"):
        decode(found, ConfigBlob(ConfigKind.APPCONF, found.signature, good.data))


# --- values as text ----------------------------------------------------------------------------------------


def test_settings_are_parsed_by_field_type() -> None:
    found = schema("6.91", ConfigKind.MCCONF)
    assert parse_value(found["motor_type"], "field ORIENTED") == 2
    assert parse_value(found["motor_type"], "1") == 1
    assert parse_value(found["brake_enabled"], "off") is False
    assert parse_value(found["l_current_max"], "55.5") == 55.5
    assert coerce(found["count_u32"], 1000) == 1000
    assert coerce(found["l_current_max"], 60) == 60.0
    with pytest.raises(
        ConfigError, match=r"motor_type is an enum of Trapezoidal \(0\), DC \(1\), Field oriented \(2\)"
    ):
        parse_value(found["motor_type"], "GPD")
    with pytest.raises(ConfigError, match="count_u16: 300 is out of range 0..255"):
        parse_value(found["count_u16"], "300")
    with pytest.raises(ConfigError, match="brake_enabled is a bool"):
        coerce(found["brake_enabled"], 3)


def test_values_are_shown_with_units_and_labels() -> None:
    found = schema("6.90", ConfigKind.MCCONF)
    assert value_text(found["l_current_max"], 60.0) == "60 A"
    assert value_text(found["foc_f_zv"], 25000.0) == "25000 (25 kHz)"
    assert value_text(found["motor_type"], 3) == "Field oriented (3)"
    assert value_text(found["sensor_flags"], 5) == "5 (Hall, Resolver)"
    assert toml_value(found["motor_type"], 3) == '"Field oriented"'
    assert toml_value(found["l_current_max"], 60.0) == "60.0"
    x = struct.unpack(">f", struct.pack(">f", 0.1))[0]  # what float32_auto gives back for 0.1
    assert toml_value(found["foc_current_filter_const"], x) == "0.1"  # the shortest text with the same bytes


# --- reading the XML format ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("xml", "problem"),
    [
        (b"<nope/>", "root element is <nope>"),
        (b"<ConfigParams><Params/><SerOrder/></ConfigParams>", "no <SerOrder> names"),
        (b"<ConfigParams><Params/><SerOrder><ser>x</ser></SerOrder></ConfigParams>", "without a <Params> entry: x"),
        (b"<ConfigParams><Params><x><type>1</type></x></Params><SerOrder><ser>x</ser></SerOrder></ConfigParams>",
         "x: a double needs a wire type 7, 8 or 9"),
        (b"<ConfigParams><Params><x><type>9</type></x></Params><SerOrder><ser>x</ser></SerOrder></ConfigParams>",
         "9 is not a valid ValueType"),
        (b"<ConfigParams", "not XML"),
    ],
)  # fmt: skip
def test_schema_mistakes_name_the_file(xml: bytes, problem: str) -> None:
    with pytest.raises(SchemaError, match="broken.xml") as caught:
        parse_schema(xml, ConfigKind.MCCONF, "broken.xml")
    assert problem in str(caught.value)


def test_unreadable_numbers_read_as_zero_as_vesc_tool_does() -> None:
    xml = (
        b"<ConfigParams><Params><x><type>2</type><vTx>3</vTx><valInt>1,000</valInt></x></Params>"
        b"<SerOrder><ser>x</ser></SerOrder></ConfigParams>"
    )
    assert parse_schema(xml, ConfigKind.APPCONF)["x"].default == 0  # VESC Tool 5.00 ships such a value


def test_float_bits_survive_the_text_form() -> None:
    found = schema("6.90", ConfigKind.MCCONF)
    field = found["l_current_max"]
    for x in (1 / 3, 123.456, -7.25e-7, 3.0e38):
        value = struct.unpack(">f", struct.pack(">f", x))[0]
        text = toml_value(field, value)
        assert encode_field(field, float(text)) == encode_field(field, value), text
        assert math.isfinite(float(text))


# --- against the firmware's serializer (rig config schemas check --bldc) ---------------------------------


def _serializer(found: Schema, scale_of: dict[str, float] | None = None) -> str:
    """A confgenerator.c serializer for a schema, as VESC Tool generates one (our own text, for the test)."""
    calls = {WireType.F16_SCALED: "float16", WireType.F32_SCALED: "float32", WireType.F32_AUTO: "float32_auto"}
    calls |= {WireType.U16: "uint16", WireType.I16: "int16", WireType.U32: "uint32", WireType.I32: "int32"}
    lines = [f"int32_t confgenerator_serialize_{found.kind.value}(uint8_t *buffer, const void *conf) {{"]
    for field in found.fields:
        member = field.name.replace("__0", "[0]").replace("__1", "[1]")
        if field.size == 1:
            lines.append(f"\tbuffer[ind++] = conf->{member};")
        elif field.wire in (WireType.F16_SCALED, WireType.F32_SCALED):
            scale = (scale_of or {}).get(field.name, field.scale)
            lines.append(f"\tbuffer_append_{calls[field.wire]}(buffer, conf->{member}, {scale:g}, &ind);")
        else:
            lines.append(f"\tbuffer_append_{calls[field.wire]}(buffer, conf->{member}, &ind);")
    return "\n".join([*lines, "\treturn ind;", "}"]) + "\n"


def test_schemas_are_checked_field_by_field_against_the_firmwares_serializer(tmp_path: Path) -> None:
    found = schema("6.90", ConfigKind.MCCONF)
    repo = tmp_path / "bldc"

    def commit(scale_of: dict[str, float] | None, tag: str) -> None:
        (repo / "confgenerator.h").write_text(f"#define MCCONF_SIGNATURE\t\t{found.signature}\n")
        (repo / "confgenerator.c").write_text(_serializer(found, scale_of))
        for argv in (["add", "."], ["commit", "-qm", tag], ["tag", tag]):
            subprocess.run(["git", "-C", str(repo), *argv], check=True, capture_output=True)

    repo.mkdir()
    subprocess.run(["git", "-C", str(repo), "init", "-q"], check=True)
    subprocess.run(["git", "-C", str(repo), "config", "user.email", "t@example.com"], check=True)
    subprocess.run(["git", "-C", str(repo), "config", "user.name", "t"], check=True)
    commit(None, "good")
    commit({"l_erpm_start": 1000.0}, "scaled")  # what the signature cannot see
    git_dir = repo / ".git"
    good = firmware_layout(git_dir, "good", ConfigKind.MCCONF)
    assert (good.signature, good.size, len(good.fields)) == (found.signature, 63, 25)
    assert field_problems(found, good) == []
    wrong = firmware_layout(git_dir, "scaled", ConfigKind.MCCONF)
    assert field_problems(found, wrong) == [
        "l_erpm_start: double/F16_SCALED x10000, bldc scaled writes buffer_append_float16 x1000"
    ]
    with pytest.raises(ConfigError, match="no confgenerator.h at nope"):
        firmware_layout(git_dir, "nope", ConfigKind.MCCONF)
