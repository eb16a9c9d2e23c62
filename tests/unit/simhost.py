"""Byte-level test host for a SimEsc (shared by test_sim_device, test_sim_bootloader and test_sim_can).

`Host` encodes requests for one firmware version, feeds them to the device's receive() and decodes what
it transmits; `make` builds a powered, booted device; `update` runs the facts sheet's firmware update.
"""

from __future__ import annotations

from rig.firmware.image import update_payload
from rig.protocol import codecs as c
from rig.protocol.commands import Cmd, command_table, fw
from rig.protocol.framing import FrameDecoder, encode_frame
from rig.sim.clock import DeviceClock
from rig.sim.device import SimEsc, SimEscSpec

UID = bytes(range(0x10, 0x1C))
CHUNK = 384


class Host:
    """A byte-level host: encodes requests for one firmware version and decodes what comes back."""

    def __init__(self, device: SimEsc, version: str) -> None:
        self.device = device
        self.out: list[bytes] = []
        device.transmit = self.out.append
        self.table = command_table(fw(version))
        self.decoder = FrameDecoder()

    def frame(self, message: c.Message) -> bytes:
        return encode_frame(c.encode(message, self.table))

    def send(self, message: c.Message, now: float | None = None) -> None:
        self.device.receive(self.frame(message), now)

    def raw(self) -> bytes:
        data = b"".join(self.out)
        self.out.clear()
        return data

    def replies(self) -> list[c.Message | c.Unknown]:
        return [c.decode_reply(p, self.table) for p in self.decoder.frames(self.raw())]

    def ask(self, message: c.Message, now: float | None = None) -> list[c.Message | c.Unknown]:
        self.send(message, now)
        return self.replies()

    def one(self, message: c.Message) -> c.Message | c.Unknown:
        replies = self.ask(message)
        assert len(replies) == 1, replies
        return replies[0]

    def version(self) -> str:
        reply = self.one(c.FwVersionRequest())
        assert isinstance(reply, c.FwVersionReply)
        self.table = command_table(reply.version)
        return str(reply.version)


def make(fw_version: str = "6.02", *, hw: str = "60", on: bool = True, **spec: object) -> SimEsc:
    device = SimEsc(SimEscSpec("esc", hw, fw_version, UID, "SIM0001", **spec), DeviceClock())  # type: ignore[arg-type]
    if on:
        device.set_power(True)
        device.run_pending()
    return device


def update(host: Host, image: bytes, *, all_can: bool = False) -> None:
    """The firmware update as the facts sheet describes VESC Tool's: erase, 384-byte chunks, jump."""
    blob = update_payload(image).payload
    assert host.one(c.EraseNewApp(len(blob) - 6, all_can)) == c.StatusReply(Cmd.ERASE_NEW_APP, True)
    for offset in range(0, len(blob), CHUNK):
        chunk = blob[offset : offset + CHUNK]
        if chunk == b"\xff" * len(chunk):
            continue
        reply = host.one(c.WriteNewAppData(offset, chunk, all_can))
        assert isinstance(reply, c.WriteNewAppDataReply) and reply.ok
    host.send(c.JumpToBootloader(all_can))
