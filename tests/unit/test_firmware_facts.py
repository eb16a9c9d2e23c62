"""rig.device: the release list, behaviours by version range, image layouts and the STM32 CRC, against the
research notes (fw-protocol.md, fw-flash.md, config-schemas.md) they were read from."""

from __future__ import annotations

import pytest

from rig.device.app_image import (
    RECORD_PLACEHOLDER,
    app_crc,
    crc32_mpeg2,
    layout_for,
    record_verifies,
    stm32_crc,
)
from rig.device.facts import Behaviour, Fact, facts
from rig.device.firmware import (
    BEHAVIOURS,
    CONFIG_SIGNATURES,
    PROFILES,
    RELEASES,
    UnknownFirmware,
    fw_version_fields_for,
    next_release,
    profile_for,
    release,
)
from rig.device.memory import FLASH_BASE, FLASH_SIZE
from rig.protocol.commands import fw


def test_every_release_from_3_40_to_7_01_and_none_that_never_existed() -> None:
    names = [str(r.version) for r in RELEASES]
    assert names[0] == "3.40" and names[-1] == "7.01" and names == sorted(names, key=fw)
    for never in ("3.41", "3.45", "3.47", "6.01", "6.03", "6.04", "7.02"):
        with pytest.raises(UnknownFirmware, match="was released"):
            profile_for(never)
    assert all(len(r.commit) == 40 for r in RELEASES)  # FW_INFO sends the full hash
    assert release("7.01").test_version == 1 and release("7.00").test_version == 0  # master: beta 1
    assert next_release(fw("6.02")).version == fw("6.05") and next_release(fw("7.01")) is None  # type: ignore[union-attr]


def test_behaviours_are_ranges_with_sources() -> None:
    for behaviour in BEHAVIOURS:
        spans = behaviour.spans()
        assert spans[-1].until is None and all(s.source for s in spans), behaviour.name
        assert all(a.until == b.first for a, b in zip(spans, spans[1:], strict=False))
    with pytest.raises(ValueError, match="ascend"):
        Behaviour("x", "", (Fact(fw("3.48"), 1, "a"), Fact(fw("3.40"), 2, "b")))
    early = Behaviour("x", "", facts(("3.48", 1, "a")))
    with pytest.raises(LookupError, match="not known before 3.48"):
        early.at(fw("3.40"))


@pytest.mark.parametrize(
    ("version", "facts_read"),
    [  # (decoder, max payload, timeout ticks, bit-14 bug, write offset, hard fault exit) from the research
        ("3.40", ("legacy", 1024, 1000, False, False, None)),
        ("3.48", ("resync", 512, 1000, True, False, None)),
        ("3.49", ("resync", 512, 1000, True, False, 11.2)),
        ("3.56", ("resync", 512, 1000, True, False, 32.0)),
        ("3.57", ("resync", 512, 1000, False, False, 32.0)),
        ("5.00", ("resync", 512, 1000, False, True, 32.0)),
        ("5.02", ("resync", 512, 1000, False, True, 32.0)),
        ("5.03", ("resync", 512, None, False, True, 32.0)),
        ("6.06", ("resync", 512, None, False, True, 0.0)),
    ],
)
def test_profiles_hold_what_the_sources_say(version: str, facts_read: tuple[object, ...]) -> None:
    p = profile_for(version)
    found = (p.decoder.value, p.max_payload, p.rx_timeout_ticks, p.selective_bit14_bug, p.write_reply_offset)
    assert (*found, p.hard_fault_exit_s) == facts_read


def test_fw_version_fields_and_hw_conf_crc_from_6_05() -> None:
    assert fw_version_fields_for(fw("6.02"))[-1] == "fw_name"
    assert fw_version_fields_for(fw("6.05"))[-1] == "hw_conf_crc"  # 341a7e67, not 7.00
    assert fw_version_fields_for(fw("7.01")) == fw_version_fields_for(fw("6.05"))
    assert fw_version_fields_for(fw("3.40")) == ("hw_name", "uid")


def test_config_signatures_of_every_signed_release() -> None:
    assert set(CONFIG_SIGNATURES) == {r.version for r in RELEASES if r.version >= fw("3.50")}
    assert CONFIG_SIGNATURES[fw("6.05")] == (1065524471, 2099347128)
    assert CONFIG_SIGNATURES[fw("6.06")] == (788332866, 2099347128)
    assert CONFIG_SIGNATURES[fw("7.00")] == (1470992211, 2384027283)
    assert CONFIG_SIGNATURES[fw("7.01")] == (2466726157, 982638166)
    assert (PROFILES["6.05"].appconf.size, PROFILES["7.00"].mcconf.size) == (274, 484)
    assert PROFILES["3.49"].mcconf.signature is None and PROFILES["3.40"].mcconf.size == 340


def test_later_builds_moved_package_nvm_lisp_and_the_can_backup() -> None:
    assert (PROFILES["6.00"].package_nvm_sector, PROFILES["6.05"].package_nvm_sector) == (None, 8)
    assert PROFILES["6.06"].package_nvm_sector == 11  # the bootloader sector (3bcc9039)
    assert (PROFILES["6.05"].lisp_const_sector, PROFILES["6.06"].lisp_const_sector) == (10, 8)
    assert [v for v, p in PROFILES.items() if p.can_identity_backup] == ["6.06", "7.00", "7.01"]
    assert not PROFILES["5.03"].terminal_echo and PROFILES["5.03"].terminal_ping  # "ping" lived until 6.00
    assert PROFILES["6.00"].terminal_echo and not PROFILES["6.00"].terminal_ping


def test_stm32_crc_is_crc32_mpeg2_over_little_endian_words() -> None:
    assert crc32_mpeg2(b"123456789") == 0x0376E6E7  # the CRC-32/MPEG-2 check value
    assert stm32_crc(bytes((0x39, 0x38, 0x37, 0x36))) == crc32_mpeg2(b"6789")  # one LE word, fed MSB first
    with pytest.raises(ValueError, match="whole 32-bit words"):
        stm32_crc(b"abc")


@pytest.mark.parametrize("version", ["3.56", "5.03", "6.00", "7.01"])
def test_the_integrity_record_as_the_firmware_writes_and_checks_it(version: str) -> None:
    layout = layout_for(fw(version))
    assert layout.size is not None and layout.record_at is not None
    flash = bytearray(b"\xff" * FLASH_SIZE)
    flash[: layout.size] = bytes(range(256)) * (layout.size // 256) + bytes(layout.size % 256)
    at = layout.record_at - FLASH_BASE
    flash[at : at + 8] = RECORD_PLACEHOLDER
    crc = app_crc(bytes(flash), layout)  # first boot: flag 0, CRC over the region up to and with the flag
    flash[at : at + 8] = bytes(4) + crc.to_bytes(4, "little")
    assert record_verifies(bytes(flash), layout)  # the residue over the region with the CRC word is 0
    flash[0x4000] ^= 0xFF  # the EEPROM sectors are not covered
    assert record_verifies(bytes(flash), layout)
    flash[0x100] ^= 0x01  # sector 0 is
    assert not record_verifies(bytes(flash), layout)
