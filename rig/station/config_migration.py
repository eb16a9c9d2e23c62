"""Config care across a layout change: give a node its backup back by field name (rig.config.migrate).

When an operation (an update to another release) leaves a node with another config layout, its backup
cannot be written as it is. With the schemas of both layouts (rig.config.source), each config whose
signature changed is carried onto the board's new config by field name; what vanished, what is new,
what changed type or enum labels is listed, never guessed. The result is written through the layout
guard, read back and checked by field (rig.config.verify): a field the firmware changed on the way in
leaves the node unverified (and its backup kept), with the field named. A config whose layout did not
change is written back as it is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rig.client.esc import Esc
from rig.config.codec import decode, encode
from rig.config.migrate import Migration, migrate_blob
from rig.config.source import SchemaSource
from rig.config.verify import FieldCheck, changed, check_written
from rig.errors import ConfigError
from rig.firmware.config import KINDS, ConfigBackup, write_verified

if TYPE_CHECKING:
    from rig.station.configs import NodeCare


def migrate_node(entry: NodeCare, backup: ConfigBackup, now: ConfigBackup, client: Esc, source: SchemaSource) -> None:
    """Carry `backup` onto the node by field, write it, check it; the outcome goes into `entry`."""
    versions = (backup.version, now.version)
    if any(b.signature is None for b in (*backup.blobs.values(), *now.blobs.values())):
        entry.note += "; not migrated by field: a config without a signature (before 3.50) names no schema"
        return
    try:
        migrations = {
            kind: migrate_blob(backup.blobs[kind], now.blobs[kind], source, versions)
            for kind in KINDS
            if backup.blobs[kind].signature != now.blobs[kind].signature
        }
    except ConfigError as exc:
        entry.note += f"; not migrated by field: {exc}"
        return
    checks: list[FieldCheck] = []
    for kind in KINDS:
        migration = migrations.get(kind)
        if migration is None:
            if now.blobs[kind] != backup.blobs[kind]:
                write_verified(client, backup.blobs[kind], backup.version)
            continue
        blob = encode(migration.values)
        if blob != now.blobs[kind]:
            back = write_verified(client, blob, now.version, exact=False)
            checks += check_written(migration.values, decode(migration.values.schema, back))
    _report(entry, list(migrations.values()), checks)


def _report(entry: NodeCare, migrations: list[Migration], checks: list[FieldCheck]) -> None:
    entry.migration = [line for m in migrations for line in m.lines()] + [f"  {c.line()}" for c in checks]
    entry.restored = True
    bad = changed(checks)
    entry.verified = not bad
    carried = "; ".join(m.summary() for m in migrations)
    entry.note = f"{entry.note}; migrated by field ({carried})"
    if bad:
        entry.note += "; the firmware changed " + ", ".join(f"{c.kind.value}.{c.name}" for c in bad)
