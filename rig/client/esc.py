"""The Esc client: VESC request/response over a Link, every wait bounded, errors typed.

Command ids follow the firmware version once FW_VERSION is known (FW_VERSION itself is id 0 in
every version). Only idempotent reads are retried. Replies are matched by command id; PRINT packets
are collected in ``prints`` (the firmware's warnings arrive that way); anything else is logged and
dropped. ``esc.can(node_id)`` gives a client for a CAN node behind this one (FORWARD_CAN); its
replies come back unwrapped, as on the real firmware.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass, field

from rig.errors import BadReply, CommandFailed, ConfigError, LinkLost, PayloadError, RigTimeout
from rig.protocol import codecs as c
from rig.protocol.commands import LATEST, Cmd, CommandTable, FirmwareVersion, command_table
from rig.protocol.framing import MAX_PAYLOAD_3_40, MAX_PAYLOAD_VESC_TOOL, Frame, FrameDecoder, encode_frame
from rig.transport.link import Link, Trace

log = logging.getLogger(__name__)

FLUSH_BYTES = MAX_PAYLOAD_3_40 + 8  # the longest frame firmware <= 3.40 takes, plus header, CRC and stop


@dataclass(frozen=True)
class Timeouts:
    """Bounds of each kind of wait, in seconds (defaults from VESC Tool's, facts sheet section 5)."""

    reply: float = 1.0
    erase: float = 20.0
    chunk: float = 3.0
    ping_can: float = 3.0
    terminal_quiet: float = 0.2


@dataclass
class _Shared:
    """State shared by an Esc and the CAN clients made from it: one link, one decoder, one inbox."""

    link: Link
    decoder: FrameDecoder = field(default_factory=lambda: FrameDecoder(MAX_PAYLOAD_VESC_TOOL))
    inbox: deque[bytes] = field(default_factory=deque)
    prints: list[str] = field(default_factory=list)

    def pump(self, timeout_s: float) -> None:
        """Read what arrives within `timeout_s` into the inbox."""
        self.inbox.extend(self.decoder.frames(self.link.read(timeout_s)))

    def resync(self) -> int:
        """End the partial frame the decoder holds, as if the stream ended there; how many frames that gave.

        A corrupted reply can leave a stray `02 xx` or `03 xx xx` from its inside as a frame start that
        would swallow the next replies whole (facts sheet 1), so retries could never succeed. After a
        reply timeout those bytes are garbage; frames hidden behind them are still found.
        """
        found = [e.payload for e in self.decoder.finish() if isinstance(e, Frame)]
        self.inbox.extend(found)
        return len(found)


class Esc:
    """A connected ESC, or a CAN node reached through one (see :meth:`can`)."""

    def __init__(
        self,
        link: Link,
        *,
        timeouts: Timeouts = Timeouts(),
        retries: int = 2,
        version: FirmwareVersion | None = None,
    ) -> None:
        self._shared = _Shared(link)
        self._via: tuple[Esc, int] | None = None
        self.timeouts = timeouts
        self.retries = retries
        self.info: c.FwVersionReply | None = None
        self.table: CommandTable = command_table(version) if version else LATEST

    @classmethod
    def open(cls, url: str, *, trace: Trace | None = None, **options: object) -> Esc:
        """Open the link from a URL and make a client (call fw_version() to learn the firmware)."""
        return cls(Link.open(url, trace=trace), **options)  # type: ignore[arg-type]

    def can(self, node_id: int) -> Esc:
        """A client for CAN node `node_id`, reached through FORWARD_CAN on this ESC."""
        node = Esc(self.link, timeouts=self.timeouts, retries=self.retries, version=self.version)
        node._shared = self._shared
        node._via = (self, node_id)
        return node

    @property
    def link(self) -> Link:
        return self._shared.link

    @property
    def prints(self) -> list[str]:
        """PRINT texts received so far (terminal output, firmware warnings)."""
        return self._shared.prints

    @property
    def name(self) -> str:
        return self.link.url if self._via is None else f"{self.link.url} CAN {self._via[1]}"

    def close(self) -> None:
        self.link.close()

    def __enter__(self) -> Esc:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._via is None:
            self.close()

    # --- sending and receiving ---------------------------------------------------------------------

    def send(self, message: c.Message) -> None:
        """Send one message (wrapped in FORWARD_CAN for a CAN node)."""
        payload = c.encode(message, self.table)
        if self._via is not None:
            parent, node_id = self._via
            parent.send(c.ForwardCan(node_id, payload))
        else:
            self.link.write(encode_frame(payload))

    def receive(self, cmd: Cmd, timeout_s: float, what: str | None = None) -> c.Message:
        """Wait up to `timeout_s` for the reply with command `cmd`; RigTimeout names the bound."""
        deadline = time.monotonic() + timeout_s
        shared = self._shared
        while True:
            while shared.inbox:
                reply = self._dispatch(shared.inbox.popleft())
                if reply is not None and reply.cmd == cmd:
                    return reply
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                if shared.resync():
                    continue
                raise RigTimeout(f"{what or cmd.name} from {self.name}", timeout_s)
            shared.pump(min(remaining, 0.05))

    def drain(self, quiet_s: float, bound_s: float) -> None:
        """Dispatch everything that arrives until the link is quiet for `quiet_s` (at most `bound_s`)."""
        shared = self._shared
        deadline = time.monotonic() + bound_s
        quiet_until = time.monotonic() + quiet_s
        while (now := time.monotonic()) < min(deadline, quiet_until):
            shared.pump(min(0.02, quiet_until - now))
            if shared.inbox:
                quiet_until = time.monotonic() + quiet_s
            while shared.inbox:
                self._dispatch(shared.inbox.popleft())

    def _dispatch(self, payload: bytes) -> c.Message | None:
        """Decode a received payload; PRINTs are kept, malformed or unknown ones are logged."""
        try:
            reply = c.decode_reply(payload, self.table)
        except PayloadError as exc:
            log.warning("%s: undecodable reply %s: %s", self.name, payload[:16].hex(" "), exc)
            return None
        if isinstance(reply, c.Print):
            log.info("%s PRINT: %s", self.name, reply.text)
            self.prints.append(reply.text)
            return None
        if isinstance(reply, c.Unknown):
            log.debug("%s: ignoring payload with id %d", self.name, reply.wire_id)
            return None
        return reply

    def flush_device_decoder(self) -> None:
        """Push the device's packet decoder back to its idle state, whatever partial frame it holds.

        A link cut in the middle of a frame leaves the firmware holding a partial packet (F7): up to
        5.02 for 1000 ms after the last byte, and in 5.03+ until enough bytes arrive to complete it.
        Bytes that cannot start a frame fill it up so it completes and fails its CRC (the 3.40 state
        machine), or fail its stop byte and are skipped one by one (3.48+), or overflow the 3.48-5.02
        buffer, which resets it. Enough of them to complete the longest frame any firmware accepts
        leaves every generation idle. No frame can complete validly on them: wherever its stop byte
        falls, it is one of these zeros, not 03. So a real firmware acts on none of it.
        """
        self.link.write(bytes(FLUSH_BYTES))

    def _drop_stale(self) -> None:
        """Before a request: drop replies already received (late answers to earlier, timed-out requests).

        Without this a late reply would be taken as the answer to the next request of its command.
        PRINTs among them are still collected.
        """
        shared = self._shared
        shared.pump(0)
        while shared.inbox:
            stale = self._dispatch(shared.inbox.popleft())
            if stale is not None:
                log.info("%s: dropping stale %s reply", self.name, stale.cmd.name)

    def request(
        self, message: c.Message, reply_cmd: Cmd, *, timeout_s: float | None = None, idempotent: bool = False
    ) -> c.Message:
        """Send and wait for the reply; idempotent reads are retried on timeout."""
        bound = self.timeouts.reply if timeout_s is None else timeout_s
        attempts = 1 + (self.retries if idempotent else 0)
        for attempt in range(1, attempts + 1):
            self._drop_stale()
            self.send(message)
            try:
                return self.receive(reply_cmd, bound)
            except RigTimeout:
                if attempt == attempts:
                    if attempts > 1:
                        raise RigTimeout(f"{reply_cmd.name} from {self.name} ({attempts} tries)", bound) from None
                    raise
                log.info("%s: no %s within %.3g s, retrying", self.name, reply_cmd.name, bound)
        raise AssertionError("unreachable")

    # --- commands ----------------------------------------------------------------------------------

    def fw_version(self) -> c.FwVersionReply:
        """Read FW_VERSION and switch to that firmware's command ids."""
        reply = self.request(c.FwVersionRequest(), Cmd.FW_VERSION, idempotent=True)
        assert isinstance(reply, c.FwVersionReply)
        self.info = reply
        self.table = command_table(reply.version)
        return reply

    @property
    def version(self) -> FirmwareVersion:
        return self.table.version

    def values(self) -> c.Values:
        reply = self.request(c.GetValues(), Cmd.GET_VALUES, idempotent=True)
        assert isinstance(reply, c.ValuesReply)
        return reply.values

    def values_selective(self, mask: int) -> c.ValuesSelectiveReply:
        reply = self.request(c.GetValuesSelective(mask), Cmd.GET_VALUES_SELECTIVE, idempotent=True)
        assert isinstance(reply, c.ValuesSelectiveReply)
        return reply

    def get_config(self, kind: c.ConfigKind, *, default: bool = False) -> c.ConfigBlob:
        ask = c.GetConfig(kind, default)
        reply = self.request(ask, ask.cmd, idempotent=True)
        assert isinstance(reply, c.ConfigReply)
        return reply.blob

    def set_config(self, blob: c.ConfigBlob, *, timeout_s: float | None = None) -> None:
        """Write a config blob; a firmware that rejects the signature answers only with a PRINT."""
        message = c.SetConfig(blob)
        seen = len(self.prints)
        try:
            self.request(message, message.cmd, timeout_s=timeout_s)
        except RigTimeout as exc:
            warnings = [p for p in self.prints[seen:] if "signature" in p.lower()]
            if warnings:
                raise ConfigError(f"{self.name} refused the {blob.kind.value}: {warnings[-1]!r}") from exc
            raise

    def erase_new_app(self, size: int, *, all_can: bool = False) -> None:
        """ERASE_NEW_APP for an image of `size` bytes (without the 6-byte header)."""
        reply = self.request(c.EraseNewApp(size, all_can), Cmd.ERASE_NEW_APP, timeout_s=self.timeouts.erase)
        assert isinstance(reply, c.StatusReply)
        if not reply.ok:
            raise CommandFailed(f"{self.name} refused ERASE_NEW_APP of {size} bytes")

    def write_new_app_data(self, offset: int, data: bytes, *, all_can: bool = False) -> c.WriteNewAppDataReply:
        reply = self.request(
            c.WriteNewAppData(offset, data, all_can), Cmd.WRITE_NEW_APP_DATA, timeout_s=self.timeouts.chunk
        )
        assert isinstance(reply, c.WriteNewAppDataReply)
        if not reply.ok:
            raise CommandFailed(f"{self.name} refused WRITE_NEW_APP_DATA at offset {offset}")
        if reply.offset is not None and reply.offset != offset:
            raise BadReply(f"{self.name} acknowledged offset {reply.offset}, sent {offset}")
        return reply

    def erase_bootloader(self, *, all_can: bool = False) -> None:
        reply = self.request(c.EraseBootloader(all_can), Cmd.ERASE_BOOTLOADER, timeout_s=self.timeouts.erase)
        assert isinstance(reply, c.StatusReply)
        if not reply.ok:
            raise CommandFailed(f"{self.name} refused ERASE_BOOTLOADER")

    def jump_to_bootloader(self, *, all_can: bool = False) -> None:
        """JUMP_TO_BOOTLOADER (no reply: the board disconnects)."""
        try:
            self.send(c.JumpToBootloader(all_can))
        except LinkLost:
            log.info("%s: link went away on JUMP_TO_BOOTLOADER, as expected", self.name)

    def reboot(self) -> None:
        self.send(c.Reboot())

    def alive(self) -> None:
        self.send(c.Alive())

    def ping_can(self) -> tuple[int, ...]:
        reply = self.request(c.PingCan(), Cmd.PING_CAN, timeout_s=self.timeouts.ping_can, idempotent=True)
        assert isinstance(reply, c.PingCanReply)
        return reply.node_ids

    def terminal(self, text: str, *, timeout_s: float | None = None) -> str:
        """Run a terminal command; returns the PRINT text that arrives until the link goes quiet."""
        bound = self.timeouts.reply if timeout_s is None else timeout_s
        seen = len(self.prints)
        self.send(c.TerminalCmd(text))
        deadline = time.monotonic() + bound
        while len(self.prints) == seen:
            if time.monotonic() >= deadline:
                raise RigTimeout(f"terminal output for {text!r} from {self.name}", bound)
            self.drain(0.02, max(0.0, deadline - time.monotonic()))
        self.drain(self.timeouts.terminal_quiet, max(0.0, deadline - time.monotonic()))
        return "\n".join(self.prints[seen:])
