"""Which direction word of a log means "to the ESC": the word's usual meaning, the frames, or the user.

Direction words are relative to whoever wrote the log. A phone app's ``write:`` goes to the ESC, but a
TCP bridge's ``read:`` is what it read from the app, so also goes to the ESC (the F7 log: ``read:
02a310…`` is the app's SET_APPCONF). So the frames decide where they can: a word whose frames can only be
requests (a bare FW_VERSION, a SET_APPCONF with its blob) goes to the ESC, one whose frames can only be
replies goes to the host. Where the frames say nothing the word's usual meaning stands, and ``--to-esc
WORD`` overrides both.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from rig.captures.lines import NO_LABEL, Chunk, LogLine, Note, NoteKind
from rig.captures.payloads import shape
from rig.errors import ProtocolError
from rig.protocol.commands import CommandTable
from rig.protocol.framing import Frame, FrameDecoder


class Role(StrEnum):
    TO_ESC = "to ESC"
    TO_HOST = "to host"
    UNKNOWN = "unknown"


_USUAL: dict[str, Role] = {
    **dict.fromkeys(("tx", "write", "written", "send", "sent", "sending", ">", ">>", "->", "-->"), Role.TO_ESC),
    **dict.fromkeys(
        ("rx", "read", "recv", "receive", "received", "receiving", "notification", "<", "<<", "<-", "<--"),
        Role.TO_HOST,
    ),
}


class DirectionError(ProtocolError):
    """A direction word the user named that the log does not have."""


@dataclass(frozen=True)
class Evidence:
    """How many frames of one direction word can only be requests, and how many only replies."""

    requests: int = 0
    replies: int = 0

    @property
    def lean(self) -> int:
        return self.requests - self.replies


@dataclass(frozen=True)
class Directions:
    """The role of each direction word of a log, and why."""

    roles: dict[str, Role]
    reasons: dict[str, str]

    def role(self, label: str) -> Role:
        return self.roles.get(label, Role.UNKNOWN)

    def describe(self) -> list[str]:
        return [f"{_shown(label)} = {role.value} ({self.reasons[label]})" for label, role in self.roles.items()]


def _shown(label: str) -> str:
    return repr(label) if label != NO_LABEL else "lines without a direction word"


def evidence(items: Iterable[LogLine], table: CommandTable) -> dict[str, Evidence]:
    """Per direction word: its frames that are request-shaped or reply-shaped (a connection line resets)."""
    decoders: dict[str, FrameDecoder] = {}
    counts: dict[str, Counter[str]] = {}
    for chunk in items:
        if isinstance(chunk, Note):
            if chunk.kind in (NoteKind.CONNECT, NoteKind.DISCONNECT):
                decoders.clear()
            continue
        decoder = decoders.setdefault(chunk.label, FrameDecoder())
        tally = counts.setdefault(chunk.label, Counter())
        for event in decoder.feed(chunk.data + chunk.tail):
            if isinstance(event, Frame):
                tally[shape(event.payload, table) or "either"] += 1
    return {label: Evidence(tally["request"], tally["reply"]) for label, tally in counts.items()}


def _reason(found: Evidence) -> str:
    return f"inferred: {found.requests} request-shaped and {found.replies} reply-shaped frames"


def assign(items: list[LogLine], table: CommandTable, to_esc: str | None = None) -> Directions:
    """The role of every direction word in the log; `to_esc` names the word that goes to the ESC."""
    labels = list(dict.fromkeys(item.label for item in items if isinstance(item, Chunk)))
    if to_esc is not None:
        wanted = to_esc.lower()
        if wanted not in labels:
            words = ", ".join(repr(label) for label in labels if label) or "none"
            raise DirectionError(f"--to-esc {to_esc!r}: the log has no such direction word (it has: {words})")
        roles = {label: Role.TO_ESC if label == wanted else Role.TO_HOST for label in labels}
        return Directions(roles, dict.fromkeys(labels, "given with --to-esc"))
    found = evidence(items, table)
    roles, reasons = {}, {}
    for label in labels:
        lean = found[label].lean
        if lean:
            roles[label], reasons[label] = (Role.TO_ESC if lean > 0 else Role.TO_HOST), _reason(found[label])
        elif label in _USUAL:
            roles[label], reasons[label] = _USUAL[label], "the word's usual meaning"
        else:
            roles[label], reasons[label] = Role.UNKNOWN, "no direction word, no request- or reply-shaped frame"
    _pair(labels, found, roles, reasons)
    return Directions(roles, reasons)


def _pair(labels: list[str], found: dict[str, Evidence], roles: dict[str, Role], reasons: dict[str, str]) -> None:
    """Two words, both leaning the same way: the one that leans further goes to the ESC, the other back."""
    if len(labels) != 2 or roles[labels[0]] != roles[labels[1]] or Role.UNKNOWN in roles.values():
        return
    first, second = labels
    if found[first].lean == found[second].lean:
        return
    ahead, behind = (first, second) if found[first].lean > found[second].lean else (second, first)
    roles[ahead], roles[behind] = Role.TO_ESC, Role.TO_HOST
    reasons[ahead], reasons[behind] = _reason(found[ahead]), _reason(found[behind]) + ", the other word leans further"
