"""Config backup, guarded writes and verified restore (F8, F10).

A backup records the mcconf and appconf blobs together with the firmware version, hardware name and
UID they were read from, and is written to disk (fsynced, atomically renamed) before any config
write or firmware update. It stays on disk until a restore has been read back and verified.

A blob is only written where the rig can vouch for its layout (F8): on firmware 3.50+ the blob's
signature must be the one the board itself reports (the signature changes with every layout change,
so the version may differ); before 3.50 there is no signature, so the board must run exactly the
version the blob was read from.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rig.client.esc import Esc
from rig.device.firmware import CONFIG_SIGNATURES
from rig.durable import write_durably
from rig.errors import ConfigError, Diagnosis
from rig.protocol.codecs import SIGNATURE_SINCE, ConfigBlob, ConfigKind
from rig.protocol.commands import FirmwareVersion

log = logging.getLogger(__name__)

KINDS = (ConfigKind.MCCONF, ConfigKind.APPCONF)


@dataclass(frozen=True)
class ConfigBackup:
    """Both configs of one board, the firmware they belong to, and where and why they were taken (meta)."""

    version: FirmwareVersion
    hw_name: str
    uid: str
    blobs: dict[ConfigKind, ConfigBlob]
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    def with_meta(self, **meta: Any) -> ConfigBackup:
        return replace(self, meta={**self.meta, **meta})

    def same_layout(self, other: ConfigBackup) -> bool:
        """Whether `other`'s blobs can be written where these came from: the same signatures (3.50+), or,
        with no signatures, the same firmware version."""
        if any(b.signature is None for b in (*self.blobs.values(), *other.blobs.values())):
            return self.version == other.version
        return all(self.blobs[k].signature == other.blobs[k].signature for k in KINDS)

    def to_json(self) -> str:
        return json.dumps(
            {
                "version": str(self.version),
                "hw_name": self.hw_name,
                "uid": self.uid,
                "blobs": {
                    kind.value: {"signature": blob.signature, "data": blob.data.hex()}
                    for kind, blob in self.blobs.items()
                },
                **({"meta": self.meta} if self.meta else {}),
            },
            indent=1,
        )

    @classmethod
    def from_json(cls, text: str, source: str = "backup") -> ConfigBackup:
        try:
            raw = json.loads(text)
            blobs = {
                ConfigKind(kind): ConfigBlob(ConfigKind(kind), entry["signature"], bytes.fromhex(entry["data"]))
                for kind, entry in raw["blobs"].items()
            }
            meta = dict(raw.get("meta", {}))
            return cls(FirmwareVersion.parse(raw["version"]), raw["hw_name"], raw["uid"], blobs, meta)
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{source}: not a config backup: {exc}", diagnosis=Diagnosis.BAD_REPLY) from exc

    def save(self, path: Path) -> Path:
        """Write atomically and durably: a crash leaves either no file or the whole backup."""
        return write_durably(path, self.to_json())

    @classmethod
    def load(cls, path: Path) -> ConfigBackup:
        try:
            return cls.from_json(path.read_text(), str(path))
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read config backup: {exc}") from exc


def check_known_layout(version: FirmwareVersion, blob: ConfigBlob) -> None:
    """F8: a released firmware whose config signature is not the one of its version has a layout the rig
    cannot vouch for (a tool that does not match the firmware misparses it)."""
    known = CONFIG_SIGNATURES.get(version)
    if known is None or blob.signature is None:
        return
    expected = known[KINDS.index(blob.kind)]
    if blob.signature != expected:
        raise ConfigError(
            f"firmware {version} reports {blob.kind.value} signature {blob.signature}, but {version} has "
            f"{expected}: unknown layout, the rig will not read or write it"
        )


def read_backup(esc: Esc) -> ConfigBackup:
    """Read FW_VERSION, mcconf and appconf, checking each layout is the one its firmware version has."""
    info = esc.fw_version()
    blobs = {kind: esc.get_config(kind) for kind in KINDS}
    for blob in blobs.values():
        check_known_layout(info.version, blob)
    return ConfigBackup(info.version, info.hw_name or "", (info.uid or b"").hex(), blobs)


def check_writable(esc: Esc, blob: ConfigBlob, made_for: FirmwareVersion, *, force: bool = False) -> None:
    """Refuse a blob whose layout the rig cannot vouch for on this board (F8), unless forced."""
    if force:
        log.warning("%s: writing a %s without layout checks because it was forced", esc.name, blob.kind.value)
        return
    running = esc.fw_version().version
    if blob.signature is None or running < SIGNATURE_SINCE:
        if blob.signature is not None or running != made_for:
            raise ConfigError(
                f"{esc.name} runs firmware {running}, the {blob.kind.value} was read from {made_for}: without a "
                "config signature on both sides the layouts cannot be compared, refusing to write it"
            )
        return
    current = esc.get_config(blob.kind).signature
    if current != blob.signature:
        raise ConfigError(
            f"{esc.name} (firmware {running}) reports {blob.kind.value} signature {current}, the blob (read from "
            f"{made_for}) has {blob.signature}: refusing to write a config of another layout"
        )


def write_verified(
    esc: Esc, blob: ConfigBlob, made_for: FirmwareVersion, *, force: bool = False, exact: bool = True
) -> ConfigBlob:
    """Write a blob after the layout checks, then read it back and compare; returns what was read back.

    With `exact` False only the layout of the read-back is checked: the caller compares it by field
    (rig.config.verify), because the firmware clamps some values on SET."""
    check_writable(esc, blob, made_for, force=force)
    esc.set_config(blob)
    back = esc.get_config(blob.kind)
    if not exact and (back.signature, len(back.data)) == (blob.signature, len(blob.data)):
        return back
    if back != blob:
        raise ConfigError(
            f"{esc.name}: {blob.kind.value} read back differs from what was written "
            f"({_first_difference(blob.data, back.data)})",
            diagnosis=Diagnosis.CONFIG_MIXED,
        )
    return back


def check_not_mixed(kind: ConfigKind, got: ConfigBlob, old: ConfigBlob, new: ConfigBlob) -> None:
    """F7: after an interrupted write the config must be exactly the old or exactly the new one."""
    if got not in (old, new):
        raise ConfigError(
            f"{kind.value} is neither the old nor the new one after an interrupted write "
            f"(vs old: {_first_difference(old.data, got.data)}; vs new: {_first_difference(new.data, got.data)})",
            diagnosis=Diagnosis.CONFIG_MIXED,
        )


def restore(esc: Esc, backup: ConfigBackup, *, force: bool = False) -> None:
    """Write both configs of a backup and verify them by reading back."""
    for kind in KINDS:
        write_verified(esc, backup.blobs[kind], backup.version, force=force)


def _first_difference(a: bytes, b: bytes) -> str:
    if len(a) != len(b):
        return f"{len(a)} bytes against {len(b)}"
    at = next((i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y), None)
    return "equal" if at is None else f"first difference at byte {at}"
