"""The simulated ESC: one STM32F405 running whatever its flash holds, with USB presence and power.

Booting reads the image descriptor at 0x08000000 (rig.sim.image); the firmware profile named there
decides every behaviour (rig.device.firmware). No valid descriptor: the board is dead (no USB). The
device speaks the protocol through the shared codec (rig.protocol), never a copy of it.

Threading model
    Every public method takes the device's re-entrant lock, so a server thread (receive/poll), a relay
    thread (set_power) and a test (faults, hooks) may call in from different threads. Long work
    (boot, reboot, the bootloader, the watchdog wait after a jump with no bootloader) is a job that
    advances ONE step per ``poll()`` call (a step is at most one sector erase, one 16 KB copy chunk or
    0.25 s of modelled time), and the lock is released between steps, so a power cut lands between
    steps. Command handlers run inside ``receive()`` and spend their modelled time there (the real
    firmware is busy too). CAN traffic goes through per-node queues (rig.sim.can). So each device,
    served or not (motor 2 of a dual board has no USB), needs someone to call ``poll()`` every
    millisecond or so: one thread per device in the server, ``run_pending()`` in tests at speed 0.
    The callbacks ``on_usb``, ``transmit`` and ``on_bootloader_step`` are called with the lock held,
    from whichever thread caused the event; they must not block.

Timing: each frame from the host costs USB_PACKET_S (one 1 ms USB full-speed frame for the
request/response turn-around, an assumed figure); flash work costs what rig.sim.flash charges;
commands sleep as the firmware does (SET_*CONF 200 ms, *_ALL_CAN erase 1.5 s and jump 100 ms,
PING_CAN 10 ms per silent id); boot time per profile.
"""

from __future__ import annotations

import logging
import struct
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

from rig.device.firmware import DecoderKind, FirmwareProfile, UnknownFirmware, profile_for
from rig.device.memory import APP_LIMIT as _APP_END
from rig.device.memory import (
    BOOTLOADER_BASE,
    BOOTLOADER_SECTOR,
    BOOTLOADER_SIZE,
    EEPROM_SECTORS,
    FLASH_BASE,
    NEW_APP_BASE,
    NEW_APP_SECTORS,
    SECTORS,
)
from rig.device.memory import contains as in_flash
from rig.device.timing import USB_PACKET_S
from rig.errors import PayloadError
from rig.protocol import codecs as c
from rig.protocol.commands import Cmd, CommandTable, FirmwareVersion
from rig.protocol.framing import (
    START_LONG,
    START_SHORT,
    Discard,
    Frame,
    FrameDecoder,
    Garbage,
    LegacyFrameDecoder,
    encode_frame,
    encode_frame_legacy,
)
from rig.protocol.values import Values, encode_field
from rig.sim.bootloader import BootloaderRun, BootPhase
from rig.sim.clock import DeviceClock
from rig.sim.configs import SimConfigs
from rig.sim.errors import SimError
from rig.sim.faults import FaultSet
from rig.sim.flash import Flash
from rig.sim.image import Descriptor, ImageKind, make_bootloader_image, make_firmware_image, read_descriptor

if TYPE_CHECKING:
    from rig.sim.can import CanBus

log = logging.getLogger(__name__)

STEP_S = 0.25  # longest modelled wait per poll step
CONFIG_WRITE_S = 0.2  # SET_*CONF sleeps 200 ms before the ack (research section 3)
ALL_CAN_ERASE_SLEEP_S = 1.5
ALL_CAN_JUMP_SLEEP_S = 0.1
PING_PER_ID_S = 0.010
APP_REGION = _APP_END - FLASH_BASE  # sectors 0-7: where a firmware image may live
WRONG_SIGNATURE_XOR = 0x5A5A_5A5A
Reply = Callable[[bytes], None]
_UPDATE_MESSAGES = (c.EraseNewApp, c.WriteNewAppData, c.JumpToBootloader, c.EraseBootloader)


class Mode(StrEnum):
    OFF = "off"
    BOOTING = "booting"  # reset, USB not up yet
    RUNNING = "running"  # firmware runs
    BOOTLOADER = "bootloader"
    RESETTING = "waiting for watchdog"  # jumped to an empty bootloader sector; the IWDG will reset
    HUNG = "hung"  # faulted with no watchdog: only a power cycle helps
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
        profile_for(self.fw)


class ConfigStore:
    """mcconf and appconf records in the EEPROM-emulation sectors (1: mcconf, 2: appconf).

    A record is ``"CF" kind u16-length u32-CRC32 data``, appended after the last one; a full sector is
    erased and the record written at its start. Erased sectors mean "no config": the firmware then
    runs on its defaults, as the real one does.
    """

    _HEAD = struct.Struct(">2sBHI")
    _MAGIC = b"CF"
    _SECTOR = {c.ConfigKind.MCCONF: EEPROM_SECTORS[0], c.ConfigKind.APPCONF: EEPROM_SECTORS[1]}
    _KIND = {c.ConfigKind.MCCONF: 1, c.ConfigKind.APPCONF: 2}

    def __init__(self, flash: Flash) -> None:
        self.flash = flash

    def _records(self, kind: c.ConfigKind) -> tuple[bytes | None, int]:
        """The newest valid record of `kind` and the offset where the next one goes."""
        sector = SECTORS[self._SECTOR[kind]]
        raw = self.flash.read(sector.start, sector.size)
        at, newest = 0, None
        while at + self._HEAD.size <= len(raw):
            magic, kind_id, length, crc = self._HEAD.unpack_from(raw, at)
            if magic != self._MAGIC:
                break
            data = raw[at + self._HEAD.size : at + self._HEAD.size + length]
            if kind_id == self._KIND[kind] and zlib.crc32(data) == crc:
                newest = data
            at += self._HEAD.size + length
        return newest, at

    def read(self, kind: c.ConfigKind) -> bytes | None:
        return self._records(kind)[0]

    def write(self, kind: c.ConfigKind, data: bytes) -> None:
        sector = SECTORS[self._SECTOR[kind]]
        _, at = self._records(kind)
        record = self._HEAD.pack(self._MAGIC, self._KIND[kind], len(data), zlib.crc32(data)) + data
        if at + len(record) > sector.size:
            self.flash.erase_sector(sector.index)
            at = 0
        self.flash.program(sector.start + at, record)


@dataclass
class _Firmware:
    """RAM state of the running firmware: lost on reset and power-off."""

    profile: FirmwareProfile
    descriptor: Descriptor
    decoder: FrameDecoder | LegacyFrameDecoder
    configs: dict[c.ConfigKind, bytes]
    commands: int = 0
    stuck: bool = False


@dataclass
class _Inbox:
    """CAN packets waiting for this node's poll: requests to run and replies to pass to the host."""

    items: deque[tuple[bool, bytes, Reply | None]] = field(default_factory=deque)


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
        self.store = ConfigStore(self.flash)
        self.powered = False
        self.mode = Mode.OFF
        self.boot_run: BootloaderRun | None = None
        self.host_sessions = 0
        self.on_usb: Callable[[bool], None] | None = None
        self.transmit: Callable[[bytes], None] | None = None
        self.on_bootloader_step: Callable[[BootloaderRun], None] | None = None
        self._fw: _Firmware | None = None
        self._usb_present = False
        self._reenumerate = False
        self._job: Iterator[None] | None = None
        self._inbox = _Inbox()
        self._deferred: deque[tuple[float, bytes]] = deque()
        self._rx_bytes = 0
        self._now = 0.0
        self._lock = threading.RLock()
        self.faults = FaultSet(spec.faults, on_change=self._fault_changed)
        if bus is not None:
            bus.attach(self)

    @staticmethod
    def _factory_flash(spec: SimEscSpec, clock: DeviceClock, configs: SimConfigs) -> Flash:
        """Flash as shipped: firmware at 0x08000000, bootloader in sector 11, default configs in EEPROM. The
        factory's programming costs the board no modelled time (it arrives programmed)."""
        flash = Flash(DeviceClock(0.0))
        flash.program(FLASH_BASE, make_firmware_image(spec.hw, spec.fw))
        if spec.bootloader:
            flash.program(BOOTLOADER_BASE, make_bootloader_image())
        version = FirmwareVersion.parse(spec.fw)
        profile = configs.profile(profile_for(version), version)
        store = ConfigStore(flash)
        for kind in c.ConfigKind:
            store.write(kind, configs.default(profile, version, kind, spec.can_id))
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
    def busy(self) -> bool:
        """Work is pending that poll() will do (a job, queued CAN packets, a re-enumeration)."""
        return self._job is not None or bool(self._inbox.items) or self._reenumerate

    def _set_usb(self, on: bool) -> None:
        if on == self._usb_present:
            return
        self._usb_present = on
        log.info("%s: USB %s", self.name, "up" if on else "gone")
        if self.on_usb is not None:
            self.on_usb(on)

    # --- public API ----------------------------------------------------------------------------------

    def set_power(self, on: bool) -> None:
        """Power on (boot from flash, USB comes up once booted) or off (RAM state lost, USB gone)."""
        with self._lock:
            if on == self.powered:
                return
            was_stuck = self._fw is not None and self._fw.stuck
            self._stop()
            self.powered = on
            if on:
                self._job = self._boot_job()
            else:
                self.mode = Mode.OFF
            if was_stuck:
                self.faults.clear("stuck_after")  # the power cycle is the cure, once
            log.info("%s: power %s", self.name, "on" if on else "off")

    def reset(self) -> None:
        """MCU reset (REBOOT, watchdog, the SWD reset line): RAM lost, boot from flash again."""
        with self._lock:
            if not self.powered:
                return
            self._stop()
            self._job = self._boot_job()

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
        self._inbox.items.append((True, payload, reply))
        return 1

    def can_reply(self, payload: bytes, reply: Reply) -> None:
        """A reply from a CAN node to a packet this node forwarded; passed on in this node's poll."""
        self._inbox.items.append((False, payload, reply))

    # --- jobs (advanced one step per poll) -----------------------------------------------------------

    def _stop(self) -> None:
        """Everything in RAM is gone: firmware state, pending work, USB."""
        self._fw = None
        self._job = None
        self._inbox.items.clear()
        self._deferred.clear()
        self._reenumerate = False
        self._set_usb(False)

    def _wait(self, seconds: float) -> Iterator[None]:
        while seconds > 0:
            step = min(seconds, STEP_S)
            self.clock.spend(step)
            seconds -= step
            yield

    def _boot_job(self) -> Iterator[None]:
        self.mode = Mode.BOOTING
        descriptor = read_descriptor(self.flash.read(FLASH_BASE, APP_REGION))
        profile = _runnable(descriptor)
        if descriptor is None or profile is None:
            self.mode = Mode.DEAD
            log.warning("%s: no valid firmware at %#x: board dead", self.name, FLASH_BASE)
            return
        profile = self.configs.profile(profile, descriptor.version)
        yield from self._wait(profile.boot_s)
        configs = {}
        for kind in c.ConfigKind:
            stored = self.store.read(kind)
            fits = stored is not None and len(stored) == profile.config(kind).size
            configs[kind] = stored if fits else self.configs.default(profile, descriptor.version, kind, self.can_id)
        self._fw = _Firmware(profile, descriptor, self._decoder(profile), configs)
        self.mode = Mode.RUNNING
        log.info("%s: firmware %s for %s running", self.name, descriptor.version, descriptor.hw_name)
        self._set_usb(True)

    def _jump_job(self, profile: FirmwareProfile) -> Iterator[None]:
        bootloader = read_descriptor(self.flash.read(BOOTLOADER_BASE, BOOTLOADER_SIZE))
        if bootloader is None or bootloader.kind != ImageKind.BOOTLOADER:
            yield from self._no_bootloader(profile)
            return
        me = self._job
        self.mode = Mode.BOOTLOADER
        run = self.boot_run = BootloaderRun(self.flash, force_reject="bootloader_rejects" in self.faults)
        for phase in run.steps():
            if self.on_bootloader_step is not None:
                self.on_bootloader_step(run)
            if self._job is not me:
                return  # the hook cut the power or reset the MCU
            at = self.faults.get("reset_during_copy", "at")
            if at is not None and phase == BootPhase.COPY and run.copied >= at * run.total:
                log.warning("%s: reset during the bootloader copy (%d of %d bytes)", self.name, run.copied, run.total)
                self.faults.clear("reset_during_copy")
                break
            yield
        yield from self._boot_job()

    def _no_bootloader(self, profile: FirmwareProfile) -> Iterator[None]:
        """Jump into an erased sector 11: HardFault; the IWDG resets the MCU only if it was armed."""
        if "no_bootloader_hangs" in self.faults:
            watchdog = None
        elif "no_bootloader_returns" in self.faults:
            watchdog = self.faults.get("no_bootloader_returns", "watchdog_s")
        else:
            watchdog = profile.jump_watchdog_s
        log.warning("%s: no bootloader in sector 11; %s", self.name, "hangs" if watchdog is None else "watchdog reset")
        if watchdog is None:
            self.mode = Mode.HUNG
            return
        self.mode = Mode.RESETTING
        yield from self._wait(watchdog)
        yield from self._boot_job()

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

    def _event(self, event: Frame | Garbage) -> None:
        if isinstance(event, Frame):
            self.clock.spend(USB_PACKET_S)
            self._handle(event.payload, self._reply_usb, via_can=False)
        elif "merge_partial" in self.faults and event.reason in (Discard.CRC, Discard.STOP, Discard.TIMEOUT):
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
        items = self._inbox.items
        while items:
            request, payload, reply = items.popleft()
            if not self.running:
                continue
            if request:
                self._handle(payload, reply or _no_reply, via_can=True)
            elif reply is not None:
                reply(payload)

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

        def send(answer: c.Message) -> None:
            reply(c.encode(answer, table))

        match message:
            case c.FwVersionRequest():
                send(self._fw_version(fw))
            case c.GetValues():
                send(c.ValuesReply(self._values(fw)))
            case c.GetValuesSelective(mask=mask):
                reply(self._values_selective(fw, mask))
            case c.GetConfig(kind=kind, default=default):
                version = fw.descriptor.version
                now = fw.configs[kind]
                data = self.configs.default(fw.profile, version, kind, self.can_id, now) if default else now
                send(c.ConfigReply(c.ConfigBlob(kind, self._signature(fw, kind), data), default))
            case c.SetConfig(blob=blob):
                self._set_config(fw, blob, send)
            case c.EraseNewApp(size=size, all_can=all_can):
                if all_can:
                    self._broadcast(c.EraseNewApp(size), table)
                    self.clock.spend(ALL_CAN_ERASE_SLEEP_S)
                for sector in (SECTORS[i] for i in NEW_APP_SECTORS):
                    if NEW_APP_BASE + size > sector.start:
                        self.flash.erase_sector(sector.index)
                send(c.StatusReply(Cmd.ERASE_NEW_APP, True))
            case c.WriteNewAppData(offset=offset, data=data, all_can=all_can):
                if all_can:
                    self._broadcast(c.WriteNewAppData(offset, data), table)
                send(c.WriteNewAppDataReply(self._program(NEW_APP_BASE + offset, data), self._echo(fw, offset)))
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
                for line in self._terminal(fw, text):
                    self._print(fw, line, send)
            case c.ForwardCan(node_id=node_id, inner=inner):
                if self.bus is not None:
                    self.bus.send(self, node_id, inner, reply)
            case c.PingCan():
                found = self.bus.ping(self) if self.bus is not None else ()
                self.clock.spend(PING_PER_ID_S * (255 - len(found)))
                send(c.PingCanReply(found))
            case _:
                pass  # ALIVE, motor commands, unknown ids: nothing to answer (facts sheet section 2)

    def _broadcast(self, message: c.Message, table: CommandTable) -> None:
        """*_ALL_CAN: the plain command to CAN id 255 as "process, no reply"."""
        if self.bus is not None:
            self.bus.send(self, 255, c.encode(message, table), None)

    def _jump(self, profile: FirmwareProfile) -> None:
        """JUMP_TO_BOOTLOADER: USB off, the firmware stops, the bootloader (or nothing) runs."""
        self._stop()
        self._job = self._jump_job(profile)

    def _program(self, addr: int, data: bytes) -> bool:
        """Byte programming with no bounds check, except that outside the flash reports failure."""
        if not in_flash(addr, len(data)):
            log.info("%s: write of %d bytes at %#x is outside the flash", self.name, len(data), addr)
            return False
        self.flash.program(addr, data)
        return True

    @staticmethod
    def _echo(fw: _Firmware, offset: int) -> int | None:
        return offset if fw.profile.write_reply_offset else None

    def _fw_version(self, fw: _Firmware) -> c.FwVersionReply:
        available: dict[str, object] = {
            "hw_name": fw.descriptor.hw_name,
            "uid": self.spec.uid,
            "pairing_done": 0,
            "test_version": 0,
            "hw_type": 0,
            "custom_cfg_num": 0,
            "has_phase_filters": 0,
            "qml_hw": 0,
            "qml_app": 0,
            "nrf_flags": 0,
            "fw_name": "",
            "hw_conf_crc": 0,
        }
        fields = {name: available[name] for name in fw.profile.fw_version_fields}
        version = fw.descriptor.version  # the image's own version; the profile says how it behaves
        return c.FwVersionReply(version.major, version.minor, **fields)  # type: ignore[arg-type]

    def _values(self, fw: _Firmware) -> Values:
        telemetry = {
            "temp_fet": 25.3,
            "temp_motor": 24.8,
            "current_motor": 0.0,
            "current_in": 0.0,
            "id": 0.0,
            "iq": 0.0,
            "duty": 0.0,
            "erpm": 0.0,
            "v_in": 24.1,
            "amp_hours": 0.0,
            "amp_hours_charged": 0.0,
            "watt_hours": 0.0,
            "watt_hours_charged": 0.0,
            "tachometer": 0,
            "tachometer_abs": 0,
            "fault": 0,
            "pid_pos": 0.0,
            "controller_id": self.can_id,
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
            self._print(fw, f"Warning: Could not set {blob.kind.value} due to wrong signature", send)
            return
        old, version, hw = fw.configs[blob.kind], fw.descriptor.version, fw.descriptor.hw_name
        self._store_config(fw, blob.kind, self.configs.on_set(fw.profile, version, hw, blob.kind, old, blob.data))
        self.clock.spend(CONFIG_WRITE_S)
        send(c.SetConfigAck(blob.kind))

    @staticmethod
    def _print(fw: _Firmware, text: str, send: Callable[[c.Message], None]) -> None:
        """PRINT as commands_printf does: nothing for empty text; too long is cut and sent with its NUL."""
        if len(text) > fw.profile.print_max:
            text = text[: fw.profile.print_max] + "\0"
        if text:
            send(c.Print(text))

    def _store_config(self, fw: _Firmware, kind: c.ConfigKind, data: bytes) -> None:
        """No length check in the firmware: a short blob leaves the old (stale) bytes after it."""
        size = fw.profile.config(kind).size
        old = fw.configs[kind]
        fw.configs[kind] = (data[:size] + old[len(data) :])[:size]
        self.store.write(kind, fw.configs[kind])

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

    def _terminal(self, fw: _Firmware, text: str) -> list[str]:
        """The PRINT lines a TERMINAL_CMD produces (B: terminal.c; research section 3)."""
        profile = fw.profile
        lines = [f"-> {text} \n"] if profile.terminal_echo else []
        argv = text.split()
        if not argv:
            return [*lines, "No command received\n"]
        command = argv[0].lower()
        if command == "ping" and profile.terminal_ping:
            lines.append("pong\n")
        elif command == "fault":
            lines.append("FAULT_CODE_NONE\n")
        elif command == "hw_status":
            uid = " ".join(f"{b:02X}" for b in self.spec.uid)
            version = fw.descriptor.version
            lines += [
                f"Firmware: {version.major}.{version.minor}",
                f"Hardware: {fw.descriptor.hw_name}",
                f"UUID: {uid}",
                "Permanent NRF found: No",
                " ",
            ]
        elif command == "help":
            lines += ["Valid commands are:", "help", "  Show this help"]
            if profile.terminal_ping:
                lines += ["ping", "  Print pong here to see if the reply works"]
            lines += [
                "fault",
                "  Prints the current fault code",
                "hw_status",
                "  Print some hardware status information.",
                " ",
            ]
        else:
            lines.append(f"Invalid command: {argv[0]}\ntype help to list all available commands\n")
        return lines

    # --- faults with side effects --------------------------------------------------------------------

    def _fault_changed(self, name: str, on: bool) -> None:
        with self._lock:
            if on and name in ("no_bootloader_returns", "no_bootloader_hangs"):
                self.flash.erase_sector(BOOTLOADER_SECTOR)
            elif on and name == "link_drop":
                self._rx_bytes = 0
            elif name == "rx_timeout" and self._fw is not None:
                self._fw.decoder.rx_timeout_s = self._decoder(self._fw.profile).rx_timeout_s


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
