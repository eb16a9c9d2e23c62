"""The station session's config care: back up every node's configs before an operation, give them back after.

Before anything that can wipe or change a config (an update, a bootloader upload, SWD, a recovery, a
config write) the session calls :meth:`ConfigKeeper.take`: every node behind the station's port (the
USB node and each CAN peer the rack lists) is read (F8 guards) and saved as its own file in the state
directory, keyed by the board's UID and CAN id and the session, so two nodes never share a file. After
the operation :meth:`ConfigKeeper.give_back` reads each node again: unchanged configs need no write;
changed ones are written back and verified by reading; a config whose layout changed (another
signature, or another version before 3.50) is not written as it is: with the schemas of both layouts it
is carried over by field and checked by field (rig.station.config_migration), otherwise the reason is
reported. A file is deleted only once its node is verified; otherwise it stays, marked pending.

A pending file that belongs to no live session is an orphan (its run was killed). The next session that
meets the board restores it if the layout still matches (and says so), or refuses to write until the
user decides (restore it with ``rig config restore FILE`` or delete it).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rig.client.esc import Esc
from rig.config.source import SchemaSource
from rig.device.firmware import fw_version_fields_for
from rig.device.memory import UID_BYTES
from rig.durable import remove_durably
from rig.errors import ConfigError, Diagnosis, IdentityLost, RigError
from rig.firmware.config import KINDS, ConfigBackup, read_backup
from rig.station.config_migration import migrate_node, write_back
from rig.station.state import StateDir

log = logging.getLogger(__name__)

PENDING = "pending"  # taken before an operation: restore after it
UNDO = "undo"  # kept for the user after a deliberate config write

Node = tuple[int | None, Esc]  # (CAN id, or None for the USB node; its client)


def node_name(can_id: int | None) -> str:
    return "local" if can_id is None else f"CAN {can_id}"


@dataclass
class NodeCare:
    """What happened to one node's configs around an operation."""

    node: str
    uid: str
    file: str
    changed: bool | None = None  # did the operation change the configs (None: not looked at yet)
    restored: bool = False  # written back
    verified: bool = False  # read back equal to the backup (or never changed)
    note: str = ""  # why not restored, or what else happened
    migration: list[str] = field(default_factory=list)  # fields carried across a layout change (config_migration)

    @property
    def kept(self) -> bool:
        """Whether the backup file is still on disk (only unverified backups are kept)."""
        return Path(self.file).is_file()

    def describe(self) -> str:
        if self.verified and self.migration:
            what = f"restored and verified by field: {self.note or 'the firmware requantized some values'}"
        elif self.verified:
            what = "restored and verified" if self.restored else "unchanged (verified)"
        else:
            what = f"NOT restored: {self.note or 'not checked'}; backup kept at {self.file}"
        return f"{self.node} (UID {self.uid or '?'}): {what}"


@dataclass
class ConfigCare:
    """The config care of one operation: a backup per node, and what became of it."""

    operation: str
    nodes: list[NodeCare] = field(default_factory=list)
    backups: dict[str, ConfigBackup] = field(default_factory=dict, repr=False)  # by node name
    orphans: list[str] = field(default_factory=list)  # orphaned backups found and restored first

    @property
    def ok(self) -> bool:
        return all(n.verified for n in self.nodes)

    @property
    def local(self) -> ConfigBackup:
        """The USB node's backup."""
        return self.backups[node_name(None)]

    def describe(self) -> list[str]:
        lines = [f"orphaned backup restored: {o}" for o in self.orphans]
        return lines + [f"configs {n.describe()}" for n in self.nodes]

    def as_json(self) -> dict[str, Any]:
        return {
            "operation": self.operation,
            "ok": self.ok,
            "orphans_restored": list(self.orphans),
            "nodes": [{**vars(n), "kept": n.kept} for n in self.nodes],
        }


def check_identity(nodes: list[tuple[int | None, ConfigBackup]]) -> None:
    """Each node must carry the UID its firmware version sends, and no two nodes may share one (F3 boards)."""
    seen: dict[str, str] = {}
    for can_id, backup in nodes:
        if "uid" in fw_version_fields_for(backup.version) and len(bytes.fromhex(backup.uid)) != UID_BYTES:
            raise IdentityLost(
                f"{node_name(can_id)} runs firmware {backup.version}, which sends its 12-byte STM32 UID in "
                f"FW_VERSION, but it sent {backup.uid or 'none'}: the rig cannot tell which board it is"
            )
        if backup.uid and backup.uid in seen:
            raise IdentityLost(
                f"{node_name(can_id)} and {seen[backup.uid]} both report UID {backup.uid}: refusing to back up "
                "two boards under one identity"
            )
        seen[backup.uid] = node_name(can_id)


def _part(text: str) -> str:
    """A piece of a backup file name: letters, digits, '-', '.'; no '__' (it separates the pieces)."""
    cleaned = "".join(ch if ch.isalnum() or ch in "-." else "_" for ch in text)[:48]
    while "__" in cleaned:
        cleaned = cleaned.replace("__", "_")
    return cleaned


def _name_parts(path: Path) -> tuple[str, str, str, int]:
    """(station, node, session, sequence) of a backup file name made by ConfigKeeper._path."""
    pieces = path.stem.split("__")
    if len(pieces) != 6 or not pieces[4].isdigit():
        return "", "", "", 0
    return pieces[1], pieces[2], pieces[3], int(pieces[4])


class ConfigKeeper:
    """Backups of one station session, in the state directory."""

    def __init__(self, state: StateDir, station_key: str, session_id: str, schemas: SchemaSource | None = None) -> None:
        self.state = state
        self.station_key = station_key
        self.session_id = session_id
        self.schemas = schemas  # with schemas, a layout change is bridged by field (rig.station.config_migration)
        self._seq = 0

    def _path(self, backup: ConfigBackup, can_id: int | None, operation: str) -> Path:
        """backups/<UID>/<time>__<station>__<node>__<session>__<sequence>__<operation>.json"""
        self._seq += 1
        station = _part(self.station_key)
        node = "local" if can_id is None else f"can{can_id}"
        parts = (time.strftime("%Y%m%dT%H%M%S"), station, node, self.session_id, f"{self._seq:03d}", _part(operation))
        return self.state.backups / (backup.uid or f"no-uid__{station}__{node}") / ("__".join(parts) + ".json")

    def take(self, nodes: list[Node], operation: str, *, purpose: str = PENDING) -> ConfigCare:
        """Read and save every node's configs (F8 guards; identity checked) before `operation`."""
        read = [(can_id, read_backup(client)) for can_id, client in nodes]
        check_identity(read)
        care = ConfigCare(operation)
        for can_id, backup in read:
            path = self._path(backup, can_id, operation)
            meta = {
                "purpose": purpose,
                "station": self.station_key,
                "node": node_name(can_id),
                "can_id": can_id,
                "operation": operation,
                "session": self.session_id,
                "taken": time.time(),
            }
            backup.with_meta(**meta).save(path)
            care.nodes.append(NodeCare(node_name(can_id), backup.uid, str(path)))
            care.backups[node_name(can_id)] = backup
        log.info("%s: configs backed up before %s: %s", self.station_key, operation, [n.file for n in care.nodes])
        return care

    def give_back(self, care: ConfigCare, nodes: list[Node]) -> ConfigCare:
        """Restore and verify each node's backup (layout permitting); delete the files that are verified."""
        clients = {node_name(can_id): client for can_id, client in nodes}
        for entry in care.nodes:
            client = clients.get(entry.node)
            if client is None:
                entry.note = "node not reachable any more"
                continue
            try:
                self._restore_node(entry, care.backups[entry.node], client)
            except RigError as exc:
                entry.note = f"[{exc.diagnosis.value}] {exc}"
            if entry.verified:
                remove_durably(Path(entry.file))
                self._drop_superseded(Path(entry.file))
        for line in care.describe():
            (log.info if care.ok else log.warning)("%s: %s", self.station_key, line)
        return care

    def _drop_superseded(self, verified: Path) -> None:
        """Unverified backups this session took of the same node after `verified` (operations inside the one
        just verified) describe states the board has now left for a verified one: they are not orphans."""
        station, node, session, seq = _name_parts(verified)
        for path in verified.parent.glob(f"*__{station}__{node}__{session}__*.json"):
            if _name_parts(path)[3] > seq:
                log.info("%s: dropping superseded backup %s", self.station_key, path)
                remove_durably(path)

    def _restore_node(self, entry: NodeCare, backup: ConfigBackup, client: Esc) -> None:
        now = read_backup(client)
        if now.uid != backup.uid:
            entry.note = f"another board answers as {entry.node} (UID {now.uid}, backup of {backup.uid})"
            return
        entry.changed = any(now.blobs[k] != backup.blobs[k] for k in KINDS)
        if not entry.changed:
            entry.verified = True
            return
        if not backup.same_layout(now):
            entry.note = (
                "layout changed: "
                + ", ".join(
                    f"{k.value} signature {backup.blobs[k].signature} -> {now.blobs[k].signature}" for k in KINDS
                )
                + f" (firmware {backup.version} -> {now.version})"
            )
            if self.schemas is not None:
                migrate_node(entry, backup, now, client, self.schemas)
            return
        for kind in KINDS:
            if now.blobs[kind] != backup.blobs[kind]:
                entry.migration += write_back(client, backup.blobs[kind], backup.version, self.schemas)
        entry.restored = entry.verified = True

    def keep_for_undo(self, care: ConfigCare) -> None:
        """After a deliberate config write the backups stay as the user's undo files (not orphans)."""
        for entry in care.nodes:
            backup = care.backups[entry.node]
            backup.with_meta(**{**backup.meta, "purpose": UNDO}).save(Path(entry.file))

    # --- orphans ---------------------------------------------------------------------------------------

    def orphans(self, uid: str, live: set[str]) -> list[tuple[Path, ConfigBackup]]:
        """Pending backups of board `uid` that no live session (ids in `live`) took, oldest first."""
        folder = self.state.backups / uid if uid else None
        if folder is None or not folder.is_dir():
            return []
        found = []
        for path in sorted(folder.glob("*.json")):
            try:
                backup = ConfigBackup.load(path)
            except ConfigError as exc:
                log.warning("%s", exc)
                continue
            if backup.meta.get("purpose") == PENDING and backup.meta.get("session") not in live:
                found.append((path, backup))
        return found

    def recover_orphans(self, nodes: list[Node], live: set[str]) -> list[str]:
        """Restore the oldest orphaned backup of each node as an operation's backup is restored (by field
        across a layout change when the schemas are there); refuse to go on when it cannot be.

        The oldest one is what the board held before the killed run touched it. Returns the files
        restored (each then deleted, with any later orphans of the same node)."""
        restored: list[str] = []
        for can_id, client in nodes:
            uid = read_backup(client).uid
            mine = [(p, b) for p, b in self.orphans(uid, live) if b.meta.get("can_id") == can_id]
            if not mine:
                continue
            path, backup = mine[0]
            taken = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(backup.meta.get("taken", 0))))
            where = f"{path} (taken {taken} before {backup.meta.get('operation')!r} by a run that did not finish)"
            log.warning("%s: restoring orphaned backup %s", self.station_key, where)
            entry = NodeCare(node_name(can_id), uid, str(path))
            self._restore_node(entry, backup, client)
            if not entry.verified:
                raise ConfigError(
                    f"{entry.node} of {self.station_key} has an unverified backup {where} that could not be "
                    f"restored: {entry.note}; refusing to write to this board until you decide: "
                    f"`rig config restore {path} --force`, or delete the file",
                    diagnosis=Diagnosis.CONFIG_NOT_RESTORED,
                )
            for line in entry.migration:
                log.info("%s: %s", self.station_key, line)
            for stale, _ in mine:
                remove_durably(stale)
            restored.append(str(path))
        return restored
