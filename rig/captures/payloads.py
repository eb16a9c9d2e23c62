"""What a frame's payload says, in one line and as JSON fields, decoded with the shared codecs.

Requests (host to ESC) go through :func:`rig.protocol.codecs.decode_request`, replies through
:func:`~rig.protocol.codecs.decode_reply`, both for the firmware version of the command table: FW_VERSION
fields, GET_VALUES values, config frames (size, signature and which released firmware uses that
signature), update chunks (offset, size), FORWARD_CAN with its inner payload. Field values of a config
need its schema, which this decoder does not load: it says so.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import Enum, IntEnum
from typing import Literal

from rig.device.firmware import CONFIG_SIGNATURES
from rig.errors import PayloadError
from rig.protocol import codecs as c
from rig.protocol.commands import CommandTable

PREVIEW_BYTES = 12
# The GET_VALUES fields shown in the one-line summary (every field is in the JSON).
VALUES_SHOWN = ("v_in", "temp_fet", "temp_motor", "current_motor", "current_in", "duty", "erpm", "fault")

Shape = Literal["request", "reply"]


@dataclass(frozen=True)
class Described:
    """A payload in words: its message type, a one-line summary and its fields (JSON-ready)."""

    message: str
    summary: str
    fields: dict[str, object] = field(default_factory=dict)


def _json(value: object) -> object:
    if isinstance(value, bytes):
        return value.hex(" ")
    if isinstance(value, IntEnum):
        return value.name
    if isinstance(value, Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        present = ((f.name, getattr(value, f.name)) for f in dataclasses.fields(value))
        return {name: _json(v) for name, v in present if v is not None}
    if isinstance(value, tuple | list):
        return [_json(v) for v in value]
    return value


def _preview(data: bytes) -> str:
    more = " …" if len(data) > PREVIEW_BYTES else ""
    return f"{data[:PREVIEW_BYTES].hex(' ')}{more}"


def known_signature(blob: c.ConfigBlob) -> list[str]:
    """The released firmware versions whose config of this kind carries the blob's signature."""
    index = 0 if blob.kind == c.ConfigKind.MCCONF else 1
    return [str(version) for version, pair in sorted(CONFIG_SIGNATURES.items()) if pair[index] == blob.signature]


def _config(blob: c.ConfigBlob) -> tuple[str, dict[str, object]]:
    fields: dict[str, object] = {"kind": blob.kind.value, "size": len(blob.data), "signature": blob.signature}
    if blob.signature is None:
        return f"{blob.kind.value}, {len(blob.data)} bytes, no signature (firmware before 3.50)", fields
    versions = known_signature(blob)
    fields["signature_of"] = versions
    whose = f"the {blob.kind.value} of {', '.join(versions)}" if versions else "not a release the rig knows"
    return f"{blob.kind.value}, signature {blob.signature} ({whose}), {len(blob.data)} bytes after it", fields


def _values(values: object) -> str:
    shown = [f"{name} {getattr(values, name)}" for name in VALUES_SHOWN if getattr(values, name, None) is not None]
    return ", ".join(shown)


def _summary(message: c.Message, table: CommandTable, to_esc: bool) -> str:  # noqa: C901 - one case per message
    match message:
        case c.FwVersionReply():
            parts = [f"firmware {message.version}"]
            if message.hw_name is not None:
                parts.append(f"hw {message.hw_name}")
            if message.uid is not None:
                parts.append(f"uid {message.uid.hex()}")
            if message.fw_name:
                parts.append(f"name {message.fw_name}")
            return ", ".join(parts)
        case c.ValuesReply():
            return _values(message.values)
        case c.ValuesSelectiveReply():
            return f"mask 0x{message.mask:08x}: {_values(message.values)}"
        case c.GetValuesSelective():
            return f"mask 0x{message.mask:08x}"
        case c.EraseNewApp():
            return f"erase for {message.size} bytes" + (" on every CAN node" if message.all_can else "")
        case c.WriteNewAppData():
            return f"offset {message.offset} (0x{message.offset:x}), {len(message.data)} bytes"
        case c.WriteNewAppDataReply():
            at = "" if message.offset is None else f", offset {message.offset}"
            return ("ok" if message.ok else "FAILED") + at
        case c.StatusReply():
            return "ok" if message.ok else "FAILED"
        case c.SetConfig() | c.ConfigReply():
            return _config(message.blob)[0]
        case c.SetConfigAck():
            return "stored"
        case c.ForwardCan():
            inner = describe(message.inner, table, to_esc)
            return f"to CAN node {message.node_id}: {inner.message} {inner.summary}".rstrip()
        case c.PingCanReply():
            return "nodes " + (", ".join(str(n) for n in message.node_ids) or "none")
        case c.TerminalCmd() | c.Print():
            return repr(message.text)
        case c.JumpToBootloader() | c.EraseBootloader():
            return "on every CAN node" if message.all_can else ""
    return "request" if to_esc else ""


def _fields(message: c.Message) -> dict[str, object]:
    if isinstance(message, c.SetConfig | c.ConfigReply):
        return _config(message.blob)[1]
    if isinstance(message, c.WriteNewAppData):
        return {"offset": message.offset, "size": len(message.data), "all_can": message.all_can}
    out = _json(message)
    assert isinstance(out, dict)
    if isinstance(message, c.FwVersionReply):
        out["version"] = str(message.version)
    return out


def describe(payload: bytes, table: CommandTable, to_esc: bool | None) -> Described:
    """The payload as a request (`to_esc`), a reply, or, when the direction is unknown, as its shape suggests."""
    if to_esc is None:
        to_esc = shape(payload, table) != "reply"
    try:
        message = (c.decode_request if to_esc else c.decode_reply)(payload, table)
    except PayloadError as exc:
        return Described("undecodable", str(exc), {"error": str(exc)})
    if isinstance(message, c.Unknown):
        body = message.body
        return Described("payload", f"{len(body)} bytes: {_preview(body)}" if body else "", {"body": body.hex(" ")})
    return Described(type(message).__name__, _summary(message, table, to_esc), _fields(message))


def _fits(payload: bytes, table: CommandTable, to_esc: bool) -> bool:
    """The payload decodes as a known message of that direction and encodes back to the same bytes."""
    try:
        message = (c.decode_request if to_esc else c.decode_reply)(payload, table)
        return not isinstance(message, c.Unknown) and c.encode(message, table) == payload
    except PayloadError:
        return False


def shape(payload: bytes, table: CommandTable) -> Shape | None:
    """Whether a payload can only be a request, only a reply, or either (None).

    A bare FW_VERSION id is a request, a FW_VERSION with version bytes a reply; a SET_APPCONF with a blob
    is a request. Commands the codecs do not decode count as neither.
    """
    request, reply = _fits(payload, table, True), _fits(payload, table, False)
    if request == reply:
        return None
    return "request" if request else "reply"
