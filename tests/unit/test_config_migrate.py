"""Migration and diff by field name across a layout change (rig.config.migrate, rig.config.diff).

Layout A (synthetic firmware 6.90) to layout B (6.91), both the project's own (fixtures/schemas). Between
them, on purpose: a renamed field (foc_sample_v0_v7 -> foc_control_sample_mode), a new one
(foc_overmod_factor), doubles that became ints (l_temp_fet_start/_end), a changed scale (foc_motor_r
x1000 -> x10000), a narrower int (count_u16 -> uint8), an enum that lost a label before the chosen one
(motor_type: "Old drive" gone) and one that lost the chosen label (app_to_use: "Balance" -> "PAS").
"""

from __future__ import annotations

from pathlib import Path

from rig.config.codec import ConfigValues, decode, encode
from rig.config.diff import Change, diff_values
from rig.config.migrate import Outcome, migrate
from rig.config.schema import Schema
from rig.config.source import SchemaSource
from rig.protocol.codecs import ConfigKind
from rig.protocol.commands import fw

SOURCE = SchemaSource.resolve([Path(__file__).resolve().parents[2] / "fixtures" / "schemas"])


def defaults(version: str, kind: ConfigKind) -> ConfigValues:
    schema: Schema = SOURCE.for_version(kind, fw(version))
    return decode(schema, encode(ConfigValues(schema, schema.defaults())))


def outcomes(kind: ConfigKind, old: ConfigValues) -> dict[str, tuple[Outcome, str | None, str | None]]:
    result = migrate(old, defaults("6.91", kind))
    return {f.name: (f.outcome, f.old, f.new) for f in result.fields}


def test_mcconf_a_to_b_lists_every_field_that_is_not_simply_carried() -> None:
    old = defaults("6.90", ConfigKind.MCCONF).with_values({"l_current_max": 50.0, "foc_motor_r": 0.123})
    result = migrate(old, defaults("6.91", ConfigKind.MCCONF))
    listed = {f.name: (f.outcome, f.old, f.new) for f in result.listed}
    assert listed == {
        "motor_type": (Outcome.RELABELLED, "Field oriented (3)", "Field oriented (2)"),
        "l_temp_fet_start": (Outcome.CONVERTED, "85 °C", "85 °C"),
        "l_temp_fet_end": (Outcome.NOT_MIGRATED, "100.5 °C", "100 °C"),  # 100.5 is no whole number
        "foc_overmod_factor": (Outcome.NEW, None, "1.15"),
        "foc_control_sample_mode": (Outcome.NEW, None, "V0 (0)"),
        "foc_motor_r": (Outcome.CONVERTED, "0.123 (123 mΩ)", "0.123 (123 mΩ)"),  # x1000 -> x10000
        "count_u16": (Outcome.NOT_MIGRATED, "50000", "200"),  # does not fit a uint8
        "foc_sample_v0_v7": (Outcome.VANISHED, "false", None),
    }
    assert result.values["l_current_max"] == 50.0  # carried
    assert result.values["motor_type"] == 2 and result.values["l_temp_fet_start"] == 85
    assert result.values["l_temp_fet_end"] == 100 and result.values["count_u16"] == 200  # the board's values
    assert result.count(Outcome.CARRIED) == 19
    assert result.summary() == (
        "mcconf 2583585907 -> 3785288155: 19 carried, 2 converted, 1 carried by label, 2 not migrated, "
        "1 vanished, 2 new"
    )
    assert "  mcconf.l_temp_fet_end: 100.5 °C -> 100 °C [not migrated] double/F16_SCALED x10 -> int/U8: " \
        "100.5 is not a whole number" in result.lines()  # fmt: skip


def test_an_enum_label_that_is_gone_is_not_migrated() -> None:
    old = defaults("6.90", ConfigKind.APPCONF).with_values({"controller_id": 9})
    found = outcomes(ConfigKind.APPCONF, old)
    assert found["app_to_use"][0] == Outcome.NOT_MIGRATED  # "Balance" (4) must not become "PAS" (4)
    assert found["controller_id"] == (Outcome.CARRIED, "9", "9")
    assert found["app_ppm_conf.max_erpm_for_dir"][0] == Outcome.NEW
    result = migrate(old, defaults("6.91", ConfigKind.APPCONF))
    assert "label 'Balance' does not exist in the new layout" in next(
        f.reason for f in result.fields if f.name == "app_to_use"
    )


def test_migrating_onto_the_same_layout_carries_everything() -> None:
    old = defaults("6.91", ConfigKind.MCCONF).with_values({"l_current_max": 42.0, "motor_type": 1})
    result = migrate(old, defaults("6.91", ConfigKind.MCCONF))
    assert not result.listed and encode(result.values) == encode(old)


def test_diff_across_layouts_by_name_with_units() -> None:
    a = defaults("6.90", ConfigKind.MCCONF).with_values({"l_current_max": 50.0})
    b = defaults("6.91", ConfigKind.MCCONF)
    diffs = {d.name: d for d in diff_values(a, b)}
    assert (diffs["l_current_max"].change, diffs["l_current_max"].old, diffs["l_current_max"].new) == (
        Change.CHANGED,
        "50 A",
        "60 A",
    )
    assert diffs["l_current_max"].unit == "A"
    assert diffs["foc_sample_v0_v7"].change == Change.REMOVED and diffs["foc_overmod_factor"].change == Change.ADDED
    assert (
        diffs["l_temp_fet_start"].change == Change.RETYPED
        and "double/F16_SCALED x10 -> int/U8" in diffs["l_temp_fet_start"].note
    )
    assert "motor_type" not in diffs  # the same label ("Field oriented") at another index is the same value
    assert "l_current_min" not in diffs


def test_diff_within_a_layout_is_by_bytes_of_each_field() -> None:
    a = defaults("6.90", ConfigKind.APPCONF)
    b = a.with_values({"app_ppm_conf.hyst": 0.2, "can_baud_rate": 3})
    assert [(d.name, d.old, d.new) for d in diff_values(a, b)] == [
        ("can_baud_rate", "500K (2)", "1M (3)"),
        ("app_ppm_conf.hyst", "0.15", "0.2"),
    ]
    assert diff_values(a, a) == []
