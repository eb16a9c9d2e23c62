"""Firmware facts keyed by version ranges: each value holds from one version until the next fact's.

A :class:`Behaviour` is one thing that differs between firmware versions (which packet decoder, how
long a partial frame is kept, ...), given as :class:`Fact` rows: the first version a value holds for,
the value, and where it was read (a commit of vedderb/bldc, vedderb/bldc-bootloader or vedderb/vesc_tool,
as the research notes under docs/firmware-facts.md cite them). A behaviour answers for any version at or
above its first row; the firmware table (rig.device.firmware) only asks it about released versions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from rig.protocol.commands import FirmwareVersion

T = TypeVar("T")


@dataclass(frozen=True)
class Fact(Generic[T]):
    """`value` holds from firmware `since` on (until the next fact of the same behaviour); read at `source`."""

    since: FirmwareVersion
    value: T
    source: str


@dataclass(frozen=True)
class Span(Generic[T]):
    """One range of a behaviour: [first, until) where until None means "to the newest version"."""

    first: FirmwareVersion
    until: FirmwareVersion | None
    value: T
    source: str

    def __str__(self) -> str:
        upto = f"< {self.until}" if self.until is not None else "onward"
        return f"{self.first} {upto}: {self.value!r} ({self.source})"


@dataclass(frozen=True)
class Behaviour(Generic[T]):
    """One firmware behaviour as version ranges; `facts` ascend by version."""

    name: str
    doc: str
    facts: tuple[Fact[T], ...]

    def __post_init__(self) -> None:
        versions = [f.since for f in self.facts]
        if not versions or versions != sorted(set(versions)):
            raise ValueError(f"behaviour {self.name}: facts must ascend by version without repeats: {versions}")

    def fact(self, version: FirmwareVersion) -> Fact[T]:
        """The fact that holds for `version`; LookupError below the first fact."""
        found = None
        for fact in self.facts:
            if fact.since > version:
                break
            found = fact
        if found is None:
            raise LookupError(f"behaviour {self.name} is not known before {self.facts[0].since} (asked for {version})")
        return found

    def at(self, version: FirmwareVersion) -> T:
        """The value for `version`."""
        return self.fact(version).value

    def spans(self) -> tuple[Span[T], ...]:
        """The version ranges, for docs and tests."""
        ends: list[FirmwareVersion | None] = [f.since for f in self.facts[1:]]
        ends.append(None)
        return tuple(Span(f.since, end, f.value, f.source) for f, end in zip(self.facts, ends, strict=True))


def facts(*rows: tuple[str, T, str]) -> tuple[Fact[T], ...]:
    """Shorthand: ("3.48", value, "123bb00a ...") rows as Facts."""
    return tuple(Fact(FirmwareVersion.parse(since), value, source) for since, value, source in rows)
