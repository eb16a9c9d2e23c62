"""dcttech "USBRelayN" HID relay boards (USB 16c0:05df, product string "USBRelay2/4/8"), via hidapi.

Feature report 0 (sources: JPEWdev/pyhid-usb-relay controller.py, darrylb123/usbrelay relay.h):
[0xFF, n] switches relay n (from 1) on, [0xFD, n] off, [0xFE] all on, [0xFC] all off. Reading
feature report 0 gives 8 bytes: bytes 0-4 the board's own ID (the USB serial number is empty),
byte 7 the relay states, bit n-1 for relay n. hidapi returns the report number first, so the data
starts at index 1. Bounds: feature reports are USB control transfers, bounded by the kernel.

Tested only with a fake device object (no HID devices in the test sandbox).
"""

from __future__ import annotations

from typing import Any, Protocol

from rig.errors import PowerError
from rig.hardware.power.base import check_channel

VENDOR_ID = 0x16C0
PRODUCT_ID = 0x05DF
PRODUCT_PREFIX = "USBRelay"
CMD_ON = 0xFF
CMD_OFF = 0xFD
REPORT_ID = 0x00
REPORT_LEN = 8


class HidDevice(Protocol):
    """The part of hidapi's `hid.device` this backend uses."""

    def send_feature_report(self, data: list[int] | bytes) -> int: ...
    def get_feature_report(self, report_num: int, max_length: int) -> list[int]: ...
    def close(self) -> None: ...


def switch_report(channel: int, on: bool) -> bytes:
    """The feature report (report number first, padded to 8 data bytes) that switches one relay."""
    return bytes([REPORT_ID, CMD_ON if on else CMD_OFF, channel]).ljust(REPORT_LEN + 1, b"\0")


class HidRelayBoard:
    """A dcttech HID relay board around an open hidapi device."""

    def __init__(self, device: HidDevice, *, channels: int, name: str = "") -> None:
        self.device = device
        self.channels = channels
        self.name = name or "HID relay"

    def set(self, channel: int, on: bool) -> None:
        check_channel(channel, 1, self.channels, self.name)
        try:
            written = self.device.send_feature_report(switch_report(channel, on))
        except OSError as exc:
            raise PowerError(f"{self.name}: switching relay {channel} failed: {exc}") from exc
        if written < 0:
            raise PowerError(f"{self.name}: switching relay {channel} failed (hidapi returned {written})")

    def get(self, channel: int) -> bool | None:
        check_channel(channel, 1, self.channels, self.name)
        return bool(self._status()[7] & (1 << (channel - 1)))

    def board_id(self) -> str:
        """The 5-character ID the board keeps in its status report."""
        return bytes(self._status()[0:5]).decode("ascii", errors="replace").rstrip("\0")

    def close(self) -> None:
        self.device.close()

    def _status(self) -> list[int]:
        try:
            report = list(self.device.get_feature_report(REPORT_ID, REPORT_LEN + 1))
        except OSError as exc:
            raise PowerError(f"{self.name}: reading the status report failed: {exc}") from exc
        if len(report) < REPORT_LEN + 1:
            raise PowerError(f"{self.name}: short status report {report}")
        return report[1:]


def _hid_module() -> Any:
    try:
        import hid  # the `hidapi` package (optional extra: pip install 'vesc-rig[hid]')
    except ImportError as exc:
        raise PowerError("HID relay boards need the optional 'hidapi' package: pip install 'vesc-rig[hid]'") from exc
    return hid


def _open_board(hid: Any, info: dict[str, Any]) -> HidRelayBoard:
    device = hid.device()
    try:
        device.open_path(info["path"])
    except OSError as exc:
        raise PowerError(f"HID relay {info['path']!r}: cannot open: {exc}") from exc
    channels = int(info["product_string"][len(PRODUCT_PREFIX) :] or 1)
    board = HidRelayBoard(device, channels=channels)
    board.name = f"HID relay {board.board_id()}"
    return board


def open_hid_relay(url: str = "") -> HidRelayBoard:
    """Open the dcttech board whose 5-character ID is `url` ("" = the only one attached)."""
    hid = _hid_module()
    infos = [
        info
        for info in hid.enumerate(VENDOR_ID, PRODUCT_ID)
        if (info.get("product_string") or "").startswith(PRODUCT_PREFIX)
    ]
    if not url and len(infos) != 1:
        raise PowerError(f"HID relay: {len(infos)} boards attached; name one by its board ID")
    found = []
    for info in infos:
        board = _open_board(hid, info)
        if not url or board.board_id() == url:
            return board
        found.append(board.board_id())
        board.close()
    raise PowerError(f"HID relay {url}: not found; boards present: {found or 'none'}")
