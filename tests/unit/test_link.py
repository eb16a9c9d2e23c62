"""rig.transport.link.Link and rig.client.esc.Esc against a real pseudo-terminal; the test plays the device
on the master.

The Esc tests use a tiny scripted responder (not the simulator) and check only the client's own
behaviour: bounded waits that name their bound, retries for idempotent reads only, PRINT
collection, signature refusal, CAN forwarding and stale replies.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time
import tty
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from rig.captures.decode import decode_log
from rig.client.esc import Esc, Timeouts
from rig.errors import ConfigError, Diagnosis, LinkError, LinkLost, RigTimeout
from rig.protocol import codecs as c
from rig.protocol.commands import command_table, fw
from rig.protocol.framing import FrameDecoder, encode_frame
from rig.transport.link import Link

FW_VERSION = bytes.fromhex("02 01 00 00 00 03")
BOUND_S = 2.0  # every wait in these tests ends within this


@dataclass
class Pty:
    master: int
    slave: int
    path: str

    def close(self) -> None:
        for fd in (self.master, self.slave):
            if fd < 0:
                continue
            with contextlib.suppress(OSError):
                os.close(fd)


@pytest.fixture
def pty() -> Iterator[Pty]:
    master, slave = os.openpty()
    tty.setraw(slave)
    pair = Pty(master, slave, os.ttyname(slave))
    yield pair
    pair.close()


def read_master(fd: int, n: int, timeout_s: float = BOUND_S) -> bytes:
    """Read up to n bytes from the master within the bound (fewer if the bound runs out)."""
    out = b""
    deadline = time.monotonic() + timeout_s
    while len(out) < n and (left := deadline - time.monotonic()) > 0:
        if select.select([fd], [], [], left)[0]:
            try:
                chunk = os.read(fd, n - len(out))
            except OSError:  # EIO: the slave side was closed
                break
            if not chunk:
                break
            out += chunk
    return out


# --- Link ---------------------------------------------------------------------------------------------


def test_write_read_and_trace_both_directions(pty: Pty) -> None:
    with Link.open(pty.path) as link:
        link.write(FW_VERSION)
        assert read_master(pty.master, 6) == FW_VERSION
        reply = encode_frame(c.encode(c.FwVersionReply(3, 40, "410"), command_table(fw("3.40"))))
        os.write(pty.master, reply)
        got = b""
        deadline = time.monotonic() + BOUND_S
        while len(got) < len(reply) and time.monotonic() < deadline:
            got += link.read(0.2)
        assert got == reply
        assert link.read(0.05) == b""  # nothing more: an empty read within the bound
        entries = link.trace.entries
        assert [e.direction for e in entries][0] == "tx" and {e.direction for e in entries[1:]} == {"rx"}
        assert all(0 <= a.t <= b.t for a, b in zip(entries, entries[1:], strict=False))
        assert link.trace.total("tx") == 6 and link.trace.total("rx") == len(reply)
        # the trace text is what `rig trace decode` reads
        decoded = decode_log(link.trace.text())
        assert [(e.label, e.command) for e in decoded.frames()] == [("tx", "FW_VERSION"), ("rx", "FW_VERSION")]


def test_cut_after_tx_writes_exactly_n_bytes(pty: Pty) -> None:
    fired = []
    link = Link.open(pty.path)
    link.cut_after(10, "tx", action=lambda: fired.append(True))
    link.write(FW_VERSION)  # 6 of 10: passes
    with pytest.raises(LinkLost, match="cut on purpose after 10 bytes tx"):
        link.write(FW_VERSION)
    assert read_master(pty.master, 100, timeout_s=0.3) == FW_VERSION + FW_VERSION[:4]
    assert fired == [True] and not link.is_open
    assert link.trace.total("tx") == 10
    with pytest.raises(LinkLost):
        link.write(b"\x00")
    with pytest.raises(LinkLost):
        link.read(0.01)


def test_cut_after_zero_bytes(pty: Pty) -> None:
    link = Link.open(pty.path)
    link.cut_after(0)
    with pytest.raises(LinkLost):
        link.write(FW_VERSION)
    assert read_master(pty.master, 6, timeout_s=0.2) == b""


def test_cut_after_rx_passes_exactly_n_bytes(pty: Pty) -> None:
    link = Link.open(pty.path)
    link.cut_after(5, "rx")
    os.write(pty.master, FW_VERSION + FW_VERSION)
    got = b""
    with pytest.raises(LinkLost, match="after 5 bytes rx"):
        deadline = time.monotonic() + BOUND_S
        while time.monotonic() < deadline:
            got += link.read(0.2)
    assert got == FW_VERSION[:5]
    assert link.trace.total("rx") == 5


def test_vanished_device_is_link_lost(pty: Pty) -> None:
    link = Link.open(pty.path)
    os.close(pty.master)
    pty.master = -1
    with pytest.raises(LinkLost, match="lost while"):
        deadline = time.monotonic() + BOUND_S
        while time.monotonic() < deadline:
            link.read(0.1)
    assert not link.is_open
    with pytest.raises(LinkLost):
        link.write(FW_VERSION)


def test_a_device_that_stops_draining_ends_a_write_within_its_bound(pty: Pty) -> None:
    """Nobody reads the master: the pty's buffer fills, and the write ends in a timeout naming the bound
    (no tcdrain without a bound behind it)."""
    link = Link.open(pty.path)
    started = time.monotonic()
    with pytest.raises(RigTimeout, match=r"writing \d+ bytes to .*stopped taking them.*within 2 s") as caught:
        for _ in range(10_000):  # a few MB: far past any pty buffer
            link.write(bytes(1024))
    assert caught.value.diagnosis == Diagnosis.TIMEOUT
    assert time.monotonic() - started < 30  # generous: the bound is 2 s per write
    link.close()


@pytest.mark.parametrize("url", ["/dev/does-not-exist-vesc-rig", "nosuchscheme://x"])
def test_open_of_a_missing_port_is_link_error(url: str) -> None:
    with pytest.raises(LinkError, match="cannot open"):
        Link.open(url)


# --- Esc against a scripted responder -------------------------------------------------------------------

Handler = Callable[[bytes], list[bytes]]  # received payload -> payloads to send back


@dataclass
class Responder:
    """A thread on the pty master: decodes frames, records payloads, answers through `handler`."""

    fd: int
    handler: Handler
    received: list[bytes] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def send(self, payload: bytes) -> None:
        os.write(self.fd, encode_frame(payload))

    def _run(self) -> None:
        decoder = FrameDecoder()
        while not self.stop.is_set():
            if not select.select([self.fd], [], [], 0.02)[0]:
                continue
            try:
                data = os.read(self.fd, 4096)
            except OSError:
                return
            for payload in decoder.frames(data):
                self.received.append(payload)
                for answer in self.handler(payload):
                    self.send(answer)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(BOUND_S)
        assert not self.thread.is_alive()


V340, V503 = command_table(fw("3.40")), command_table(fw("5.03"))
UID = bytes(12)
FAST = Timeouts(reply=0.15, erase=0.2, chunk=0.15, ping_can=0.2, terminal_quiet=0.05)


def values_payload(table, v_in: float = 48.0) -> bytes:
    values = c.Values(**{f.name: 0 for f in c.VALUE_FIELDS[:18]} | {"v_in": v_in})
    return c.encode(c.ValuesReply(values), table)


def device_340(payload: bytes) -> list[bytes]:
    """A 3.40 board: FW_VERSION, GET_VALUES, terminal text as PRINTs, config acks."""
    match payload[0]:
        case 0:
            return [c.encode(c.FwVersionReply(3, 40, "410", UID), V340)]
        case 4:
            return [values_payload(V340)]
        case 20:
            return [c.encode(c.Print("line one"), V340), c.encode(c.Print("line two"), V340)]
        case 13 | 16:
            return [bytes((payload[0],))]
    return []


@pytest.fixture
def esc_on(pty: Pty) -> Iterator[Callable[..., tuple[Esc, Responder]]]:
    made: list[tuple[Esc, Responder]] = []

    def make(handler: Handler, **options: object) -> tuple[Esc, Responder]:
        responder = Responder(pty.master, handler)
        esc = Esc.open(pty.path, timeouts=FAST, **options)
        made.append((esc, responder))
        return esc, responder

    yield make
    for esc, responder in made:
        esc.close()
        responder.close()


def test_fw_version_switches_the_command_table(esc_on) -> None:
    esc, device = esc_on(device_340)
    info = esc.fw_version()
    assert (info.version, info.hw_name, info.uid) == (fw("3.40"), "410", UID)
    assert esc.version == fw("3.40") and esc.values().v_in == 48.0
    assert device.received == [b"\x00", b"\x04"]


def test_firmware_3_00_ids_are_used_once_known(esc_on) -> None:
    esc, device = esc_on(
        lambda p: [c.encode(c.FwVersionReply(3, 0), command_table(fw("3.00")))] if p == b"\x00" else []
    )
    esc.fw_version()
    esc.reboot()
    esc.alive()
    deadline = time.monotonic() + BOUND_S
    while len(device.received) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert device.received == [b"\x00", b"\x1c", b"\x1d"]  # REBOOT 28, ALIVE 29 on 3.00


def test_idempotent_read_is_retried_and_the_timeout_names_its_bound(esc_on) -> None:
    esc, device = esc_on(lambda p: [])
    started = time.monotonic()
    with pytest.raises(RigTimeout, match=r"GET_VALUES .*3 tries.*0\.15 s") as info:
        esc.values()
    assert info.value.bound_s == 0.15
    assert device.received == [b"\x04"] * 3
    assert time.monotonic() - started < 3 * 0.15 + 0.5


def test_retry_succeeds_when_a_later_try_is_answered(esc_on) -> None:
    asked = []

    def second_time_lucky(payload: bytes) -> list[bytes]:
        asked.append(payload)
        return [values_payload(V340, 12.5)] if len(asked) == 2 else []

    esc, device = esc_on(second_time_lucky)
    assert esc.values().v_in == 12.5
    assert device.received == [b"\x04", b"\x04"]


def test_writes_are_not_retried(esc_on) -> None:
    esc, device = esc_on(lambda p: [])
    with pytest.raises(RigTimeout, match=r"SET_APPCONF .*0\.15 s"):
        esc.set_config(c.ConfigBlob(c.ConfigKind.APPCONF, 1, b"\x01\x02"))
    with pytest.raises(RigTimeout, match=r"ERASE_NEW_APP .*0\.2 s"):
        esc.erase_new_app(1000)
    time.sleep(0.05)
    assert [p[0] for p in device.received] == [16, 2]  # one try each


def test_terminal_collects_print_text(esc_on) -> None:
    esc, device = esc_on(device_340)
    esc.fw_version()
    assert esc.terminal("hw_status") == "line one\nline two"
    assert esc.prints == ["line one", "line two"]
    assert device.received[-1] == b"\x14hw_status\x00"


def test_terminal_without_output_times_out(esc_on) -> None:
    esc, _ = esc_on(lambda p: [])
    with pytest.raises(RigTimeout, match=r"terminal output for 'faults'.*0\.15 s"):
        esc.terminal("faults")


def test_set_config_wrong_signature_is_config_error(esc_on) -> None:
    def refuses(payload: bytes) -> list[bytes]:
        if payload[0] == 13:
            return [c.encode(c.Print("Warning: Could not set mcconf due to wrong signature"), V503)]
        return []

    esc, _ = esc_on(refuses, version=fw("5.03"))
    with pytest.raises(ConfigError, match="wrong signature") as info:
        esc.set_config(c.ConfigBlob(c.ConfigKind.MCCONF, 123, bytes(8)))
    assert info.value.diagnosis == "config signature mismatch"


def test_set_config_acked(esc_on) -> None:
    esc, device = esc_on(device_340, version=fw("3.40"))
    esc.set_config(c.ConfigBlob(c.ConfigKind.APPCONF, None, b"\x05" * 10))
    assert device.received == [b"\x10" + b"\x05" * 10]


def test_can_client_wraps_in_forward_can_and_reads_unwrapped_replies(esc_on) -> None:
    def dual(payload: bytes) -> list[bytes]:
        if payload[0] == 0:  # local side
            return [c.encode(c.FwVersionReply(5, 3, "60", UID), V503)]
        if payload[:3] == b"\x22\x01\x00":  # FORWARD_CAN to node 1: FW_VERSION, answered unwrapped
            return [c.encode(c.FwVersionReply(3, 40, "60", UID), V340)]
        if payload[:3] == b"\x22\x01\x04":
            return [values_payload(V340, 36.0)]
        return []

    esc, device = esc_on(dual)
    assert esc.fw_version().version == fw("5.03")
    node = esc.can(1)
    assert node.fw_version().version == fw("3.40")
    assert node.values().v_in == 36.0
    assert (esc.version, node.version) == (fw("5.03"), fw("3.40"))
    assert device.received == [b"\x00", b"\x22\x01\x00", b"\x22\x01\x04"]
    assert node.name.endswith("CAN 1")


def test_other_replies_and_prints_before_the_answer_are_skipped(esc_on) -> None:
    def chatty(payload: bytes) -> list[bytes]:
        if payload[0] == 4:
            return [
                c.encode(c.FwVersionReply(3, 40, "410"), V340),  # not what was asked
                c.encode(c.Print("noise"), V340),
                b"\x05\x01",  # an id with no reply codec
                values_payload(V340, 24.0),
            ]
        return []

    esc, _ = esc_on(chatty, version=fw("3.40"))
    assert esc.values().v_in == 24.0
    assert esc.prints == ["noise"]


def test_stale_reply_of_the_same_command_is_not_taken_as_the_answer(esc_on, pty: Pty) -> None:
    """A late answer to an earlier, timed-out request already waits on the link."""
    esc, device = esc_on(lambda p: [values_payload(V340, 50.0)] if p[0] == 4 else [], version=fw("3.40"))
    device.send(values_payload(V340, 11.0))  # stale
    time.sleep(0.05)
    assert esc.values().v_in == 50.0


def test_link_lost_during_a_request(esc_on, pty: Pty) -> None:
    esc, device = esc_on(lambda p: [])
    device.close()
    os.close(pty.master)
    pty.master = -1
    with pytest.raises(LinkLost):
        esc.values()
