"""One station of a resolved rack as the host uses it: its ESC, its power, its supply and its SWD probe.

Nothing here knows whether the far end is simulated: a station is a port (path, symlink or pyserial
URL, found again by USB serial number), a relay channel, a supply and an SWD probe, all taken from
the rack file.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from rig import interrupts
from rig.client.esc import Esc, Timeouts
from rig.device.firmware import fw_version_fields_for
from rig.device.memory import UID_BYTES
from rig.errors import (
    Diagnosis,
    IdentityLost,
    LinkError,
    LinkLost,
    PowerError,
    RigError,
    RigTimeout,
    SwdError,
    UpdateError,
)
from rig.events import Progress, attach, step
from rig.firmware.image import Image
from rig.firmware.update import (
    PhaseTimes,
    UploadResult,
    check_nodes_agree,
    check_update_took,
    guard,
    guard_can_nodes,
    jump,
    upload_bootloader,
    upload_firmware,
)
from rig.hardware.power import PowerChannel, PowerCycleResult, PowerSupply, SupplyOutput, open_relay_board, open_supply
from rig.hardware.power import power_cycle as run_power_cycle
from rig.hardware.swd import ConnectMode, SwdConfig, SwdSession
from rig.protocol.codecs import FwVersionReply
from rig.protocol.commands import Cmd
from rig.station.rack import Rack, Station
from rig.transport.link import Trace
from rig.transport.presence import PortLocator, same_board, wait_for, wait_reappearance

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Bounds:
    """How long a station may take for each kind of wait (seconds)."""

    connect_s: float = 10.0  # port present and first FW_VERSION
    gone_s: float = 5.0  # port gone after power off or a jump
    # jump to answer: bootloader erase + copy (~15 s), boot (~5 s on 6.x), or the ~32 s watchdog
    # reset of a firmware that jumped to a missing bootloader (research notes, section 8)
    back_s: float = 60.0
    answer_s: float = 20.0
    settle_s: float = 0.5  # power off time after the port is gone
    probe_reply_s: float = 0.3  # one FW_VERSION while polling for a board


@dataclass
class UpdateResult:
    """A finished update: the versions before and after, and the time of each phase."""

    upload: UploadResult
    before: FwVersionReply
    after: FwVersionReply
    proof: str
    nodes: dict[int, FwVersionReply] = field(default_factory=dict)

    @property
    def times(self) -> PhaseTimes:
        return self.upload.times


def _dropped(esc: Esc) -> bool:
    """Whether the far end closed this link (a read of what is waiting fails with LinkLost)."""
    try:
        esc.link.read(0.0)
    except LinkLost:
        return True
    return False


def check_identity_sent(info: FwVersionReply) -> None:
    """Every firmware since 3.09 sends the board's 12-byte UID in FW_VERSION; one that does not has lost its
    identity (the rig cannot tell which board answered)."""
    if "uid" in fw_version_fields_for(info.version) and (info.uid is None or len(info.uid) != UID_BYTES):
        raise IdentityLost(
            f"the board reports firmware {info.version}, which sends its {UID_BYTES}-byte UID in FW_VERSION, "
            f"but it sent {info.uid.hex() if info.uid else 'none'}: the rig cannot tell which board answered"
        )


def describe_version(info: FwVersionReply) -> str:
    """FW_VERSION as readable lines (for reports)."""
    fields = {k: v for k, v in vars(info).items() if v is not None}
    if isinstance(fields.get("uid"), bytes):
        fields["uid"] = fields["uid"].hex(" ")
    return "\n".join(f"{k}: {v}" for k, v in fields.items())


class StationRig:
    """Host-side handle of one station."""

    def __init__(
        self,
        rack: Rack,
        spec: Station,
        *,
        bounds: Bounds = Bounds(),
        timeouts: Timeouts = Timeouts(),
        trace: Trace | None = None,
    ) -> None:
        self.rack = rack
        self.spec = spec
        self.bounds = bounds
        self.timeouts = timeouts
        self.trace = trace if trace is not None else Trace()
        self.locator = PortLocator(spec.link_url or "", spec.usb_serial)
        self._channel: PowerChannel | None = None
        self._supply: PowerSupply | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    def __repr__(self) -> str:
        return f"StationRig({self.name!r}, {self.locator.url!r})"

    # --- the ESC -----------------------------------------------------------------------------------

    def connect(self, *, bound_s: float | None = None) -> Esc:
        """Wait (bounded) for the port, open it and read FW_VERSION.

        A port that vanishes between being seen and being opened (a board re-enumerating) is tried
        again within the same bound.
        """
        if not self.has_port:
            raise RigError(f"station {self.name} has no port or USB serial number (a simulated rack must be served)")
        bound = self.bounds.connect_s if bound_s is None else bound_s
        deadline = time.monotonic() + bound
        while True:
            wait_for(
                lambda: self.locator.current() is not None,
                max(0.0, deadline - time.monotonic()),
                f"port of station {self.name} ({self.locator.url})",
                Diagnosis.PORT_NEVER_CAME_BACK,
                0.01,
            )
            try:
                return self._open_and_identify()
            except (LinkError, LinkLost) as exc:
                if time.monotonic() >= deadline:
                    raise LinkError(f"{exc} (kept trying for {bound:g} s)", diagnosis=exc.diagnosis) from exc
                log.info("%s: %s; trying again", self.name, exc)
                time.sleep(0.02)

    def _open_and_identify(self) -> Esc:
        esc = Esc.open(self.locator.current() or self.locator.url, trace=self.trace, timeouts=self.timeouts)
        try:
            with step("connect", station=self.name, port=self.locator.current()):
                esc.flush_device_decoder()  # a partial frame from an earlier, cut connection (F7)
                info = esc.fw_version()
            attach(f"FW_VERSION of {self.name}", describe_version(info))
        except BaseException:
            esc.close()
            raise
        return esc

    def nodes(self, esc: Esc) -> list[tuple[int | None, Esc]]:
        """The local node (None) and a client for each CAN peer behind this port: the ones the rack lists,
        or, for a station the rack says nothing about (a port given on the command line), the ones PING_CAN
        finds where the firmware has it."""
        peers: tuple[int, ...] = ()
        if len(self.spec.can_ids) > 1:
            local = esc.values().controller_id
            peers = tuple(node for node in self.spec.can_ids if node != local)
        elif not self.spec.can_ids and esc.table.has(Cmd.PING_CAN):
            peers = esc.ping_can()
        return [(None, esc), *((node, esc.can(node)) for node in peers)]

    def answers(self) -> bool:
        """One short FW_VERSION on a fresh connection: does the board answer right now?"""
        return self.probe() is not None

    @property
    def has_port(self) -> bool:
        """Whether the rack gives this station a port (an SWD-only station has none)."""
        return self.spec.link_url is not None or self.spec.usb_serial is not None

    def probe(self) -> FwVersionReply | None:
        """One short FW_VERSION on a fresh connection: the reply, or None when the board does not answer."""
        if not self.has_port or self.locator.current() is None:
            return None
        try:
            esc = Esc.open(
                self.locator.current() or self.locator.url,
                timeouts=Timeouts(reply=self.bounds.probe_reply_s),
                retries=0,
            )
        except LinkError:
            return None
        try:
            return esc.fw_version()
        except RigError:
            return None
        finally:
            esc.close()

    # --- power -------------------------------------------------------------------------------------

    def power_channel(self) -> PowerChannel:
        """The relay channel (or supply output) that powers this station."""
        if self._channel is None:
            if self.spec.relay is not None:
                board_spec = self.rack.relay(self.spec.relay.board)
                board = open_relay_board(board_spec.kind, board_spec.url, **board_spec.open_options)
                self._channel = PowerChannel(board, self.spec.relay.channel, self.spec.relay.board)
            elif (supply := self.supply()) is not None:
                self._channel = PowerChannel(SupplyOutput(supply), 1, f"{self.spec.supply} output")
            else:
                raise PowerError(f"station {self.name} has no relay channel or supply in the rack file")
        return self._channel

    def supply(self) -> PowerSupply | None:
        if self._supply is None and self.spec.supply is not None:
            spec = self.rack.supply(self.spec.supply)
            self._supply = open_supply(spec.kind, spec.url, unit=spec.unit)
        return self._supply

    def power_cycle(self) -> PowerCycleResult:
        """Off, port gone, settle, on, port back, firmware answers: each phase timed and bounded (F9).

        A network port cannot be watched: there the board must stop answering, then answer again with
        the UID it had before (the result's proof says so)."""
        with step("power cycle", station=self.name, channel=str(self.spec.relay or self.spec.supply)):
            if self.locator.observable:
                return self._power_cycle()
            before = self.probe()
            result = self._power_cycle()
            after = self.probe()
            uid_after = after.uid if after else None
            result.proof += ", " + same_board(self.locator.url, before.uid if before else None, uid_after)
            return result

    def _power_cycle(self) -> PowerCycleResult:
        return run_power_cycle(
            self.power_channel(),
            locator=self.locator,
            answers=self.answers,
            supply=self.supply(),
            settle_s=self.bounds.settle_s,
            gone_timeout_s=self.bounds.gone_s,
            back_timeout_s=self.bounds.back_s,
            answer_timeout_s=self.bounds.answer_s,
        )

    # --- firmware over USB -------------------------------------------------------------------------

    def update(
        self,
        image: Image,
        *,
        allow_wrong_hw: bool = False,
        window: int = 1,
        progress: Progress | None = None,
        all_can: bool = False,
        safe_point: Callable[[str], None] = interrupts.check,
    ) -> UpdateResult:
        """Update the firmware as VESC Tool does, then prove the board runs the image's version (F1, F2).
        `safe_point` is asked before the jump, the last moment a stop leaves the board on its old firmware."""
        esc = self.connect()
        try:
            with step("check the image fits the board", image=image.describe()):
                before = guard(esc, image, allow_wrong_hw=allow_wrong_hw)
            node_ids = guard_can_nodes(esc, allow_wrong_hw=allow_wrong_hw) if all_can else ()
            identity = self.locator.identity()
            upload = upload_firmware(esc, image, all_can=all_can, window=window, progress=progress)
        except BaseException:
            esc.close()
            raise
        # A network port cannot be watched: the link is held across the jump instead, and its exporter
        # dropping it proves the port went away on its host (however fast the board comes back).
        held = None if self.locator.observable else esc
        try:
            safe_point(f"before the jump on {self.name}: the board keeps its firmware")
        except interrupts.Interrupted:
            esc.close()
            raise
        if held is None:
            jump(esc, all_can=all_can)
        else:
            try:
                with step("jump to bootloader", all_can=all_can):
                    held.jump_to_bootloader(all_can=all_can)
            except BaseException:
                held.close()
                raise
        if progress:
            progress("boot", 0, 1)
        try:
            with step("wait for the board to come back", bound_s=self.bounds.back_s):
                back = wait_reappearance(
                    self.locator,
                    self.answers,
                    before=identity,
                    gone_timeout_s=self.bounds.gone_s,
                    back_timeout_s=self.bounds.back_s,
                    answer_timeout_s=self.bounds.answer_s,
                    back_diagnosis=Diagnosis.UNRESPONSIVE_AFTER_UPDATE,
                    answer_diagnosis=Diagnosis.UNRESPONSIVE_AFTER_UPDATE,
                    dropped=None if held is None else lambda: _dropped(held),
                )
        except RigTimeout as exc:
            raise UpdateError(
                f"station {self.name} after the update: {exc}", diagnosis=Diagnosis.UNRESPONSIVE_AFTER_UPDATE
            ) from exc
        finally:
            if held is not None:
                held.close()
        upload.times.boot_s = back.gone_s + back.back_s
        upload.times.ready_s = back.answer_s
        with self.connect() as esc, step("check the new version", expected=str(image.version)):
            after = esc.info
            assert after is not None
            verdict = check_update_took(before, after, image)
            nodes = check_nodes_agree(esc, node_ids, after) if all_can else {}
        check_identity_sent(after)
        proof = f"{back.proof}, {same_board(self.locator.url, before.uid, after.uid)}, {verdict}"
        log.info("%s: %s -> %s in %.3f s (%s)", self.name, before.version, after.version, upload.times.total_s, proof)
        return UpdateResult(upload, before, after, proof, nodes)

    def upload_bootloader(
        self, image: Image, *, window: int = 1, progress: Progress | None = None, all_can: bool = False
    ) -> UploadResult:
        """Write a bootloader over USB (the board keeps running its firmware)."""
        with self.connect() as esc:
            return upload_bootloader(esc, image, window=window, progress=progress, all_can=all_can)

    # --- SWD ---------------------------------------------------------------------------------------

    def swd(self, *, progress: Progress | None = None) -> SwdSession:
        """An SWD session for this station's probe (open it with `with`)."""
        spec = self.spec.swd
        if spec is None or spec.probe is None:
            raise SwdError(
                f"station {self.name} has no SWD probe in the rack file", diagnosis=Diagnosis.SWD_PROBE_MISSING
            )
        config = SwdConfig(
            spec.probe, target=spec.target, frequency_hz=spec.frequency, connect_mode=ConnectMode(spec.connect)
        )
        return SwdSession(config, progress)

    def close(self) -> None:
        for part in (self._channel.board if self._channel else None, self._supply):
            if part is not None:
                try:
                    part.close()
                except RigError as exc:
                    log.debug("closing %s: %s", part, exc)
        self._channel = None
        self._supply = None
