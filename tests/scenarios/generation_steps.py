"""Steps the firmware-generation scenarios share: LispBM packages over the protocol, the bootloader sector
over SWD, and images the simulator makes for a scenario (sim_only scenarios only).

A package here is its Lisp code record (rig.device.code_record), installed as VESC Tool's
CodeLoader.installVescPackage does: LISP_ERASE_CODE, the record in chunks with LISP_WRITE_CODE, then
LISP_SET_RUNNING 1; verified by reading the code back with LISP_READ_CODE.
"""

from __future__ import annotations

from pathlib import Path

from rig.client.esc import Esc
from rig.device.code_record import CodeRecord
from rig.device.memory import BOOTLOADER_BASE
from rig.errors import CommandFailed, Diagnosis, RigError
from rig.firmware.image import Image, load_bootloader, load_firmware
from rig.protocol import codecs as c
from rig.protocol.commands import Cmd, FirmwareVersion
from rig.station.session import StationSession

CODE_CHUNK = 384  # as VESC Tool's lispUpload
READ_CHUNK = 400
PACKAGE = CodeRecord(b"(defun blink () (loopwhile t (progn (set-io 1 1) (sleep 0.5))))\n(blink)\n" * 12)


class BootloaderDamaged(RigError):
    """The bootloader sector is not the bootloader the station should have: the next update would fail."""

    diagnosis = Diagnosis.BOOTLOADER_MISSING


def install_package(esc: Esc, package: CodeRecord = PACKAGE) -> None:
    """Erase the Lisp code, write the record in chunks, start it; CommandFailed if any step says no."""
    erased = esc.request(c.LispEraseCode(len(package.data) + 100), Cmd.LISP_ERASE_CODE, timeout_s=esc.timeouts.erase)
    if not isinstance(erased, c.StatusReply) or not erased.ok:
        raise CommandFailed(f"{esc.name} refused LISP_ERASE_CODE")
    blob = package.pack()
    for offset in range(0, len(blob), CODE_CHUNK):
        written = esc.request(c.LispWriteCode(offset, blob[offset : offset + CODE_CHUNK]), Cmd.LISP_WRITE_CODE)
        if not isinstance(written, c.LispWriteCodeReply) or not written.ok or written.offset != offset:
            raise CommandFailed(f"{esc.name} refused LISP_WRITE_CODE at {offset}: {written}")
    set_running(esc, True)


def set_running(esc: Esc, running: bool) -> None:
    started = esc.request(c.LispSetRunning(running), Cmd.LISP_SET_RUNNING)
    if not isinstance(started, c.StatusReply) or not started.ok:
        raise CommandFailed(f"{esc.name} refused LISP_SET_RUNNING {int(running)}")


def read_code(esc: Esc) -> bytes | None:
    """The Lisp code stored on the board, or None when it holds none (LISP_READ_CODE answers total 0)."""
    data, total = b"", None
    while total is None or len(data) < total:
        want = READ_CHUNK if total is None else min(READ_CHUNK, total - len(data))
        reply = esc.request(c.LispReadCode(want, len(data)), Cmd.LISP_READ_CODE, idempotent=True)
        assert isinstance(reply, c.LispCodeReply)
        if reply.total == 0:
            return None
        total = reply.total
        if total < want:  # the first request asked for more than there is: no reply would come for that
            reply = esc.request(c.LispReadCode(total, 0), Cmd.LISP_READ_CODE, idempotent=True)
            assert isinstance(reply, c.LispCodeReply)
        data += reply.data
    return data


def check_bootloader(station: StationSession, bootloader: Image) -> None:
    """Read sector 11 over SWD: BootloaderDamaged unless it starts with `bootloader` and is erased after it."""
    with station.swd() as swd:
        found = swd.read(BOOTLOADER_BASE, len(bootloader.data) + 256)
    if found[: len(bootloader.data)] != bootloader.data or found[len(bootloader.data) :].count(0xFF) != 256:
        differ = sum(a != b for a, b in zip(found, bootloader.data, strict=False))
        raise BootloaderDamaged(
            f"{station.name}: sector 11 is not the station's bootloader ({differ} bytes differ in its first "
            f"{len(bootloader.data)}): rewrite it before the next update"
        )


def sim_firmware(tmp: Path, hw: str, version: str) -> Image:
    """A simulated firmware image written and loaded as a user's file would be (sim_only scenarios)."""
    from rig.sim.image import make_firmware_image

    path = tmp / f"fw-{hw}-{version}.bin"
    path.write_bytes(make_firmware_image(hw, version))
    return load_firmware(path, hw_names=(hw,), version=FirmwareVersion.parse(version))


def sim_bootloader(tmp: Path, generation: str) -> Image:
    """A simulated bootloader of a generation ("2015" or "2022"), loaded as a user's file (sim_only)."""
    from rig.device.update_format import BootloaderGeneration
    from rig.sim.image import make_bootloader_image

    path = tmp / f"bootloader-{generation}.bin"
    path.write_bytes(make_bootloader_image(generation=BootloaderGeneration(generation)))
    return load_bootloader(path)
