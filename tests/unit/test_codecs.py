"""rig.protocol.codecs: every codec round-trips in both directions; malformed payloads are typed errors."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rig.errors import PayloadError, RigError, UnsupportedCommand
from rig.protocol import codecs as c
from rig.protocol.commands import Cmd, command_table, fw
from rig.protocol.values import VALUE_FIELDS, Values, scaled_int32, selective_fields, value_fields_for

V300, V340, V348, V360, V503, V602 = (command_table(fw(v)) for v in ("3.00", "3.40", "3.48", "3.60", "5.03", "6.02"))
UID = bytes(range(0x30, 0x3C))


def request_roundtrip(message: c.Message, table=V602) -> bytes:
    payload = c.encode(message, table)
    assert c.decode_request(payload, table) == message
    return payload


def reply_roundtrip(message: c.Message, table=V602) -> bytes:
    payload = c.encode(message, table)
    assert c.decode_reply(payload, table) == message
    return payload


# --- FW_VERSION --------------------------------------------------------------------------------------

FW_FIELDS_IN_ORDER = (
    ("hw_name", "410"),  # 3.07
    ("uid", UID),  # 3.09
    ("pairing_done", 1),  # 3.48
    ("test_version", 0),  # 5.00
    ("hw_type", 0),  # 5.02
    ("custom_cfg_num", 2),  # 5.02
    ("has_phase_filters", 1),  # 5.03
    ("qml_hw", 0),  # 5.03
    ("qml_app", 1),  # 5.03
    ("nrf_flags", 3),  # 6.00
    ("fw_name", "release"),  # 6.00
    ("hw_conf_crc", 0xDEADBEEF),  # 6.05
)


@pytest.mark.parametrize("count", range(len(FW_FIELDS_IN_ORDER) + 1))
def test_fw_version_reply_with_fields_set_progressively(count: int) -> None:
    fields = dict(FW_FIELDS_IN_ORDER[:count])
    reply = c.FwVersionReply(6, 2, **fields)
    payload = reply_roundtrip(reply)
    sizes = {"hw_name": 4, "uid": 12, "fw_name": 8, "hw_conf_crc": 4}
    assert len(payload) == 3 + sum(sizes.get(name, 1) for name in fields)
    assert payload[:3] == b"\x00\x06\x02"
    assert reply.version == fw("6.02")


def test_fw_version_wire_form_of_3_40() -> None:
    payload = c.encode(c.FwVersionReply(3, 40, "410", UID), V340)
    assert payload == b"\x00\x03\x28410\x00" + UID
    assert c.decode_reply(payload, V340).version == fw("3.40")
    assert request_roundtrip(c.FwVersionRequest()) == b"\x00"


def test_fw_version_stops_at_first_missing_field() -> None:
    # uid missing: nothing after the hw name is sent, even though pairing_done is set
    assert c.FwVersionReply(3, 48, "60", None, pairing_done=1).pack() == b"\x03\x3060\x00"
    # the HEAD crc needs the 6.00 fw_name before it
    assert c.FwVersionReply(5, 3, "60", UID, 0, 0, 0, 0, 0, 0, 0, 0, None, 7).pack().endswith(b"\x00" * 8)


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"", "major and minor"),
        (b"\x03", "major and minor"),
        (b"\x03\x28410", "unterminated"),
    ],
)
def test_fw_version_malformed(body: bytes, why: str) -> None:
    with pytest.raises(PayloadError, match=why):
        c.decode_reply(b"\x00" + body, V340)


def test_fw_version_uid_length_checked() -> None:
    with pytest.raises(PayloadError, match="12 bytes"):
        c.FwVersionReply(3, 40, "410", b"\x01\x02").pack()


# --- GET_VALUES --------------------------------------------------------------------------------------


def sample_values(fields, sign: int = 1) -> Values:
    """Values the firmware encodes exactly: whole numbers (v * scale is exact in float32)."""
    out = {}
    for i, f in enumerate(fields):
        out[f.name] = sign * (i % 3 + 1) if f.fmt != "B" else i + 1
    return Values(**out)


@pytest.mark.parametrize(("table", "size"), [(V340, 58), (V348, 64), (V360, 72), (V503, 73)])
@pytest.mark.parametrize("sign", [1, -1])
def test_get_values_layouts(table, size: int, sign: int) -> None:
    fields = value_fields_for(table.version)
    values = sample_values(fields, sign)
    payload = reply_roundtrip(c.ValuesReply(values), table)
    assert len(payload) == 1 + size  # the facts: 58 bytes after the id for 3.40, 73 for 5.03
    decoded = c.decode_reply(payload, table).values
    assert decoded.present() == fields
    assert request_roundtrip(c.GetValues(), table) == b"\x04"


def test_get_values_3_40_field_positions() -> None:
    values = Values(**{f.name: 0 for f in value_fields_for(fw("3.40"))} | {"temp_fet": 25.3, "v_in": 48.1, "fault": 4})
    body = c.ValuesReply(values).pack()
    assert body[0:2] == struct.pack(">h", 253)
    assert body[26:28] == struct.pack(">h", 481)  # v_in after 2+2+16+2+4 bytes
    assert body[52] == 4  # fault
    assert body[57] == 0  # controller_id, the last byte


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_get_values_bytes_decode_and_encode_to_at_most_one_step_lower(data: st.DataObject) -> None:
    """Wire values -> Values -> wire values: integers are kept; a scaled field comes back as the firmware would
    send raw / scale (float32 multiply, truncated): the same raw, or one step nearer zero. (Beyond 2**22 steps
    a float32 cannot hold the value to one step, on the firmware either.)"""
    fields = value_fields_for(data.draw(st.sampled_from([fw("3.40"), fw("3.48"), fw("3.60"), fw("5.03")])))
    limits = {"h": 2**15 - 1, "i": 2**31 - 1, "B": 255}
    raws = []
    for f in fields:
        top = limits[f.fmt] if f.scale is None else min(limits[f.fmt], 2**22)
        raws.append(data.draw(st.integers(0 if f.fmt == "B" else -top, top)))
    body = b"".join(struct.pack(">" + f.fmt, raw) for f, raw in zip(fields, raws, strict=True))
    again = c.ValuesReply.unpack(body).pack()
    at = 0
    for f, sent in zip(fields, raws, strict=True):
        (back,) = struct.unpack_from(">" + f.fmt, again, at)
        at += struct.calcsize(f.fmt)
        nearer_zero = sent - (sent > 0) + (sent < 0)
        assert back == sent if f.scale is None else back in (sent, nearer_zero), f.name


@pytest.mark.parametrize(
    ("value", "scale", "raw"),
    [  # research fw-protocol.md section 5: float32 multiply, then truncation toward zero
        (0.53, 100, 52),  # 0.53f * 100f = 52.999996
        (0.29, 100, 29),  # the float32 product rounds to 29.0 (double: 28.999999999999996)
        (0.251, 1000, 250),
        (2.675, 100, 267),
        (-1.29, 10, -12),
        (1e12, 100, 2**31 - 1),  # vcvt saturates
        (float("nan"), 100, 0),
    ],
)
def test_scaled_values_follow_the_firmware_float32_arithmetic(value: float, scale: float, raw: int) -> None:
    assert scaled_int32(value, scale) == raw


def test_get_values_truncation_and_float16_wrap_follow_the_firmware() -> None:
    assert c.ValuesReply(Values(temp_fet=1.2345)).pack() == struct.pack(">h", 12)
    assert c.ValuesReply(Values(temp_fet=-1.29)).pack() == struct.pack(">h", -12)
    # float16 keeps the low 16 bits of the int32 (sxth): 3276.8 C * 10 = 32768 wraps to -32768, no error
    assert c.ValuesReply(Values(temp_fet=3276.8)).pack() == struct.pack(">h", -32768)
    assert c.ValuesReply(Values(temp_fet=4000.0)).pack() == struct.pack(">h", 40000 - 65536)
    assert c.ValuesReply(Values(temp_fet=-3277.0)).pack() == struct.pack(">h", 32766)


@pytest.mark.parametrize(
    "mask",
    [0, 1, 1 << 18, (1 << 13) | (1 << 15) | (1 << 17), (1 << 22) - 1, (1 << 7) | (1 << 21), 0xFFFFFFFF],
)
def test_get_values_selective(mask: int) -> None:
    chosen = selective_fields(mask)
    values = sample_values(chosen)
    assert request_roundtrip(c.GetValuesSelective(mask), V503) == b"\x32" + struct.pack(">I", mask)
    payload = reply_roundtrip(c.ValuesSelectiveReply(mask, values), V503)
    assert payload[1:5] == struct.pack(">I", mask)
    assert len(payload) == 5 + sum(struct.calcsize(f.fmt) for f in chosen)
    if mask & (1 << 18):  # one bit, three MOS temperatures
        assert {"temp_mos1", "temp_mos2", "temp_mos3"} <= {f.name for f in chosen}


def test_get_values_selective_unknown_in_3_40() -> None:
    with pytest.raises(UnsupportedCommand):
        c.encode(c.GetValuesSelective(1), V340)


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        (b"\x04\x00", "truncated inside field temp_fet"),
        (b"\x04" + bytes(58) + b"\x00", "truncated"),  # 59 bytes: cuts into temp_mos1
        (b"\x32\x00\x00", "need 4 bytes"),
        (b"\x32" + struct.pack(">I", 3) + b"\x00\x01", "truncated inside field temp_motor"),
        (b"\x32" + struct.pack(">I", 1) + b"\x00\x01\x02", "after the last field"),
    ],
)
def test_get_values_malformed(payload: bytes, why: str) -> None:
    with pytest.raises(PayloadError, match=why):
        c.decode_reply(payload, V503)


def test_get_values_encode_errors() -> None:
    with pytest.raises(PayloadError, match="leading run"):
        c.ValuesReply(Values(temp_fet=1.0, current_motor=2.0)).pack()
    with pytest.raises(PayloadError, match="does not fit"):
        c.ValuesReply(Values(**{f.name: 0 for f in VALUE_FIELDS[:16]} | {"fault": 300})).pack()  # u8
    with pytest.raises(PayloadError, match="temp_motor"):
        c.ValuesSelectiveReply(0b11, Values(temp_fet=1.0)).pack()  # bit 1 set, value missing


# --- firmware and bootloader upload ------------------------------------------------------------------


def test_erase_new_app_and_its_reply() -> None:
    assert request_roundtrip(c.EraseNewApp(393208)) == b"\x02" + struct.pack(">I", 393208)
    assert request_roundtrip(c.EraseNewApp(0, all_can=True)) == b"\x3c" + bytes(4)
    for ok in (True, False):
        assert reply_roundtrip(c.StatusReply(Cmd.ERASE_NEW_APP, ok)) == bytes((2, int(ok)))
    assert c.decode_reply(b"\x02\x07", V340) == c.StatusReply(Cmd.ERASE_NEW_APP, True)  # any non-zero is ok


def test_write_new_app_data_and_replies() -> None:
    chunk = bytes(range(256)) + b"\xff" * 128
    payload = request_roundtrip(c.WriteNewAppData(384, chunk))
    assert payload[:5] == b"\x03\x00\x00\x01\x80" and payload[5:] == chunk
    assert request_roundtrip(c.WriteNewAppData(6, b"\x01", all_can=True))[0] == 61
    assert reply_roundtrip(c.WriteNewAppDataReply(True), V340) == b"\x03\x01"  # before 5.00
    assert reply_roundtrip(c.WriteNewAppDataReply(True, 384)) == b"\x03\x01" + struct.pack(">I", 384)  # 5.00+
    assert reply_roundtrip(c.WriteNewAppDataReply(False, 0)) == b"\x03\x00" + bytes(4)


def test_jump_and_erase_bootloader() -> None:
    assert request_roundtrip(c.JumpToBootloader()) == b"\x01"
    assert request_roundtrip(c.JumpToBootloader(all_can=True)) == b"\x3b"
    assert request_roundtrip(c.EraseBootloader()) == b"\x49"
    assert request_roundtrip(c.EraseBootloader(all_can=True)) == b"\x4a"
    assert reply_roundtrip(c.StatusReply(Cmd.ERASE_BOOTLOADER, True)) == b"\x49\x01"
    with pytest.raises(UnsupportedCommand):
        c.encode(c.EraseBootloader(), V340)
    # a 3.40 device does not know id 73: it reaches it as an unknown payload
    assert c.decode_request(b"\x49", V340) == c.Unknown(73, b"")


@pytest.mark.parametrize(
    ("payload", "decode", "why"),
    [
        (b"\x02\x00\x00", c.decode_request, "ERASE_NEW_APP: need 4 bytes"),
        (b"\x03\x00", c.decode_request, "WRITE_NEW_APP_DATA: need 4 bytes"),
        (b"\x02", c.decode_reply, "no status byte"),
        (b"\x49", c.decode_reply, "no status byte"),
        (b"\x03", c.decode_reply, "no status byte"),
        (b"\x03\x01\x00\x00", c.decode_reply, "offset"),
        (b"", c.decode_reply, "empty payload"),
        (b"", c.decode_request, "empty payload"),
    ],
)
def test_upload_malformed(payload: bytes, decode, why: str) -> None:
    with pytest.raises(PayloadError, match=why):
        decode(payload, V602)


# --- configuration -------------------------------------------------------------------------------------

BLOB = bytes(range(40))


@pytest.mark.parametrize("kind", list(c.ConfigKind))
@pytest.mark.parametrize("default", [False, True])
def test_get_config_both_directions(kind: c.ConfigKind, default: bool) -> None:
    ask = c.GetConfig(kind, default)
    wire = {
        (c.ConfigKind.MCCONF, False): 14,
        (c.ConfigKind.MCCONF, True): 15,
        (c.ConfigKind.APPCONF, False): 17,
        (c.ConfigKind.APPCONF, True): 18,
    }[kind, default]
    assert request_roundtrip(ask, V340) == bytes((wire,))
    # 3.40: no signature; 6.02: u32 signature first (facts sheet section 7)
    unsigned = c.ConfigReply(c.ConfigBlob(kind, None, BLOB), default)
    assert reply_roundtrip(unsigned, V340) == bytes((wire,)) + BLOB
    signed = c.ConfigReply(c.ConfigBlob(kind, 2525666056, BLOB), default)
    assert reply_roundtrip(signed, V602) == bytes((wire,)) + struct.pack(">I", 2525666056) + BLOB


@pytest.mark.parametrize("kind", list(c.ConfigKind))
def test_set_config_and_ack(kind: c.ConfigKind) -> None:
    wire = 13 if kind == c.ConfigKind.MCCONF else 16
    assert request_roundtrip(c.SetConfig(c.ConfigBlob(kind, None, BLOB)), V340) == bytes((wire,)) + BLOB
    signed = c.SetConfig(c.ConfigBlob(kind, 3733512279, BLOB))
    assert request_roundtrip(signed, V602)[1:5] == struct.pack(">I", 3733512279)
    assert reply_roundtrip(c.SetConfigAck(kind), V340) == bytes((wire,))
    # firmware 3.00 ids are one lower
    assert request_roundtrip(c.SetConfig(c.ConfigBlob(kind, None, BLOB)), V300)[0] == wire - 1


def test_config_without_signature_reads_the_same_bytes_differently() -> None:
    """The same bytes are a blob with a signature on 3.50+ and raw fields before (no check at all)."""
    payload = b"\x0e" + BLOB
    assert c.decode_reply(payload, V340).blob == c.ConfigBlob(c.ConfigKind.MCCONF, None, BLOB)
    assert c.decode_reply(payload, V602).blob == c.ConfigBlob(c.ConfigKind.MCCONF, 0x00010203, BLOB[4:])


def test_config_signature_truncated() -> None:
    with pytest.raises(PayloadError, match="signature"):
        c.decode_reply(b"\x0e\x01\x02", V602)
    with pytest.raises(PayloadError, match="signature"):
        c.decode_request(b"\x10\x01", V602)


# --- housekeeping, CAN, terminal -------------------------------------------------------------------------


def test_reboot_and_alive_ids_per_version() -> None:
    assert request_roundtrip(c.Reboot(), V340) == b"\x1d"
    assert request_roundtrip(c.Alive(), V340) == b"\x1e"
    assert request_roundtrip(c.Reboot(), V300) == b"\x1c"  # 28 on 3.00
    assert request_roundtrip(c.Alive(), V300) == b"\x1d"  # 29 on 3.00


def test_forward_can() -> None:
    inner = c.encode(c.FwVersionRequest(), V602)
    assert request_roundtrip(c.ForwardCan(7, inner)) == b"\x22\x07\x00"
    assert request_roundtrip(c.ForwardCan(255, b"\x04"), V300) == b"\x21\xff\x04"  # 33 on 3.00
    with pytest.raises(PayloadError, match="node id and an inner payload"):
        c.decode_request(b"\x22\x07", V602)


def test_ping_can() -> None:
    assert request_roundtrip(c.PingCan(), V348) == b"\x3e"
    assert reply_roundtrip(c.PingCanReply((1, 2, 127)), V348) == b"\x3e\x01\x02\x7f"
    assert reply_roundtrip(c.PingCanReply(()), V348) == b"\x3e"
    with pytest.raises(UnsupportedCommand):
        c.encode(c.PingCan(), V340)


def test_terminal_and_print() -> None:
    assert request_roundtrip(c.TerminalCmd("hw_status")) == b"\x14hw_status\x00"
    assert request_roundtrip(c.TerminalCmd("faults"), V300) == b"\x13faults\x00"
    assert c.decode_request(b"\x14help\x00junk", V602) == c.TerminalCmd("help")
    assert reply_roundtrip(c.Print("Warning: Could not set mcconf due to wrong signature")).startswith(b"\x15Warning")
    assert c.decode_reply(b"\x15done\x00", V602) == c.Print("done")
    assert reply_roundtrip(c.Print("°C"), V340) == b"\x15\xb0C"  # latin-1, one byte per char


def test_unknown_ids_are_kept_whole() -> None:
    assert c.decode_reply(b"\x05\x01\x02", V602) == c.Unknown(5, b"\x01\x02")  # SET_DUTY has no reply codec
    assert c.decode_request(b"\xfe\x01", V602) == c.Unknown(254, b"\x01")
    assert c.Unknown(254, b"\x01").pack() == b"\x01"


# --- property: decoding never raises anything but typed errors ----------------------------------------------


@settings(max_examples=400, deadline=None)
@given(payload=st.binary(min_size=0, max_size=120), version=st.sampled_from(["3.00", "3.40", "3.48", "5.03", "6.02"]))
def test_decoding_random_payloads_raises_only_typed_errors(payload: bytes, version: str) -> None:
    table = command_table(fw(version))
    for decode in (c.decode_request, c.decode_reply):
        try:
            message = decode(payload, table)
        except PayloadError:
            continue
        except RigError as exc:  # any other typed error would be a surprise worth seeing
            pytest.fail(f"{decode.__name__}: unexpected {type(exc).__name__}: {exc}")
        lossy = (c.Unknown, c.GetConfig, c.ValuesReply, c.ValuesSelectiveReply)  # values: float32 truncation
        if not isinstance(message, lossy):
            # whatever decodes re-encodes (PRINT/TERMINAL text is normalised at NULs)
            again = c.encode(message, table)
            assert decode(again, table) == message


def test_every_value_field_has_a_distinct_bit_except_the_mos_temperatures() -> None:
    bits = [f.bit for f in VALUE_FIELDS]
    assert bits.count(18) == 3 and len(set(bits)) == len(bits) - 2


# --- 6.05 / 6.06 commands and LispBM -------------------------------------------------------------------

V605, V606 = command_table(fw("6.05")), command_table(fw("6.06"))


def test_shutdown_estop_and_motor_commands() -> None:
    assert request_roundtrip(c.Shutdown(force=False, restart=True), V605) == bytes((156, 0, 1))
    assert request_roundtrip(c.MotorEstop(1500), V606) == bytes((159,)) + struct.pack(">H", 1500)
    assert request_roundtrip(c.SetRpm(-3000), V606) == bytes((8,)) + struct.pack(">i", -3000)
    assert request_roundtrip(c.SetCurrent(1.5), V606) == bytes((6,)) + struct.pack(">i", 1500)
    with pytest.raises(UnsupportedCommand):
        c.encode(c.MotorEstop(10), V605)
    with pytest.raises(UnsupportedCommand):
        c.encode(c.Shutdown(), V602)
    with pytest.raises(PayloadError, match="force and restart"):
        c.decode_request(bytes((156, 1)), V605)


def test_fw_info_reply_and_its_46_character_quirk() -> None:
    full = "94b305ec124b67b0161f2d3d85c4d5b35e48edc5"
    reply = c.FwInfoReply(6, 6, 0, full, "")
    payload = reply_roundtrip(reply, V606)
    assert payload == bytes((157, 6, 6, 0)) + full.encode() + b"\0\0"
    too_long = c.FwInfoReply(6, 6, 0, "x" * 47, "")  # longer than 46: left out entirely, NUL too
    assert c.encode(too_long, V606) == bytes((157, 6, 6, 0, 0))
    assert request_roundtrip(c.FwInfoRequest(), V606) == bytes((157,))


def test_can_update_baud_all_and_status_replies() -> None:
    assert request_roundtrip(c.CanUpdateBaudAll(500, 100), V606) == bytes((158,)) + struct.pack(">hh", 500, 100)
    for cmd in (Cmd.CAN_UPDATE_BAUD_ALL, Cmd.LISP_ERASE_CODE, Cmd.LISP_SET_RUNNING):
        assert reply_roundtrip(c.StatusReply(cmd, True), V606) == bytes((cmd, 1))


def test_lisp_code_requests_and_replies() -> None:
    assert request_roundtrip(c.LispEraseCode(300), V602) == bytes((132,)) + struct.pack(">i", 300)
    assert request_roundtrip(c.LispWriteCode(8, b"abc"), V602) == bytes((131,)) + struct.pack(">I", 8) + b"abc"
    assert reply_roundtrip(c.LispWriteCodeReply(True, 8), V602) == bytes((131, 1)) + struct.pack(">I", 8)
    assert request_roundtrip(c.LispReadCode(100, 0), V602) == bytes((130,)) + struct.pack(">ii", 100, 0)
    assert reply_roundtrip(c.LispCodeReply(3, 0, b"abc"), V602) == bytes((130,)) + struct.pack(">ii", 3, 0) + b"abc"
    assert request_roundtrip(c.LispSetRunning(True), V602) == bytes((133, 1))
    assert request_roundtrip(c.LispRmsg(2, b"hi"), V605) == bytes((152, 2)) + b"hi"
    with pytest.raises(UnsupportedCommand):
        c.encode(c.LispRmsg(0), V602)
