"""The simulated ESC: one STM32F405 running whatever its flash holds, with USB presence and power.

Booting reads the image descriptor at 0x08000000 (rig.sim.image); the release it names decides every
behaviour through its profile (rig.device.firmware). No valid descriptor: the board is dead (no USB). From
3.56 the firmware's own integrity record decides as on the real board (rig.device.app_image): the first
boot after an update writes it and resets once more; a later boot whose CRC fails hangs blinking red. The
device speaks the protocol through the shared codec (rig.protocol), never a copy of it.

Threading model
    Every public method takes the device's re-entrant lock, so a server thread (receive/poll), a relay
    thread (set_power) and a test (faults, hooks) may call in from different threads. Long work
    (boot, reboot, the bootloader, the watchdog wait after a fault) is a job that advances ONE step per
    ``poll()`` call (a step is at most one sector erase, one 16 KB copy chunk or 0.25 s of modelled
    time), and the lock is released between steps, so a power cut lands between steps. Command handlers
    run inside ``receive()`` and spend their modelled time there (the real firmware is busy too). CAN
    traffic goes through per-node inboxes (rig.sim.can). A server polls a device when
    :meth:`SimEsc.next_poll_at` says so (or when ``on_work`` tells it new work arrived from another
    thread); tests at speed 0 call ``run_pending()``. The callbacks ``on_usb``, ``transmit``, ``on_work``
    and ``on_bootloader_step`` are called with the lock held, from whichever thread caused the event; they
    must not block.

Timing: each frame from the host costs USB_PACKET_S (one 1 ms USB full-speed frame for the
request/response turn-around, an assumed figure); flash work costs what rig.sim.flash charges;
commands sleep as the firmware does (SET_*CONF 200 ms, *_ALL_CAN erase 1.5 s and jump 100 ms,
PING_CAN 10 ms per silent id, CAN_UPDATE_BAUD_ALL 10 x 50 ms); boot time per release.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from rig.device.app_image import FLAG_COMPUTED, app_crc, record_of, record_verifies
from rig.device.firmware import (
    APPCONF_CAN_BAUD_OFFSET,
    APPCONF_CAN_BAUD_SINCE,
    CAN_BAUD_KBITS,
    DEFAULT_CAN_BAUD,
    FIRST_BOOT_S,
    FLASH_CHECK_PASSES,
    SHUTDOWN_RPM_LIMIT,
    DecoderKind,
    FirmwareProfile,
    LispOnErase,
    UnknownFirmware,
    profile_for,
)
from rig.device.memory import APP_LIMIT as _APP_END
from rig.device.memory import (
    BOOTLOADER_BASE,
    BOOTLOADER_SECTOR,
    BOOTLOADER_SIZE,
    CCM,
    FLASH_BASE,
    NEW_APP_BASE,
    NEW_APP_SECTORS,
    SECTORS,
)
from rig.device.timing import USB_PACKET_S
from rig.device.update_format import shipped_bootloader
from rig.errors import PayloadError
from rig.protocol import codecs as c
from rig.protocol.commands import Cmd, CommandTable, FirmwareVersion
from rig.protocol.framing import (
    START_LONG,
    START_SHORT,
    Discard,
    Event,
    Frame,
    FrameDecoder,
    Garbage,
    LegacyFrameDecoder,
    encode_frame,
    encode_frame_legacy,
)
from rig.protocol.values import Values, encode_field
from rig.sim.backup import CanIdentity, CcmBackup
from rig.sim.bootloader import BootloaderRun, BootPhase
from rig.sim.bus import Region, split_store
from rig.sim.clock import DeviceClock
from rig.sim.configs import SimConfigs, with_can
from rig.sim.eeprom import EepromStore, Record
from rig.sim.errors import SimError
from rig.sim.faults import FaultSet
from rig.sim.flash import Flash
from rig.sim.image import (
    Descriptor,
    ImageKind,
    bootloader_in,
    descriptor_at,
    image_intact,
    make_bootloader_image,
    make_firmware_image,
)
from rig.sim.lisp import LispCode
from rig.sim.terminal import terminal_lines

if TYPE_CHECKING:
    from rig.sim.can import CanBus

log = logging.getLogger(__name__)
_MERGED_DISCARDS = (Discard.CRC, Discard.STOP, Discard.TIMEOUT)  # what the merge_partial fault glues together

STEP_S = 0.25  # longest modelled wait per poll step
CONFIG_WRITE_S = 0.2  # SET_*CONF sleeps 200 ms before the ack (research section 3)
ALL_CAN_ERASE_SLEEP_S = 1.5
ALL_CAN_JUMP_SLEEP_S = 0.1
PING_PER_ID_S = 0.010
BAUD_BROADCAST_S = 10 * 0.050  # CAN_UPDATE_BAUD_ALL: CAN_PACKET_UPDATE_BAUD 10 times, 50 ms apart
APP_REGION = _APP_END - FLASH_BASE  # sectors 0-7: where a firmware image may live
WRONG_SIGNATURE_XOR = 0x5A5A_5A5A
Reply = Callable[[bytes], None]
_UPDATE_MESSAGES = (c.EraseNewApp, c.WriteNewAppData, c.JumpToBootloader, c.EraseBootloader)
_BLOCKING = (c.TerminalCmd, c.PingCan, c.CanUpdateBaudAll)  # run in the blocking thread (3.51+)
_MOTOR = (c.SetRpm, c.SetCurrent)


class Mode(StrEnum):
    OFF = "off"
    BOOTING = "booting"  # reset, USB not up yet
    RUNNING = "running"  # firmware runs
    BOOTLOADER = "bootloader"
    RESETTING = "waiting for watchdog"  # faulted (e.g. jumped to an empty bootloader sector); a reset follows
    HUNG = "hung"  # faulted with no watchdog, or the flash check failed at boot (red LED): power cycle / SWD
    DEAD = "dead"  # no valid firmware in flash


@dataclass(frozen=True)
class SimEscSpec:
    """One simulated ESC: what the rack file says about it."""

    name: str
    hw: str
    fw: str
    uid: bytes
    usb_serial: str
    can_id: int = 0
    bootloader: bool = True
    faults: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if len(self.uid) != 12:
            raise SimError(f"{self.name}: the STM32 UID is 12 bytes, not {len(self.uid)}")
        if not 0 <= self.can_id <= 254:
            raise SimError(f"{self.name}: CAN id must be 0..254, not {self.can_id}")
        try:
            profile_for(self.fw)
        except UnknownFirmware as exc:
            raise SimError(f"{self.name}: {exc}") from exc


@dataclass
class _Firmware:
    """RAM state of the running firmware: lost on reset and power-off."""

    profile: FirmwareProfile
    descriptor: Descriptor
    decoder: FrameDecoder | LegacyFrameDecoder
    configs: dict[c.ConfigKind, bytes]
    lisp: LispCode
    can_backup: bool  # this build keeps the CAN id and baud in g_backup
    commands: int = 0
    stuck: bool = False
    print_to: Reply | None = None  # 3.51+: the port of the last blocking command (PRINT goes there)
    erpm: float = 0.0
    ignore_input_until: float = 0.0
    lisp_running: bool = False


class SimEsc:
    """A simulated VESC. Starts unpowered: call ``set_power(True)`` (then poll) to boot it."""

    def __init__(
        self,
        spec: SimEscSpec,
        clock: DeviceClock,
        bus: CanBus | None = None,
        flash: Flash | None = None,
        configs: SimConfigs | None = None,
    ) -> None:
        self.spec = spec
        self.clock = clock
        self.bus = bus
        self.configs = configs or SimConfigs()  # rig.sim.configs: defaults by schema, SET as the firmware does
        self.flash = flash if flash is not None else self._factory_flash(spec, clock, self.configs)
        self.eeprom = EepromStore(self.flash)
        self.ccm = CcmBackup(seed=f"{spec.name}/{spec.uid.hex()}")
        self.powered = False
        self.mode = Mode.OFF
        self.halted: str | None = None  # why the board hangs or is dead, when it does
        self.boot_run: BootloaderRun | None = None
        self.boots = 0  # resets that ran the firmware's boot (first boots after an update count twice)
        self.host_sessions = 0
        self.on_usb: Callable[[bool], None] | None = None
        self.transmit: Callable[[bytes], None] | None = None
        self.on_work: Callable[[], None] | None = None
        self.on_bootloader_step: Callable[[BootloaderRun], None] | None = None
        self._fw: _Firmware | None = None
        self._usb_present = False
        self._reenumerate = False
        self._job: Iterator[None] | None = None
        self._inbox: deque[Callable[[], None]] = deque()
        self._deferred: deque[tuple[float, bytes]] = deque()
        self._rx_bytes = 0
        self._now = 0.0
        self._lock = threading.RLock()
        self.faults = FaultSet(spec.faults, on_change=self._fault_changed)
        if bus is not None:
            bus.attach(self)

    @staticmethod
    def _factory_flash(spec: SimEscSpec, clock: DeviceClock, configs: SimConfigs) -> Flash:
        """Flash as shipped: the firmware at 0x08000000 (its integrity record not yet written: the first
        boot does that), the bootloader of its time in sector 11, default configs in the EEPROM sectors. The
        factory's programming costs the board no modelled time (it arrives programmed)."""
        version = FirmwareVersion.parse(spec.fw)
        profile = configs.profile(profile_for(version), version)
        flash = Flash(DeviceClock(0.0))
        flash.program(FLASH_BASE, make_firmware_image(spec.hw, spec.fw))
        if spec.bootloader:
            generation = shipped_bootloader(profile.release.date)
            flash.program(BOOTLOADER_BASE, make_bootloader_image(generation=generation))
        store = EepromStore(flash)
        store.format_if_invalid()  # a 0x00-filled image leaves zeros where EE_Init formats
        for kind, record in ((c.ConfigKind.MCCONF, Record.MCCONF), (c.ConfigKind.APPCONF, Record.APPCONF)):
            store.write(record, configs.default(profile, version, kind, spec.can_id))
        flash.clock = clock
        return flash

    # --- state ---------------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def can_id(self) -> int:
        return self.spec.can_id

    @property
    def running(self) -> bool:
        """The firmware runs (USB may still be down, e.g. during re-enumeration)."""
        return self.powered and self.mode == Mode.RUNNING

    @property
    def usb_up(self) -> bool:
        """Firmware running and USB enumerated."""
        return self.running and self._usb_present

    @property
    def profile(self) -> FirmwareProfile | None:
        """The profile of the running firmware (None when nothing runs)."""
        fw = self._fw
        return None if fw is None else fw.profile

    @property
    def lisp_running(self) -> bool:
        fw = self._fw
        return fw is not None and fw.lisp_running

    @property
    def busy(self) -> bool:
        """Work is pending that poll() will do now (a job, queued CAN packets, a re-enumeration)."""
        return self._job is not None or bool(self._inbox) or self._reenumerate

    def next_poll_at(self) -> float | None:
        """When poll() has work next (monotonic seconds; 0.0 = now), or None until new work arrives."""
        with self._lock:
            if self.busy:
                return 0.0
            due: list[float] = [self._deferred[0][0]] if self._deferred else []
            fw = self._fw
            if fw is not None and fw.decoder.pending and fw.decoder.rx_timeout_s is not None:
                due.append(fw.decoder.last_byte_at + fw.decoder.rx_timeout_s)
            return min(due) if due else None

    def _set_usb(self, on: bool) -> None:
        if on == self._usb_present:
            return
        self._usb_present = on
        log.info("%s: USB %s", self.name, "up" if on else "gone")
        if self.on_usb is not None:
            self.on_usb(on)

    def _work_arrived(self) -> None:
        if self.on_work is not None:
            self.on_work()

    # --- public API ----------------------------------------------------------------------------------

    def set_power(self, on: bool) -> None:
        """Power on (boot from flash, USB comes up once booted) or off (RAM and CCM lost, USB gone)."""
        with self._lock:
            if on == self.powered:
                return
            was_stuck = self._fw is not None and self._fw.stuck
            self._stop()
            self.powered = on
            if on:
                self.ccm.power_lost()
                self._job = self._boot_job()
            else:
                self.mode = Mode.OFF
            if was_stuck:
                self.faults.clear("stuck_after")  # the power cycle is the cure, once
            log.info("%s: power %s", self.name, "on" if on else "off")
            self._work_arrived()

    def reset(self) -> None:
        """MCU reset (REBOOT, watchdog, the SWD reset line): RAM lost (CCM kept), boot from flash again."""
        with self._lock:
            if not self.powered:
                return
            self._stop()
            self._job = self._boot_job()
            self._work_arrived()

    def host_disconnected(self) -> None:
        """The host closed the port or the TCP client dropped: the firmware does not notice."""
        with self._lock:
            self.host_sessions += 1
            log.info("%s: host went away; decoder state kept", self.name)

    def receive(self, data: bytes, now: float | None = None) -> None:
        """Bytes from the host over USB."""
        with self._lock:
            self._now = time.monotonic() if now is None else now
            if not self.usb_up or self._fw is None:
                return
            data = self._link_drop(data)
            fw = self._fw
            for event in fw.decoder.feed(data, self._now):
                if self._fw is not fw or not self.running:
                    break  # the firmware went away (jump, reboot) in the middle of the bytes
                self._event(event)
            if self._reenumerate:
                self._set_usb(False)

    def poll(self, now: float | None = None) -> None:
        """Timers and pending work: decoder timeout, delayed replies, CAN inbox, one job step."""
        with self._lock:
            self._now = time.monotonic() if now is None else now
            fw = self._fw
            if fw is not None and self.running:
                for event in fw.decoder.poll(self._now):
                    self._event(event)
            self._flush_deferred()
            if self._reenumerate:
                self._reenumerate = False
                self._set_usb(self.running)
            self._drain_inbox()
            job = self._job
            if job is None:
                return
            try:
                next(job)
            except StopIteration:
                if self._job is job:
                    self._job = None

    def run_pending(self, max_polls: int = 100_000) -> None:
        """Poll until no work is pending (for tests at speed 0); SimError if it never ends."""
        for _ in range(max_polls):
            if not self.busy:
                return
            self.poll()
        raise SimError(f"{self.name} still busy after {max_polls} polls")

    def can_receive(self, payload: bytes, reply: Reply | None) -> int:
        """A CAN packet for this node (from CanBus); 1 if accepted, 0 if dropped."""
        fw = self._fw
        if not self.running or fw is None or len(payload) > fw.profile.max_payload:
            return 0
        self._inbox.append(lambda: self._handle(payload, reply or _no_reply, via_can=True))
        self._work_arrived()
        return 1

    def can_reply(self, payload: bytes, reply: Reply) -> None:
        """A reply from a CAN node to a packet this node forwarded; passed on in this node's poll."""
        self._inbox.append(lambda: reply(payload))
        self._work_arrived()

    def can_update_baud(self, baud: int) -> None:
        """CAN_PACKET_UPDATE_BAUD from another node: this node sets (and stores) the CAN baud too."""

        def apply() -> None:
            fw = self._fw
            if fw is not None and fw.profile.version >= APPCONF_CAN_BAUD_SINCE:
                self._set_can_baud(fw, baud)

        self._inbox.append(apply)
        self._work_arrived()

    # --- jobs (advanced one step per poll) -----------------------------------------------------------

    def _stop(self) -> None:
        """Everything in RAM is gone: firmware state, pending work, USB."""
        self._fw = None
        self._job = None
        self._inbox.clear()
        self._deferred.clear()
        self._reenumerate = False
        self.halted = None
        self._set_usb(False)

    def _wait(self, seconds: float) -> Iterator[None]:
        while seconds > 0:
            step = min(seconds, STEP_S)
            self.clock.spend(step)
            seconds -= step
            yield

    def _halt(self, mode: Mode, why: str) -> None:
        self.mode, self.halted = mode, why
        log.warning("%s: %s: %s", self.name, mode.value, why)

    def _boot_job(self) -> Iterator[None]:
        self.mode = Mode.BOOTING
        self.boots += 1
        app = self.flash.read(FLASH_BASE, APP_REGION)
        descriptor = descriptor_at(app)
        profile = _runnable(descriptor)
        if descriptor is None or profile is None:
            self._halt(Mode.DEAD, f"no firmware at {FLASH_BASE:#x}")
            return
        profile = self.configs.profile(profile, descriptor.version)  # a version the layout table lacks: its schema
        layout = profile.image
        if layout.has_record and record_of(app, layout)[0] != FLAG_COMPUTED:
            if not image_intact(app, descriptor):
                self._halt(Mode.DEAD, "the image is not complete: no firmware runs")
                return
            yield from self._wait(FIRST_BOOT_S)
            self._conf_general_init(profile)
            self._write_integrity_record(profile)
            yield
            yield from self._boot_job()  # NVIC_SystemReset after writing the record
            return
        if layout.has_record and not record_verifies(app, layout):
            self._halt(Mode.HUNG, "FAULT_CODE_FLASH_CORRUPTION at boot: red LED blinks, no USB (needs SWD)")
            return
        if not layout.has_record and not image_intact(app, descriptor):
            self._halt(Mode.DEAD, "the image is not complete: no firmware runs")
            return
        yield from self._wait(profile.boot_s)
        identity = self._conf_general_init(profile)
        fw = _Firmware(
            profile,
            descriptor,
            self._decoder(profile),
            self._read_configs(profile, identity),
            LispCode(self.flash, profile),
            can_backup=identity is not None,
        )
        self._fw = fw
        self.mode = Mode.RUNNING
        log.info("%s: firmware %s for %s running", self.name, descriptor.version, descriptor.hw_name)
        if fw.lisp.profile.lisp_code_sector is not None and fw.lisp.record() is not None:
            self._start_lisp(fw)
        self._set_usb(True)

    def _write_integrity_record(self, profile: FirmwareProfile) -> None:
        """First boot after an update (flash_helper_verify_flash_memory): flag 0, then the CRC word."""
        at = profile.image.record_at
        assert at is not None
        self.flash.program(at, FLAG_COMPUTED.to_bytes(4, "little"), width=4)
        crc = app_crc(self.flash.read(FLASH_BASE, APP_REGION), profile.image)
        self.flash.program(at + 4, crc.to_bytes(4, "little"), width=4)
        log.info("%s: first boot of %s: integrity record written (CRC %08X), resetting", self.name, profile.name, crc)

    def _conf_general_init(self, profile: FirmwareProfile) -> CanIdentity | None:
        """EE_Init formats broken EEPROM pages; a build with the CAN backup takes g_backup from the EEPROM copy,
        else (after an update) from CCM RAM, else the defaults, and stores it back. None: no CAN backup."""
        self.eeprom.format_if_invalid()
        if not profile.can_identity_backup or "no_can_backup" in self.faults:
            return None
        identity = CanIdentity.unpack(self.eeprom.read(Record.BACKUP) or b"")
        if identity is None:
            identity = self.ccm.can() or CanIdentity(self.can_id, DEFAULT_CAN_BAUD)
            self.eeprom.write(Record.BACKUP, identity.pack())
        self.ccm.set_can(identity)
        return identity

    def _read_configs(self, profile: FirmwareProfile, identity: CanIdentity | None) -> dict[c.ConfigKind, bytes]:
        configs = {}
        for kind, record in ((c.ConfigKind.MCCONF, Record.MCCONF), (c.ConfigKind.APPCONF, Record.APPCONF)):
            stored = self.eeprom.read(record)
            if stored is not None and len(stored) == profile.config(kind).size:
                configs[kind] = stored
                continue
            configs[kind] = self.configs.default(profile, profile.version, kind, self.can_id)
            if kind == c.ConfigKind.APPCONF and identity is not None:  # defaults, then id and baud from g_backup
                configs[kind] = with_can(configs[kind], identity)
        return configs

    def _jump_job(self, profile: FirmwareProfile) -> Iterator[None]:
        found = bootloader_in(self.flash.read(BOOTLOADER_BASE, BOOTLOADER_SIZE))
        if found.generation is None:
            yield from self._no_bootloader(profile)
            return
        me = self._job
        self.mode = Mode.BOOTLOADER
        run = self.boot_run = BootloaderRun(
            self.flash, found.generation, force_reject="bootloader_rejects" in self.faults
        )
        for phase in run.steps():
            if self.on_bootloader_step is not None:
                self.on_bootloader_step(run)
            if self._job is not me:
                return  # the hook cut the power or reset the MCU
            if found.damaged and phase == BootPhase.COPY:
                self._halt(Mode.DEAD, "the damaged bootloader crashed after erasing the app (an assumption)")
                return
            at = self.faults.get("reset_during_copy", "at")
            if at is not None and phase == BootPhase.COPY and run.fraction >= at:
                log.warning("%s: power lost during the bootloader copy (%.0f %% done)", self.name, run.fraction * 100)
                self.faults.clear("reset_during_copy")
                self.ccm.power_lost()
                break
            yield
        yield from self._boot_job()

    def _no_bootloader(self, profile: FirmwareProfile) -> Iterator[None]:
        """Jump into an erased sector 11: HardFault; reset as the release leaves a fault (or hang)."""
        if "no_bootloader_hangs" in self.faults:
            exit_s = None
        elif "no_bootloader_returns" in self.faults:
            exit_s = self.faults.get("no_bootloader_returns", "watchdog_s")
        else:
            exit_s = profile.hard_fault_exit_s
        yield from self._hard_fault(exit_s, "no bootloader in sector 11")

    def _hard_fault(self, exit_s: float | None, why: str) -> Iterator[None]:
        if exit_s is None:
            self._halt(Mode.HUNG, f"{why}: hard fault, no watchdog armed")
            return
        self._halt(Mode.RESETTING, f"{why}: hard fault, reset after {exit_s:g} s")
        yield from self._wait(exit_s)
        yield from self._boot_job()

    def _flash_check_job(self, profile: FirmwareProfile) -> Iterator[None]:
        """The background flash check (3.56+): a changed app is seen at the end of the next full pass."""
        assert profile.flash_check_pass_s is not None
        yield from self._wait(FLASH_CHECK_PASSES * profile.flash_check_pass_s)
        if not record_verifies(self.flash.read(FLASH_BASE, APP_REGION), profile.image):
            log.warning("%s: the runtime flash check found the app changed: reset", self.name)
            self._stop()
            self._job = self._boot_job()

    # --- bytes in and out ----------------------------------------------------------------------------

    def _decoder(self, profile: FirmwareProfile) -> FrameDecoder | LegacyFrameDecoder:
        timeout = self.faults.get("rx_timeout", "timeout_s")
        timeout = profile.rx_timeout_s if timeout is None else timeout
        kind = LegacyFrameDecoder if profile.decoder == DecoderKind.LEGACY else FrameDecoder
        return kind(profile.max_payload, timeout)

    def _link_drop(self, data: bytes) -> bytes:
        """Fault link_drop: after N bytes from the host the link drops (once) and re-enumerates."""
        after = self.faults.get("link_drop", "after_bytes")
        if after is None:
            return data
        allowed = max(0, after - self._rx_bytes)
        self._rx_bytes += len(data)
        if len(data) < allowed:
            return data
        log.info("%s: link drops after %d bytes from the host", self.name, after)
        self.faults.clear("link_drop")
        self._rx_bytes = 0
        self._reenumerate = True
        return data[:allowed]

    def _event(self, event: Event) -> None:
        if isinstance(event, Frame):
            self.clock.spend(USB_PACKET_S)
            self._handle(event.payload, self._reply_usb, via_can=False)
        elif isinstance(event, Garbage) and "merge_partial" in self.faults and event.reason in _MERGED_DISCARDS:
            self._merge_partial(event.data)

    def _reply_usb(self, payload: bytes) -> None:
        fw = self._fw
        if fw is None or not self.usb_up or "link_stall" in self.faults:
            return
        frame = bytearray((encode_frame_legacy if fw.profile.legacy_tx_framing else encode_frame)(payload))
        index = self.faults.get("link_corrupt", "index")
        if index is not None:
            frame[min(index, len(frame) - 1)] ^= 0xFF
        delay = self.faults.get("link_slow", "delay_s")
        if delay is not None or self._deferred:
            self._deferred.append((self._now + (delay or 0.0), bytes(frame)))
            return
        self._emit(bytes(frame))

    def _emit(self, frame: bytes) -> None:
        if self.transmit is not None and self.usb_up:
            self.transmit(frame)

    def _flush_deferred(self) -> None:
        while self._deferred and self._deferred[0][0] <= self._now:
            self._emit(self._deferred.popleft()[1])

    def _drain_inbox(self) -> None:
        while self._inbox:
            work = self._inbox.popleft()
            if self.running:
                work()

    # --- commands ------------------------------------------------------------------------------------

    def _handle(self, payload: bytes, reply: Reply, *, via_can: bool) -> None:
        fw = self._fw
        if fw is None or fw.stuck:
            return
        limit = self.faults.get("stuck_after", "commands")
        if limit is not None:
            fw.commands += 1
            if fw.commands > limit:
                log.warning("%s: stuck after %d commands (fault stuck_after)", self.name, limit)
                fw.stuck = True
                return
        table = fw.profile.commands
        try:
            message = c.decode_request(payload, table)
        except PayloadError as exc:
            log.info("%s: ignoring malformed payload %s: %s", self.name, payload[:8].hex(" "), exc)
            return
        if via_can and isinstance(message, _UPDATE_MESSAGES) and "can_peer_update_fails" in self.faults:
            log.warning("%s: ignoring %s from CAN (fault can_peer_update_fails)", self.name, type(message).__name__)
            return
        if isinstance(message, _BLOCKING) or not fw.profile.print_to_last_blocking:
            fw.print_to = reply

        def send(answer: c.Message) -> None:
            reply(c.encode(answer, table))

        if isinstance(message, _MOTOR) and self._now < fw.ignore_input_until:
            return  # input ignored after MOTOR_ESTOP
        match message:
            case c.FwVersionRequest():
                send(self._fw_version(fw))
            case c.FwInfoRequest():
                send(self._fw_info(fw))
            case c.GetValues():
                send(c.ValuesReply(self._values(fw)))
            case c.GetValuesSelective(mask=mask):
                reply(self._values_selective(fw, mask))
            case c.GetConfig(kind=kind, default=default):
                now = fw.configs[kind]
                version = fw.descriptor.version
                data = self.configs.default(fw.profile, version, kind, self.can_id, now) if default else now
                send(c.ConfigReply(c.ConfigBlob(kind, self._signature(fw, kind), data), default))
            case c.SetConfig(blob=blob):
                self._set_config(fw, blob, send)
            case c.EraseNewApp(size=size, all_can=all_can):
                if all_can:
                    self._broadcast(c.EraseNewApp(size), table)
                    self.clock.spend(ALL_CAN_ERASE_SLEEP_S)
                if fw.profile.lisp_on_erase != LispOnErase.NONE:
                    fw.lisp_running = False
                send(c.StatusReply(Cmd.ERASE_NEW_APP, self._erase_new_app(size)))
            case c.WriteNewAppData(offset=offset, data=data, all_can=all_can):
                if all_can:
                    self._broadcast(c.WriteNewAppData(offset, data), table)
                if self._cpu_write(fw, NEW_APP_BASE, offset, data):
                    send(c.WriteNewAppDataReply(True, self._echo(fw, offset)))
            case c.EraseBootloader(all_can=all_can):
                if all_can:
                    self._broadcast(c.EraseBootloader(), table)
                self.flash.erase_sector(BOOTLOADER_SECTOR)
                send(c.StatusReply(Cmd.ERASE_BOOTLOADER, True))
            case c.JumpToBootloader(all_can=all_can):
                if all_can:
                    self._broadcast(c.JumpToBootloader(), table)
                    self.clock.spend(ALL_CAN_JUMP_SLEEP_S)
                self._jump(fw.profile)
            case c.Reboot():
                self.reset()
            case c.TerminalCmd(text=text):
                lines = terminal_lines(
                    fw.profile, text, uid=self.spec.uid, version=fw.descriptor.version, hw_name=fw.descriptor.hw_name
                )
                for line in lines:
                    self._print(fw, line)
            case c.ForwardCan(node_id=node_id, inner=inner):
                if self.bus is not None:
                    self.bus.send(self, node_id, inner, reply)
            case c.PingCan():
                found = self.bus.ping(self) if self.bus is not None else ()
                self.clock.spend(PING_PER_ID_S * (255 - len(found)))
                send(c.PingCanReply(found))
            case c.SetRpm(erpm=erpm):
                fw.erpm = float(erpm)
            case c.SetCurrent(amps=amps):
                if amps == 0:
                    fw.erpm = 0.0  # released: the sim has no motor that coasts
            case c.MotorEstop(ms=ms):
                fw.erpm = 0.0
                fw.ignore_input_until = self._now + ms / 1000
            case c.Shutdown(force=force, restart=restart):
                self._shutdown(fw, force=force, restart=restart)
            case c.CanUpdateBaudAll(kbits=kbits, delay_ms=delay_ms):
                send(c.StatusReply(Cmd.CAN_UPDATE_BAUD_ALL, self._can_update_baud_all(fw, kbits, delay_ms)))
            case c.LispEraseCode():
                fw.lisp_running = False
                send(c.StatusReply(Cmd.LISP_ERASE_CODE, fw.lisp.erase()))
            case c.LispWriteCode(offset=offset, data=data):
                if self._cpu_write(fw, fw.lisp.base, offset, data):
                    send(c.LispWriteCodeReply(True, offset))
            case c.LispReadCode() as ask:
                answer = fw.lisp.read(ask)
                if answer is not None:
                    send(answer)
            case c.LispSetRunning(running=running):
                ok = self._start_lisp(fw) if running else True
                if not running:
                    fw.lisp_running = False
                send(c.StatusReply(Cmd.LISP_SET_RUNNING, ok))
            case _:
                pass  # ALIVE, LISP_RMSG, other motor commands, unknown ids: nothing to answer (facts section 2)

    def _broadcast(self, message: c.Message, table: CommandTable) -> None:
        """*_ALL_CAN: the plain command to CAN id 255 as "process, no reply"."""
        if self.bus is not None:
            self.bus.send(self, 255, c.encode(message, table), None)

    def _jump(self, profile: FirmwareProfile) -> None:
        """JUMP_TO_BOOTLOADER: USB off, the firmware stops, the bootloader (or nothing) runs."""
        self._stop()
        self._job = self._jump_job(profile)

    def _erase_new_app(self, size: int) -> bool:
        """flash_helper_erase_new_app: `size + 0x08080000` in 32 bits, so a huge size wraps and erases nothing."""
        end = (NEW_APP_BASE + size) % (1 << 32)
        for sector in (SECTORS[i] for i in NEW_APP_SECTORS):
            if end <= sector.start:
                break
            self.flash.erase_sector(sector.index)
        return True

    def _cpu_write(self, fw: _Firmware, base: int, offset: int, data: bytes) -> bool:
        """Byte stores at ``base + offset`` (u32, no bounds check); False when a bus fault ended the firmware."""
        for store in split_store(base, offset, data):
            if store.region == Region.FLASH:
                self.flash.program(store.addr, store.data)
                self._watch_app_change(fw, store.addr, len(store.data))
            elif store.region == Region.CCM:
                self.ccm.bus_write(store.addr - CCM.start, store.data)
            elif store.region == Region.UNMODELLED:
                log.warning("%s: %d bytes stored at %#010x (%s)", self.name, len(store.data), store.addr, store.region)
            else:
                log.warning("%s: store at %#010x: %s", self.name, store.addr, store.region)
                self._stop()
                self._job = self._hard_fault(fw.profile.hard_fault_exit_s, f"bus fault writing {store.addr:#010x}")
                return False
        return True

    def _watch_app_change(self, fw: _Firmware, addr: int, length: int) -> None:
        """A store into the running app (the wrap into sector 0): the background check will see it."""
        record = fw.profile.image.record_at
        if record is None or fw.profile.flash_check_pass_s is None or self._job is not None:
            return
        if addr < SECTORS[0].end or SECTORS[3].start <= addr < record + 8:
            log.warning("%s: %d bytes programmed into the running app at %#010x", self.name, length, addr)
            self._job = self._flash_check_job(fw.profile)

    @staticmethod
    def _echo(fw: _Firmware, offset: int) -> int | None:
        return offset if fw.profile.write_reply_offset else None

    def _fw_version(self, fw: _Firmware) -> c.FwVersionReply:
        available: dict[str, object] = {
            "hw_name": fw.descriptor.hw_name,
            "uid": self.spec.uid,
            "pairing_done": 0,
            "test_version": fw.profile.release.test_version,
            "hw_type": 0,
            "custom_cfg_num": 0,
            "has_phase_filters": 0,
            "qml_hw": 0,
            "qml_app": 0,
            "nrf_flags": 0,
            "fw_name": "",
            "hw_conf_crc": 0,  # no hardware QML, custom config or flash QML to checksum
        }
        fields = {name: available[name] for name in fw.profile.fw_version_fields}
        version = fw.descriptor.version  # the image's own version; the profile says how it behaves
        return c.FwVersionReply(version.major, version.minor, **fields)  # type: ignore[arg-type]

    @staticmethod
    def _fw_info(fw: _Firmware) -> c.FwInfoReply:
        release = fw.profile.release
        return c.FwInfoReply(release.version.major, release.version.minor, release.test_version, release.commit, "")

    def _values(self, fw: _Firmware) -> Values:
        telemetry = {
            "temp_fet": 25.3,
            "temp_motor": 24.8,
            "current_motor": 0.0,
            "current_in": 0.0,
            "id": 0.0,
            "iq": 0.0,
            "duty": 0.0,
            "erpm": fw.erpm,
            "v_in": 24.1,
            "amp_hours": 0.0,
            "amp_hours_charged": 0.0,
            "watt_hours": 0.0,
            "watt_hours_charged": 0.0,
            "tachometer": 0,
            "tachometer_abs": 0,
            "fault": 0,
            "pid_pos": 0.0,
            "controller_id": self.can_id,  # the node's id on the simulated bus (a changed appconf does not move it)
            "temp_mos1": 25.3,
            "temp_mos2": 25.3,
            "temp_mos3": 25.3,
            "vd": 0.0,
            "vq": 0.0,
            "status": 0,
        }
        return Values(**{f.name: telemetry[f.name] for f in fw.profile.value_fields})  # type: ignore[arg-type]

    def _values_selective(self, fw: _Firmware, mask: int) -> bytes:
        """[50][mask][fields of set bits]; 3.48-3.56 also send tacho_abs for any non-zero mask."""
        values = self._values(fw)
        bug = fw.profile.selective_bit14_bug and mask != 0
        chosen = [f for f in fw.profile.value_fields if mask >> f.bit & 1 or (bug and f.bit == 14)]
        body = b"".join(encode_field(f, getattr(values, f.name)) for f in chosen)
        return bytes((fw.profile.commands.id(Cmd.GET_VALUES_SELECTIVE),)) + c.U32.pack(mask) + body

    def _signature(self, fw: _Firmware, kind: c.ConfigKind) -> int | None:
        real = fw.profile.config(kind).signature
        override = self.faults.get("config_signature", kind.value)
        if real is None or override is None:
            return real
        return override or real ^ WRONG_SIGNATURE_XOR

    def _set_config(self, fw: _Firmware, blob: c.ConfigBlob, send: Callable[[c.Message], None]) -> None:
        expected = self._signature(fw, blob.kind)
        if expected is not None and blob.signature != expected:
            self._print(fw, f"Warning: Could not set {blob.kind.value} due to wrong signature")
            return
        old, version, hw = fw.configs[blob.kind], fw.descriptor.version, fw.descriptor.hw_name
        self._store_config(fw, blob.kind, self.configs.on_set(fw.profile, version, hw, blob.kind, old, blob.data))
        self.clock.spend(CONFIG_WRITE_S)
        send(c.SetConfigAck(blob.kind))

    def _print(self, fw: _Firmware, text: str) -> None:
        """PRINT as commands_printf does: to the last blocking command's port (3.51+; nowhere before one since
        boot) or the last packet's; nothing for empty text; too long is cut and sent with its NUL."""
        if len(text) > fw.profile.print_max:
            text = text[: fw.profile.print_max] + "\0"
        if not text:
            return
        if fw.print_to is None:
            log.info("%s: PRINT dropped (no blocking command since boot): %r", self.name, text)
            return
        fw.print_to(c.encode(c.Print(text), fw.profile.commands))

    def _store_config(self, fw: _Firmware, kind: c.ConfigKind, data: bytes) -> None:
        """No length check in the firmware: a short blob leaves the old (stale) bytes after it. A build with
        the CAN backup copies controller_id and can_baud_rate into g_backup when the appconf is stored."""
        size = fw.profile.config(kind).size
        old = fw.configs[kind]
        fw.configs[kind] = (data[:size] + old[len(data) :])[:size]
        self.eeprom.write(Record.MCCONF if kind == c.ConfigKind.MCCONF else Record.APPCONF, fw.configs[kind])
        if kind == c.ConfigKind.APPCONF and fw.can_backup:
            appconf = fw.configs[kind]
            identity = CanIdentity(appconf[0], appconf[APPCONF_CAN_BAUD_OFFSET])
            self.eeprom.write(Record.BACKUP, identity.pack())
            self.ccm.set_can(identity)

    def _set_can_baud(self, fw: _Firmware, baud: int) -> None:
        appconf = bytearray(fw.configs[c.ConfigKind.APPCONF])
        appconf[APPCONF_CAN_BAUD_OFFSET] = baud
        self._store_config(fw, c.ConfigKind.APPCONF, bytes(appconf))

    def _can_update_baud_all(self, fw: _Firmware, kbits: int, delay_ms: int) -> bool:
        if kbits not in CAN_BAUD_KBITS:
            return False
        baud = CAN_BAUD_KBITS.index(kbits)
        if self.bus is not None:
            self.bus.update_baud(self, baud)
        self.clock.spend(BAUD_BROADCAST_S + max(0, delay_ms) / 1000)
        self._set_can_baud(fw, baud)
        return True

    def _shutdown(self, fw: _Firmware, *, force: bool, restart: bool) -> None:
        """COMM_SHUTDOWN: ignored while |ERPM| > 100 unless forced; restart = watchdog reset; otherwise
        do_shutdown, which is a stub on hardware without a shutdown switch (every simulated board)."""
        if abs(fw.erpm) > SHUTDOWN_RPM_LIMIT and not force:
            log.info("%s: SHUTDOWN ignored: the motor turns at %.0f ERPM", self.name, fw.erpm)
            return
        if restart:
            self.reset()

    def _start_lisp(self, fw: _Firmware) -> bool:
        """A Lisp program starts from the stored code; a package's native library may touch its NVM then."""
        if fw.lisp.record() is None:
            return False
        fw.lisp_running = True
        sector = fw.profile.package_nvm_sector
        if sector is None:
            return True
        if "package_wipes_nvm" in self.faults:
            log.warning("%s: the package calls wipe_nvm: sector %d erased", self.name, sector)
            self.flash.erase_sector(sector)
        size = self.faults.get("package_writes_nvm", "size")
        if size is not None:
            addr = SECTORS[sector].start + self.faults.get("package_writes_nvm", "addr")
            log.warning("%s: the package calls write_nvm: %d bytes at %#010x", self.name, size, addr)
            self.flash.program(addr, bytes(size))
        return True

    def _merge_partial(self, data: bytes) -> None:
        """Fault merge_partial: apply a failed SET_*CONF frame's body over the old config."""
        fw = self._fw
        if fw is None or len(data) < 4 or data[0] not in (START_SHORT, START_LONG):
            return
        head = 2 if data[0] == START_SHORT else 3
        length = int.from_bytes(data[1:head], "big")
        payload = data[head : head + length]
        table = fw.profile.commands
        kinds = {table.id(Cmd.SET_MCCONF): c.ConfigKind.MCCONF, table.id(Cmd.SET_APPCONF): c.ConfigKind.APPCONF}
        kind = kinds.get(payload[0]) if payload else None
        if kind is None:
            return
        body = payload[1 + (4 if fw.profile.signed_configs else 0) :]
        log.warning("%s: applying %d bytes of a broken SET %s frame (fault merge_partial)", self.name, len(body), kind)
        self._store_config(fw, kind, body)

    # --- faults with side effects --------------------------------------------------------------------

    def _fault_changed(self, name: str, on: bool) -> None:
        with self._lock:
            if on and name in ("no_bootloader_returns", "no_bootloader_hangs"):
                self.flash.erase_sector(BOOTLOADER_SECTOR)
            elif on and name == "link_drop":
                self._rx_bytes = 0
            elif name == "rx_timeout" and self._fw is not None:
                self._fw.decoder.rx_timeout_s = self._decoder(self._fw.profile).rx_timeout_s
            elif name == "foreign_hw_firmware":
                self._reflash_for(self.faults.get(name, "hw") if on else self.spec.hw)
            self._work_arrived()

    def _reflash_for(self, hw: str) -> None:
        """Fault foreign_hw_firmware: the app sectors rewritten with this version for `hw`, then a reset."""
        descriptor = descriptor_at(self.flash.read(FLASH_BASE, APP_REGION))
        if descriptor is None or descriptor.hw_name == hw:
            return
        for index in range(len(SECTORS)):
            if index not in NEW_APP_SECTORS and index != BOOTLOADER_SECTOR:
                self.flash.erase_sector(index)
        self.flash.program(FLASH_BASE, make_firmware_image(hw, str(descriptor.version)))
        log.warning("%s: reflashed with firmware %s for hardware %s", self.name, descriptor.version, hw)
        self.reset()


def _runnable(descriptor: Descriptor | None) -> FirmwareProfile | None:
    """How the firmware an image descriptor names behaves (by its version), or None if it is no firmware."""
    if descriptor is None or descriptor.kind != ImageKind.FIRMWARE:
        return None
    try:
        return profile_for(descriptor.version)
    except UnknownFirmware:
        return None


def _no_reply(payload: bytes) -> None:
    """CAN "process, no reply": the answer goes nowhere."""
