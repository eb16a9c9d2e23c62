"""`rig config dump|restore|diff|set` and `rig config schemas list|check|import`: configs by named field.

The fields come from the board's config schema, read from the user's VESC Tool (``--vesc-tool PATH``,
the rack file's ``schemas``, ``$VESC_TOOL_SRC``, or the cache that ``rig config schemas import`` fills in
the state directory; docs/config-schemas.md). A board on firmware before 3.50 sends no signature:
choose its schema with ``--schema-version VERSION``.

Exit codes: 0 done, 1 rig error, 2 usage; ``config diff`` 3 when the configs differ; ``config set`` 4
when the board holds another value than the one written for some field (the firmware clamped it);
``config schemas check`` 1 when a schema does not match its firmware.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from rich.table import Table

from rig.cli.args import firmware_version
from rig.cli.output import emit_json, make_console, plain
from rig.cli.session import add_connection_options, add_state_options, add_target, open_session, session_json
from rig.config.apply import Assignment, SettingsResult, board_schemas, plan, write_settings
from rig.config.codec import decode
from rig.config.diff import FieldDiff, diff_values
from rig.config.firmware_check import FirmwareLayout, field_problems, firmware_layout
from rig.config.schema import Schema
from rig.config.source import SchemaSource, import_schemas, layout_problem
from rig.config.text import toml_table
from rig.device.config_layouts import BLDC_REFS, RELEASED_LAYOUTS
from rig.errors import ConfigError, Diagnosis
from rig.firmware.config import KINDS, ConfigBackup, read_backup
from rig.protocol.codecs import ConfigKind
from rig.protocol.commands import FirmwareVersion
from rig.station.rack import load_rack
from rig.station.state import StateDir

EXIT_DIFFERENT = 3  # `config diff`: both sides read fine, and they differ
EXIT_CHANGED_BY_FIRMWARE = 4  # `config set`: written, but the board holds other values for some fields
DIFF_OFFSETS_SHOWN = 8


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `config` group."""
    config = subparsers.add_parser("config", help="configs by named field: dump, restore, diff, set, schemas")
    sub = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")

    dump = sub.add_parser(
        "dump",
        help="save mcconf and appconf: the raw backup and a readable TOML by field",
        description="Writes the raw backup (JSON, what `rig config restore` takes) first, then the TOML by field "
        "(needs the board's schemas; --raw-only skips it).",
    )
    add_target(dump)
    _schema_options(dump)
    dump.add_argument("-o", "--output", type=Path, required=True, help="raw backup file to write (JSON)")
    dump.add_argument("--toml", type=Path, help="readable file by field (default: OUTPUT with .toml)")
    dump.add_argument("--raw-only", action="store_true", help="write the raw backup only")
    dump.set_defaults(func=run_dump)

    rest = sub.add_parser(
        "restore",
        help="write a backup to an ESC and verify it by reading back",
        description="Refuses a config of another layout (signature, or version before 3.50) or another "
        "hardware unless --force.",
    )
    add_target(rest)
    rest.add_argument("file", type=Path, help="backup file written by `rig config dump`")
    rest.add_argument("--force", action="store_true", help="write without layout and hardware checks")
    rest.set_defaults(func=run_restore)

    diff = sub.add_parser(
        "diff",
        help="compare two backups, or a backup with an ESC, field by field",
        description=f"Exit 0 when both configs are the same, {EXIT_DIFFERENT} when they differ. Across a layout "
        "change fields are matched by name; fields only one side has, or whose type changed, are listed.",
    )
    diff.add_argument("a", type=Path, help="backup file")
    diff.add_argument("b", help="backup file, or the URL of an ESC to read now")
    diff.add_argument("--bytes", action="store_true", help="compare bytes (no schemas needed)")
    _schema_options(diff)
    add_connection_options(diff)
    add_state_options(diff)
    diff.set_defaults(func=run_diff, parser=diff, rack=None)

    put = sub.add_parser(
        "set",
        help="set fields by name through the station session, and report what the firmware clamped",
        description="NAME=VALUE (mcconf:NAME=VALUE or appconf:NAME=VALUE where both have the field); enums by "
        "label or index. The configs before are kept as undo files; every field is read back and checked. "
        f"Exit {EXIT_CHANGED_BY_FIRMWARE} when the board holds another value than the one written.",
    )
    add_target(put)
    _schema_options(put)
    put.add_argument("settings", nargs="+", metavar="NAME=VALUE", help="fields to set")
    put.add_argument("--force", action="store_true", help="write without the layout check")
    put.set_defaults(func=run_set)

    schemas = sub.add_parser("schemas", help="the config schemas the rig finds: list, check, import")
    ssub = schemas.add_subparsers(dest="schemas_command", required=True, metavar="ACTION")
    listing = ssub.add_parser("list", help="every schema found, with its signature and what firmware sends it")
    _source_options(listing)
    listing.set_defaults(func=run_schemas_list)
    check = ssub.add_parser(
        "check",
        help="check every schema against the signature and size its firmware sends (exit 1 on a mismatch)",
        description="With --bldc, also field by field (name, order, wire type, scale: the signature does not cover "
        "scales) against the firmware's confgenerator.c of each version, and the rig's own layout table "
        "against confgenerator.h.",
    )
    _source_options(check)
    check.add_argument("--bldc", type=Path, help="a vedderb/bldc git directory (bare or .git) to compare with")
    check.set_defaults(func=run_schemas_check)
    imp = ssub.add_parser(
        "import",
        help="copy schemas into the state directory (a VESC Tool folder, or files exported from VESC Tool)",
    )
    imp.add_argument("paths", type=Path, nargs="+", help="VESC Tool source folder, res/config, or exported XML files")
    imp.add_argument("--kind", choices=[k.value for k in ConfigKind], help="the config an exported file is for")
    imp.add_argument("--state-dir", type=Path, help="state directory (default: per user)")
    imp.add_argument("--json", action="store_true", help="one JSON document on stdout")
    imp.set_defaults(func=run_schemas_import)


def _schema_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--vesc-tool",
        type=Path,
        action="append",
        default=[],
        help="VESC Tool source folder or exported schema files (repeatable; default: the rack file's schemas, "
        "$VESC_TOOL_SRC, and the state directory's imported schemas)",
    )
    parser.add_argument(
        "--schema-version",
        type=firmware_version,
        help="take res/config/VERSION's schema (firmware before 3.50 sends no signature to find one by)",
    )


def _source_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--vesc-tool", type=Path, action="append", default=[], help="VESC Tool source folder or files")
    parser.add_argument("--rack", type=Path, help="rack file whose schemas key to use")
    parser.add_argument("--state-dir", type=Path, help="state directory (default: the rack's, else per user)")
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")


def schema_source(args: argparse.Namespace, *, with_cache: bool = True) -> SchemaSource:
    """The schema source a command uses: --vesc-tool, else the rack file's schemas and $VESC_TOOL_SRC; plus the
    state directory's cache (`with_cache` False: without it when --vesc-tool names what to look at)."""
    rack = load_rack(args.rack) if getattr(args, "rack", None) is not None else None
    state = StateDir.at(getattr(args, "state_dir", None) or (rack.state_dir if rack else None))
    cache = None if args.vesc_tool and not with_cache else state.schemas
    return SchemaSource.resolve(args.vesc_tool, rack_schemas=rack.schemas if rack else None, cache=cache)


def _decoded(backup: ConfigBackup, source: SchemaSource, args: argparse.Namespace) -> dict[ConfigKind, Any]:
    schemas = board_schemas(backup.blobs, source, backup.version, args.schema_version)
    return {kind: decode(schemas[kind], backup.blobs[kind]) for kind in KINDS}


# --- dump and restore ------------------------------------------------------------------------------


def _backup_json(backup: ConfigBackup) -> dict[str, Any]:
    return {
        "version": str(backup.version),
        "hw_name": backup.hw_name,
        "uid": backup.uid,
        "configs": {k.value: {"signature": b.signature, "size": len(b.data)} for k, b in backup.blobs.items()},
    }


def dump_toml(backup: ConfigBackup, decoded: dict[ConfigKind, Any], raw: Path | None = None) -> str:
    """The readable file: the board, then a table per config with a key per field."""
    schemas: dict[ConfigKind, Schema] = {kind: values.schema for kind, values in decoded.items()}
    head = [
        f"# rig config dump: {backup.hw_name} firmware {backup.version}, UID {backup.uid or '?'}, "
        f"{time.strftime('%Y-%m-%d %H:%M:%S')}",
        "# Values in stored units; where VESC Tool shows another unit the comment gives unit / editor scale.",
        f"# Raw backup (for `rig config restore`): {raw}" if raw else "",
        "[board]",
        f"version = {json.dumps(str(backup.version))}",
        f"hw_name = {json.dumps(backup.hw_name)}",
        f"uid = {json.dumps(backup.uid)}",
    ]
    for kind in KINDS:
        head.append(f"{kind.value}_signature = {json.dumps(backup.blobs[kind].signature)}")
        head.append(f"{kind.value}_schema = {json.dumps(schemas[kind].source)}")
    body = [toml_table(kind.value, decoded[kind]) for kind in KINDS]
    return "\n".join(line for line in head if line) + "\n\n" + "\n".join(body)


def run_dump(args: argparse.Namespace) -> int:
    with open_session(args) as session, session.connect() as esc:
        backup = read_backup(esc)
    try:
        backup.save(args.output)
    except OSError as exc:
        raise ConfigError(f"cannot write {args.output}: {exc}", diagnosis=Diagnosis.CONFIG_MIXED) from exc
    readable = None
    if not args.raw_only:
        decoded = _decoded(backup, schema_source(args), args)
        readable = args.toml or args.output.with_suffix(".toml")
        try:
            readable.write_text(dump_toml(backup, decoded, args.output))
        except OSError as exc:
            raise ConfigError(f"cannot write {readable}: {exc}") from exc
    if args.json:
        emit_json({"url": args.url, "file": str(args.output), "toml": str(readable or ""), **_backup_json(backup)})
    else:
        print(f"{args.output}: mcconf and appconf of {backup.hw_name} firmware {backup.version} (UID {backup.uid})")
        if readable:
            print(f"{readable}: the same, by field")
    return 0


def run_restore(args: argparse.Namespace) -> int:
    backup = ConfigBackup.load(args.file)
    with open_session(args) as session:
        info = session.read_board()
        board_hw, board_uid = info.hw_name or "", (info.uid or b"").hex()
        if board_hw != backup.hw_name and not args.force:
            raise ConfigError(
                f"{args.file} was read from hardware {backup.hw_name!r}, {args.url} is {board_hw!r}: refusing to "
                "write another hardware's config (--force to write it anyway)",
                diagnosis=Diagnosis.WRONG_HARDWARE,
            )
        session.restore_backup(backup, force=args.force)
    same_board = board_uid == backup.uid
    if args.json:
        emit_json(
            {
                "url": args.url,
                "file": str(args.file),
                "verified": True,
                "same_board": same_board,
                **session_json(session),
            }
        )
    else:
        note = "" if same_board else f" (read from another board, UID {backup.uid})"
        print(f"{args.url}: mcconf and appconf from {args.file} written and verified{note}")
    return 0


# --- diff ------------------------------------------------------------------------------------------


def _other_side(args: argparse.Namespace) -> tuple[ConfigBackup, str]:
    if Path(args.b).is_file():
        return ConfigBackup.load(Path(args.b)), args.b
    with open_session(args, args.b) as session, session.connect() as esc:
        return read_backup(esc), f"{args.b} (now)"


def run_diff(args: argparse.Namespace) -> int:
    a = ConfigBackup.load(args.a)
    b, b_name = _other_side(args)
    meta = {
        "version": [str(a.version), str(b.version)],
        "hw_name": [a.hw_name, b.hw_name],
        "uid": [a.uid, b.uid],
    }
    if args.bytes:
        return _byte_diff(args, a, b, b_name, meta)
    source = schema_source(args)
    da, db = _decoded(a, source, args), _decoded(b, source, args)
    diffs = [d for kind in KINDS for d in diff_values(da[kind], db[kind])]
    if args.json:
        emit_json({"a": str(args.a), "b": b_name, "same": not diffs, **meta, "fields": [plain(d) for d in diffs]})
    else:
        print_field_diff(f"config: {args.a} vs {b_name}", meta, diffs)
    return 0 if not diffs else EXIT_DIFFERENT


def print_field_diff(title: str, meta: dict[str, list[str]], diffs: list[FieldDiff]) -> None:
    table = Table(title=title)
    for column in ("field", "unit", "A", "B", ""):
        table.add_column(column, overflow="fold")
    for key, (x, y) in meta.items():
        table.add_row(key, "", x, y, "same" if x == y else "[yellow]differs[/]")
    for d in diffs:
        note = d.change.value + (f": {d.note}" if d.note else "")
        table.add_row(f"{d.kind.value}.{d.name}", d.unit, d.old or "-", d.new or "-", f"[red]{note}[/]")
    if not diffs:
        table.add_row("fields", "", "", "", "all the same")
    make_console().print(table)


def _byte_diff(
    args: argparse.Namespace, a: ConfigBackup, b: ConfigBackup, b_name: str, meta: dict[str, list[str]]
) -> int:
    rows = []
    for kind in KINDS:
        x, y = a.blobs[kind], b.blobs[kind]
        offsets = [i for i, (p, q) in enumerate(zip(x.data, y.data, strict=False)) if p != q]
        offsets += range(min(len(x.data), len(y.data)), max(len(x.data), len(y.data)))
        rows.append((kind, x, y, offsets))
    same = all(x == y for _, x, y, _ in rows)
    if args.json:
        configs = {
            kind.value: {
                "signature": [x.signature, y.signature],
                "size": [len(x.data), len(y.data)],
                "differing_bytes": len(offsets),
                "first_offsets": offsets[:DIFF_OFFSETS_SHOWN],
            }
            for kind, x, y, offsets in rows
        }
        emit_json({"a": str(args.a), "b": b_name, "same": same, **meta, "configs": configs})
        return 0 if same else EXIT_DIFFERENT
    table = Table(title=f"config bytes: {args.a} vs {b_name}")
    for column in ("", "A", "B", ""):
        table.add_column(column, overflow="fold")
    for key, (p, q) in meta.items():
        table.add_row(key, p, q, "same" if p == q else "[yellow]differs[/]")
    for kind, x, y, offsets in rows:
        table.add_row(f"{kind.value} signature", str(x.signature), str(y.signature), _same(x.signature, y.signature))
        table.add_row(f"{kind.value} size", str(len(x.data)), str(len(y.data)), _same(len(x.data), len(y.data)))
        shown = ", ".join(str(o) for o in offsets[:DIFF_OFFSETS_SHOWN])
        more = " …" if len(offsets) > DIFF_OFFSETS_SHOWN else ""
        count = "1 byte differs" if len(offsets) == 1 else f"{len(offsets)} bytes differ"
        detail = f"[red]{count}, first at {shown}{more}[/]" if offsets else "same"
        table.add_row(f"{kind.value} bytes", "", "", detail)
    make_console().print(table)
    return 0 if same else EXIT_DIFFERENT


def _same(x: object, y: object) -> str:
    return "same" if x == y else "[red]differs[/]"


# --- set -------------------------------------------------------------------------------------------


def run_set(args: argparse.Namespace) -> int:
    if args.url and "=" in args.url and "://" not in args.url:  # with --rack the first NAME=VALUE lands in url
        args.settings, args.url = [args.url, *args.settings], None
    assignments = [Assignment.parse(text) for text in args.settings]
    source = schema_source(args)
    with open_session(args) as session:
        with session.connect() as esc:
            before = read_backup(esc)
        settings = plan(before.blobs, assignments, source, before.version, args.schema_version)
        result = write_settings(session, settings, force=args.force)
    bad = result.changed_by_firmware
    if args.json:
        emit_json(
            {
                "url": args.url,
                "written": [k.value for k in result.written],
                "fields": [c.as_json() for c in result.checks],
                "changed_by_firmware": [f"{c.kind.value}.{c.name}" for c in bad],
                "warnings": settings.warnings,
                **session_json(session),
            }
        )
    else:
        _print_set(args, result)
    return EXIT_CHANGED_BY_FIRMWARE if bad else 0


def _print_set(args: argparse.Namespace, result: SettingsResult) -> None:
    console = make_console()
    for warning in result.plan.warnings:
        console.print(f"[yellow]warning:[/] {warning} (written anyway: the firmware does not check it)")
    written = " and ".join(k.value for k in result.written) or "nothing (every field already held the value)"
    console.print(f"{args.url or args.station}: wrote {written}", highlight=False)
    table = Table()
    for column in ("field", "asked", "sent", "board holds", ""):
        table.add_column(column, overflow="fold")
    for check in result.checks:
        style = "green" if check.status.name == "KEPT" else ("yellow" if check.ok else "red")
        name = f"{check.kind.value}.{check.name}"
        table.add_row(name, check.asked or "(not asked)", check.sent, check.got, f"[{style}]{check.status.value}[/]")
    console.print(table)


# --- schemas ---------------------------------------------------------------------------------------


def _schema_rows(source: SchemaSource) -> list[dict[str, Any]]:
    rows = []
    for file in source.files():
        schema = file.load()
        versions = file.versions or tuple(
            v for v, layouts in RELEASED_LAYOUTS.items() if layouts[file.kind].signature == schema.signature
        )
        problems = [p for v in file.versions if (p := layout_problem(schema, v))]
        known = [v for v in file.versions if v in RELEASED_LAYOUTS]
        status = (
            "mismatch" if problems else ("matches its firmware (signature, size)" if known else "no firmware facts")
        )
        rows.append(
            {
                "file": str(file.path),
                "kind": file.kind.value,
                "versions": [str(v) for v in versions],
                "signature": schema.signature,
                "size": schema.size,
                "fields": len(schema.fields),
                "status": status,
                "problems": problems,
            }
        )
    return rows


def run_schemas_list(args: argparse.Namespace) -> int:
    source = schema_source(args, with_cache=False)
    rows = _schema_rows(source)
    if args.json:
        emit_json({"source": source.describe(), "schemas": rows})
        return 0
    _print_schemas(f"schemas in {source.describe()}", rows)
    return 0


def _print_schemas(title: str, rows: list[dict[str, Any]]) -> None:
    table = Table(title=title)
    for column in ("versions", "kind", "signature", "bytes", "fields", "firmware", "file"):
        table.add_column(column, overflow="fold")
    for r in rows:
        status = r["status"] if not r["problems"] else "[red]" + "; ".join(r["problems"]) + "[/]"
        table.add_row(
            ", ".join(r["versions"]) or "-",
            r["kind"],
            str(r["signature"]),
            str(r["size"]),
            str(r["fields"]),
            status,
            r["file"],
        )
    make_console().print(table)


def run_schemas_check(args: argparse.Namespace) -> int:
    """Every version folder against rig.device.config_layouts (and bldc's serializer with --bldc)."""
    source = schema_source(args, with_cache=False)
    rows = _schema_rows(source)
    if not rows:
        raise ConfigError(f"no schemas found in {source.describe()}", diagnosis=Diagnosis.CONFIG_SCHEMA_MISSING)
    table: list[str] = []
    if args.bldc is not None:
        table = _check_against_bldc(args.bldc, source, rows)
    found = {(v, r["kind"]) for r in rows for v in r["versions"] if r["status"] != "no firmware facts"}
    missing = [f"{v} {k.value}" for v in RELEASED_LAYOUTS for k in ConfigKind if (str(v), k.value) not in found]
    bad = [r for r in rows if r["problems"]]
    ok = not bad and not table
    if args.json:
        doc = {"source": source.describe(), "ok": ok, "schemas": rows, "not_found": missing, "table": table}
        emit_json(doc)
        return 0 if ok else 1
    against = "signatures and sizes" + (f", and bldc's serializer ({args.bldc})" if args.bldc else "")
    print(f"schemas in {source.describe()} against the firmware's {against}:")
    for r in rows:
        versions = ", ".join(r["versions"]) or "-"
        verdict = "; ".join(r["problems"]) if r["problems"] else r["status"]
        print(
            f"  {versions:<6} {r['kind']:<7} {r['signature']:>10} {r['size']:>4} B {r['fields']:>3} fields  {verdict}"
        )
    matched = sum(1 for r in rows if r["status"].startswith("matches"))
    print(f"{matched} of {len(rows)} schema files match their firmware; {len(bad)} do not")
    for problem in table:
        print(f"layout table: {problem}")
    if args.bldc is not None and not table:
        print(f"layout table (rig.device.config_layouts): all {len(RELEASED_LAYOUTS)} versions match bldc")
    if missing:
        print(f"released layouts with no schema in the source: {', '.join(missing)}")
    return 0 if ok else 1


def _check_against_bldc(git_dir: Path, source: SchemaSource, rows: list[dict[str, Any]]) -> list[str]:
    """Field-by-field problems go into each row; returns the layout table's own disagreements with bldc."""
    layouts: dict[tuple[str, ConfigKind], FirmwareLayout] = {}

    def layout(version: FirmwareVersion, kind: ConfigKind) -> FirmwareLayout:
        key = (BLDC_REFS[version], kind)
        if key not in layouts:
            layouts[key] = firmware_layout(git_dir, key[0], kind)
        return layouts[key]

    files = {str(f.path): f for f in source.files()}
    for row in rows:
        file = files[row["file"]]
        checked = [v for v in file.versions if v in BLDC_REFS]
        for version in checked:
            row["problems"] += [f"{version}: {p}" for p in field_problems(file.load(), layout(version, file.kind))]
        if checked and not row["problems"]:
            row["status"] = f"matches its firmware, field by field (bldc {', '.join(BLDC_REFS[v] for v in checked)})"
    table = []
    for version, kinds in RELEASED_LAYOUTS.items():
        for kind, expected in kinds.items():
            got = layout(version, kind)
            if (got.signature, got.size) != (expected.signature, expected.size):
                table.append(
                    f"{version} {kind.value}: {expected.signature}/{expected.size} B, bldc {got.ref} has "
                    f"{got.signature}/{got.size} B"
                )
    return table


def run_schemas_import(args: argparse.Namespace) -> int:
    state = StateDir.at(args.state_dir)
    done = import_schemas(args.paths, state.schemas, ConfigKind(args.kind) if args.kind else None)
    if args.json:
        emit_json(
            {"cache": str(state.schemas), "imported": [{"file": str(p), "signature": s.signature} for p, s in done]}
        )
        return 0
    for path, schema in done:
        print(f"{schema.kind.value} {schema.signature} ({schema.size} bytes, from {schema.source}) -> {path}")
    print(f"{len(done)} schema files in {state.schemas}")
    return 0
