"""SWD programming through rig.hardware.swd and the pyocd command line, against the simulated probe on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from intelhex import IntelHex

from rig.device.memory import BOOTLOADER_BASE, FLASH_BASE, SECTORS
from rig.errors import Diagnosis, ImageError
from rig.firmware.image import flash_segments, load_for_swd
from rig.hardware.swd import (
    ConnectMode,
    SwdConfig,
    SwdConnectFailed,
    SwdProbeBusy,
    SwdProbeMissing,
    SwdSession,
    SwdTargetLocked,
    SwdVerifyMismatch,
)
from rig.hardware.swd_target import TARGET_NAME
from rig.sim.flash import Flash
from rig.sim.image import make_bootloader_image, make_firmware_image
from rig.sim.swd_probe import SimSwdProbe, SimSwdServer

PYOCD = Path(sys.executable).with_name("pyocd")
FIRMWARE = make_firmware_image("60", "6.02", size=64 * 1024)  # a checkable image: vectors, descriptor
BOOTLOADER = make_bootloader_image()


@dataclass
class Sim:
    flash: Flash
    probe: SimSwdProbe
    address: str

    def config(self, **kwargs: object) -> SwdConfig:
        fast = {"connect_attempts": 2, "attempt_bound_s": 10.0, "retry_delay_s": 0.05, "operation_bound_s": 30.0}
        return SwdConfig(self.address, **{**fast, **kwargs})  # type: ignore[arg-type]


@pytest.fixture
def sim() -> Iterator[Sim]:
    flash = Flash()
    probe = SimSwdProbe(flash)
    with SimSwdServer(probe) as server:
        yield Sim(flash, probe, server.address)


def _hex(path: Path, *segments: tuple[int, bytes]) -> Path:
    hexfile = IntelHex()
    for address, data in segments:
        hexfile.frombytes(data, offset=address)
    hexfile.write_hex_file(str(path))
    return path


# -- rig.hardware.swd -------------------------------------------------------------------------------------------


def test_program_bin_and_verify(sim: Sim, tmp_path: Path) -> None:
    image = tmp_path / "fw.bin"
    image.write_bytes(FIRMWARE)
    phases: set[str] = set()
    with SwdSession(sim.config(), progress=lambda phase, _done, _total: phases.add(phase)) as swd:
        result = swd.program([(FLASH_BASE, image.read_bytes())])
    assert sim.flash.read(FLASH_BASE, len(FIRMWARE)) == FIRMWARE
    assert result.image_bytes == len(FIRMWARE) and result.programmed_bytes >= len(FIRMWARE)
    assert result.erase_s > 0 and result.program_s > 0 and result.verify_s > 0
    assert phases == {"erase", "program", "verify"}
    # Two 16 KB sectors erased at x8 (0.5 s each) and 5120 words at 16 us: spent in modelled time.
    assert sim.flash.clock.modelled_s >= 2 * 0.5 + 5120 * 16e-6


def test_program_merged_hex_writes_both_regions_only(sim: Sim, tmp_path: Path) -> None:
    image = _hex(tmp_path / "merged.hex", (FLASH_BASE, FIRMWARE), (BOOTLOADER_BASE, BOOTLOADER))
    segments = flash_segments(load_for_swd(image))
    assert [a for a, _ in segments] == [FLASH_BASE, BOOTLOADER_BASE]
    with SwdSession(sim.config()) as swd:
        swd.program(segments)
    assert sim.flash.read(FLASH_BASE, len(FIRMWARE)) == FIRMWARE
    assert sim.flash.read(BOOTLOADER_BASE, len(BOOTLOADER)) == BOOTLOADER
    assert sim.flash.is_erased(SECTORS[4].start, BOOTLOADER_BASE - SECTORS[4].start)


def test_bootloader_bin_goes_to_the_last_sector(sim: Sim, tmp_path: Path) -> None:
    image = tmp_path / "bootloader.bin"
    image.write_bytes(BOOTLOADER)
    with SwdSession(sim.config(connect_mode=ConnectMode.UNDER_RESET)) as swd:
        swd.program([(BOOTLOADER_BASE, image.read_bytes())])
    assert sim.flash.read(BOOTLOADER_BASE, len(BOOTLOADER)) == BOOTLOADER
    assert sim.flash.is_erased(FLASH_BASE, BOOTLOADER_BASE - FLASH_BASE)


def test_bin_without_address_is_refused(tmp_path: Path) -> None:
    image = tmp_path / "fw.bin"
    image.write_bytes(FIRMWARE)
    with pytest.raises(ImageError, match="a .bin goes to the firmware .* or the bootloader"):
        load_for_swd(image)


def test_mass_erase_and_sector_erase(sim: Sim) -> None:
    sim.flash.program(FLASH_BASE, bytes(0x10000))  # sectors 0-3 all zero
    with SwdSession(sim.config()) as swd:
        swd.erase(0x0800_4000, 0x8000)  # the EEPROM emulation sectors 1-2
        assert sim.flash.is_erased(0x0800_4000, 0x8000)
        assert sim.flash.read(0x0800_3FFF, 1) == b"\x00" and sim.flash.read(0x0800_C000, 1) == b"\x00"
        swd.mass_erase()
    assert sim.flash.is_erased(FLASH_BASE, 0x10_0000)


# -- the pyocd command line -----------------------------------------------------------------------------


def _pyocd(sim: Sim, tmp_path: Path, *args: str) -> None:
    script = tmp_path / "pyocd_user.py"
    script.write_text("import rig.hardware.swd_target\nrig.hardware.swd_target.register()\n")
    command = [str(PYOCD), *args, "-u", sim.address, "-t", TARGET_NAME, "--script", str(script)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 0, done.stderr + done.stdout


def test_pyocd_command_line_flash_and_mass_erase(sim: Sim, tmp_path: Path) -> None:
    image = _hex(tmp_path / "merged.hex", (FLASH_BASE, FIRMWARE), (BOOTLOADER_BASE, BOOTLOADER))
    _pyocd(sim, tmp_path, "flash", str(image))
    assert sim.flash.read(FLASH_BASE, len(FIRMWARE)) == FIRMWARE
    assert sim.flash.read(BOOTLOADER_BASE, len(BOOTLOADER)) == BOOTLOADER
    _pyocd(sim, tmp_path, "erase", "--mass")
    assert sim.flash.is_erased(FLASH_BASE, 0x10_0000)


# -- faults --------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_no_probe_at_the_address() -> None:
    started = time.monotonic()
    with pytest.raises(SwdProbeMissing) as err:
        SwdSession(SwdConfig(f"remote:127.0.0.1:{_free_port()}")).open()
    assert err.value.diagnosis is Diagnosis.SWD_PROBE_MISSING
    assert time.monotonic() - started < 5  # not retried


def test_busy_probe(sim: Sim) -> None:
    sim.probe.busy = True
    with pytest.raises(SwdProbeBusy, match="2 attempts") as err:
        SwdSession(sim.config()).open()
    assert err.value.diagnosis is Diagnosis.SWD_PROBE_BUSY


def test_probe_held_by_another_client_is_busy(sim: Sim) -> None:
    with SwdSession(sim.config()), pytest.raises(SwdProbeBusy):
        SwdSession(sim.config(connect_attempts=1)).open()
    with SwdSession(sim.config(connect_attempts=1)) as swd:  # free again once the first client closed
        swd.read(FLASH_BASE, 4)


def test_target_not_answering_fails_within_its_bound(sim: Sim) -> None:
    sim.probe.not_answering = True
    started = time.monotonic()
    with pytest.raises(SwdConnectFailed, match=r"target not answering.*bounded by 10 s") as err:
        SwdSession(sim.config()).open()
    assert err.value.diagnosis is Diagnosis.SWD_CONNECT_FAILED
    assert time.monotonic() - started < 10


def test_firmware_holding_the_swd_pins_needs_connect_under_reset(sim: Sim, tmp_path: Path) -> None:
    sim.probe.swd_disabled_by_firmware = True
    with pytest.raises(SwdConnectFailed):
        SwdSession(sim.config()).open()
    image = tmp_path / "bootloader.bin"
    image.write_bytes(BOOTLOADER)
    with SwdSession(sim.config(connect_mode=ConnectMode.UNDER_RESET)) as swd:
        swd.program([(BOOTLOADER_BASE, image.read_bytes())])
    assert sim.flash.read(BOOTLOADER_BASE, len(BOOTLOADER)) == BOOTLOADER


def test_locked_target_then_mass_erase_unlocks(sim: Sim, tmp_path: Path) -> None:
    image = tmp_path / "fw.bin"
    image.write_bytes(FIRMWARE)
    sim.flash.locked = True
    with SwdSession(sim.config()) as swd:
        with pytest.raises(SwdTargetLocked) as err:
            swd.program([(FLASH_BASE, image.read_bytes())])
        assert err.value.diagnosis is Diagnosis.SWD_TARGET_LOCKED
        swd.mass_erase()
        swd.program([(FLASH_BASE, image.read_bytes())])
    assert not sim.flash.locked and sim.flash.read(FLASH_BASE, len(FIRMWARE)) == FIRMWARE


def test_stuck_bit_gives_verify_mismatch(sim: Sim, tmp_path: Path) -> None:
    image = tmp_path / "fw.bin"
    image.write_bytes(FIRMWARE)
    offset = next(i for i in range(1000, len(FIRMWARE)) if FIRMWARE[i] != 0xFF)
    sim.probe.target.stuck_bits[FLASH_BASE + offset] = ~FIRMWARE[offset] & 0xFF
    with SwdSession(sim.config()) as swd, pytest.raises(SwdVerifyMismatch) as err:
        swd.program([(FLASH_BASE, image.read_bytes())])
    assert err.value.address == FLASH_BASE + offset and err.value.actual == 0xFF
    assert err.value.diagnosis is Diagnosis.SWD_VERIFY_MISMATCH


class _FrozenServer:
    """Accepts connections and answers nothing until thawed; then answers every request with an error."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"remote:127.0.0.1:{self._listener.getsockname()[1]}"
        self._thawed = threading.Event()
        self._connections: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        conn, _ = self._listener.accept()
        self._connections.append(conn)
        stream = conn.makefile("rb")
        while stream.readline():
            self._thawed.wait(30)
            conn.sendall(json.dumps({"id": 0, "status": 1, "error": "frozen"}).encode() + b"\n")

    def close(self) -> None:
        self._thawed.set()
        time.sleep(0.2)  # let the abandoned client finish on the error answers
        for conn in self._connections:
            conn.close()
        self._listener.close()


def test_probe_server_that_never_answers_fails_within_the_bound() -> None:
    frozen = _FrozenServer()
    try:
        started = time.monotonic()
        config = SwdConfig(frozen.address, connect_attempts=1, attempt_bound_s=0.5)
        with pytest.raises(SwdConnectFailed, match=r"no answer within 0\.5 s"):
            SwdSession(config).open()
        assert time.monotonic() - started < 3
    finally:
        frozen.close()
