"""Where config schemas come from: the user's VESC Tool, read at run time (the project ships none of them).

VESC Tool (GPL-3.0) keeps one schema per firmware version and config in its source tree,
``res/config/<version>/parameters_{mcconf,appconf}.xml``; an installed VESC Tool exports the schema of
the connected firmware with *Developer -> Parameter Editor Mcconf/Appconf -> Save XML*. A
:class:`SchemaSource` looks, in this order of choice, at:

1. places given on the command line (``--vesc-tool PATH``, repeatable), and then only those;
2. otherwise the rack file's ``schemas`` key (``rig sim serve --schemas PATH`` sets it in the resolved
   rack) and ``$VESC_TOOL_SRC``, both when both are set;

and always at the schema cache in the state directory (``<state>/schemas/<kind>/<signature>.xml``),
which ``rig config schemas import PATH`` fills. A place is a VESC Tool source folder, its
``res/config`` folder, a folder of exported XML files, or one exported file (an exported file's name
must say ``mcconf`` or ``appconf``). Schemas are found by signature (the one a board sends), never by
version alone, because several versions share a layout and a VESC Tool tree may be older or newer than
the firmware; a version is only used to pick a schema explicitly (firmware before 3.50 has no signature).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from rig.config.schema import Schema, SchemaError, parse_schema
from rig.device.config_layouts import released_layout, versions_with
from rig.durable import write_durably
from rig.errors import Diagnosis
from rig.protocol.codecs import ConfigKind
from rig.protocol.commands import FirmwareVersion, fw

log = logging.getLogger(__name__)

ENV = "VESC_TOOL_SRC"
FILE_NAMES = {ConfigKind.MCCONF: "parameters_mcconf.xml", ConfigKind.APPCONF: "parameters_appconf.xml"}
VESC_TOOL_GIT = "https://github.com/vedderb/vesc_tool"
_VERSION_FOLDER = re.compile(r"^\d+\.\d{2}(_o_\d+\.\d{2})*$")


class SchemaMissing(SchemaError):
    """No schema for a config layout in any place the source looks; the message says where to get one."""

    diagnosis = Diagnosis.CONFIG_SCHEMA_MISSING


@dataclass(frozen=True)
class SchemaFile:
    """One schema file: its config kind and the firmware versions its folder names (none for an export)."""

    path: Path
    kind: ConfigKind
    versions: tuple[FirmwareVersion, ...] = ()

    def load(self) -> Schema:
        """The parsed schema (parsed once per file content; SchemaError names the file)."""
        try:
            stat = self.path.stat()
            key = (str(self.path), stat.st_mtime_ns, stat.st_size, self.kind)
            if key not in _PARSED:
                _PARSED[key] = parse_schema(self.path.read_bytes(), self.kind, str(self.path))
        except OSError as exc:
            raise SchemaError(f"{self.path}: cannot read schema: {exc}") from exc
        return _PARSED[key]


_PARSED: dict[tuple[str, int, int, ConfigKind], Schema] = {}


def kind_from_name(path: Path) -> ConfigKind | None:
    """The config kind an exported file's name says (…mcconf….xml, …appconf….xml), if exactly one."""
    name = path.name.lower()
    found = [kind for kind in ConfigKind if kind.value in name]
    return found[0] if len(found) == 1 else None


def _folder_versions(name: str) -> tuple[FirmwareVersion, ...]:
    return tuple(fw(part) for part in name.split("_o_"))


def files_in(place: Path, kind: ConfigKind | None = None) -> list[SchemaFile]:
    """The schema files a place holds (a VESC Tool tree, its res/config, a folder of exports, one file)."""
    if place.is_file():
        found = kind or kind_from_name(place)
        if found is None:
            raise SchemaError(
                f"{place}: cannot tell whether this is an mcconf or an appconf schema: name it …mcconf….xml "
                "or …appconf….xml, or import it with --kind"
            )
        return [SchemaFile(place, found)]
    if (place / "res" / "config").is_dir():
        place = place / "res" / "config"
    out: list[SchemaFile] = []
    for entry in sorted(place.iterdir()) if place.is_dir() else []:
        if entry.is_dir() and _VERSION_FOLDER.match(entry.name):
            versions = _folder_versions(entry.name)
            out += [SchemaFile(entry / name, k, versions) for k, name in FILE_NAMES.items() if (entry / name).is_file()]
        elif entry.is_dir() and entry.name in (k.value for k in ConfigKind):  # the cache: <kind>/<signature>.xml
            out += [SchemaFile(f, ConfigKind(entry.name)) for f in sorted(entry.glob("*.xml"))]
        elif entry.is_file() and entry.suffix.lower() == ".xml" and (k := kind_from_name(entry)) is not None:
            out.append(SchemaFile(entry, k))
    return [f for f in out if kind is None or f.kind == kind]


@dataclass(frozen=True)
class SchemaSource:
    """The places schemas are read from (see the module docstring), each with how it was chosen."""

    places: tuple[tuple[Path, str], ...] = ()  # (place, where it came from)
    cache: Path | None = None

    @classmethod
    def resolve(
        cls,
        given: Sequence[str | Path] = (),
        *,
        rack_schemas: str | None = None,
        cache: Path | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> SchemaSource:
        """`given` places alone, if any; else the rack file's `schemas` and $VESC_TOOL_SRC (both, when set:
        schemas are found by signature, so places do not compete). The cache in every case."""
        env = os.environ if environ is None else environ
        if given:
            return cls(tuple((Path(p).expanduser(), "--vesc-tool") for p in given), cache)
        places = []
        if rack_schemas:
            places.append((Path(rack_schemas), "the rack file's schemas"))
        if env.get(ENV):
            places.append((Path(env[ENV]).expanduser(), f"${ENV}"))
        return cls(tuple(places), cache)

    @property
    def configured(self) -> bool:
        """Whether any place is set, or the cache holds schemas."""
        return bool(self.places) or bool(self.cache and any(self.cache.glob("*/*.xml")))

    def describe(self) -> str:
        where = [f"{p} ({origin})" for p, origin in self.places] + ([f"{self.cache} (cache)"] if self.cache else [])
        return ", ".join(where) or "nowhere"

    def files(self, kind: ConfigKind | None = None) -> list[SchemaFile]:
        """Every schema file in the places and the cache; SchemaError for a place that does not exist."""
        out: list[SchemaFile] = []
        for place, origin in self.places:
            if not place.exists():
                raise SchemaMissing(f"{place} (from {origin}) does not exist; {_how_to_get()}")
            out += files_in(place, kind)
        if self.cache is not None and self.cache.is_dir():
            out += files_in(self.cache, kind)
        return out

    def find(self, kind: ConfigKind, signature: int) -> Schema | None:
        """The schema of this layout, or None. Files whose folder names a version with this signature are
        read first; the others only if none of those matches."""
        files = self.files(kind)
        likely = set(versions_with(kind, signature))
        ordered = [f for f in files if likely & set(f.versions)] + [f for f in files if not likely & set(f.versions)]
        cached = [f for f in ordered if f.path.stem == str(signature)]
        for file in cached + ordered:
            try:
                schema = file.load()
            except SchemaError as exc:
                log.warning("skipping %s", exc)
                continue
            if schema.signature == signature:
                return schema
        return None

    def by_signature(self, kind: ConfigKind, signature: int, *, version: FirmwareVersion | None = None) -> Schema:
        """The schema of this layout; SchemaMissing says where the rig looked and how to get it."""
        schema = self.find(kind, signature)
        if schema is None:
            raise SchemaMissing(self._missing(kind, f"signature {signature}", signature, version))
        return schema

    def for_version(self, kind: ConfigKind, version: FirmwareVersion) -> Schema:
        """The schema a folder names for exactly this version (an explicit choice: no signature check)."""
        for file in self.files(kind):
            if version in file.versions:
                return file.load()
        raise SchemaMissing(self._missing(kind, f"firmware {version}", None, version))

    def _missing(self, kind: ConfigKind, what: str, signature: int | None, version: FirmwareVersion | None) -> str:
        known = versions_with(kind, signature) if signature is not None else ()
        names = ", ".join(str(v) for v in known) or (str(version) if version else "")
        firmware = f" (firmware {names})" if names else ""
        folder = str(known[-1]) if known else (str(version) if version else "<version>")
        expected = f"res/config/{folder}/{FILE_NAMES[kind]}"
        if not self.configured:
            return f"no {kind.value} schema for {what}{firmware}: no schema source is configured; {_how_to_get()}"
        return (
            f"no {kind.value} schema with {what}{firmware} in {self.describe()}; VESC Tool keeps it as "
            f"{expected}: {_how_to_get()}"
        )


def _how_to_get() -> str:
    return (
        "point the rig at a VESC Tool source folder (--vesc-tool PATH, $VESC_TOOL_SRC, or `schemas` in the rack "
        f"file; `git clone {VESC_TOOL_GIT}`), or export the schema from VESC Tool (Developer > Parameter Editor "
        "Mcconf/Appconf > Save XML) and run `rig config schemas import FILE`"
    )


def import_schemas(paths: Iterable[Path], cache: Path, kind: ConfigKind | None = None) -> list[tuple[Path, Schema]]:
    """Copy schema files into the cache as <kind>/<signature>.xml; returns (cached file, schema) per file."""
    done: list[tuple[Path, Schema]] = []
    for path in paths:
        if not path.exists():
            raise SchemaMissing(f"{path} does not exist")
        for file in files_in(path, kind) if path.is_dir() else [SchemaFile(path, kind or _kind_of(path))]:
            schema = file.load()
            target = cache / schema.kind.value / f"{schema.signature}.xml"
            write_durably(target, file.path.read_bytes())
            done.append((target, schema))
    return done


def _kind_of(path: Path) -> ConfigKind:
    kind = kind_from_name(path)
    if kind is None:
        raise SchemaError(f"{path}: say which config this schema is for with --kind mcconf or --kind appconf")
    return kind


def layout_problem(schema: Schema, version: FirmwareVersion) -> str | None:
    """How a schema differs from what firmware `version` sends (signature, size), or None if it matches or
    the version is not in rig.device.config_layouts."""
    layout = released_layout(version, schema.kind)
    if layout is None:
        return None
    problems = []
    if schema.signature != layout.signature:
        problems.append(f"signature {schema.signature}, firmware {version} sends {layout.signature}")
    if schema.size != layout.size:
        problems.append(f"{schema.size} field bytes, firmware {version} sends {layout.size}")
    return "; ".join(problems) or None
