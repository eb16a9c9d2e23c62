"""rig.protocol.framing: vectors from the facts sheet, both decoders, resync, timeout, and a
hypothesis proof that valid frames survive any garbage around them."""

from __future__ import annotations

import os
from binascii import crc_hqx

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from rig.errors import ProtocolError
from rig.protocol.framing import (
    MAX_FRAMED,
    BadCrc,
    Discard,
    Frame,
    FrameDecoder,
    Garbage,
    LegacyFrameDecoder,
    crc16,
    encode_frame,
    encode_frame_legacy,
)

FW_VERSION = bytes.fromhex("02 01 00 00 00 03")
GET_VALUES = bytes.fromhex("02 01 04 40 84 03")


def frames_of(events: list) -> list[bytes]:
    return [e.payload for e in events if isinstance(e, Frame)]


def decode_all(decoder, data: bytes) -> list:
    return decoder.feed(data) + decoder.finish()


def crc_xmodem_bitwise(data: bytes) -> int:
    """CRC-16/XMODEM written out from its definition (poly 0x1021, init 0, no reflection, no xorout)."""
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


# --- vectors and CRC --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "wire"),
    [
        (b"\x00", "02 01 00 00 00 03"),  # FW_VERSION
        (b"\x1f", "02 01 1f e3 de 03"),  # GET_DECODED_PPM (the F7 polls)
        (b"\x04", "02 01 04 40 84 03"),  # GET_VALUES
        (b"\x1e", "02 01 1e f3 ff 03"),  # ALIVE
    ],
)
def test_known_vectors_encode_and_decode(payload: bytes, wire: str) -> None:
    frame = bytes.fromhex(wire)
    assert encode_frame(payload) == frame
    assert FrameDecoder().frames(frame) == [payload]
    assert LegacyFrameDecoder().frames(frame) == [payload]


def test_crc16_is_crc_xmodem() -> None:
    assert crc16(b"123456789") == 0x31C3  # the catalogue check value of CRC-16/XMODEM
    for byte in range(256):
        assert crc16(bytes((byte,))) == crc_xmodem_bitwise(bytes((byte,)))
    blob = os.urandom(1000)
    assert crc16(blob) == crc_xmodem_bitwise(blob) == crc_hqx(blob, 0)


# --- frame sizes ------------------------------------------------------------------------------------


def test_short_and_long_frames() -> None:
    short = encode_frame(bytes(255))
    assert short[:2] == b"\x02\xff" and len(short) == 255 + 5 and short[-1] == 0x03
    long = encode_frame(bytes(range(256)) * 2)
    assert long[:3] == b"\x03\x02\x00" and len(long) == 512 + 6 and long[-1] == 0x03
    events = FrameDecoder().feed(short + long)
    assert events == [Frame(bytes(255), False), Frame(bytes(range(256)) * 2, True)]


def test_empty_payload_is_refused_both_ways() -> None:
    with pytest.raises(ProtocolError, match="empty"):
        encode_frame(b"")
    decoder = FrameDecoder()
    events = decode_all(decoder, b"\x02\x00\x00\x00\x03" + FW_VERSION)
    assert frames_of(events) == [b"\x00"]
    assert decoder.stats.discarded[Discard.LENGTH] == 1  # only the 02 of `02 00`
    # a long frame must carry at least 255 bytes (facts sheet section 1)
    decoder = FrameDecoder()
    assert frames_of(decode_all(decoder, b"\x03\x00\x10" + FW_VERSION)) == [b"\x00"]
    assert decoder.stats.discarded[Discard.LENGTH] == 1


def test_max_payload() -> None:
    assert len(encode_frame(bytes(MAX_FRAMED))) == MAX_FRAMED + 6
    with pytest.raises(ProtocolError, match="65535"):
        encode_frame(bytes(MAX_FRAMED + 1))
    decoder = FrameDecoder(max_payload=512)  # firmware 3.48+
    assert decoder.frames(encode_frame(bytes(512))) == [bytes(512)]
    too_long = encode_frame(bytes(513))
    assert frames_of(decode_all(decoder, too_long + FW_VERSION)) == [b"\x00"]
    assert decoder.stats.discarded[Discard.LENGTH] >= 1  # `03 02 01`: 513 > 512
    assert decoder.stats.discarded_total == len(too_long)
    for bad in (0, MAX_FRAMED + 1):
        with pytest.raises(ProtocolError):
            FrameDecoder(max_payload=bad)


def test_legacy_256_byte_bug() -> None:
    payload = bytes(range(256))
    bad = encode_frame_legacy(payload)
    assert bad[:2] == b"\x02\x00" and bad[2:258] == payload and len(bad) == 261
    assert encode_frame(payload)[:3] == b"\x03\x01\x00"  # fixed framing
    for n in (255, 257):
        assert encode_frame_legacy(bytes(n)) == encode_frame(bytes(n))
    # the bug makes the frame undecodable by every decoder (length 0 is never valid)
    assert FrameDecoder().frames(bad) == []
    assert LegacyFrameDecoder().frames(bad) == []


# --- resync -----------------------------------------------------------------------------------------

BAD_CRC = bytes.fromhex("02 01 00 00 01 03")
BAD_STOP = bytes.fromhex("02 01 00 00 00 04")


@pytest.mark.parametrize(
    ("junk", "discarded"),
    [
        (b"\x55\xaa\x00", {Discard.START: 3}),
        (b"\x02\x00", {Discard.LENGTH: 1, Discard.START: 1}),
        (b"\x03\x00\xfe", {Discard.LENGTH: 1, Discard.START: 2}),  # 16-bit length below 255
        (b"\x03\x7f\xff", {Discard.LENGTH: 1, Discard.START: 2}),  # above max_payload
        # stop byte: skip the 02, then `01 00 00 00` and the 04 are not starts
        (BAD_STOP, {Discard.STOP: 1, Discard.START: 5}),
        # CRC: skip the 02; `01 00 00 01` are not starts; the 03 stop byte reads as a long frame of
        # length 0x0201 = 513 > 512 -> bad length
        (BAD_CRC, {Discard.CRC: 1, Discard.START: 4, Discard.LENGTH: 1}),
    ],
)
def test_resync_after_each_kind_of_bad_byte(junk: bytes, discarded: dict[Discard, int]) -> None:
    decoder = FrameDecoder(max_payload=512)
    events = decoder.feed(junk + FW_VERSION + GET_VALUES)  # no finish(): nothing waits
    assert frames_of(events) == [b"\x00", b"\x04"]
    assert {k: v for k, v in decoder.stats.discarded.items() if v} == discarded
    assert decoder.stats.frames == 2 and decoder.pending == 0
    garbage = [e for e in events if isinstance(e, Garbage)]
    assert len(garbage) == 1 and garbage[0].data == junk  # one run, in front of the first frame
    assert decoder.stats.discarded_total == len(junk)


def test_stray_start_delays_frames_until_more_bytes_or_finish() -> None:
    """The facts' catch: `02 20` waits for 0x20 + 5 bytes, holding back the valid frame behind it."""
    decoder = FrameDecoder()
    assert decoder.feed(b"\x02\x20" + FW_VERSION) == []
    assert decoder.pending == 8
    events = decoder.finish()
    assert events == [Garbage(b"\x02\x20", Discard.TRUNCATED), Frame(b"\x00")]
    assert decoder.stats.discarded[Discard.TRUNCATED] == 1 and decoder.stats.discarded[Discard.START] == 1


def test_split_feeds_and_counters() -> None:
    stream = b"\xee" + FW_VERSION + BAD_CRC[:3] + b"\x11" + GET_VALUES
    decoder = FrameDecoder()
    events = [e for b in stream for e in decoder.feed(bytes((b,)))] + decoder.finish()
    assert frames_of(events) == [b"\x00", b"\x04"]
    assert decoder.stats.frames == 2
    assert decoder.stats.discarded_total == sum(len(e.data) for e in events if isinstance(e, Garbage)) == 5


def test_bad_crc_report_is_opt_in_and_does_not_change_decoding() -> None:
    stream = BAD_CRC + FW_VERSION
    plain, reporting = FrameDecoder(), FrameDecoder(report_bad_crc=True)
    assert not any(isinstance(e, BadCrc) for e in decode_all(plain, stream))
    events = decode_all(reporting, stream)
    assert events[0] == BadCrc(b"\x00", False, 0x0001)
    assert isinstance(events[1], Garbage) and events[1].reason == Discard.CRC and events[1].data[0] == 0x02
    assert frames_of(events) == [b"\x00"]
    assert reporting.stats.discarded == plain.stats.discarded


# --- receive timeout ----------------------------------------------------------------------------------


def test_receive_timeout_drops_partial_frame() -> None:
    decoder = FrameDecoder(rx_timeout_s=1.0)
    assert decoder.feed(b"\x02\x05\x01", now=0.0) == []
    assert decoder.poll(now=0.999) == [] and decoder.pending == 3
    # after 1 s of silence the partial packet is gone, and the next frame decodes at once
    assert decoder.feed(FW_VERSION, now=1.5) == [Garbage(b"\x02\x05\x01", Discard.TIMEOUT), Frame(b"\x00")]
    assert decoder.stats.discarded[Discard.TIMEOUT] == 3


def test_receive_timeout_poll_and_bytes_restart_the_timer() -> None:
    decoder = FrameDecoder(rx_timeout_s=1.0)
    decoder.feed(b"\x02\x05", now=0.0)
    decoder.feed(b"\x01", now=0.8)  # a byte within the bound restarts the timer
    assert decoder.poll(now=1.5) == []
    assert decoder.poll(now=1.8) == [Garbage(b"\x02\x05\x01", Discard.TIMEOUT)]
    assert decoder.pending == 0


def test_without_timeout_the_partial_frame_swallows_the_next_one() -> None:
    """5.03+ behaviour: nothing expires, the stale `02 05 01` eats the FW_VERSION frame."""
    decoder = FrameDecoder()
    decoder.feed(b"\x02\x05\x01", now=0.0)
    assert decoder.feed(FW_VERSION, now=100.0) == []


def test_legacy_decoder_timeout() -> None:
    decoder = LegacyFrameDecoder(rx_timeout_s=0.002)  # firmware up to 3.28
    decoder.feed(b"\x02\x05\x01", now=0.0)
    assert frames_of(decoder.feed(FW_VERSION, now=0.01)) == [b"\x00"]
    assert decoder.stats.discarded[Discard.TIMEOUT] == 3


# --- legacy vs resync -----------------------------------------------------------------------------------


def test_legacy_decoder_loses_consumed_bytes_resync_keeps_them() -> None:
    """Same input: a stray `02 05 00`, then FW_VERSION and GET_VALUES frames."""
    stream = b"\x02\x05\x00" + FW_VERSION + GET_VALUES
    resync, legacy = FrameDecoder(), LegacyFrameDecoder()
    assert frames_of(resync.feed(stream)) == [b"\x00", b"\x04"]
    # the 3.40 state machine reads `00 02 01 00 00` as payload, `00 03` as CRC and `02` as the stop
    # byte; it fails there and the 10 bytes it consumed, the FW_VERSION frame among them, are lost.
    # The rest of GET_VALUES (`01 04 40 84 03`) no longer starts with 02.
    legacy_events = decode_all(legacy, stream)
    assert frames_of(legacy_events) == []
    assert legacy.stats.discarded[Discard.STOP] == 10
    assert legacy.stats.discarded_total == len(stream)
    assert resync.stats.discarded_total == 3


def test_legacy_decoder_resumes_after_failure() -> None:
    decoder = LegacyFrameDecoder()
    assert frames_of(decode_all(decoder, BAD_CRC + FW_VERSION)) == [b"\x00"]
    assert decoder.stats.discarded[Discard.CRC] == 6
    assert frames_of(decode_all(LegacyFrameDecoder(), b"\x02\x00" + FW_VERSION)) == [b"\x00"]
    truncated = LegacyFrameDecoder()
    truncated.feed(FW_VERSION[:4])
    assert truncated.finish() == [Garbage(FW_VERSION[:4], Discard.TRUNCATED)]


# --- property: garbage never costs a valid frame ---------------------------------------------------------

garbage_bytes = st.lists(st.one_of(st.sampled_from([0x02, 0x03]), st.integers(0, 255)), max_size=40).map(bytes)
segment = st.one_of(
    st.tuples(st.just("frame"), st.binary(min_size=1, max_size=600)),
    st.tuples(st.just("garbage"), garbage_bytes),
)


def wire_size(e: Frame) -> int:
    return (3 if e.long else 2) + len(e.payload) + 3


def build_stream(segments: list[tuple[str, bytes]]) -> tuple[bytes, list[tuple[int, bytes]], list[range]]:
    """The byte stream, the (offset, payload) of each valid frame, and the garbage byte ranges."""
    stream, valid, garbage = bytearray(), [], []
    for kind, data in segments:
        at = len(stream)
        if kind == "frame":
            valid.append((at, data))
            stream += encode_frame(data)
        else:
            garbage.append(range(at, at + len(data)))
            stream += data
    return bytes(stream), valid, garbage


def check_recovery(stream: bytes, valid: list[tuple[int, bytes]], garbage: list[range], chunks: list[int]) -> int:
    """Every valid frame comes out, in order, unless a collision frame covers it.

    A collision is a frame the decoder accepted that is not one of the valid frames: garbage bytes
    (plus possibly bytes of later valid frames) that happen to form a complete frame with a right
    CRC. The firmware would accept it too, so it is not a decoder fault; the oracle checks that it
    really is such a frame, that it starts inside garbage, and excuses only the valid frames whose
    bytes it covers. Without a collision the output must equal the valid frames exactly. Returns
    the number of collisions.
    """
    decoder = FrameDecoder()
    events: list = []
    pos, i = 0, 0
    while pos < len(stream):
        size = chunks[i % len(chunks)]
        events += decoder.feed(stream[pos : pos + size])
        pos, i = pos + size, i + 1
    events += decoder.finish()
    assert decoder.pending == 0
    # nothing is silently dropped: every byte is in exactly one frame or garbage run
    offset, accepted = 0, []
    for e in events:
        if isinstance(e, Frame):
            assert stream[offset : offset + wire_size(e)] == encode_frame(e.payload)
            accepted.append((offset, e.payload, wire_size(e)))
            offset += wire_size(e)
        else:
            assert isinstance(e, Garbage) and e.data == stream[offset : offset + len(e.data)]
            offset += len(e.data)
    assert offset == len(stream)
    valid_set = set(valid)
    collisions = [(o, n) for o, p, n in accepted if (o, p) not in valid_set]
    for o, _ in collisions:
        assert any(o in g for g in garbage), "an accepted frame starts inside a valid frame"
    covered = {v for v in valid for o, n in collisions if o < v[0] + len(encode_frame(v[1])) and v[0] < o + n}
    expected = [v for v in valid if v not in covered]
    assert [(o, p) for o, p, _ in accepted if (o, p) in valid_set] == expected
    return len(collisions)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    segments=st.lists(segment, max_size=12),
    chunks=st.lists(st.integers(1, 700), min_size=1, max_size=8),
)
def test_every_valid_frame_survives_garbage(segments: list[tuple[str, bytes]], chunks: list[int]) -> None:
    if check_recovery(*build_stream(segments), chunks):
        event("collision: garbage completed a CRC-correct frame")


def test_collision_oracle_on_a_constructed_collision() -> None:
    """Garbage `02 06` + a FW_VERSION frame + garbage `crc crc 03` IS a valid 6-byte-payload frame."""
    inner = FW_VERSION
    crc = crc16(inner)
    segments = [("garbage", b"\x02\x06"), ("frame", b"\x00"), ("garbage", bytes((crc >> 8, crc & 0xFF, 3)))]
    stream, valid, garbage = build_stream(segments)
    assert FrameDecoder().frames(stream) == [inner]  # the valid frame is swallowed, as in the firmware
    assert check_recovery(stream, valid, garbage, [1]) == 1
    # and the oracle is not blind: a valid frame missing from the output (here one that is not
    # really in the stream) fails it
    with pytest.raises(AssertionError):
        check_recovery(stream, [*valid, (len(stream), b"\x00")], garbage, [1])


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=300), chunks=st.lists(st.integers(1, 50), min_size=1, max_size=5))
def test_decoders_never_raise_on_any_bytes(data: bytes, chunks: list[int]) -> None:
    for decoder in (FrameDecoder(max_payload=512), LegacyFrameDecoder(), FrameDecoder(rx_timeout_s=0.5)):
        pos, i, total = 0, 0, 0
        while pos < len(data):
            size = chunks[i % len(chunks)]
            for e in decoder.feed(data[pos : pos + size], now=float(i)):
                total += wire_size(e) if isinstance(e, Frame) else len(e.data)
            pos, i = pos + size, i + 1
        for e in decoder.finish():
            total += wire_size(e) if isinstance(e, Frame) else len(e.data)
        assert total == len(data) and decoder.pending == 0
