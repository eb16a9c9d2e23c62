"""rig.captures.decode and `rig trace decode`: captured byte logs, including the F7 capture, decode to frames."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from rig.captures.decode import BadLine, Chunk, TraceError, decode_log, parse_line
from rig.cli import main
from rig.protocol import codecs as c
from rig.protocol.commands import LATEST, command_table, fw
from rig.protocol.framing import encode_frame
from rig.transport.link import Trace, TraceEntry

V340 = command_table(fw("3.40"))
POLL = "02 01 1f e3 de 03"  # GET_DECODED_PPM
FW_VERSION = "02 01 00 00 00 03"


def set_appconf_frame() -> bytes:
    """A real 3.40 SET_APPCONF frame with a 163-byte payload (id + 162 bytes of appconf, no signature)."""
    blob = random.Random(340).randbytes(162)
    payload = c.encode(c.SetConfig(c.ConfigBlob(c.ConfigKind.APPCONF, None, blob)), V340)
    assert len(payload) == 163
    frame = encode_frame(payload)
    assert frame[:3] == bytes.fromhex("02 a3 10") and frame[-1] == 0x03
    return frame


def hex_lines(data: bytes, size: int = 20, prefix: str = "") -> list[str]:
    return [prefix + data[i : i + size].hex(" ") for i in range(0, len(data), size)]


# --- F7 ------------------------------------------------------------------------------------------------


def test_f7_capture_decodes() -> None:
    frame = set_appconf_frame()
    lines = hex_lines(frame) + [POLL] * 3 + ["# new TCP connection", FW_VERSION]
    assert len(lines) == 9 + 3 + 2  # 168 bytes in 20-byte pieces: 9 lines
    decoded = decode_log("\n".join(lines), V340)
    assert [(e.command, e.payload_len, e.crc_ok) for e in decoded.events] == [
        ("SET_APPCONF", 163, True),
        ("GET_DECODED_PPM", 1, True),
        ("GET_DECODED_PPM", 1, True),
        ("GET_DECODED_PPM", 1, True),
        ("FW_VERSION", 1, True),
    ]
    assert decoded.events[0].line == 9  # completed by the ninth piece
    assert [e.offset for e in decoded.events] == [0, 168, 174, 180, 186]
    assert decoded.bad_lines == []


def test_f7_cut_short_set_appconf_then_fw_version() -> None:
    """The link dropped mid-frame; the next connection's FW_VERSION bytes follow the partial frame."""
    frame = set_appconf_frame()
    lines = hex_lines(frame[:100], prefix="write: ") + ["write: " + FW_VERSION]
    decoded = decode_log("\n".join(lines), V340)
    garbage, frames = decoded.garbage(), decoded.frames()
    assert [f.command for f in frames] == ["FW_VERSION"] and frames[0].crc_ok
    assert sum(g.size for g in garbage) == 100  # every byte of the partial frame, none of FW_VERSION
    assert garbage[0].data.startswith(bytes.fromhex("02 a3 10"))
    assert garbage[0].reason == "incomplete at end of stream"  # 02 a3 waited for 168 bytes that never came
    assert decoded.events.index(frames[0]) > decoded.events.index(garbage[-1])  # garbage, then the frame
    assert frames[0].offset == 100 and frames[0].direction == "tx"


# --- formats ----------------------------------------------------------------------------------------------


def test_link_trace_text_round_trip() -> None:
    trace = Trace(
        [
            TraceEntry(0.001234, "tx", bytes.fromhex("02 01 00")),
            TraceEntry(0.001300, "tx", bytes.fromhex("00 00 03")),
            TraceEntry(0.0105, "rx", encode_frame(c.encode(c.FwVersionReply(3, 40, "410"), V340))),
        ]
    )
    decoded = decode_log(trace.text(), V340)
    assert [(e.direction, e.t, e.command, e.line) for e in decoded.events] == [
        ("tx", 0.0013, "FW_VERSION", 2),
        ("rx", 0.0105, "FW_VERSION", 3),
    ]
    assert decoded.events[1].payload_len == 7


@pytest.mark.parametrize(
    ("text", "t", "direction", "data"),
    [
        ("  0.001234 tx: 02 01 00", 0.001234, "tx", "020100"),
        ("12.5 rx: 0201", 12.5, "rx", "0201"),
        ("read: 02 01 04", None, "rx", "020104"),
        ("WRITE: 02 01 04", None, "tx", "020104"),
        ("> 02 01 04", None, "tx", "020104"),
        ("< 02 01 04", None, "rx", "020104"),
        ("[12:34:56.789] > 0x02, 0x01, 0x04", 45296.789, "tx", "020104"),
        ("2024-05-01 12:34:56,500 read: 02:01:04", 45296.5, "rx", "020104"),
        ("02 a3 10", None, "-", "02a310"),
        ("02A310  # a comment after the bytes", None, "-", "02a310"),
    ],
)
def test_line_formats(text: str, t: float | None, direction: str, data: str) -> None:
    parsed = parse_line(7, text)
    assert isinstance(parsed, Chunk)
    assert parsed.t == pytest.approx(t) if t is not None else parsed.t is None
    assert (parsed.line, parsed.direction, parsed.data.hex()) == (7, direction, data)


@pytest.mark.parametrize("text", ["", "   ", "# comment", "// comment"])
def test_blank_and_comment_lines_are_skipped(text: str) -> None:
    assert parse_line(1, text) is None


@pytest.mark.parametrize("text", ["hello world", "tx: 02 0", "02 zz", "rx:", "connected to 192.168.4.1"])
def test_unparsable_lines(text: str) -> None:
    assert parse_line(3, text) == BadLine(3, text)


def test_junk_lines_are_reported_with_their_numbers() -> None:
    log = "\n".join(["# capture", "", "connected", FW_VERSION, "oops 02", POLL])
    decoded = decode_log(log)
    assert [b.line for b in decoded.bad_lines] == [3, 5]
    assert [e.command for e in decoded.frames()] == ["FW_VERSION", "GET_DECODED_PPM"]


def test_nothing_parsable_is_a_typed_error() -> None:
    with pytest.raises(TraceError, match=r"no hex bytes.*1, 3"):
        decode_log("hello\n\nworld\n# only a comment")
    with pytest.raises(TraceError):
        decode_log("")


# --- frames, garbage and CRC --------------------------------------------------------------------------------


def test_bad_crc_frame_is_reported_and_then_resynced() -> None:
    frame = bytearray(set_appconf_frame())
    frame[-2] ^= 0xFF  # CRC low byte
    decoded = decode_log("\n".join([*hex_lines(bytes(frame)), POLL]), V340)
    first = decoded.events[0]
    assert (first.kind, first.command, first.payload_len, first.crc_ok, first.offset) == (
        "frame",
        "SET_APPCONF",
        163,
        False,
        0,
    )
    # the decoder skipped the 02 and rescanned: the discarded bytes follow, from the same offset
    garbage = decoded.garbage()
    assert garbage[0].offset == 0 and garbage[0].reason == "bad CRC"
    assert sum(g.size for g in garbage) == 168
    assert decoded.frames()[-1].command == "GET_DECODED_PPM" and decoded.frames()[-1].crc_ok


def test_every_byte_is_accounted_for_per_direction() -> None:
    rng = random.Random(7)
    tx, rx = bytearray(), bytearray()
    lines = []
    for i in range(40):
        data = rng.choice([bytes.fromhex(POLL), bytes.fromhex(FW_VERSION), rng.randbytes(rng.randint(1, 12))])
        (tx if i % 2 else rx).extend(data)
        lines.append(("tx: " if i % 2 else "rx: ") + data.hex(" "))
    decoded = decode_log("\n".join(lines))
    for direction, stream in (("tx", tx), ("rx", rx)):
        events = [e for e in decoded.events if e.direction == direction and (e.kind == "garbage" or e.crc_ok)]
        assert sum(e.size for e in events) == len(stream)
        assert sorted(e.offset for e in events) == [e.offset for e in events]  # in stream order


def test_unknown_id_and_version_dependent_names() -> None:
    log = f"{POLL}\n{encode_frame(bytes((200,))).hex(' ')}"
    assert [e.command for e in decode_log(log).frames()] == ["GET_DECODED_PPM", None]
    assert decode_log(log).frames()[1].cmd_id == 200
    # firmware 3.00: ids from 10 up are one lower, so 31 is GET_DECODED_ADC
    assert decode_log(POLL, command_table(fw("3.00"))).frames()[0].command == "GET_DECODED_ADC"


# --- CLI ------------------------------------------------------------------------------------------------------


@pytest.fixture
def f7_log(tmp_path: Path) -> Path:
    path = tmp_path / "f7.log"
    path.write_text(
        "\n".join([*hex_lines(set_appconf_frame(), prefix="> "), "> " + POLL, "not hex", "< " + FW_VERSION])
    )
    return path


def test_cli_json(f7_log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trace", "decode", str(f7_log), "--json", "--fw", "3.40"]) == 0
    out, err = capsys.readouterr()
    rows = [json.loads(line) for line in out.splitlines()]
    assert [(r["kind"], r["direction"], r["command"], r["payload_len"], r["crc_ok"]) for r in rows] == [
        ("frame", "tx", "SET_APPCONF", 163, True),
        ("frame", "tx", "GET_DECODED_PPM", 1, True),
        ("frame", "rx", "FW_VERSION", 1, True),
    ]
    assert f"{f7_log}:11: not hex" in err


def test_cli_table_and_plain(f7_log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trace", "decode", str(f7_log)]) == 0
    out, _ = capsys.readouterr()
    assert "SET_APPCONF" in out and "CRC ok" in out and str(LATEST.version) in out
    assert main(["trace", "decode", str(f7_log), "--plain"]) == 0
    out, _ = capsys.readouterr()
    assert len(out.splitlines()) == 3 and "SET_APPCONF" in out.splitlines()[0] and "163" in out.splitlines()[0]


def test_cli_shows_garbage_with_its_reason(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "cut.log"
    path.write_text("\n".join([*hex_lines(set_appconf_frame()[:60]), FW_VERSION]))
    assert main(["trace", "decode", str(path), "--plain", "--fw", "3.40"]) == 0
    out, _ = capsys.readouterr()
    assert "garbage" in out and "incomplete at end of stream: 02 a3 10" in out
    assert "FW_VERSION" in out.splitlines()[-1]


def test_cli_errors_are_messages(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trace", "decode", str(tmp_path / "missing.log")]) == 1
    assert "cannot read" in capsys.readouterr().err
    junk = tmp_path / "junk.log"
    junk.write_text("nothing here\n")
    assert main(["trace", "decode", str(junk)]) == 1
    assert "no hex bytes" in capsys.readouterr().err


def test_cli_bad_firmware_version_is_a_usage_error(f7_log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["trace", "decode", str(f7_log), "--fw", "latest"])
    assert info.value.code == 2
    assert "MAJOR.MINOR" in capsys.readouterr().err
