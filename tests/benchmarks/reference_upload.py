"""The yardstick: a firmware upload done the way the desktop tool (VESC Tool) does it.

As vesc-protocol-facts.md section 5 describes modern VESC Tool (T: vescinterface.cpp fwUpload,
commands.cpp): ERASE_NEW_APP with the raw image size (20 s timeout), then header + image in 384-byte
chunks at offsets 0, 384, ..., all-0xFF chunks skipped, strictly stop-and-wait; per chunk a 3 s
timeout and 3 tries on timeout only; a NACK aborts; the echoed offset is ignored.

Deliberately not done here:
- LZO (81) chunks: VESC Tool uses them on FW >= 3.63 where they help; neither the rig nor the
  simulator speaks LZO, so both sides send the same bytes.
- JUMP, the 500 ms sleep and the disconnect: they add a fixed time after the upload and VESC Tool
  measures no reboot, so the yardstick is the upload (erase + write). Without the jump the board
  keeps its firmware; the next update erases the buffer anyway.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from rig.client.esc import Esc
from rig.errors import CommandFailed, RigTimeout
from rig.firmware.image import Image, upload_form
from rig.protocol import codecs as c
from rig.protocol.commands import Cmd

CHUNK = 384
ERASE_TIMEOUT_S = 20.0
CHUNK_TIMEOUT_S = 3.0
TRIES = 3


@dataclass(frozen=True)
class ReferenceResult:
    """Times and counts of one reference upload."""

    erase_s: float
    write_s: float
    bytes_sent: int
    chunks_sent: int
    retries: int

    @property
    def upload_s(self) -> float:
        return self.erase_s + self.write_s


def _write(esc: Esc, offset: int, data: bytes) -> int:
    """One chunk, stop-and-wait; returns how many retries it took."""
    for attempt in range(TRIES):
        esc.send(c.WriteNewAppData(offset, data))
        try:
            reply = esc.receive(Cmd.WRITE_NEW_APP_DATA, CHUNK_TIMEOUT_S, f"WRITE_NEW_APP_DATA at {offset}")
        except RigTimeout:
            if attempt == TRIES - 1:
                raise
            continue
        assert isinstance(reply, c.WriteNewAppDataReply)
        if not reply.ok:
            raise CommandFailed(f"{esc.name} refused the chunk at offset {offset}: the desktop tool aborts")
        return attempt
    raise AssertionError("unreachable")


def reference_upload(esc: Esc, image: Image) -> ReferenceResult:
    """Erase and write `image` as VESC Tool does, on a connected ESC (FW_VERSION already read)."""
    form = upload_form(image)
    start = time.monotonic()
    esc.send(c.EraseNewApp(form.erase_size))
    reply = esc.receive(Cmd.ERASE_NEW_APP, ERASE_TIMEOUT_S)
    assert isinstance(reply, c.StatusReply)
    if not reply.ok:
        raise CommandFailed(f"{esc.name} refused ERASE_NEW_APP of {form.erase_size} bytes")
    erase_s = time.monotonic() - start
    start = time.monotonic()
    sent = chunks = retries = 0
    for offset in range(0, len(form.payload), CHUNK):
        data = form.payload[offset : offset + CHUNK]
        if data.count(0xFF) == len(data):
            continue
        retries += _write(esc, offset, data)
        sent += len(data)
        chunks += 1
    return ReferenceResult(erase_s, time.monotonic() - start, sent, chunks, retries)
