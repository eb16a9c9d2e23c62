"""Every release 3.40 .. 7.01 answers as the behaviour tables (rig.device.firmware) say it does.

For each release the simulated ESC is asked what a host sees: the FW_VERSION fields, the GET_VALUES
size, a command it has and ids it does not have, its config layouts, how its decoder treats a frame that
lacks its stop byte, and how long a partial frame survives. The expectations come from the tables; the
tables themselves are checked against the research notes in test_firmware_facts.py.
"""

from __future__ import annotations

import struct

import pytest
from simhost import Host, make

from rig.device.firmware import PROFILES, RELEASES, DecoderKind, FirmwareProfile
from rig.protocol import codecs as c
from rig.protocol.commands import Cmd
from rig.protocol.framing import encode_frame

VERSIONS = [str(r.version) for r in RELEASES]
FW_VERSION_FRAME = encode_frame(b"\x00")


def _values_size(profile: FirmwareProfile) -> int:
    return sum(struct.calcsize(f.fmt) for f in profile.value_fields)


@pytest.mark.parametrize("version", VERSIONS)
def test_each_release_answers_as_its_tables_say(version: str) -> None:
    profile = PROFILES[version]
    host = Host(make(version), version)

    reply = host.one(c.FwVersionRequest())
    assert isinstance(reply, c.FwVersionReply) and str(reply.version) == version
    sent = tuple(
        name
        for name in c.FwVersionReply._U8_FIELDS + ("hw_name", "uid", "fw_name", "hw_conf_crc")
        if getattr(reply, name) is not None
    )
    assert set(sent) == set(profile.fw_version_fields)
    if "test_version" in sent:
        assert reply.test_version == profile.release.test_version

    host.device.receive(encode_frame(bytes((profile.commands.id(Cmd.GET_VALUES),))))
    frames = host.decoder.frames(host.raw())
    assert len(frames) == 1 and len(frames[0]) == 1 + _values_size(profile)

    for kind in c.ConfigKind:
        blob = host.one(c.GetConfig(kind)).blob  # type: ignore[union-attr]
        layout = profile.config(kind)
        assert (blob.signature, len(blob.data)) == (layout.signature, layout.size)

    unknown = [i for i in range(256) if profile.commands.cmd(i) is None][:8]
    for wire_id in unknown:  # ids this release does not have: no reply, and the board still answers
        host.device.receive(encode_frame(bytes((wire_id,)) + b"\x00\x00\x00\x00"))
        assert host.replies() == []
    assert isinstance(host.one(c.FwVersionRequest()), c.FwVersionReply)


@pytest.mark.parametrize("version", VERSIONS)
def test_decoder_and_receive_timeout_per_release(version: str) -> None:
    profile = PROFILES[version]
    device = make(version)
    host = Host(device, version)
    # a frame without its stop byte, then a valid one: the 3.48+ decoder rescans and finds it, the 3.40
    # state machine takes the valid frame's first byte as the missing stop byte and loses both
    broken = FW_VERSION_FRAME[:-1]
    device.receive(broken + FW_VERSION_FRAME, now=0.0)
    found = len(host.replies())
    assert found == (1 if profile.decoder == DecoderKind.RESYNC else 0)
    device.receive(bytes(1100), now=0.0)  # a flush: the decoder is idle again

    # a partial frame survives PACKET_RX_TIMEOUT ticks and is reset on the next one (5.03+: kept forever)
    for gap_s, answered in (
        (1.000, True),
        (1.001, profile.rx_timeout_ticks is None),
        (30.0, profile.rx_timeout_s is None),
    ):
        device.receive(FW_VERSION_FRAME[:3], now=100.0)
        device.poll(now=100.0 + gap_s)
        device.receive(FW_VERSION_FRAME[3:], now=100.0 + gap_s)
        assert (len(host.replies()) == 1) is answered, (gap_s, profile.rx_timeout_ticks)
        device.receive(bytes(1100), now=200.0)


@pytest.mark.parametrize("version", [v for v in VERSIONS if PROFILES[v].commands.has(Cmd.GET_VALUES_SELECTIVE)])
def test_selective_bit_14_and_the_write_reply_per_release(version: str) -> None:
    profile = PROFILES[version]
    host = Host(make(version), version)
    host.device.receive(encode_frame(bytes((50,)) + struct.pack(">I", 1)))  # temp_fet only
    (payload,) = host.decoder.frames(host.raw())
    assert len(payload) == 1 + 4 + 2 + (4 if profile.selective_bit14_bug else 0)  # + tachometer_abs (bug)
    reply = host.one(c.WriteNewAppData(8, b"\x00"))
    assert reply == c.WriteNewAppDataReply(True, 8 if profile.write_reply_offset else None)
