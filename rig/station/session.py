"""The station session: the one way every entry point acts on a station's board.

pytest fixtures, ``rig update``, ``rig bootloader``, ``rig config``, ``rig swd``, ``rig power``,
``rig factory`` and recovery all open a :class:`StationSession`. Opening it takes the station's lease
(or fails at once naming the holder and until when); every operation that writes to the board goes
through it and meets the same policy:

- the lease must still be held (a lost lease stops the session before its next step);
- before anything that can wipe or change a config (update, bootloader, SWD, recovery, config write)
  every node's mcconf/appconf is backed up to the state directory, and afterwards restored and
  verified, or the session says exactly why not and keeps the backup (rig.station.configs);
- images are checked before anything is erased, and an image for other hardware is refused unless
  the permit allows it;
- destructive steps (mass erase, the bootloader sector, anything that bricks a board on purpose)
  need the session's :class:`~rig.station.permissions.Permit`.

The session keeps a :class:`SessionReport` of what it did (lease, config care, steps), which the CLI
prints and ``--json`` carries. The hardware itself is reached through :class:`rig.station.bench.StationRig`,
which only the session (and read-only callers) use.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from rig import interrupts
from rig.client.esc import Esc, Timeouts
from rig.config.source import SchemaSource
from rig.device.memory import BOOTLOADER_BASE, BOOTLOADER_SECTOR, BOOTLOADER_SIZE, FLASH_BASE, sectors_touching
from rig.errors import Diagnosis, RigError
from rig.events import Progress, step
from rig.firmware.config import ConfigBackup, restore, write_verified
from rig.firmware.image import Image, ImageKind, check_hardware, flash_segments
from rig.firmware.update import UploadResult
from rig.hardware.power import PowerCycleResult
from rig.hardware.swd import FlashResult, SwdSession
from rig.protocol.codecs import ConfigBlob, FwVersionReply
from rig.protocol.commands import Cmd, FirmwareVersion, command_table
from rig.station.bench import Bounds, StationRig, UpdateResult
from rig.station.configs import UNDO, ConfigCare, ConfigKeeper, Node
from rig.station.lease_choice import leases_for
from rig.station.leases import Lease, LeaseBackend, LeaseInfo
from rig.station.permissions import Permission, Permit
from rig.station.places import resolve_places
from rig.station.rack import Rack, Station
from rig.station.state import StateDir
from rig.transport.link import Trace
from rig.transport.presence import wait_back

log = logging.getLogger(__name__)


def station_key(rack: Rack, station: Station) -> str:
    """The lease key of a station: rack and station name."""
    return f"{rack.name}/{station.name}"


def station_resources(rack: Rack, station: Station) -> tuple[str, ...]:
    """What a station is made of, as lease resources: two leases sharing any of these conflict."""
    found = []
    if station.port:
        found.append(f"port:{os.path.abspath(station.port)}")
    if station.url:
        found.append(f"url:{station.url}")
    if station.usb_serial:
        found.append(f"usb:{station.usb_serial}")
    if station.bridge:
        found.append(f"url:{station.bridge}")
    if station.swd is not None and station.swd.probe:
        found.append(f"probe:{station.swd.probe}")
    if station.relay is not None:
        found.append(f"relay:{rack.relay(station.relay.board).url}#{station.relay.channel}")
    return tuple(found)


@dataclass
class SessionReport:
    """What a session did: the lease it held, the config care of each operation, and its steps."""

    station: str
    lease: LeaseInfo | None = None
    permit: str = "nobody"
    steps: list[str] = field(default_factory=list)
    configs: list[ConfigCare] = field(default_factory=list)

    def describe(self) -> list[str]:
        lines = []
        if self.lease is not None:
            lines.append(f"lease on {self.lease.key} held by {self.lease.holder}")
        lines += self.steps
        for care in self.configs:
            lines += [f"{care.operation}: {line}" for line in care.describe()]
        return lines

    def as_json(self) -> dict[str, Any]:
        return {
            "station": self.station,
            "lease": None if self.lease is None else {"key": self.lease.key, "holder": self.lease.holder},
            "permit": self.permit,
            "steps": list(self.steps),
            "configs": [care.as_json() for care in self.configs],
        }


class StationSession:
    """One station, held and guarded for as long as the session is open (use it with `with`)."""

    def __init__(
        self,
        rack: Rack,
        station: str,
        *,
        state: StateDir,
        permit: Permit | None = None,
        leases: LeaseBackend | None = None,
        lease_wait_s: float = 0.0,
        bounds: Bounds | None = None,
        timeouts: Timeouts | None = None,
        holder: str | None = None,
    ) -> None:
        self.leases = leases or leases_for(rack, state)
        self.rack = resolve_places(rack, self.leases)  # a station on a labgrid place: its addresses
        self.spec = self.rack.station(station)
        self.state = state
        self.permit = permit or Permit()
        self.lease_wait_s = lease_wait_s
        self.holder = holder
        self.key = station_key(rack, self.spec)
        self.bench = StationRig(rack, self.spec, bounds=bounds or Bounds(), timeouts=timeouts or Timeouts())
        self.session_id = os.urandom(4).hex()
        schemas = SchemaSource.resolve(rack_schemas=rack.schemas, cache=state.schemas)
        self.keeper = ConfigKeeper(state, self.key, self.session_id, schemas)
        self.report = SessionReport(self.key, permit=self.permit.by)
        self.lease: Lease | None = None
        self._orphans_checked = False
        self._path_care: ConfigCare | None = None
        self.bootloader_suspect = False  # the last update did not take or hung: rewrite the bootloader first
        self._stop = threading.Event()  # request_stop(): this session alone stops at its next safe point
        self._stop_by = ""

    @property
    def name(self) -> str:
        return self.spec.name

    def __repr__(self) -> str:
        return f"StationSession({self.key!r})"

    # --- opening and closing ------------------------------------------------------------------------

    def open(self) -> StationSession:
        """Take the station's lease (waiting at most lease_wait_s); LeaseBusy names the holder and until when."""
        if self.lease is None:
            self.lease = self.leases.acquire(
                self.key, station_resources(self.rack, self.spec), bound_s=self.lease_wait_s, holder=self.holder
            )
            self.report.lease = self.lease.info
            log.info("%s: lease held by %s", self.key, self.lease.info.holder)
        return self

    def close(self) -> None:
        self.bench.close()
        if self.lease is not None:
            self.lease.release()
            self.lease = None

    def __enter__(self) -> StationSession:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def allowing(self, *what: Permission, by: str) -> Iterator[None]:
        """More permissions for a block only (a scenario that exercises a guard's forced path, say)."""
        before = self.permit
        self.permit = Permit(before.granted | frozenset(what), f"{before.by}; {by}")
        self.note(f"permitted for a step by {by}: {', '.join(p.name for p in what)}")
        try:
            yield
        finally:
            self.permit = before

    @property
    def trace(self) -> Trace:
        """Every byte sent and received on the station's port, timestamped (for reports)."""
        return self.bench.trace

    def check_lease(self) -> None:
        """LeaseLost if the station is no longer ours; RigError if the session was never opened."""
        if self.lease is None:
            raise RigError(f"station session {self.key} is not open (it holds no lease)")
        self.lease.check()

    def begin(self, what: str) -> None:
        """Before every step that writes to the board (a safe point): the lease must still be ours, and a
        signal or a stop request stops it here (Interrupted). Clean-up (giving configs back) does not pass
        here, so it still runs after a stop."""
        self.check_lease()
        self.safe_point(f"before {what} on {self.name}")

    # --- stopping this session alone (an operator's stop button) -----------------------------------

    def request_stop(self, by: str) -> None:
        """Ask this session alone to stop at its next safe point (rig.interrupts stops every session of the
        process); callable from any thread. The stop is taken once: clean-up after it (a failed board powered
        off) passes the safe points again."""
        self._stop_by = by
        self._stop.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def safe_point(self, where: str) -> None:
        """Interrupted if a signal asked the process to stop, or someone asked this session to (taken once)."""
        interrupts.check(where)
        if self._stop.is_set():
            self._stop.clear()
            self.note(f"stopped at a safe point ({where}) on {self._stop_by}")
            raise interrupts.Interrupted(f"stopped at a safe point ({where}) on {self._stop_by}")

    def note(self, text: str) -> None:
        self.report.steps.append(text)
        log.info("%s: %s", self.key, text)

    # --- reading (no policy needed beyond the lease) -----------------------------------------------

    def connect(self, *, bound_s: float | None = None) -> Esc:
        self.check_lease()
        return self.bench.connect(bound_s=bound_s)

    def probe(self) -> FwVersionReply | None:
        self.check_lease()
        return self.bench.probe()

    def answers(self) -> bool:
        """Whether the board answers one short FW_VERSION right now."""
        return self.probe() is not None

    def nodes(self, esc: Esc) -> list[Node]:
        return self.bench.nodes(esc)

    def read_board(self) -> FwVersionReply:
        with self.connect() as esc:
            assert esc.info is not None
            return esc.info

    # --- config care --------------------------------------------------------------------------------

    @contextmanager
    def preserving_configs(self, operation: str, *, path: bool = False) -> Iterator[ConfigCare]:
        """Back up every node's configs before the block and give them back after it (pass or fail).

        With `path`, the block is a path of several steps (a strategy's escalation, a factory bring-up):
        the steps inside it do not back up and restore each on their own; the path does, once, around them.
        A board that does not answer before the block cannot be backed up: the care says so and the block
        still runs (recovering a silent board is what some blocks are for)."""
        self.check_lease()
        if self._path_care is not None:
            yield self._path_care
            return
        care = self._take(operation)
        if path:
            self._path_care = care
        failed = False
        try:
            yield care
        except BaseException:
            failed = True
            raise
        finally:
            if path:
                self._path_care = None
            if care.nodes:
                self._give_back(care, quiet=failed)
            self.report.configs.append(care)

    def _take(self, operation: str, purpose: str | None = None) -> ConfigCare:
        """Back up every node's configs on one connection; a board that does not answer gets none."""
        try:
            esc = self._connect_if_there()
        except RigError as exc:
            self.note(f"{operation}: board does not answer ({exc}), its configs could not be backed up first")
            return ConfigCare(operation)
        with esc:
            nodes = self.nodes(esc)
            orphans = [] if self._orphans_checked else self.keeper.recover_orphans(nodes, {self.session_id})
            self._orphans_checked = True
            care = self.keeper.take(nodes, operation, **({"purpose": purpose} if purpose else {}))
        care.orphans = orphans
        return care

    def _connect_if_there(self) -> Esc:
        """A connection to the board, failing at once (RigError) when its port is not there."""
        locator = self.bench.locator
        if not self.bench.has_port or (locator.observable and locator.current() is None):
            raise RigError(f"no port for {self.name}")
        return self.connect()

    def _give_back(self, care: ConfigCare, *, quiet: bool) -> None:
        try:
            with self.connect(bound_s=self.bench.bounds.answer_s) as esc:
                self.keeper.give_back(care, self.nodes(esc))
        except RigError as exc:
            for entry in care.nodes:
                entry.note = entry.note or f"board did not answer to restore it ({exc})"
            if not quiet:
                raise

    # --- firmware over USB --------------------------------------------------------------------------

    def check_image(self, image: Image, hw_name: str) -> None:
        """Refuse an image for other (or unknown) hardware unless the permit allows it (F6)."""
        check_hardware(image, hw_name, allow_wrong_hw=self.permit.allows(Permission.WRONG_HARDWARE))

    def update(
        self, image: Image, *, all_can: bool = False, window: int = 1, progress: Progress | None = None
    ) -> UpdateResult:
        """Firmware over USB, as VESC Tool does, with the configs kept and the new version proven."""
        self.begin("an update")
        with self.preserving_configs(f"update to {image.version or image.source}"), self._watching_bootloader():
            self.check_lease()
            result = self.bench.update(
                image,
                allow_wrong_hw=self.permit.allows(Permission.WRONG_HARDWARE),
                window=window,
                progress=progress,
                all_can=all_can,
                safe_point=self.safe_point,
            )
        self.note(f"updated {result.before.version} -> {result.after.version} ({result.proof})")
        return result

    @contextmanager
    def _watching_bootloader(self) -> Iterator[None]:
        """Remember whether the last update showed the bootloader to be suspect (it did not take, or the board
        hung after the jump), so an escalation rewrites the bootloader before trying again."""
        try:
            yield
        except RigError as exc:
            if exc.diagnosis in (Diagnosis.BOOTLOADER_MISSING, Diagnosis.UNRESPONSIVE_AFTER_UPDATE):
                self.bootloader_suspect = True
            raise
        self.bootloader_suspect = False

    def upload_bootloader(
        self, image: Image, *, all_can: bool = False, window: int = 1, progress: Progress | None = None
    ) -> UploadResult:
        """A bootloader over USB into sector 11 (the firmware keeps running), with the configs kept."""
        self.begin("a bootloader upload")
        info = self.read_board()
        if image.hw_names:
            self.check_image(image, info.hw_name or "")
        if not command_table(info.version).has(Cmd.ERASE_BOOTLOADER):  # < 3.59: a write only clears bits
            self._require_blank_bootloader_sector(info.version)
        with self.preserving_configs("bootloader upload"):
            result = self.bench.upload_bootloader(image, window=window, progress=progress, all_can=all_can)
        self.bootloader_suspect = False
        self.note(f"bootloader written over USB ({result.stats.bytes_sent} bytes)")
        return result

    def _require_blank_bootloader_sector(self, version: FirmwareVersion) -> None:
        """Firmware without ERASE_BOOTLOADER (< 3.59) can only write a bootloader into a blank sector 11 (flash
        programming only clears bits): proven over SWD where the station has a probe, else the permit must
        allow writing it anyway."""
        if self.has_swd:
            with self.swd() as swd:
                blank = swd.read(BOOTLOADER_BASE, BOOTLOADER_SIZE).count(0xFF) == BOOTLOADER_SIZE
            if blank:
                self.note("bootloader sector read over SWD: blank, so a write over USB is safe")
                return
        self.permit.require(
            Permission.UNERASED_BOOTLOADER_WRITE,
            f"write a bootloader to {self.name} over USB on firmware {version}, which has no ERASE_BOOTLOADER, "
            "so the new one would be ANDed over the old one (erase sector 11 over SWD first, or state it is blank)",
        )

    # --- configs ------------------------------------------------------------------------------------

    def write_config(
        self, *blobs: ConfigBlob, made_for: FirmwareVersion, force: bool = False, exact: bool = True
    ) -> ConfigCare:
        """Write configs (F8 layout guard), read each back; the configs before stay on disk as undo files.
        With `exact` False the caller verifies the read-back by field (the firmware clamps some values)."""
        self.begin("a config write")
        kinds = " and ".join(blob.kind.value for blob in blobs)
        care = self._take(f"write {kinds}", purpose=UNDO)
        self.report.configs.append(care)
        with self.connect() as esc:
            for blob in blobs:
                write_verified(esc, blob, made_for, force=force, exact=exact)
        undo = ", ".join(n.file for n in care.nodes)
        checked = "verified" if exact else "read back for a check by field"
        self.note(f"{kinds} written and {checked}; undo files: {undo}")
        return care

    def restore_backup(self, backup: ConfigBackup, *, force: bool = False) -> ConfigCare:
        """Write a saved backup (both configs) and verify it; the configs before stay as undo files."""
        self.begin("a config restore")
        care = self._take("restore a backup", purpose=UNDO)
        self.report.configs.append(care)
        with self.connect() as esc:
            restore(esc, backup, force=force)
        self.note(f"backup of {backup.uid or 'a board'} ({backup.version}) written and verified")
        return care

    # --- SWD ----------------------------------------------------------------------------------------

    def swd(self, progress: Progress | None = None) -> SwdSession:
        """An unopened SWD session on the station's probe (for reads and for the guarded writes below)."""
        self.check_lease()
        return self.bench.swd(progress=progress)

    def _require_mass_erase(self) -> None:
        """A mass erase needs the permit; of a board that answers over USB (firmware and settings on it), more."""
        self.permit.require(Permission.MASS_ERASE, f"mass erase {self.name} over SWD")
        if self.bench.probe() is not None:
            self.permit.require(Permission.ERASE_ANSWERING_BOARD, f"mass erase {self.name}, which answers over USB")

    def _require_for_sectors(self, start: int, length: int, action: str) -> None:
        if any(s.index == BOOTLOADER_SECTOR for s in sectors_touching(start, length)):
            self.permit.require(Permission.BOOTLOADER_ERASE, f"{action} (it covers the bootloader sector)")

    def swd_program(
        self,
        images: Sequence[Image],
        *,
        chip_erase: bool = False,
        verify: bool = True,
        progress: Progress | None = None,
        swd: SwdSession | None = None,
    ) -> FlashResult:
        """Program checked images over SWD; the bootloader sector and a mass erase need the permit."""
        self.begin("SWD programming")
        if chip_erase:
            self._require_mass_erase()
        for image in images:
            if image.kind == ImageKind.BOOTLOADER:
                self.permit.require(Permission.BOOTLOADER_ERASE, f"program the bootloader of {self.name} over SWD")
        self._check_hardware_of(images)
        what = " + ".join(f"{i.kind.value} {i.version or ''}".strip() for i in images)
        with self.preserving_configs(f"SWD program {what}"), self._swd(swd, progress) as session:
            self.check_lease()
            result = session.program(flash_segments(images), chip_erase=chip_erase, verify=verify)
        self.note(f"SWD programmed {what} ({result.image_bytes} bytes{', verified' if verify else ''})")
        return result

    def swd_erase(
        self, *, mass: bool = False, start: int = FLASH_BASE, length: int = 0, swd: SwdSession | None = None
    ) -> float:
        """Mass erase, or erase the sectors of a range, over SWD (permit rules as for programming)."""
        self.begin("an SWD erase")
        if mass:
            self._require_mass_erase()
        else:
            self._require_for_sectors(start, length, f"erase {length} bytes at {start:#010x} of {self.name}")
        what = "mass erase" if mass else f"erase of {start:#010x} +{length:#x}"
        with self.preserving_configs(f"SWD {what}"), self._swd(swd, None) as session:
            self.check_lease()
            seconds = session.mass_erase() if mass else session.erase(start, length)
        self.note(f"SWD {what} in {seconds:.3f} s")
        return seconds

    @contextmanager
    def _swd(self, given: SwdSession | None, progress: Progress | None) -> Iterator[SwdSession]:
        """The caller's open SWD session, or one opened (and closed) for this step."""
        if given is not None:
            yield given
            return
        with self.swd(progress) as session:
            yield session

    def _check_hardware_of(self, images: Sequence[Image]) -> None:
        """A firmware for other hardware is refused when the board's hardware is known (it answers over USB)."""
        firmware = [i for i in images if i.kind == ImageKind.FIRMWARE and i.hw_names]
        if not firmware:
            return
        info = self.bench.probe()
        if info is not None:
            for image in firmware:
                self.check_image(image, info.hw_name or "")

    # --- power --------------------------------------------------------------------------------------

    def power(self, on: bool) -> None:
        """Switch the board's power. Switching off passes no safe point: it is how a stopped run leaves a failed
        board (clean-up), so a stop request must not refuse it; the lease must still be ours."""
        if on:
            self.begin("power-on")
        else:
            self.check_lease()
        with step("power " + ("on" if on else "off"), station=self.name):
            self.bench.power_channel().switch(on)
        self.note(f"power {'on' if on else 'off'}")

    def power_on(self) -> float:
        """Switch the board on and wait (bounded) until its port is back and its firmware answers; seconds."""
        self.power(True)
        bounds = self.bench.bounds
        back_s, answer_s = wait_back(self.bench.locator, self.bench.answers, bounds.back_s, bounds.answer_s)
        return back_s + answer_s

    def power_cycle(self) -> PowerCycleResult:
        self.begin("a power cycle")
        result = self.bench.power_cycle()
        self.note(f"power cycled ({result.proof})")
        return result

    @property
    def has_power(self) -> bool:
        return self.spec.relay is not None or self.spec.supply is not None

    @property
    def has_swd(self) -> bool:
        return self.spec.swd is not None and self.spec.swd.probe is not None


def for_command_line(url: str, **kwargs: Any) -> tuple[Rack, Station]:
    """A one-station rack around a port URL (for `rig update PORT ...`): the station's key is the port."""
    network = "://" in url
    station = Station(name=url, port=None if network else url, url=url if network else None, **kwargs)
    return Rack(name="port", stations=(station,)), station
