"""Captured logs as the field writes them, built from real frames (the shared codecs and framing).

Each format function turns one :class:`Entry` (bytes in a direction, or a text line) into a line the way
that kind of logger prints it: a TCP/BLE bridge (``[I 14:05:45.550] read: 02a3…(20)``), a "TX:/RX:"
desktop log, Android logcat, nRF Connect, the rig's own trace, and bare hex. The F7 capture is rebuilt
from docs/failure-modes.md: a firmware 3.40 board behind a phone app's TCP bridge, a 168-byte SET_APPCONF
``02 a3 10 …`` with CRC ``10 1e`` in 20-byte pieces, polls ``02 01 1f e3 de 03``, the TCP link dropped, a
new connection sending ``02 01 00 00 00 03``.
"""

from __future__ import annotations

import random
import struct
from binascii import crc_hqx
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from rig.protocol import codecs as c
from rig.protocol.commands import Cmd, command_table, fw
from rig.protocol.framing import encode_frame
from rig.protocol.values import Values

V340 = command_table(fw("3.40"))
POLL = bytes.fromhex("02 01 1f e3 de 03")  # GET_DECODED_PPM (id 31)
FW_VERSION = bytes.fromhex("02 01 00 00 00 03")
PIECE = 20  # bytes per BLE write / bridge read

Toward = Literal["esc", "host", "note"]


@dataclass(frozen=True)
class Entry:
    """One line of a capture: seconds since midnight, where the bytes go (or a note), bytes or text."""

    t: float
    toward: Toward
    data: bytes = b""
    text: str = ""


def clock(t: float) -> str:
    hours, rest = divmod(t, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{int(hours):02d}:{int(minutes):02d}:{seconds:06.3f}"


# --- formats ---------------------------------------------------------------------------------------


def bridge(e: Entry) -> str:
    """A TCP bridge: it *reads* what the app sends to the ESC and *writes* the ESC's answers to the app."""
    if e.toward == "note":
        return f"[I {clock(e.t)}] {e.text}"
    word = "read" if e.toward == "esc" else "write"
    return f"[I {clock(e.t)}] {word}: {e.data.hex()}({len(e.data)})"


def txrx(e: Entry) -> str:
    stamp = f"2024-05-01 {clock(e.t).replace('.', ',')}"
    if e.toward == "note":
        return f"{stamp} INFO  {e.text}"
    return f"{stamp} {'TX' if e.toward == 'esc' else 'RX'}: {e.data.hex(' ').upper()}"


def logcat(e: Entry) -> str:
    head = f"05-14 {clock(e.t)}  4321  4390"
    if e.toward == "note":
        return f"{head} I VescBle: {e.text}"
    return f"{head} D VescBle: {'TX' if e.toward == 'esc' else 'RX'}: {e.data.hex(' ')}"


def nrf(e: Entry) -> str:
    if e.toward == "note":
        return f"I\t{clock(e.t)}\t{e.text}"
    hex_dashes = "-".join(f"{b:02X}" for b in e.data)
    if e.toward == "esc":
        return f"I\t{clock(e.t)}\tData written to 6e400002-b5a3-f393-e0a9-e50e24dcca9e, value: (0x) {hex_dashes}"
    return f"I\t{clock(e.t)}\tNotification received from 6e400003-b5a3-f393-e0a9-e50e24dcca9e, value: (0x) {hex_dashes}"


def arrows(e: Entry) -> str:
    if e.toward == "note":
        return f"[{clock(e.t)}] {e.text}"
    return f"[{clock(e.t)}] {'>' if e.toward == 'esc' else '<'} " + ", ".join(f"0x{b:02x}" for b in e.data)


def rig_trace(e: Entry) -> str:
    """rig.transport.link.TraceEntry.line (times from the first entry; no notes in the rig's trace)."""
    return f"{e.t:10.6f} {'tx' if e.toward == 'esc' else 'rx'}: {e.data.hex(' ')}"


FORMATS: dict[str, Callable[[Entry], str]] = {
    "bridge": bridge,
    "txrx": txrx,
    "logcat": logcat,
    "nrf": nrf,
    "arrows": arrows,
}


def render(entries: list[Entry], fmt: Callable[[Entry], str], newline: str = "\n") -> str:
    return newline.join(fmt(e) for e in entries) + newline


# --- frames of a firmware 3.40 board ---------------------------------------------------------------


def frame(message: c.Message) -> bytes:
    return encode_frame(c.encode(message, V340))


def fw_version_reply() -> bytes:
    return frame(c.FwVersionReply(3, 40, "410", bytes.fromhex("3f0052000651353231373739")))


def ppm_reply(value: float) -> bytes:
    body = struct.pack(">ii", int(value * 1e6), 1_500_000)
    return encode_frame(bytes((V340.id(Cmd.GET_DECODED_PPM),)) + body)


def values_reply() -> bytes:
    values = Values(
        temp_fet=31.2, temp_motor=24.5, current_motor=0.0, current_in=0.0, id=0.0, iq=0.0, duty=0.0, erpm=0.0,
        v_in=41.6, amp_hours=0.0, amp_hours_charged=0.0, watt_hours=0.0, watt_hours_charged=0.0, tachometer=0,
        tachometer_abs=0, fault=0, pid_pos=0.0, controller_id=0,
    )  # fmt: skip
    return frame(c.ValuesReply(values))


def f7_appconf_frame() -> bytes:
    """The 168-byte 3.40 SET_APPCONF of the F7 capture: ``02 a3 10 00 00 00 03 e8 … 46 6a`` …, CRC ``10 1e``.

    The appconf opens with controller_id 0 and timeout_msec 1000; the first 20-byte piece ends ``46 6a``
    as in the capture; two bytes at the end are chosen so that the CRC is the capture's ``10 1e``.
    """
    blob = bytearray(random.Random(340).randbytes(162))
    blob[0:5] = bytes.fromhex("00 00 00 03 e8")
    blob[15:17] = bytes.fromhex("46 6a")
    for fill in range(0x10000):
        blob[160:162] = fill.to_bytes(2, "big")
        payload = bytes((V340.id(Cmd.SET_APPCONF),)) + bytes(blob)
        if crc_hqx(payload, 0) == 0x101E:
            break
    out = encode_frame(payload)
    assert len(out) == 168 and out[:3] == bytes.fromhex("02 a3 10") and out[-3:] == bytes.fromhex("10 1e 03")
    return out


def pieces(data: bytes, size: int = PIECE) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def f7_entries(*, cut_after: int | None = None, gap_s: float = 0.4, polls_after: int = 3) -> list[Entry]:
    """The F7 story as entries.

    ``cut_after=None``: the bridge read the whole SET_APPCONF, the ESC answered nothing after it (polls and
    the new connection's FW_VERSION unanswered). ``cut_after=N``: the TCP link dropped after N bytes of it,
    and the new connection's first bytes (FW_VERSION, then `polls_after` polls) came `gap_s` after the last
    byte of the cut frame.
    """
    t = 14 * 3600 + 5 * 60 + 31.902
    out = [Entry(t, "note", text="new TCP connection 0xbf0bb198")]
    out += [Entry(t + 0.048, "esc", FW_VERSION), Entry(t + 0.109, "host", fw_version_reply())]
    out += [Entry(t + 0.2, "note", text="Setting PositionSource.active to true")]
    out += [Entry(t + 0.35, "esc", frame(c.GetValues())), Entry(t + 0.41, "host", values_reply())]
    for i in range(3):
        out += [Entry(t + 0.5 + 0.25 * i, "esc", POLL), Entry(t + 0.53 + 0.25 * i, "host", ppm_reply(0.0))]
    appconf = f7_appconf_frame()
    sent = appconf if cut_after is None else appconf[:cut_after]
    t = 14 * 3600 + 5 * 60 + 45.550
    for i, piece in enumerate(pieces(sent)):
        out.append(Entry(t + 0.012 * i, "esc", piece))
    t = out[-1].t
    if cut_after is None:
        out += [Entry(t + 0.3 + 0.25 * i, "esc", POLL) for i in range(3)]
        out += [Entry(t + 1.0, "note", text="[NRF_LOG] <warning> app: RT TIMED OUT 1")]
        t += 1.2
    out += [Entry(t + 0.001, "note", text="TCP disconnected 0xbf0bb198")]
    t += gap_s
    out += [Entry(t - 0.002, "note", text="new TCP connection 0xdd92e340"), Entry(t, "esc", FW_VERSION)]
    out += [Entry(t + 0.25 * (i + 1), "esc", POLL) for i in range(polls_after)]
    return out


F7_CAPTURES = {
    "f7-bridge-3.40.log": (
        "# F7, rebuilt from docs/failure-modes.md: a phone app's TCP bridge in front of a firmware 3.40 board.\n"
        "# 'read' is what the bridge read from the app (to the ESC), 'write' what it wrote back (the ESC's answers).\n"
        "# The 168-byte SET_APPCONF went out in 20-byte pieces; nothing answered after it; the app reconnected.\n",
        {},
    ),
    "f7-bridge-cut-3.40.log": (
        "# F7 with the cut in the log: the TCP link dropped after 100 of the SET_APPCONF's 168 bytes, and the\n"
        "# new connection's FW_VERSION and polls came 0.4 s later (try: rig trace decode FILE).\n",
        {"cut_after": 100, "gap_s": 0.4, "polls_after": 12},
    ),
}


def f7_capture(name: str) -> str:
    """A committed F7 capture (fixtures/captures/NAME) as this module builds it: header, then CRLF lines."""
    header, options = F7_CAPTURES[name]
    return header.replace("\n", "\r\n") + render(f7_entries(**options), bridge, "\r\n")  # type: ignore[arg-type]
