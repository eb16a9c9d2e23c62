"""The simulated rack end to end: the REAL host client (rig.client.esc, rig.station.bench,
rig.firmware.update, rig.hardware.power) over the REAL pty, plus a second, independent update host written
straight from the facts sheet.

Nothing here calls the simulated device for the thing under test: faults are set and state is read
through the control socket (SimControl), everything else goes over the served pty or relay boards.
Facts: ../shared/vesc-protocol-facts.md sections 1 (framing, decoders), 3 (FW_VERSION), 4 (GET_VALUES),
5 (update, bootloader upload, CAN), 7 (config), 10 (USB).
"""

from __future__ import annotations

import binascii
import contextlib
import os
import struct
import termios
import threading
import time
from collections.abc import Callable
from pathlib import Path

import heatshrink2
import pytest
import serial

from rig.client.esc import Esc, Timeouts
from rig.errors import Diagnosis, LinkLost, RigTimeout, UpdateError
from rig.firmware.image import Image, load_bootloader, load_firmware
from rig.hardware.power import PowerChannel, SupplyOutput, power_cycle
from rig.protocol import codecs as c
from rig.protocol.commands import Cmd, fw
from rig.sim.image import make_bootloader_image, make_firmware_image
from rig.sim.serve import SimControl, SimRack
from rig.station.bench import StationRig
from rig.transport.link import Trace

MakeRig = Callable[..., StationRig]


# --- an independent host, written from the facts sheet (no rig code) --------------------------------


def frame(payload: bytes) -> bytes:
    """Facts 1: `02 LEN payload CRC 03` (or `03 LENhi LENlo ...`), CRC-16/XMODEM = binascii.crc_hqx(p, 0)."""
    head = bytes((2, len(payload))) if len(payload) < 256 else bytes((3, len(payload) >> 8, len(payload) & 0xFF))
    return head + payload + binascii.crc_hqx(payload, 0).to_bytes(2, "big") + b"\x03"


def take_payloads(buf: bytearray) -> list[bytes]:
    """Cut every complete valid frame out of `buf` (on anything invalid skip one byte, as facts 1 says)."""
    found = []
    while buf:
        if buf[0] not in (2, 3):
            del buf[0]
            continue
        head = 2 if buf[0] == 2 else 3
        if len(buf) < head:
            break
        length = buf[1] if head == 2 else buf[1] << 8 | buf[2]
        if len(buf) < head + length + 3:
            break
        payload, tail = bytes(buf[head : head + length]), buf[head + length : head + length + 3]
        if length and tail[2] == 3 and binascii.crc_hqx(payload, 0) == tail[0] << 8 | tail[1]:
            found.append(payload)
            del buf[: head + length + 3]
        else:
            del buf[0]
    return found


class FactsHost:
    """Plain pyserial on the pty: send payloads, wait (bounded) for the reply with a given id."""

    def __init__(self, port: str) -> None:
        self.ser = serial.Serial(port, 115200, timeout=0.02)
        self.buf = bytearray()

    def send(self, payload: bytes) -> None:
        self.ser.write(frame(payload))
        self.ser.flush()

    def request(self, payload: bytes, reply_id: int, bound_s: float) -> bytes:
        self.send(payload)
        deadline = time.monotonic() + bound_s
        while time.monotonic() < deadline:
            self.buf += self.ser.read(max(1, self.ser.in_waiting))
            for reply in take_payloads(self.buf):
                if reply[0] == reply_id:
                    return reply
        raise AssertionError(f"no reply {reply_id} to {payload[:1].hex()} within {bound_s} s")

    def fw_version(self) -> tuple[str, str]:
        """(version, hw_name) from [0, major, minor, hw_name NUL, ...] (facts 3)."""
        reply = self.request(b"\x00", 0, 1.0)
        return f"{reply[1]}.{reply[2]:02d}", reply[3 : reply.index(0, 3)].decode()

    def close(self) -> None:
        self.ser.close()


def facts_sheet_update(port: str, image: bytes) -> None:
    """Facts 5: erase (size without header), header u32 size + u16 CRC, 384-byte chunks at 0, 384, ...,
    all-0xFF chunks skipped, heatshrink (window 13, lookahead 5) for 393208 < size < 700000, then JUMP."""
    packed, size_field = image, len(image)
    if 393208 < len(image) < 700000:
        packed = heatshrink2.compress(image, window_sz2=13, lookahead_sz2=5)
        size_field = 0xCC << 24 | len(packed)
    blob = struct.pack(">IH", size_field, binascii.crc_hqx(packed, 0)) + packed
    host = FactsHost(port)
    try:
        major, minor = map(int, host.fw_version()[0].split("."))
        with_offset = (major, minor) >= (5, 0)  # the WRITE reply carries the offset from 5.00 (facts 5)
        assert host.request(b"\x02" + struct.pack(">I", len(image)), 2, 20.0) == b"\x02\x01"
        for offset in range(0, len(blob), 384):
            chunk = blob[offset : offset + 384]
            if chunk.count(0xFF) == len(chunk):
                continue
            reply = host.request(b"\x03" + struct.pack(">I", offset) + chunk, 3, 3.0)
            assert reply == b"\x03\x01" + (struct.pack(">I", offset) if with_offset else b""), (offset, reply)
        with contextlib.suppress(serial.SerialException, OSError, termios.error):
            host.send(b"\x01")  # JUMP_TO_BOOTLOADER: no reply; the board may drop off USB mid-write
    finally:
        host.close()


def wait_back_on(port: str, before: str, bound_s: float) -> tuple[str, str]:
    """Wait until the stable name points at a new pty, then read (version, hw_name) there."""
    deadline = time.monotonic() + bound_s
    while time.monotonic() < deadline:
        with contextlib.suppress(FileNotFoundError):  # the name is absent while USB is down
            target = os.readlink(port)
            if target != before and os.path.exists(target):
                with contextlib.suppress(AssertionError, serial.SerialException, OSError):  # still coming up
                    host = FactsHost(port)
                    try:
                        return host.fw_version()
                    finally:
                        host.close()
        time.sleep(0.02)
    raise AssertionError(f"{port} not back with a new pty within {bound_s} s")


# --- helpers -----------------------------------------------------------------------------------------


def control(sim: SimRack) -> SimControl:
    return SimControl(sim.resolved.control or "")


def port(sim: SimRack, name: str) -> str:
    path = sim.resolved.station(name).port
    assert path is not None
    return path


def firmware(tmp_path: Path, hw: str, version: str) -> Image:
    """A desktop-tool folder image: <tmp>/fw-<version>/<hw>/VESC_default.bin, loaded as the host does."""
    path = tmp_path / f"fw-{version}" / hw / "VESC_default.bin"
    path.parent.mkdir(parents=True)
    path.write_bytes(make_firmware_image(hw, version))
    return load_firmware(path, version=fw(version))


def rx_payloads(trace: Trace) -> list[bytes]:
    return take_payloads(bytearray(b"".join(e.data for e in trace.entries if e.direction == "rx")))


def tx_payloads(trace: Trace) -> list[bytes]:
    return take_payloads(bytearray(b"".join(e.data for e in trace.entries if e.direction == "tx")))


def changed_config(esc: Esc, kind: c.ConfigKind) -> c.ConfigBlob:
    """Write a config that differs from the defaults in every byte; check it reads back."""
    default = esc.get_config(kind, default=True)
    changed = c.ConfigBlob(kind, default.signature, bytes(b ^ 0x5A for b in default.data))
    esc.set_config(changed)
    assert esc.get_config(kind) == changed != default
    return changed


# --- 1. FW_VERSION and GET_VALUES per profile ----------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "version", "hw", "present", "absent", "fw_len", "values_len"),
    [
        ("esc-340", "3.40", "410", ("hw_name", "uid"), ("pairing_done",), 2 + 4 + 12, 58),
        (
            "esc-502",
            "5.02",
            "60",
            ("pairing_done", "test_version", "hw_type", "custom_cfg_num"),
            ("has_phase_filters", "fw_name"),
            2 + 3 + 12 + 4,
            58 + 6 + 8,  # 3.48: three MOS temperatures, 3.60: vd, vq
        ),
        (
            "esc-602",
            "6.02",
            "60",
            ("has_phase_filters", "qml_hw", "qml_app", "nrf_flags", "fw_name"),
            ("hw_conf_crc",),
            2 + 3 + 12 + 4 + 3 + 1 + 1,  # nrf_flags, then fw_name "" (just its NUL)
            73,  # 5.03: status
        ),
    ],
)
def test_fw_version_and_values_per_profile(
    sim_rack: SimRack,
    name: str,
    version: str,
    hw: str,
    present: tuple[str, ...],
    absent: tuple[str, ...],
    fw_len: int,
    values_len: int,
) -> None:
    station = sim_rack.resolved.station(name)
    trace = Trace()
    with Esc.open(port(sim_rack, name), trace=trace) as esc:
        info = esc.fw_version()
        values = esc.values()
    assert (str(info.version), info.hw_name, info.uid) == (version, hw, station.sim.node.uid)  # type: ignore[union-attr]
    assert all(getattr(info, f) is not None for f in present)
    assert all(getattr(info, f) is None for f in absent)
    fw_reply, values_reply = rx_payloads(trace)
    assert (len(fw_reply) - 1, len(values_reply) - 1) == (fw_len, values_len)  # bytes after the id
    assert values.v_in == pytest.approx(24.1) and values.fault == 0 and values.controller_id == 0


def test_values_selective_follows_the_mask_on_6_02(sim_rack: SimRack) -> None:
    trace = Trace()
    mask = 1 << 0 | 1 << 8  # temp_fet, v_in (facts 4: field i iff bit i)
    with Esc.open(port(sim_rack, "esc-602"), trace=trace) as esc:
        esc.fw_version()
        reply = esc.values_selective(mask)
    assert reply.mask == mask
    assert reply.values.temp_fet == pytest.approx(25.3) and reply.values.v_in == pytest.approx(24.1)
    assert reply.values.temp_motor is None and reply.values.tachometer_abs is None
    assert rx_payloads(trace)[-1][:5] == bytes((50,)) + struct.pack(">I", mask)
    assert len(rx_payloads(trace)[-1]) == 1 + 4 + 2 + 2  # id, mask, two f16 fields


# --- 2. firmware update through StationRig: new version, phase times, config wiped (F10) ---------------


@pytest.mark.parametrize(
    ("name", "hw", "new", "compressed"),
    [("esc-602", "60", "6.05", True), ("esc-340", "410", "3.48", False), ("esc-502", "60", "5.03", False)],
)
def test_update_reports_the_new_version_and_wipes_the_config(
    sim_rack: SimRack, station_rig: MakeRig, tmp_path: Path, name: str, hw: str, new: str, compressed: bool
) -> None:
    rig = station_rig(name)
    with rig.connect() as esc:
        old = str(esc.fw_version().version)
        for kind in c.ConfigKind:
            changed_config(esc, kind)
    before = os.path.realpath(port(sim_rack, name))
    result = rig.update(firmware(tmp_path, hw, new))
    assert (str(result.before.version), str(result.after.version), result.after.hw_name) == (old, new, hw)
    assert result.proof.startswith("port re-enumerated, same UID") and os.path.realpath(port(sim_rack, name)) != before
    times = result.times
    assert min(times.erase_s, times.write_s, times.boot_s, times.ready_s) > 0
    assert result.upload.compressed is compressed
    # 0xFF runs (skipped chunks) exist only in the 0xFF-filled 3.56-5.03 .bins; heatshrink leaves none either
    assert (result.upload.stats.chunks_skipped > 0) is (new == "5.03")
    with rig.connect() as esc:
        for kind in c.ConfigKind:  # the bootloader erased the EEPROM-emulation sectors: defaults again
            assert esc.get_config(kind) == esc.get_config(kind, default=True)


# --- 3. bootloader upload over USB (ERASE_BOOTLOADER), then an update works --------------------------


def test_bootloader_upload_over_usb_makes_updates_work_again(
    sim_rack: SimRack, station_rig: MakeRig, tmp_path: Path
) -> None:
    rig = station_rig("esc-602")
    image = firmware(tmp_path, "60", "6.05")
    control(sim_rack).fault("esc-602", "no_bootloader_returns")  # F1: sector 11 is blank
    with pytest.raises(UpdateError) as err:
        rig.update(image)
    assert err.value.diagnosis is Diagnosis.BOOTLOADER_MISSING  # the old firmware came back
    control(sim_rack).fault("esc-602", "no_bootloader_returns", False)

    path = tmp_path / "bootloader" / "generic.bin"
    path.parent.mkdir()
    path.write_bytes(make_bootloader_image())
    loader = load_bootloader(path)
    rig.trace = Trace()
    upload = rig.upload_bootloader(loader)
    sent = tx_payloads(rig.trace)
    assert bytes((73,)) in sent  # ERASE_BOOTLOADER (3.59+) before the writes
    writes = [p for p in sent if p[0] == 3]
    offsets = [struct.unpack(">I", p[1:5])[0] for p in writes]
    assert offsets[0] == 0x60000 and all(b - a == 384 for a, b in zip(offsets, offsets[1:], strict=False))
    assert sent.index(bytes((73,))) < sent.index(writes[0]) and not any(p[0] == 1 for p in sent)  # no JUMP
    assert upload.stats.chunks_sent + upload.stats.chunks_skipped == -(-len(loader.data) // 384)

    result = rig.update(image)
    assert str(result.after.version) == "6.05"


# --- 4. an independent update host, straight from the facts sheet -----------------------------------


@pytest.mark.parametrize(
    ("name", "hw", "new"),
    [
        ("esc-602", "60", "6.05"),  # 524280-byte 6.05 image: heatshrink; written through the 6.02 firmware
        ("esc-340", "410", "5.03"),  # 393208 bytes: uncompressed, as the 2018 bootloader of a 3.40 board needs
    ],
)
def test_independent_facts_sheet_update_brings_the_board_back_on_the_new_version(
    sim_rack: SimRack, name: str, hw: str, new: str
) -> None:
    image = make_firmware_image(hw, new)
    assert (393208 < len(image) < 700000) is (new == "6.05")
    path = port(sim_rack, name)
    before = os.readlink(path)
    facts_sheet_update(path, image)
    assert wait_back_on(path, before, 10.0) == (new, hw)


# --- 5. partial frames: the 1000 ms window of <= 5.02 versus 6.02 --------------------------------------

FW_VERSION = frame(b"\x00")  # 02 01 00 00 00 03
PARTIAL = b"\x02\x05\xaa"  # a frame announcing 5 payload bytes, only one sent
BROKEN = b"\x02\x01\xaa"  # a complete frame (1 payload byte) with a wrong CRC and stop byte
WINDOW_S = 1.0  # facts 1: 1000 ms receive timeout from 3.29 to 5.02


def answered(esc: Esc, data: bytes, bound_s: float) -> bool:
    esc.link.write(data)
    try:
        esc.receive(Cmd.FW_VERSION, bound_s)
        return True
    except RigTimeout:
        return False


def test_partial_frame_inside_and_after_the_1000_ms_window_per_profile(sim_rack: SimRack) -> None:
    """3.40 and 5.02 keep a partial frame for 1000 ms of silence, 6.02 until its bytes arrive (facts 1).

    The three stations run side by side so the windows are waited for once.
    """
    names = ("esc-340", "esc-502", "esc-602")
    escs = {name: Esc.open(port(sim_rack, name)) for name in names}
    try:
        # inside the window: the FW_VERSION bytes complete the partial frame's payload and CRC, so
        # nothing answers; waited past the window, so on 3.40/5.02 they are lost, not just delayed
        deadline = time.monotonic() + WINDOW_S + 0.2
        for esc in escs.values():
            esc.link.write(PARTIAL + FW_VERSION)
        for name, esc in escs.items():
            assert not answered(esc, b"", max(0.0, deadline - time.monotonic())), name
        # 3.40, 5.02: the timeout dropped the partial frame, the decoder is idle again
        assert answered(escs["esc-340"], FW_VERSION, 1.0) and answered(escs["esc-502"], FW_VERSION, 1.0)
        # 6.02: no timeout; `02 05` still waits for 5 + 5 bytes and has 9. The 10th completes the bogus
        # frame: bad CRC, skip one byte, rescan: the FW_VERSION inside it is found
        assert answered(escs["esc-602"], b"\x00", 1.0)
        # after the window: a partial frame followed by silence is dropped, the next request answered
        for name in ("esc-340", "esc-502"):
            escs[name].link.write(PARTIAL)
        time.sleep(WINDOW_S + 0.1)
        assert answered(escs["esc-340"], FW_VERSION, 1.0) and answered(escs["esc-502"], FW_VERSION, 1.0)
    finally:
        for esc in escs.values():
            esc.close()


@pytest.mark.parametrize(("name", "resyncs"), [("esc-340", False), ("esc-502", True), ("esc-602", True)])
def test_broken_frame_then_request_resync_only_from_3_48(sim_rack: SimRack, name: str, resyncs: bool) -> None:
    """<= 3.40 resumes after the bytes it consumed (FW_VERSION's first 3 went into the broken frame);
    3.48+ skips one byte and rescans, so the FW_VERSION after the garbage is found at once."""
    with Esc.open(port(sim_rack, name)) as esc:
        assert answered(esc, BROKEN + FW_VERSION, 0.5) is resyncs


# --- 6. CAN on the dual board ---------------------------------------------------------------------------


def test_dual_board_forwards_over_can_and_updates_all_nodes(
    sim_rack: SimRack, station_rig: MakeRig, tmp_path: Path
) -> None:
    rig = station_rig("dual-602")
    (peer,) = sim_rack.resolved.station("dual-602").sim.peers  # type: ignore[union-attr]
    with rig.connect() as esc:
        assert esc.ping_can() == (peer.can_id,)
        node = esc.can(peer.can_id)
        info = node.fw_version()
        assert (info.hw_name, str(info.version), info.uid) == ("60", "6.02", peer.uid)
        assert node.values().controller_id == peer.can_id and esc.values().controller_id == 0
    result = rig.update(firmware(tmp_path, "60", "6.05"), all_can=True)
    assert str(result.after.version) == "6.05"
    assert {n: str(v.version) for n, v in result.nodes.items()} == {peer.can_id: "6.05"}
    with rig.connect() as esc:
        assert str(esc.can(peer.can_id).fw_version().version) == "6.05"


# --- 7. power off/on with re-enumeration -------------------------------------------------------------


def test_relay_power_cycle_reenumerates_behind_the_stable_name(sim_rack: SimRack, station_rig: MakeRig) -> None:
    rig = station_rig("esc-602")
    stable = port(sim_rack, "esc-602")
    assert rig.locator.url == stable
    result = rig.power_cycle()
    assert result.proof == "port re-enumerated"
    assert result.port_before != result.port_after == os.path.realpath(stable)
    assert min(result.gone_s, result.settle_s, result.back_s, result.answer_s) > 0
    with rig.connect() as esc:
        assert str(esc.info.version) == "6.02"  # type: ignore[union-attr]


def test_dual_station_power_cycles_through_relay_and_through_its_supply(
    sim_rack: SimRack, station_rig: MakeRig
) -> None:
    rig = station_rig("dual-602")
    result = rig.power_cycle()  # the relay channel, proven by the port and by the supply current
    assert result.proof == "port re-enumerated, supply current"
    assert result.supply_current_off is not None and result.supply_current_on is not None
    assert result.supply_current_on > result.supply_current_off
    supply = rig.supply()
    assert supply is not None
    by_supply = power_cycle(
        PowerChannel(SupplyOutput(supply), 1, "psu output"),
        locator=rig.locator,
        answers=rig.answers,
        supply=supply,
        settle_s=0.1,
    )
    assert by_supply.proof == "port re-enumerated, supply current" and by_supply.port_before != by_supply.port_after
    with rig.connect() as esc:  # both nodes came back
        assert esc.ping_can() == (1,)


# --- 8. link faults as the client sees them ---------------------------------------------------------


def test_link_stall_is_a_timeout_naming_its_bound(sim_rack: SimRack, station_rig: MakeRig) -> None:
    control(sim_rack).fault("esc-602", "link_stall")
    rig = station_rig("esc-602", timeouts=Timeouts(reply=0.3))
    with pytest.raises(RigTimeout, match=r"FW_VERSION .*\(3 tries\): no answer within 0\.3 s") as err:
        rig.connect()
    assert err.value.bound_s == 0.3


def test_link_corrupt_makes_the_client_retry_an_idempotent_read(sim_rack: SimRack) -> None:
    ctl = control(sim_rack)
    ctl.fault("esc-602", "link_corrupt")
    trace = Trace()
    with Esc.open(port(sim_rack, "esc-602"), trace=trace, timeouts=Timeouts(reply=0.3)) as esc:

        def heal() -> None:  # once the first (corrupted) reply has arrived, the link heals
            deadline = time.monotonic() + 2.0
            while trace.total("rx") == 0 and time.monotonic() < deadline:
                time.sleep(0.005)
            ctl.fault("esc-602", "link_corrupt", False)

        healer = threading.Thread(target=heal)
        healer.start()
        info = esc.fw_version()
        healer.join(3.0)
    assert str(info.version) == "6.02"
    assert tx_payloads(trace) == [b"\x00", b"\x00"]  # sent twice: the retry
    good = frame(c.encode(info, esc.table))
    bad = good[:3] + bytes((good[3] ^ 0xFF,)) + good[4:]  # the fault: byte 3 of the frame XOR 0xFF
    assert b"".join(e.data for e in trace.entries if e.direction == "rx") == bad + good


def test_link_drop_is_link_lost_then_a_reconnect_works(sim_rack: SimRack, station_rig: MakeRig) -> None:
    rig = station_rig("esc-602")
    before = os.path.realpath(port(sim_rack, "esc-602"))
    with rig.connect() as esc:
        control(sim_rack).fault("esc-602", "link_drop", after_bytes=3)
        with pytest.raises(LinkLost):
            esc.values()
            esc.values()  # the link may go away just after the first request left
    with rig.connect(bound_s=5.0) as esc:
        assert esc.values().v_in == pytest.approx(24.1)
    assert os.path.realpath(port(sim_rack, "esc-602")) != before  # re-enumerated
