"""The fault catalogue of the simulated ESC, and the set of faults active on one device.

Each fault reproduces a field failure of docs/failure-modes.md (or a link fault) on the device
side. Faults are set from the rack file (``faults = ["no_bootloader_returns", "link_slow:delay_s=0.5"]``)
and at run time (``device.faults.set("stuck_after", commands=3)``).

Field failures with nothing to inject here:

- F4/F5 belong to the SWD probe model.
- F6: the real firmware and bootloader accept an image for any hardware (size + CRC only), and so does
  the simulator without any fault: the host's guard is what is tested.
- F10: an update wiping the config is the real bootloader's behaviour, always on in the model.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from rig.sim.errors import SimError


@dataclass(frozen=True)
class Fault:
    """One catalogued fault: its name, the field failure it reproduces, what it does, its parameters."""

    name: str
    failure: str  # "F1".."F10", or "link"
    description: str
    params: MappingProxyType[str, Any] = field(default_factory=lambda: MappingProxyType({}))


def _fault(name: str, failure: str, description: str, **params: Any) -> Fault:
    return Fault(name, failure, description, MappingProxyType(params))


CATALOGUE: dict[str, Fault] = {
    f.name: f
    for f in (
        _fault(
            "no_bootloader_returns",
            "F1",
            "bootloader sector erased; JUMP_TO_BOOTLOADER ends in a watchdog reset and the old firmware returns",
            watchdog_s=32.0,
        ),
        _fault(
            "no_bootloader_hangs",
            "F2",
            "bootloader sector erased; after JUMP_TO_BOOTLOADER nothing answers until a power cycle",
        ),
        _fault(
            "bootloader_rejects",
            "F2",
            "the bootloader rejects every image as it would a bad CRC; the old firmware runs again",
        ),
        _fault(
            "reset_during_copy",
            "F2",
            "power is lost (a brown-out) part way through the bootloader's copy: RAM and CCM are lost, the app "
            "is half copied: bricked until SWD",
            at=0.5,
        ),
        _fault(
            "can_peer_update_fails",
            "F3",
            "this node ignores firmware-update commands that reach it over CAN (only its peer updates)",
        ),
        _fault(
            "rx_timeout",
            "F7",
            "the decoder keeps a partial frame for timeout_s of silence (as 3.29-5.02 did with 1000 ms)",
            timeout_s=1.0,
        ),
        _fault(
            "merge_partial",
            "F7",
            "flawed decoder: a SET_*CONF frame that fails its CRC or times out is applied over the old config",
        ),
        _fault(
            "config_signature",
            "F8",
            "the firmware uses other config signatures than its version has (0 = the real one XOR 0x5A5A5A5A)",
            mcconf=0,
            appconf=0,
        ),
        _fault(
            "stuck_after",
            "F9",
            "after `commands` commands the firmware stops answering until a power cycle (once: cleared by it)",
            commands=5,
        ),
        _fault(
            "link_drop",
            "link",
            "the USB link drops (and re-enumerates) after after_bytes bytes from the host",
            after_bytes=0,
        ),
        _fault("link_stall", "link", "the device stops sending anything (it still receives)"),
        _fault(
            "link_corrupt", "link", "one byte of every reply frame is XOR-ed with 0xFF (index into the frame)", index=3
        ),
        _fault("link_slow", "link", "every reply is held back delay_s seconds of real time", delay_s=0.5),
        _fault(
            "package_wipes_nvm",
            "gen",
            "the installed package's native library calls wipe_nvm when it starts: 6.02-6.05 erase sector 8, "
            "6.06+ sector 11 with the bootloader in it",
        ),
        _fault(
            "package_writes_nvm",
            "gen",
            "the installed package's native library writes `size` zero bytes with write_nvm at NVM address `addr` "
            "when it starts (6.06+: into the bootloader)",
            addr=0x100,
            size=64,
        ),
        _fault(
            "foreign_hw_firmware",
            "F6",
            "the node was reflashed by a tool without a hardware check (VESC Tool's CLI has none) with its firmware "
            "version built for hardware `hw`, and reports that hw_name; clearing the fault flashes its own back",
            hw="75_300",
        ),
        _fault(
            "no_can_backup",
            "gen",
            "the firmware is a build without the CAN id/baud backup (the 6.06 release commit b0931d01 reports 6.06 "
            "too): both fall back to their defaults after an update",
        ),
    )
}


def parse_fault(text: str) -> tuple[str, dict[str, Any]]:
    """Parse "name" or "name:key=value,key=value" (values are ints, floats or strings)."""
    name, _, rest = text.strip().partition(":")
    params: dict[str, Any] = {}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise SimError(f"fault {text!r}: parameter {item!r} is not key=value")
        params[key.strip()] = _value(value.strip())
    return name, params


def _value(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


class FaultSet:
    """The faults active on one device, with their parameters. Thread-safe.

    `on_change(name, on)` is called after a fault is set or cleared (the device applies side effects
    such as erasing the bootloader sector).
    """

    def __init__(
        self, faults: tuple[str, ...] | list[str] = (), on_change: Callable[[str, bool], None] | None = None
    ) -> None:
        self._active: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self.on_change = on_change
        for text in faults:
            name, params = parse_fault(text)
            self.set(name, **params)

    def set(self, name: str, on: bool = True, **params: Any) -> None:
        """Switch a catalogued fault on (with parameters overriding its defaults) or off."""
        fault = CATALOGUE.get(name)
        if fault is None:
            raise SimError(f"unknown fault {name!r}; known: {', '.join(CATALOGUE)}")
        unknown = set(params) - set(fault.params)
        if unknown:
            raise SimError(
                f"fault {name!r} has no parameter {', '.join(sorted(unknown))}; it takes {dict(fault.params)}"
            )
        with self._lock:
            if on:
                self._active[name] = {**fault.params, **params}
            else:
                self._active.pop(name, None)
        if self.on_change is not None:
            self.on_change(name, on)

    def clear(self, name: str) -> None:
        self.set(name, on=False)

    def __contains__(self, name: object) -> bool:
        with self._lock:
            return name in self._active

    def params(self, name: str) -> dict[str, Any]:
        """The parameters of an active fault (KeyError if it is not active)."""
        with self._lock:
            return dict(self._active[name])

    def get(self, name: str, param: str) -> Any:
        """One parameter of a fault, or None if the fault is not active."""
        with self._lock:
            active = self._active.get(name)
            return None if active is None else active[param]

    def active(self) -> dict[str, dict[str, Any]]:
        """A snapshot of every active fault and its parameters."""
        with self._lock:
            return {name: dict(p) for name, p in self._active.items()}
