"""rig.captures and `rig trace decode`: field logs in every supported format, the F7 capture, payloads, verdicts."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from capture_builder import (
    F7_CAPTURES,
    FORMATS,
    FW_VERSION,
    POLL,
    V340,
    Entry,
    bridge,
    f7_appconf_frame,
    f7_capture,
    f7_entries,
    frame,
    pieces,
    render,
    rig_trace,
)

from rig.captures.decode import Kind, TraceError, decode_log
from rig.captures.directions import DirectionError, Role
from rig.captures.generations import GENERATIONS, generation_of
from rig.captures.lines import Chunk, Note, NoteKind, parse_line
from rig.captures.render import json_document, report_text
from rig.captures.verdict import Fate, verdict
from rig.cli import main
from rig.device.firmware import PROFILES
from rig.protocol import codecs as c
from rig.protocol.commands import Cmd, command_table, fw
from rig.protocol.framing import encode_frame
from rig.transport.link import Trace, TraceEntry

CAPTURES = Path(__file__).resolve().parents[2] / "fixtures" / "captures"
V602 = command_table(fw("6.02"))


# --- lines -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "time", "label", "data"),
    [
        ("  0.001234 tx: 02 01 00", "0.001234", "tx", "020100"),
        ("[I 14:05:45.550] read: 02a31000000003e8e8(9)", "14:05:45.550", "read", "02a31000000003e8e8"),
        ("2024-05-01 12:34:56,500 RX: 02:01:04", "2024-05-01 12:34:56,500", "rx", "020104"),
        ("05-14 14:05:45.550  4321  4390 D VescBle: TX: 02 01 00 00 00 03", "05-14 14:05:45.550", "tx", "020100000003"),
        ("[12:34:56.789] > 0x02, 0x01, 0x04", "12:34:56.789", ">", "020104"),
        ("2024-05-01T12:34:56.500Z <- 02 01 04", "2024-05-01T12:34:56.500Z", "<-", "020104"),
        ("I\t14:05:45.550\tData written to 6e400002-b5a3, value: (0x) 02-01-04", "14:05:45.550", "written", "020104"),
        ("D/VescBle( 4321): send = 02 01 04 (3 bytes)", None, "send", "020104"),
        ("[14:05:45] 02 01 00", "14:05:45", "", "020100"),
        ("02A310  ", None, "", "02a310"),
    ],
)
def test_data_lines_of_every_format(text: str, time: str | None, label: str, data: str) -> None:
    parsed = parse_line(7, text)
    assert isinstance(parsed, Chunk)
    assert (parsed.stamp.text if parsed.stamp else None, parsed.label, parsed.data.hex()) == (time, label, data)


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("TCP disconnected 0xbf0bb198", NoteKind.DISCONNECT),  # a number after a word, not bytes
        ("[I 14:05:46.847] new TCP connection 0xdd92e340", NoteKind.CONNECT),
        ("Setting PositionSource.active to true", NoteKind.OTHER),
        ("[NRF_LOG] <warning> app: RT TIMED OUT 1", NoteKind.OTHER),  # "<warning>" is not an arrow
        ("05-14 14:05:45.550  4321  4390 I VescBle: Connected to 192.168.4.1", NoteKind.CONNECT),
        ("BLE not connected", NoteKind.OTHER),
        ("Connection terminated by peer (status 19)", NoteKind.DISCONNECT),
        ("tx: 02 0", NoteKind.UNREADABLE),
        ("[I 14:05:45.550] read: 02 zz", NoteKind.UNREADABLE),
        ("0xdeadbeef", NoteKind.OTHER),
        ("write: failed", NoteKind.OTHER),
    ],
)
def test_text_lines_are_notes(text: str, kind: NoteKind) -> None:
    parsed = parse_line(1, text)
    assert isinstance(parsed, Note) and parsed.kind == kind


@pytest.mark.parametrize("text", ["", "   ", "# comment", "// comment"])
def test_blank_and_comment_lines_are_skipped(text: str) -> None:
    assert parse_line(1, text) is None


def test_byte_counts_and_the_ellipsis_of_a_shortened_line() -> None:
    line = parse_line(1, "[I 14:05:45.550] read: 02a31000000003e8...466a(20)")  # as the issue quotes it
    assert isinstance(line, Chunk)
    assert (line.data.hex(), line.tail.hex(), line.elided, line.size) == ("02a31000000003e8", "466a", 10, 20)
    wrong = parse_line(2, "[I 14:05:45.550] read: 02a310(4)")
    assert isinstance(wrong, Chunk) and wrong.count_mismatch


# --- the F7 capture --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(F7_CAPTURES))
def test_committed_captures_are_the_builders(name: str) -> None:
    """fixtures/captures holds real frames: the files are exactly what capture_builder makes from the codecs."""
    assert (CAPTURES / name).read_bytes().decode() == f7_capture(name)


def test_f7_capture_as_failure_modes_tells_it() -> None:
    decoded = decode_log((CAPTURES / "f7-bridge-3.40.log").read_text())
    assert (str(decoded.firmware.version), decoded.firmware.source) == ("3.40", "the FW_VERSION reply on line 6")
    assert decoded.directions.roles == {"read": Role.TO_ESC, "write": Role.TO_HOST}  # a bridge reads what the app sends
    (appconf,) = [f for f in decoded.frames() if f.command == "SET_APPCONF"]
    assert (appconf.first_line, appconf.line, appconf.size, appconf.crc_ok) == (16, 24, 168, True)
    assert appconf.described is not None
    assert appconf.described.summary == "appconf, 162 bytes, no signature (firmware before 3.50)"
    assert encode_frame(appconf.data)[-3:] == bytes.fromhex("10 1e 03")
    notes = [(e.kind, e.text) for e in decoded.events if e.role is None]
    assert notes == [
        (Kind.CONNECT, "new TCP connection 0xbf0bb198"),
        (Kind.NOTE, "Setting PositionSource.active to true"),
        (Kind.NOTE, "[NRF_LOG] <warning> app: RT TIMED OUT 1"),
        (Kind.DISCONNECT, "TCP disconnected 0xbf0bb198"),
        (Kind.CONNECT, "new TCP connection 0xdd92e340"),
    ]
    assert [(s.number, s.started_by.line if s.started_by else None) for s in decoded.sessions] == [(1, 4), (2, 30)]
    judged = verdict(decoded)
    assert judged.cuts == [] and judged.crc_errors == [] and judged.garbage == []
    assert [(r.command, r.session) for r in judged.unanswered] == [("GET_DECODED_PPM", 1)] * 3 + [
        ("FW_VERSION", 2),
        *[("GET_DECODED_PPM", 2)] * 3,
    ]
    assert all(f.lost == [] and f.late == [] for f in judged.fates if f.generation.name != "up to 3.28")
    # 20-byte pieces 12 ms apart: the 2 ms timer of firmware up to 3.28 drops the frame between pieces
    assert [f.command for f in fate_of(judged.fates, "up to 3.28").lost] == ["SET_APPCONF"]


def fate_of(fates: list[Fate], name: str) -> Fate:
    (found,) = [f for f in fates if f.generation.name == name]
    return found


def test_f7_cut_in_the_log_and_what_each_generation_did() -> None:
    text = (CAPTURES / "f7-bridge-cut-3.40.log").read_text()
    decoded = decode_log(text)
    (cut,) = decoded.of_kind(Kind.CUT)
    assert (cut.command, cut.size, cut.expected, cut.first_line, cut.line) == ("SET_APPCONF", 100, 168, 15, 20)
    assert cut.text == "TCP disconnected 0xbf0bb198" and cut.data.startswith(bytes.fromhex("02 a3 10"))
    judged = verdict(decoded)
    (cut_frame,) = judged.cuts
    assert cut_frame.gap_s == pytest.approx(0.4) and cut_frame.next_line == 22
    session_2 = [f for f in decoded.frames(Role.TO_ESC) if f.session == 2]
    assert [f.command for f in session_2] == ["FW_VERSION"] + ["GET_DECODED_PPM"] * 12
    # 3.29-3.40: the state machine takes the next 68 bytes as the rest of the frame: FW_VERSION and the polls
    # in them are lost; the stop-byte 03 of the 11th poll starts a long frame that swallows the 12th poll
    legacy = fate_of(judged.fates, "3.29-3.40")
    assert legacy.lost == session_2 and legacy.late == [] and legacy.held == 7
    assert "the next 68 bytes (up to line 33) were taken as the rest" in legacy.cuts[0]
    # 3.48 on: the failed frame's bytes are rescanned: FW_VERSION and ten polls run, late, when it fails
    for name in ("3.48-5.02", "5.03 and later"):
        resync = fate_of(judged.fates, name)
        assert resync.lost == [] and resync.held == 0
        assert [(f.command, at) for f, at in resync.late] == [(f.command, 33) for f in session_2[:11]]


@pytest.mark.parametrize(("gap_s", "dropped"), [(0.999, False), (1.000, False), (1.001, True), (2.5, True)])
def test_the_partial_frame_goes_on_the_1001st_idle_millisecond(gap_s: float, dropped: bool) -> None:
    """The log's clock has milliseconds: a byte 1.000 s after the last one still joins the partial frame."""
    entries = f7_entries(cut_after=100, gap_s=gap_s, polls_after=0)
    judged = verdict(decode_log(render(entries, bridge)))
    for name in ("3.29-3.40", "3.48-5.02"):
        (sentence,) = fate_of(judged.fates, name).cuts
        assert ("dropped by the receive timeout" in sentence) is dropped, sentence
        assert [f.command for f in fate_of(judged.fates, name).lost] == ([] if dropped else ["FW_VERSION"])
    (newest,) = fate_of(judged.fates, "5.03 and later").cuts
    assert "still held at the end of the log" in newest  # no timer: it waits for 62 more bytes
    assert fate_of(judged.fates, "5.03 and later").held == 106


def test_a_log_without_times_does_not_apply_timeouts() -> None:
    text = "\n".join(f"read: {p.hex()}" for p in pieces(f7_appconf_frame()[:100]))
    text += "\nTCP disconnected\nnew TCP connection\nread: " + FW_VERSION.hex()
    judged = verdict(decode_log(text, fw("3.40")))
    assert not judged.fates[0].timed and "timeouts were not applied" in " ".join(judged.problems)
    assert [f.command for f in fate_of(judged.fates, "3.48-5.02").lost] == ["FW_VERSION"]


def test_elided_bytes_become_a_gap_not_a_wrong_frame() -> None:
    log = "\n".join(
        [
            "[I 14:05:45.550] read: 02a31000000003e8...466a(20)",
            f"[I 14:05:45.600] read: {FW_VERSION.hex()}(6)",
        ]
    )
    decoded = decode_log(log, fw("3.40"))
    assert [e.kind for e in decoded.events] == [Kind.CUT, Kind.GAP, Kind.GARBAGE, Kind.FRAME]
    cut, gap = decoded.events[:2]
    assert (cut.command, cut.size, cut.expected, cut.text) == ("SET_APPCONF", 8, 168, "10 bytes left out of the log")
    assert (gap.offset, gap.size) == (8, 10)
    assert decoded.events[3].offset == 20 and decoded.events[3].command == "FW_VERSION"
    assert any("left out of the log" in p for p in verdict(decoded).problems)


# --- formats ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
@pytest.mark.parametrize("fmt", list(FORMATS))
def test_every_app_format_decodes_the_same_story(fmt: str, newline: str) -> None:
    entries = f7_entries(cut_after=100, gap_s=0.4, polls_after=12)
    decoded = decode_log(render(entries, FORMATS[fmt], newline))
    sent = [e for e in entries if e.toward == "esc"]
    assert sorted(decoded.directions.roles.values()) == [Role.TO_ESC, Role.TO_HOST]
    assert str(decoded.firmware.version) == "3.40"
    to_esc = decoded.frames(Role.TO_ESC)
    assert [f.command for f in to_esc] == ["FW_VERSION", "GET_VALUES"] + ["GET_DECODED_PPM"] * 3 + (
        ["FW_VERSION"] + ["GET_DECODED_PPM"] * 12
    )
    assert [f.command for f in decoded.frames(Role.TO_HOST)] == ["FW_VERSION", "GET_VALUES"] + ["GET_DECODED_PPM"] * 3
    (cut,) = decoded.of_kind(Kind.CUT)
    assert (cut.command, cut.size, cut.expected) == ("SET_APPCONF", 100, 168)
    assert len(decoded.sessions) == 2
    assert sum(f.size for f in to_esc) + cut.size == sum(len(e.data) for e in sent)
    assert decoded.timed


def test_the_rigs_own_trace_with_its_flush() -> None:
    """Trace.text() as a failed test attaches it: each connect's flush starts a session and is labelled."""
    reply = frame(c.FwVersionReply(3, 40, "410", bytes(12)))
    trace = Trace(
        [
            TraceEntry(0.001, "tx", bytes(1032)),
            TraceEntry(0.002, "tx", FW_VERSION),
            TraceEntry(0.003, "rx", reply[:10]),
            TraceEntry(0.004, "rx", reply[10:]),
            TraceEntry(0.010, "tx", f7_appconf_frame()[:50]),  # a link cut 50 bytes into a config write
            TraceEntry(0.500, "tx", bytes(1032)),
            TraceEntry(0.501, "tx", FW_VERSION),
            TraceEntry(0.502, "rx", reply),
        ]
    )
    decoded = decode_log(trace.text())
    assert [(e.kind, e.session) for e in decoded.events] == [
        (Kind.FLUSH, 1),
        (Kind.FRAME, 1),
        (Kind.FRAME, 1),
        (Kind.CUT, 1),
        (Kind.FLUSH, 2),
        (Kind.FRAME, 2),
        (Kind.FRAME, 2),
    ]
    flush, cut = decoded.events[0], decoded.events[3]
    assert flush.text == "the rig's flush at a connect (1032 zero bytes)" and flush.size == 1032
    assert (cut.command, cut.size, cut.line, cut.text) == ("SET_APPCONF", 50, 6, flush.text)
    assert decoded.events[2].first_line == 3 and decoded.events[2].line == 4  # a reply read in two pieces
    judged = verdict(decoded)
    assert judged.flushes == 2 and judged.garbage == [] and judged.unanswered == []
    # what the flush is for: every generation is idle again after it, and runs the next FW_VERSION on time
    assert all(f.lost == [] and f.late == [] and f.held == 0 for f in judged.fates)
    assert "rig flush" in report_text(decoded, judged)


def test_bare_hex_without_directions_is_decoded_by_its_shape() -> None:
    lines = [p.hex(" ") for p in pieces(f7_appconf_frame())] + [POLL.hex(" ")] * 3 + [FW_VERSION.hex(" ")]
    decoded = decode_log("\n".join(lines), fw("3.40"))
    assert decoded.directions.roles == {"": Role.TO_ESC}
    assert [e.command for e in decoded.frames()] == ["SET_APPCONF"] + ["GET_DECODED_PPM"] * 3 + ["FW_VERSION"]
    assert verdict(decoded).replies_checked is False


# --- firmware, directions and payloads ------------------------------------------------------------------------


def test_firmware_given_detected_or_assumed() -> None:
    assert decode_log(POLL.hex()).firmware.source.startswith("no FW_VERSION reply")
    assert str(decode_log(POLL.hex()).firmware.version) == "7.01"  # the newest modelled firmware
    # firmware 3.00: ids from 10 up are one lower, so 31 is GET_DECODED_ADC
    assert decode_log(POLL.hex(), fw("3.00")).frames()[0].command == "GET_DECODED_ADC"
    assert generation_of(fw("3.00")).name == "up to 3.28"


@pytest.mark.parametrize(
    ("version", "name"),
    [("3.28", "up to 3.28"), ("3.29", "3.29-3.40"), ("3.40", "3.29-3.40"), ("3.48", "3.48-5.02")]
    + [("5.02", "3.48-5.02"), ("5.03", "5.03 and later"), ("6.06", "5.03 and later")],
)
def test_generation_of(version: str, name: str) -> None:
    assert generation_of(fw(version)).name == name


@pytest.mark.parametrize("profile", list(PROFILES.values()), ids=list(PROFILES))
def test_generations_agree_with_the_simulators_profiles(profile: object) -> None:
    generation = generation_of(profile.version)  # type: ignore[attr-defined]
    assert generation.decoder == profile.decoder  # type: ignore[attr-defined]
    assert generation.max_payload == profile.max_payload  # type: ignore[attr-defined]
    assert generation.reset_after_s == pytest.approx(profile.rx_timeout_s)  # type: ignore[attr-defined]


def test_direction_override_and_its_error() -> None:
    text = render(f7_entries(), bridge)
    decoded = decode_log(text, to_esc="write")
    assert decoded.directions.roles == {"read": Role.TO_HOST, "write": Role.TO_ESC}
    with pytest.raises(DirectionError, match=r"--to-esc 'tx'.*'read', 'write'"):
        decode_log(text, to_esc="tx")


def test_payloads_are_decoded() -> None:
    values = frame(c.GetValues())
    can = encode_frame(c.encode(c.ForwardCan(3, c.encode(c.FwVersionRequest(), V602)), V602))
    blob = c.ConfigBlob(c.ConfigKind.APPCONF, 486554156, bytes(489))
    config = encode_frame(c.encode(c.ConfigReply(blob), V602))
    write = encode_frame(c.encode(c.WriteNewAppData(0x4000, bytes(range(200))), V602))
    ack = encode_frame(c.encode(c.WriteNewAppDataReply(True, 0x4000), V602))
    log = "\n".join(
        [f"tx: {values.hex()}", f"tx: {can.hex()}", f"rx: {config.hex()}", f"tx: {write.hex()}", f"rx: {ack.hex()}"]
    )
    rows = decode_log(log, fw("6.02")).frames()
    described = [(r.command, r.described.summary if r.described else None) for r in rows]
    assert described == [
        ("GET_VALUES", "request"),
        ("FORWARD_CAN", "to CAN node 3: FwVersionRequest request"),
        ("GET_APPCONF", "appconf, signature 486554156 (the appconf of 6.00, 6.02), 489 bytes after it"),
        ("WRITE_NEW_APP_DATA", "offset 16384 (0x4000), 200 bytes"),
        ("WRITE_NEW_APP_DATA", "ok, offset 16384"),
    ]
    write_fields = rows[3].described.fields if rows[3].described else None
    assert write_fields == {"offset": 16384, "size": 200, "all_can": False}


def test_get_values_and_fw_version_fields() -> None:
    decoded = decode_log((CAPTURES / "f7-bridge-3.40.log").read_text())
    by_command = {(f.command, f.role): f for f in decoded.frames()}
    values = by_command["GET_VALUES", Role.TO_HOST].described
    assert values is not None and values.fields["values"]["v_in"] == 41.6  # type: ignore[index]
    assert values.summary.startswith("v_in 41.6, temp_fet 31.2, temp_motor 24.5")
    version = by_command["FW_VERSION", Role.TO_HOST].described
    assert version is not None
    assert version.fields == {
        "major": 3,
        "minor": 40,
        "hw_name": "410",
        "uid": "3f 00 52 00 06 51 35 32 31 37 37 39",
        "version": "3.40",
    }


# --- frames, garbage and CRC ------------------------------------------------------------------------------------


def test_bad_crc_frame_is_reported_and_then_resynced() -> None:
    damaged = bytearray(f7_appconf_frame())
    damaged[-2] ^= 0xFF  # CRC low byte
    decoded = decode_log("\n".join([*(p.hex(" ") for p in pieces(bytes(damaged))), POLL.hex(" ")]), fw("3.40"))
    first = decoded.events[0]
    assert (first.kind, first.command, first.size, first.crc_ok, first.offset) == (
        Kind.FRAME,
        "SET_APPCONF",
        168,
        False,
        0,
    )
    garbage = decoded.of_kind(Kind.GARBAGE)
    assert garbage[0].offset == 0 and garbage[0].text == "bad CRC"
    assert sum(g.size for g in garbage) == 168
    assert decoded.frames()[-1].command == "GET_DECODED_PPM" and decoded.frames()[-1].crc_ok
    assert [r.command for r in verdict(decoded).crc_errors] == ["SET_APPCONF"]


def test_every_byte_is_accounted_for_per_direction() -> None:
    rng = random.Random(7)
    tx, rx = bytearray(), bytearray()
    lines = []
    for i in range(40):
        data = rng.choice([POLL, FW_VERSION, rng.randbytes(rng.randint(1, 12))])
        (tx if i % 2 else rx).extend(data)
        lines.append(("tx: " if i % 2 else "rx: ") + data.hex(" "))
    decoded = decode_log("\n".join(lines), to_esc="tx")
    for role, stream in ((Role.TO_ESC, tx), (Role.TO_HOST, rx)):
        rows = [e for e in decoded.events if e.role == role and (e.kind != Kind.FRAME or e.crc_ok)]
        assert sum(e.size for e in rows) == len(stream)
        assert sorted(e.offset or 0 for e in rows) == [e.offset for e in rows]  # in stream order


def test_unanswered_requests_per_session() -> None:
    reply = frame(c.FwVersionReply(3, 40, "410", bytes(12)))
    can = frame(c.ForwardCan(2, c.encode(c.FwVersionRequest(), V340)))
    log = "\n".join(
        [
            f"tx: {FW_VERSION.hex()}",
            f"rx: {reply.hex()}",
            f"tx: {FW_VERSION.hex()}",  # answered below, after another request
            f"tx: {frame(c.Alive()).hex()}",  # ALIVE is never answered
            f"rx: {reply.hex()}",
            f"tx: {can.hex()}",  # FORWARD_CAN is answered by the node's FW_VERSION: here never
            "disconnected",
            f"rx: {reply.hex()}",  # a new session's reply does not answer an old request
        ]
    )
    judged = verdict(decode_log(log))
    assert [(r.command, r.line) for r in judged.unanswered] == [("FORWARD_CAN", 6)]


def test_nothing_parsable_is_a_typed_error() -> None:
    with pytest.raises(TraceError, match=r"no hex bytes.*1, 3"):
        decode_log("hello\n\nworld\n")
    with pytest.raises(TraceError):
        decode_log("")


def test_midnight_and_dates() -> None:
    log = "\n".join(
        [
            f"[I 23:59:59.900] read: {f7_appconf_frame()[:20].hex()}(20)",
            "TCP disconnected",
            f"[I 00:00:00.100] read: {FW_VERSION.hex()}(6)",
        ]
    )
    (cut,) = verdict(decode_log(log, fw("3.40"))).cuts
    assert cut.gap_s == pytest.approx(0.2)


# --- CLI ------------------------------------------------------------------------------------------------------


def test_cli_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trace", "decode", str(CAPTURES / "f7-bridge-cut-3.40.log")]) == 0
    out = capsys.readouterr().out
    assert "-- session 2: new TCP connection 0xdd92e340 (line 21)" in out
    assert "cut SET_APPCONF" in out and "100 of 168 bytes arrived; TCP disconnected 0xbf0bb198" in out
    assert "firmware 3.40 (the FW_VERSION reply on line 5)" in out
    assert "3.29-3.40 (state machine, partial frame dropped on idle millisecond 1001):" in out
    assert "never executed: FW_VERSION (line 22), GET_DECODED_PPM x12 (lines 23-34)" in out


def test_cli_json_gives_the_same(capsys: pytest.CaptureFixture[str]) -> None:
    path = str(CAPTURES / "f7-bridge-cut-3.40.log")
    assert main(["trace", "decode", path, "--json", "--firmware", "3.40"]) == 0
    document = json.loads(capsys.readouterr().out)
    expected = json_document(*(lambda d: (d, verdict(d)))(decode_log(Path(path).read_text(), fw("3.40"))))
    assert document == json.loads(json.dumps(expected))
    assert document["firmware"] == {
        "version": "3.40",
        "source": "given",
        "generation": "3.29-3.40",
        "decoder": "state machine, partial frame dropped on idle millisecond 1001",
    }
    (cut,) = document["verdict"]["cuts"]
    assert (cut["command"], cut["arrived"], cut["expected"], cut["gap_s"]) == ("SET_APPCONF", 100, 168, 0.4)
    legacy = document["verdict"]["generations"][1]
    assert legacy["generation"] == "3.29-3.40" and legacy["never_executed"][0]["command"] == "FW_VERSION"


def test_cli_errors_are_messages(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trace", "decode", str(tmp_path / "missing.log")]) == 1
    assert "cannot read" in capsys.readouterr().err
    junk = tmp_path / "junk.log"
    junk.write_text("nothing here\n")
    assert main(["trace", "decode", str(junk)]) == 1
    assert "no hex bytes" in capsys.readouterr().err
    assert main(["trace", "decode", str(CAPTURES / "f7-bridge-3.40.log"), "--to-esc", "tx"]) == 1
    assert "no such direction word" in capsys.readouterr().err


def test_cli_bad_firmware_version_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["trace", "decode", str(CAPTURES / "f7-bridge-3.40.log"), "--firmware", "latest"])
    assert info.value.code == 2
    assert "MAJOR.MINOR" in capsys.readouterr().err


def test_rig_trace_format_of_the_builder_matches_the_link() -> None:
    """The builder's rig format is TraceEntry.line: the round trip above is the rig's real format."""
    entry = TraceEntry(1.5, "tx", POLL)
    assert rig_trace(Entry(1.5, "esc", POLL)) == entry.line()
    assert Cmd.GET_DECODED_PPM == 31 and GENERATIONS[-1].timeout_ticks is None


def test_frames_take_a_role_not_a_word() -> None:
    decoded = decode_log(f"tx: {FW_VERSION.hex()}")
    assert [f.command for f in decoded.frames(Role.TO_ESC)] == ["FW_VERSION"]
    with pytest.raises(TypeError, match="takes a Role"):
        decoded.frames("tx")  # type: ignore[arg-type]
