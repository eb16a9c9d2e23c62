"""Config care across a layout change: give a node its backup back by field name (rig.config.migrate).

When an operation (an update to another release) leaves a node with another config layout, its backup
cannot be written as it is. With the schemas of both layouts (rig.config.source), each config whose
signature changed is carried onto the board's new config by field name; what vanished, what is new,
what changed type or enum labels is listed, never guessed. The result is written through the layout
guard, read back and checked by field (rig.config.verify): a field the firmware changed on the way in
leaves the node unverified (and its backup kept), with the field named. A config whose layout did not
change is written back as it is (:func:`write_back`, which the same-layout restore uses too): where the
read-back differs only by the firmware's float32 requantization (a scaled value one code lower, research
notes config-schemas.md section 2.2), the config counts as restored and the fields are listed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rig.client.esc import Esc
from rig.config.codec import decode, encode
from rig.config.migrate import Migration, migrate_blob
from rig.config.source import SchemaSource
from rig.config.verify import FieldCheck, changed, check_written
from rig.errors import ConfigError, Diagnosis
from rig.firmware.config import KINDS, ConfigBackup, write_verified
from rig.protocol.codecs import ConfigBlob
from rig.protocol.commands import FirmwareVersion

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
    kept: list[str] = []
    for kind in KINDS:
        migration = migrations.get(kind)
        if migration is None:
            if now.blobs[kind] != backup.blobs[kind]:
                kept += write_back(client, backup.blobs[kind], backup.version, source)
            continue
        blob = encode(migration.values)
        if blob != now.blobs[kind]:
            back = write_verified(client, blob, now.version, exact=False)
            checks += check_written(migration.values, decode(migration.values.schema, back))
    _report(entry, list(migrations.values()), checks)
    entry.migration += kept


def write_back(client: Esc, blob: ConfigBlob, made_for: FirmwareVersion, source: SchemaSource | None) -> list[str]:
    """Write a config of the board's own layout back and verify it: byte for byte, or, where the bytes
    differ and the schema is known, by field, accepting what the firmware's float32 storage requantized
    (its fields are returned as lines). ConfigError names what the firmware really changed."""
    back = write_verified(client, blob, made_for, exact=False)
    if back == blob:
        return []
    schema = None if source is None or blob.signature is None else source.find(blob.kind, blob.signature)
    if schema is None:
        raise ConfigError(
            f"{blob.kind.value} read back differs from what was written (no schema to compare it by field)",
            diagnosis=Diagnosis.CONFIG_MIXED,
        )
    checks = check_written(decode(schema, blob), decode(schema, back))
    bad = changed(checks)
    if bad:
        raise ConfigError(f"the firmware changed {', '.join(c.line() for c in bad)}", diagnosis=Diagnosis.CONFIG_MIXED)
    return [f"  {c.line()}" for c in checks]


def _report(entry: NodeCare, migrations: list[Migration], checks: list[FieldCheck]) -> None:
    entry.migration = [line for m in migrations for line in m.lines()] + [f"  {c.line()}" for c in checks]
    entry.restored = True
    bad = changed(checks)
    entry.verified = not bad
    carried = "; ".join(m.summary() for m in migrations)
    entry.note = f"{entry.note}; migrated by field ({carried})"
    if bad:
        entry.note += "; the firmware changed " + ", ".join(f"{c.kind.value}.{c.name}" for c in bad)
