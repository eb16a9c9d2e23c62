"""The simulated firmware's configs by schema (rig.sim.configs): defaults, DEFAULT replies, clamps on SET.

Byte level (tests/unit/simhost.py), on the synthetic firmware 6.90 whose schemas are the project's own
(fixtures/schemas). Clamps follow the firmware's commands.c (rig.device.config_limits), on hardware 60
(HW_LIM_CURRENT -120..120, HW_LIM_CURRENT_ABS 0..160) and the generic loop-frequency limit 3000..30000.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from simhost import UID, Host

from rig.config.codec import ConfigValues, Encoding, decode, encode
from rig.config.source import SchemaSource
from rig.protocol import codecs as c
from rig.protocol.codecs import ConfigKind
from rig.sim.clock import DeviceClock
from rig.sim.configs import SimConfigs
from rig.sim.device import SimEsc, SimEscSpec

SCHEMAS = Path(__file__).resolve().parents[2] / "fixtures" / "schemas"


def board(version: str = "6.90", hw: str = "60", *, schemas: bool = True, can_id: int = 0) -> Host:
    configs = SimConfigs(SchemaSource.resolve([SCHEMAS])) if schemas else SimConfigs()
    device = SimEsc(SimEscSpec("esc", hw, version, UID, "SIM1", can_id=can_id), DeviceClock(), configs=configs)
    device.set_power(True)
    device.run_pending()
    return Host(device, version)


def get(host: Host, kind: ConfigKind, default: bool = False) -> c.ConfigBlob:
    reply = host.one(c.GetConfig(kind, default))
    assert isinstance(reply, c.ConfigReply)
    return reply.blob


def values(host: Host, kind: ConfigKind = ConfigKind.MCCONF, default: bool = False) -> ConfigValues:
    blob = get(host, kind, default)
    assert blob.signature is not None
    return decode(SchemaSource.resolve([SCHEMAS]).by_signature(kind, blob.signature), blob)


def set_fields(host: Host, kind: ConfigKind = ConfigKind.MCCONF, **changes: float | int | bool) -> None:
    sent = values(host, kind).with_values(changes)
    assert host.ask(c.SetConfig(encode(sent))) == [c.SetConfigAck(kind)]


def test_the_board_holds_its_versions_defaults_and_sends_its_signature() -> None:
    host = board(can_id=7)
    source = SchemaSource.resolve([SCHEMAS])
    for kind, signature in ((ConfigKind.MCCONF, 2583585907), (ConfigKind.APPCONF, 3336673524)):
        blob = get(host, kind)
        assert blob.signature == signature  # the synthetic firmware's own signature
        schema = source.by_signature(kind, signature)
        expected = dict(schema.defaults()) | ({"controller_id": 7} if kind == ConfigKind.APPCONF else {})
        assert blob == encode(ConfigValues(schema, expected), Encoding.FIRMWARE)
        assert get(host, kind, default=True) == blob  # *_DEFAULT = the defaults


def test_defaults_stay_the_defaults_after_a_write() -> None:
    host = board()
    default = get(host, ConfigKind.MCCONF, default=True)
    set_fields(host, l_current_max=50.0)
    assert values(host)["l_current_max"] == 50.0
    assert get(host, ConfigKind.MCCONF, default=True) == default


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"l_current_max": 150.0, "l_current_min": -150.0}, {"l_current_max": 120.0, "l_current_min": -120.0}),
        ({"l_in_current_min": -150.0}, {"l_in_current_min": -120.0}),  # HW_LIM_CURRENT, as the firmware slips
        ({"l_abs_current_max": 200.0}, {"l_abs_current_max": 160.0}),
        ({"l_current_max_scale": 1.3}, {"l_current_max_scale": 1.0}),
        ({"l_current_min_scale": -0.2}, {"l_current_min_scale": 0.0}),
        ({"l_erpm_start": 1.5}, {"l_erpm_start": 1.0}),  # from 6.00
        ({"foc_f_zv": 80000.0, "m_hall_extra_samples": 5}, {"foc_f_zv": 60000.0, "m_hall_extra_samples": 2}),
        ({"foc_f_zv": 45000.0, "m_hall_extra_samples": 5}, {"foc_f_zv": 45000.0, "m_hall_extra_samples": 4}),
        ({"foc_f_zv": 80000.0, "foc_sample_v0_v7": True}, {"foc_f_zv": 30000.0}),  # V0/V7: the limit itself
        ({"foc_current_filter_const": 0.01}, {"foc_current_filter_const": 0.05}),
        ({"l_current_max": 100.0}, {"l_current_max": 100.0}),  # inside the limits: kept
    ],
)  # fmt: skip
def test_set_clamps_what_the_firmware_clamps(changes: dict[str, float], expected: dict[str, float]) -> None:
    host = board()
    set_fields(host, **changes)
    now = values(host)
    for name, value in expected.items():
        assert now[name] == pytest.approx(value, rel=1e-6), name


def test_hardware_limits_follow_the_boards_hardware() -> None:
    host = board(hw="410")  # hw_410.h: HW_LIM_CURRENT -100..100, HW_LIM_CURRENT_ABS 0..150
    set_fields(host, l_current_max=150.0, l_abs_current_max=200.0)
    now = values(host)
    assert (now["l_current_max"], now["l_abs_current_max"]) == (100.0, 150.0)


def test_a_later_layout_clamps_its_own_fields() -> None:
    host = board("6.91")  # foc_overmod_factor 1.0..1.5 from 6.06; sampling mode as an enum from 6.05
    set_fields(host, foc_overmod_factor=2.0, foc_f_zv=80000.0, foc_control_sample_mode=1)
    now = values(host)
    assert (now["foc_overmod_factor"], now["foc_f_zv"]) == (1.5, 30000.0)


def test_stored_values_come_back_as_float32() -> None:
    """The firmware stores code / scale as a float32 and sends (int32)(value x scale) computed in float32:
    foc_gain code 16777219 (x 1e5) = 2^24 + 3 has no float32, so the product lands on 16777218."""
    host = board()
    sent = values(host).with_values({"foc_gain": 167.77219})
    host.ask(c.SetConfig(encode(sent)))
    got = get(host, ConfigKind.MCCONF)
    offset = 43  # foc_gain, after 43 bytes of fields (test_config_codec: the 6.90 layout)
    assert encode(sent).data[offset : offset + 4] == struct.pack(">i", 16777219)
    assert got.data[offset : offset + 4] == struct.pack(">i", 16777218)


def test_without_schemas_the_configs_are_opaque_and_kept_as_sent() -> None:
    host = board("6.02", schemas=False)
    assert "opaque bytes" in SimConfigs().describe()
    blob = get(host, ConfigKind.MCCONF)
    assert (blob.signature, len(blob.data)) == (776184161, 477)
    changed = c.ConfigBlob(blob.kind, blob.signature, bytes(b ^ 0xFF for b in blob.data))
    host.ask(c.SetConfig(changed))
    assert get(host, ConfigKind.MCCONF) == changed  # no clamps without a schema
