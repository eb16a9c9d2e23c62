"""The mcconf/appconf a simulated firmware holds: its version's defaults by schema, and SET as the firmware does it.

With a schema source (``rig sim serve --schemas PATH``, the rack file's ``schemas``, or $VESC_TOOL_SRC;
rig.config.source) the simulated firmware holds the defaults of its version's schema (the values in
VESC Tool's XML, as a plausible board's defaults: research notes config-schemas.md section 4.3), sends
them as the firmware does (float32 values, scaled doubles truncated), answers GET_*_DEFAULT with the
same defaults (from 5.03 with the board's current FOC offsets, as the firmware does), and on SET_MCCONF
keeps the FOC offsets (6.06+), clamps what the firmware clamps (rig.device.config_limits) and stores
every value as a float32, so a value can come back requantized. Without a schema, or for a layout no
schema in the source has, the configs are opaque bytes of the right size and signature, kept as sent
(the simulator says so when it starts).

Which schema: the one whose signature the firmware version sends (rig.device.config_layouts, or the
profile the version borrows). A version the layout table does not know (a test firmware such as the
synthetic 6.90/6.91 of tests/data/schemas) takes its layout from the source's folder of that exact
version: signature and size follow the schema.
"""

from __future__ import annotations

import logging
import random
import threading
from dataclasses import replace

from rig.config.codec import ConfigValues, Encoding, decode, encode
from rig.config.schema import Schema, SchemaError, Value
from rig.config.source import SchemaSource
from rig.device import config_limits as lim
from rig.device.config_layouts import released_layout
from rig.device.firmware import (
    APPCONF_CAN_BAUD_OFFSET,
    APPCONF_CAN_BAUD_SINCE,
    DEFAULT_CAN_BAUD,
    ConfigLayout,
    FirmwareProfile,
)
from rig.errors import ConfigError
from rig.protocol.codecs import ConfigBlob, ConfigKind
from rig.protocol.commands import FirmwareVersion
from rig.sim.backup import CanIdentity

log = logging.getLogger(__name__)


class SimConfigs:
    """The config model of every simulated ESC of one simulator (schemas looked up once per layout)."""

    def __init__(self, source: SchemaSource | None = None) -> None:
        self.source = source if source is not None and source.configured else None
        self._schemas: dict[tuple[ConfigKind, FirmwareVersion, int | None], Schema | None] = {}
        self._lock = threading.Lock()

    def describe(self) -> str:
        """What the boards looked up so far hold: which versions have schemas, which stay opaque."""
        if self.source is None:
            return "configs: opaque bytes of each version's size and signature (no schema source configured)"
        with self._lock:
            found = sorted({str(v) for (_, v, _), schema in self._schemas.items() if schema is not None})
            opaque = sorted({str(v) for (_, v, _), schema in self._schemas.items() if schema is None})
        parts = [f"defaults by schema for {', '.join(found)}" if found else ""]
        parts.append(f"opaque for {', '.join(opaque)} (no schema of their layout)" if opaque else "")
        return f"configs from {self.source.describe()}: " + "; ".join(p for p in parts if p)

    # --- which schema --------------------------------------------------------------------------------

    def schema(self, profile: FirmwareProfile, version: FirmwareVersion, kind: ConfigKind) -> Schema | None:
        """The schema of the layout firmware `version` (running as `profile`) has, or None (opaque)."""
        if self.source is None:
            return None
        signature = profile.config(kind).signature
        key = (kind, version, signature)
        with self._lock:
            if key not in self._schemas:
                self._schemas[key] = self._lookup(profile, version, kind)
            return self._schemas[key]

    def _lookup(self, profile: FirmwareProfile, version: FirmwareVersion, kind: ConfigKind) -> Schema | None:
        assert self.source is not None
        layout = profile.config(kind)
        if layout.signature is None:
            log.info("firmware %s sends no config signature: its %s stays opaque", version, kind.value)
            return None
        try:
            if released_layout(version, kind) is None:
                own = [f for f in self.source.files(kind) if version in f.versions]
                if own:
                    return own[0].load()
            schema = self.source.find(kind, layout.signature)
        except SchemaError as exc:
            log.warning("simulated firmware %s: %s: its %s stays opaque", version, exc, kind.value)
            return None
        if schema is None:
            log.warning(
                "simulated firmware %s: no %s schema with signature %d in %s: opaque bytes",
                version,
                kind.value,
                layout.signature,
                self.source.describe(),
            )
        elif schema.size != layout.size:
            log.warning(
                "simulated firmware %s: %s has %s bytes, not %d: opaque",
                version,
                schema.describe(),
                schema.size,
                layout.size,
            )
            return None
        return schema

    def profile(self, profile: FirmwareProfile, version: FirmwareVersion) -> FirmwareProfile:
        """The profile with the layouts of a version the layout table does not know taken from its schema."""
        if self.source is None or released_layout(version, ConfigKind.MCCONF) is not None or not profile.signed_configs:
            return profile
        layouts = {kind: profile.config(kind) for kind in ConfigKind}
        for kind in ConfigKind:
            schema = self.schema(profile, version, kind)
            if schema is not None and schema.size is not None:
                layouts[kind] = ConfigLayout(kind, schema.signature, schema.size)
        return replace(profile, mcconf=layouts[ConfigKind.MCCONF], appconf=layouts[ConfigKind.APPCONF])

    # --- what the firmware holds and does ------------------------------------------------------------

    def default(
        self,
        profile: FirmwareProfile,
        version: FirmwareVersion,
        kind: ConfigKind,
        can_id: int,
        current: bytes | None = None,
    ) -> bytes:
        """The field bytes of the version's defaults (GET_*_DEFAULT, and a board with no stored config)."""
        schema = self.schema(profile, version, kind)
        if schema is None:
            return _opaque_default(profile, kind, can_id)
        values: dict[str, Value] = dict(schema.defaults())
        if lim.CONTROLLER_ID in schema:
            values[lim.CONTROLLER_ID] = can_id
        if kind == ConfigKind.MCCONF and current is not None and version >= lim.DEFAULT_KEEPS_OFFSETS_SINCE:
            now = self._decode(schema, current)
            if now is not None:
                values |= {name: now[name] for name in lim.FOC_OFFSET_FIELDS if name in schema}
        return encode(ConfigValues(schema, values), Encoding.FIRMWARE).data

    def on_set(
        self, profile: FirmwareProfile, version: FirmwareVersion, hw_name: str, kind: ConfigKind, old: bytes, new: bytes
    ) -> bytes:
        """What the firmware stores for a SET it accepted: the sent values as float32, clamped (mcconf).
        Bytes it cannot read with a schema (none, or a short blob) are returned as they are."""
        schema = self.schema(profile, version, kind)
        sent = None if schema is None else self._decode(schema, new)
        if schema is None or sent is None:
            return new
        values = dict(sent)
        if kind == ConfigKind.MCCONF:
            before = self._decode(schema, old)
            _keep_offsets(values, before, version)
            _clamp(values, lim.hw_limits(hw_name, version), version)
        return encode(ConfigValues(schema, values), Encoding.FIRMWARE).data

    @staticmethod
    def _decode(schema: Schema, data: bytes) -> ConfigValues | None:
        try:
            return decode(schema, ConfigBlob(schema.kind, None, data), Encoding.FIRMWARE)
        except ConfigError as exc:  # a blob of another length: the firmware reads it blindly
            log.info("config of %d bytes does not fit %s: %s", len(data), schema.describe(), exc)
            return None


def _opaque_default(profile: FirmwareProfile, kind: ConfigKind, can_id: int) -> bytes:
    """Without a schema: opaque bytes of the release's size; the appconf starts with controller_id (B:
    confgenerator.c, 3.40 commands.c) and from 6.00 carries can_baud_rate at its offset (CAN_BAUD_500K)."""
    data = random.Random(f"{profile.name}/{kind.value}/default").randbytes(profile.config(kind).size)
    if kind != ConfigKind.APPCONF:
        return data
    if profile.version >= APPCONF_CAN_BAUD_SINCE:
        return with_can(data, CanIdentity(can_id, DEFAULT_CAN_BAUD))
    return bytes((can_id,)) + data[1:]


def with_can(appconf: bytes, identity: CanIdentity) -> bytes:
    """The appconf with the CAN id and baud of `identity` at their offsets."""
    out = bytearray(appconf)
    out[0] = identity.can_id
    out[APPCONF_CAN_BAUD_OFFSET] = identity.baud
    return bytes(out)


def _keep_offsets(values: dict[str, Value], before: ConfigValues | None, version: FirmwareVersion) -> None:
    """6.06+: the old FOC offsets stay unless the sent foc_offsets_cal_mode has the write bit."""
    if before is None or version < lim.FOC_OFFSETS_KEPT_SINCE or "foc_offsets_cal_mode" not in values:
        return
    if int(values["foc_offsets_cal_mode"]) & lim.FOC_OFFSETS_WRITE_BIT:
        return
    for name in lim.FOC_OFFSET_FIELDS:
        if name in values:
            values[name] = before[name]


def _truncate(value: Value, bounds: tuple[float, float]) -> float:
    low, high = bounds
    return min(max(float(value), low), high)


def _clamp(values: dict[str, Value], limits: lim.HwLimits, version: FirmwareVersion) -> None:
    """commands_apply_mcconf_hw_limits (and the scale clamps of the SET handler), on the named fields."""
    for rule in lim.CLAMPS:
        if rule.field not in values or not rule.applies(version):
            continue
        bounds = rule.limit if isinstance(rule.limit, tuple) else getattr(limits, rule.limit)
        if bounds is not None:
            values[rule.field] = _truncate(values[rule.field], bounds)
    loop = _clamp_loop_freq(values, limits)
    if lim.HALL_EXTRA_SAMPLES in values and version >= lim.HALL_EXTRA_SAMPLES_SINCE:
        top = limits.foc_ctrl_loop_freq[1]
        high = next(n for share, n in lim.HALL_EXTRA_SAMPLES_STEPS if loop >= share * top)
        values[lim.HALL_EXTRA_SAMPLES] = int(_truncate(values[lim.HALL_EXTRA_SAMPLES], (0, high)))
    if "foc_sl_erpm_start" in values and "foc_sl_erpm" in values and version >= lim.SL_ERPM_START_SINCE:
        limit = abs(float(values["foc_sl_erpm"]) * 0.9)
        values["foc_sl_erpm_start"] = _truncate(values["foc_sl_erpm_start"], (-limit, limit))


def _clamp_loop_freq(values: dict[str, Value], limits: lim.HwLimits) -> float:
    """The loop-frequency clamp; returns the control-loop frequency the hall rule compares (0: no field)."""
    name = next((n for n in lim.LOOP_FREQ_FIELDS if n in values), None)
    if name is None:
        return 0.0
    if lim.V0_V7_MODE in values:
        v0_v7 = int(values[lim.V0_V7_MODE]) == lim.V0_V7_MODE_VALUE
    else:
        v0_v7 = bool(values.get(lim.V0_V7_BOOL, False))
    low, high = limits.foc_ctrl_loop_freq
    if v0_v7:
        values[name] = _truncate(values[name], (low, high))
        return float(values[name])
    values[name] = _truncate(values[name], (2 * low, 2 * high))
    return float(values[name]) / 2.0
