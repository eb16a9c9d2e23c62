"""Was a config written as meant? The read-back compared with what was written, field by field.

The firmware does not keep every value it is sent (research notes config-schemas.md section 4): it
clamps some fields to hardware limits on SET (``l_current_max`` to the hardware's current limit, the
current scales to 0..1, ...), derives others, and stores doubles as float32, so a scaled value it sends
back can be one code lower than the one VESC Tool (and the rig) sent. A field read back with other bytes
is *requantized* when it is exactly what the firmware's float32 re-encoding of the written bytes gives,
otherwise *changed by the firmware* (clamped).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from rig.config.codec import ConfigValues, Encoding, decode_field, encode_field
from rig.config.schema import Value
from rig.config.text import value_text
from rig.protocol.codecs import ConfigKind


class Status(StrEnum):
    KEPT = "as written"
    REQUANTIZED = "requantized by the firmware (float32)"
    CHANGED = "changed by the firmware"


@dataclass(frozen=True)
class FieldCheck:
    """One field after a write: what was asked for, what was sent, what the board holds."""

    kind: ConfigKind
    name: str
    unit: str
    asked: str | None  # the requested value as text (None: the field was not asked for)
    sent: str
    got: str
    status: Status
    got_value: Value

    @property
    def ok(self) -> bool:
        """The board holds what was sent (or its float32 form)."""
        return self.status != Status.CHANGED

    def line(self) -> str:
        asked = "" if self.asked is None or self.asked == self.sent else f"asked {self.asked}, "
        return f"{self.kind.value}.{self.name}: {asked}sent {self.sent}, board holds {self.got} [{self.status.value}]"

    def as_json(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if k != "got_value"} | {
            "kind": self.kind.value,
            "status": self.status.value,
            "ok": self.ok,
        }


def check_written(sent: ConfigValues, got: ConfigValues, asked: dict[str, Value] | None = None) -> list[FieldCheck]:
    """A check for every asked field, and for every other field the board holds differently."""
    asked = asked or {}
    out = []
    for field in sent.schema.fields:
        sent_bytes = encode_field(field, sent[field.name])
        got_bytes = encode_field(field, got[field.name])
        if field.name not in asked and sent_bytes == got_bytes:
            continue
        if sent_bytes == got_bytes:
            status = Status.KEPT
        else:
            as_stored = decode_field(field, sent_bytes, Encoding.FIRMWARE)
            firmware = encode_field(field, as_stored, Encoding.FIRMWARE)
            status = Status.REQUANTIZED if firmware == got_bytes else Status.CHANGED
        out.append(
            FieldCheck(
                sent.schema.kind,
                field.name,
                field.unit,
                value_text(field, asked[field.name]) if field.name in asked else None,
                value_text(field, sent[field.name]),
                value_text(field, got[field.name]),
                status,
                got[field.name],
            )
        )
    return out


def changed(checks: Iterable[FieldCheck]) -> list[FieldCheck]:
    return [c for c in checks if not c.ok]
