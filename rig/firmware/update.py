"""Firmware and bootloader upload over the VESC protocol (facts sheet section 5).

The update is VESC Tool's: ERASE_NEW_APP sized without the header, then the 6-byte header and the
image in 384-byte chunks at offsets 0, 384, ... (all-0xFF chunks skipped, the buffer is erased),
each with a bounded timeout and up to 3 tries on timeout (a NACK aborts), then JUMP_TO_BOOTLOADER,
then wait for the board to come back and check the version it reports. A bootloader goes to offset
0x60000 after ERASE_BOOTLOADER where the firmware has it (3.59+).

Pipelining (``window`` > 1) keeps several chunks in flight. It is safe for the real firmware because
(a) one thread takes packets from the USB queue in order and answers each in order, (b) USB CDC
has flow control (the endpoint is not re-armed while the firmware's queue is full), so a sender
ahead of the firmware waits instead of losing bytes, (c) writing a chunk again writes the same bits
(programming only clears bits), so a resend after an error cannot corrupt the buffer. With ``window``
chunks of 384 bytes in flight the host stays well below the 3.40 firmware's 2048-byte USB ring.
On any error the upload falls back to stop-and-wait from the first unacknowledged chunk.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from rig.client.esc import Esc
from rig.device.memory import BOOTLOADER_OFFSET
from rig.errors import CommandFailed, Diagnosis, RigTimeout, UpdateError
from rig.events import Progress, step
from rig.firmware.image import Image, ImageKind, check_hardware, upload_form
from rig.protocol import codecs as c
from rig.protocol.commands import Cmd

log = logging.getLogger(__name__)

CHUNK = 384
TRIES = 3  # per chunk, on timeout only


@dataclass
class WriteStats:
    """What a chunked write sent."""

    bytes_total: int = 0
    bytes_sent: int = 0
    chunks_sent: int = 0
    chunks_skipped: int = 0
    resends: int = 0
    fell_back: bool = False


@dataclass
class PhaseTimes:
    """Seconds spent in each phase of an update."""

    erase_s: float = 0.0
    write_s: float = 0.0
    boot_s: float = 0.0  # jump until the port is back: bootloader copy and reboot
    ready_s: float = 0.0  # port back until FW_VERSION answers

    @property
    def total_s(self) -> float:
        return self.erase_s + self.write_s + self.boot_s + self.ready_s


@dataclass
class UploadResult:
    image: Image
    times: PhaseTimes = field(default_factory=PhaseTimes)
    stats: WriteStats = field(default_factory=WriteStats)
    compressed: bool = False


def plan_chunks(payload: bytes, *, base_offset: int = 0, chunk: int = CHUNK) -> tuple[list[tuple[int, bytes]], int]:
    """The (offset, bytes) chunks an upload sends, and how many all-0xFF chunks it skips (erased already)."""
    todo: list[tuple[int, bytes]] = []
    skipped = 0
    for i in range(0, len(payload), chunk):
        data = payload[i : i + chunk]
        if data.count(0xFF) == len(data):
            skipped += 1
        else:
            todo.append((base_offset + i, data))
    return todo, skipped


def write_chunks(
    esc: Esc,
    payload: bytes,
    *,
    base_offset: int = 0,
    chunk: int = CHUNK,
    window: int = 1,
    all_can: bool = False,
    progress: Progress | None = None,
    phase: str = "write",
) -> WriteStats:
    """Write `payload` with WRITE_NEW_APP_DATA from `base_offset`, skipping all-0xFF chunks."""
    todo, skipped = plan_chunks(payload, base_offset=base_offset, chunk=chunk)
    stats = WriteStats(bytes_total=len(payload), chunks_skipped=skipped)
    done = 0
    if window > 1:
        done = _write_pipelined(esc, todo, window, all_can, stats, progress, phase, len(payload))
    for offset, data in todo[done:]:
        _write_one(esc, offset, data, all_can, stats)
        if progress:
            progress(phase, offset - base_offset + len(data), len(payload))
    if progress:
        progress(phase, len(payload), len(payload))
    return stats


def _write_one(esc: Esc, offset: int, data: bytes, all_can: bool, stats: WriteStats) -> None:
    """Stop-and-wait write of one chunk: up to TRIES tries on timeout; a NACK aborts."""
    for attempt in range(1, TRIES + 1):
        try:
            esc.write_new_app_data(offset, data, all_can=all_can)
            stats.chunks_sent += 1
            stats.bytes_sent += len(data)
            return
        except RigTimeout:
            if attempt == TRIES:
                raise RigTimeout(
                    f"WRITE_NEW_APP_DATA at offset {offset} from {esc.name} ({TRIES} tries)", esc.timeouts.chunk
                ) from None
            stats.resends += 1
            log.info("%s: chunk at %d timed out, resending (%d/%d)", esc.name, offset, attempt, TRIES)


def _write_pipelined(
    esc: Esc,
    todo: list[tuple[int, bytes]],
    window: int,
    all_can: bool,
    stats: WriteStats,
    progress: Progress | None,
    phase: str,
    total: int,
) -> int:
    """Keep up to `window` chunks in flight; return how many were acknowledged before any error."""
    acked = 0
    sent = 0
    try:
        while acked < len(todo):
            while sent < len(todo) and sent - acked < window:
                offset, data = todo[sent]
                esc.send(c.WriteNewAppData(offset, data, all_can))
                sent += 1
            reply = esc.receive(Cmd.WRITE_NEW_APP_DATA, esc.timeouts.chunk, "WRITE_NEW_APP_DATA (pipelined)")
            assert isinstance(reply, c.WriteNewAppDataReply)
            offset, data = todo[acked]
            if not reply.ok or (reply.offset is not None and reply.offset != offset):
                raise CommandFailed(f"pipelined write at offset {offset} answered {reply}")
            acked += 1
            stats.chunks_sent += 1
            stats.bytes_sent += len(data)
            if progress:
                progress(phase, min(total, offset + len(data)), total)
    except (RigTimeout, CommandFailed) as exc:
        log.warning("%s: pipelined upload failed at chunk %d (%s); stop-and-wait from there", esc.name, acked, exc)
        stats.fell_back = True
        esc.drain(quiet_s=0.05, bound_s=esc.timeouts.chunk)  # let late replies arrive and be dropped
    return acked


def upload_firmware(
    esc: Esc, image: Image, *, all_can: bool = False, window: int = 1, progress: Progress | None = None
) -> UploadResult:
    """Erase the new-app buffer and write header + image (no jump)."""
    if image.kind != ImageKind.FIRMWARE:
        raise UpdateError(f"{image.source} is a {image.kind.value}, not firmware", diagnosis=Diagnosis.BAD_IMAGE)
    form = upload_form(image)
    result = UploadResult(image, compressed=form.compressed)
    start = time.monotonic()
    if progress:
        progress("erase", 0, form.erase_size)
    with step("erase new-app buffer", size=form.erase_size, all_can=all_can):
        esc.erase_new_app(form.erase_size, all_can=all_can)
    result.times.erase_s = time.monotonic() - start
    start = time.monotonic()
    with step("write image", bytes=len(form.payload), compressed=form.compressed, window=window):
        result.stats = write_chunks(esc, form.payload, window=window, all_can=all_can, progress=progress)
    result.times.write_s = time.monotonic() - start
    return result


def upload_bootloader(
    esc: Esc, image: Image, *, all_can: bool = False, window: int = 1, progress: Progress | None = None
) -> UploadResult:
    """Write a bootloader into sector 11 over USB (ERASE_BOOTLOADER first where the firmware has it)."""
    if image.kind != ImageKind.BOOTLOADER:
        raise UpdateError(f"{image.source} is {image.kind.value}, not a bootloader", diagnosis=Diagnosis.BAD_IMAGE)
    result = UploadResult(image)
    start = time.monotonic()
    if esc.table.has(Cmd.ERASE_BOOTLOADER):
        with step("erase bootloader sector"):
            esc.erase_bootloader(all_can=all_can)
    else:
        log.warning(
            "%s: firmware %s has no ERASE_BOOTLOADER; the write only works on a blank bootloader sector",
            esc.name,
            esc.version,
        )
    result.times.erase_s = time.monotonic() - start
    start = time.monotonic()
    with step("write bootloader", bytes=len(image.data)):
        result.stats = write_chunks(
            esc,
            image.data,
            base_offset=BOOTLOADER_OFFSET,
            window=window,
            all_can=all_can,
            progress=progress,
            phase="bootloader",
        )
    result.times.write_s = time.monotonic() - start
    return result


def jump(esc: Esc, *, all_can: bool = False) -> None:
    """JUMP_TO_BOOTLOADER and let go of the link (the board disconnects)."""
    try:
        with step("jump to bootloader", all_can=all_can):
            esc.jump_to_bootloader(all_can=all_can)
    finally:
        esc.close()


def check_update_took(before: c.FwVersionReply, after: c.FwVersionReply, image: Image) -> str:
    """F1, honestly: the version the board reports after the update against the image's; what was proven.

    With the image's version known, the board must report it; still reporting the old one is F1 (bootloader
    missing or rejected the image). With the image's version unknown, a new version proves the update; the
    same version proves nothing either way (it may be a re-flash of the same release), so the verdict says
    so and how to prove it, instead of diagnosing a missing bootloader."""
    if image.version is not None:
        if after.version == image.version:
            return f"runs {after.version}, the image's version"
        if after.version == before.version:
            raise UpdateError(
                f"update did not take: the board still reports {after.version} (expected {image.version}): "
                "bootloader missing or rejected the image. Fix: upload the bootloader over USB or SWD, then retry",
                diagnosis=Diagnosis.BOOTLOADER_MISSING,
            )
        raise UpdateError(
            f"after the update the board reports {after.version}, expected {image.version}",
            diagnosis=Diagnosis.BOOTLOADER_MISSING,
        )
    if after.version != before.version:
        return f"runs {after.version} (was {before.version}); the image's version was not given"
    return (
        f"version not proven: the board rebooted and answered, reporting {after.version} before and after, and "
        "the image's version is unknown (a re-flash of the same release looks the same as an update that did "
        "not take); prove it with --firmware-version / --version, a desktop-tool folder with a version, or an "
        "image whose version the rig can read"
    )


def guard(esc: Esc, image: Image, *, allow_wrong_hw: bool) -> c.FwVersionReply:
    """Read FW_VERSION and refuse an image for another hardware (F6) before anything is erased."""
    info = esc.fw_version()
    check_hardware(image, info.hw_name or "", allow_wrong_hw=allow_wrong_hw)
    return info


def node_versions(esc: Esc, node_ids: tuple[int, ...]) -> dict[int, c.FwVersionReply]:
    """FW_VERSION of each CAN node behind `esc`, through FORWARD_CAN."""
    return {node: esc.can(node).fw_version() for node in node_ids}


def guard_can_nodes(esc: Esc, *, allow_wrong_hw: bool = False) -> tuple[int, ...]:
    """VESC Tool's check before an all-CAN update: find the nodes; all must have this board's hardware."""
    if not esc.table.has(Cmd.ERASE_NEW_APP_ALL_CAN):
        raise UpdateError(f"firmware {esc.version} has no all-CAN update commands", diagnosis=Diagnosis.UNSUPPORTED)
    local = esc.info.hw_name if esc.info else None
    node_ids = esc.ping_can()
    for node, info in node_versions(esc, node_ids).items():
        if info.hw_name != local and not allow_wrong_hw:
            raise UpdateError(
                f"CAN node {node} is hardware {info.hw_name!r}, this board {local!r}: all nodes must have the "
                "same hardware for an all-CAN update",
                diagnosis=Diagnosis.WRONG_HARDWARE,
            )
    return node_ids


def check_nodes_agree(esc: Esc, node_ids: tuple[int, ...], local: c.FwVersionReply) -> dict[int, c.FwVersionReply]:
    """F3: every CAN node must run the version the local node runs."""
    versions = node_versions(esc, node_ids)
    differ = {node: str(info.version) for node, info in versions.items() if info.version != local.version}
    if differ:
        raise UpdateError(
            f"CAN nodes disagree: local node runs {local.version}, nodes {differ}",
            diagnosis=Diagnosis.CAN_VERSION_MISMATCH,
        )
    return versions
