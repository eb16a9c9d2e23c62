"""The simulated ESC at byte level: encoded frames in through receive(), frames out through transmit."""

from __future__ import annotations

import pytest
from simhost import UID, Host, make, update

from rig.device.app_image import record_of, record_verifies
from rig.device.firmware import profile_for
from rig.device.memory import FLASH_BASE, NEW_APP_BASE
from rig.protocol import codecs as c
from rig.protocol.commands import Cmd
from rig.protocol.framing import encode_frame
from rig.sim.errors import SimError
from rig.sim.image import make_firmware_image

# --- identity and telemetry ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "body_len", "last_field"),
    [("3.40", 17, "uid"), ("5.02", 21, "custom_cfg_num"), ("6.02", 26, "fw_name")],
)
def test_fw_version_carries_the_fields_of_its_version(version: str, body_len: int, last_field: str) -> None:
    host = Host(make(version), version)
    host.send(c.FwVersionRequest())
    (payload,) = host.decoder.frames(host.raw())
    assert len(payload) - 1 == body_len  # 6.02 "60": 27 bytes with the id (research section 5)
    reply = c.decode_reply(payload, host.table)
    assert isinstance(reply, c.FwVersionReply)
    assert str(reply.version) == version and reply.hw_name == "60" and reply.uid == UID
    assert getattr(reply, last_field) is not None
    assert profile_for(version).fw_version_fields[-1] == last_field


@pytest.mark.parametrize(("version", "body_len"), [("3.40", 58), ("5.02", 72), ("6.02", 73)])
def test_get_values_layout_per_profile(version: str, body_len: int) -> None:
    host = Host(make(version, can_id=7), version)
    host.send(c.GetValues())
    (payload,) = host.decoder.frames(host.raw())
    assert len(payload) - 1 == body_len
    values = c.decode_reply(payload, host.table).values  # type: ignore[union-attr]
    assert values.v_in == pytest.approx(24.1) and values.fault == 0 and values.controller_id == 7


def test_selective_values_follow_the_mask() -> None:
    host = Host(make("6.02"), "6.02")
    reply = host.one(c.GetValuesSelective(1 << 0 | 1 << 8))
    assert isinstance(reply, c.ValuesSelectiveReply)
    assert reply.values.temp_fet == pytest.approx(25.3) and reply.values.v_in == pytest.approx(24.1)
    assert reply.values.tachometer_abs is None


def test_selective_bit_14_bug_of_3_48_to_3_56() -> None:
    host = Host(make("3.55"), "3.55")
    host.send(c.GetValuesSelective(1))
    (payload,) = host.decoder.frames(host.raw())
    assert len(payload) == 1 + 4 + 2 + 4  # temp_fet plus the tacho_abs the mask did not ask for


# --- configuration ---------------------------------------------------------------------------------


def test_config_set_get_default_with_signature() -> None:
    device = make("6.02")
    host = Host(device, "6.02")
    old = host.one(c.GetConfig(c.ConfigKind.MCCONF))
    default = host.one(c.GetConfig(c.ConfigKind.MCCONF, default=True))
    assert isinstance(old, c.ConfigReply) and isinstance(default, c.ConfigReply)
    assert old.blob.signature == 776184161 and len(old.blob.data) == 477  # research section 6
    assert default.blob == old.blob and default.default
    new = c.ConfigBlob(c.ConfigKind.MCCONF, 776184161, bytes(477))
    assert host.ask(c.SetConfig(new)) == [c.SetConfigAck(c.ConfigKind.MCCONF)]
    assert host.one(c.GetConfig(c.ConfigKind.MCCONF)).blob == new  # type: ignore[union-attr]
    device.set_power(False)
    device.set_power(True)
    device.run_pending()
    assert host.one(c.GetConfig(c.ConfigKind.MCCONF)).blob == new  # type: ignore[union-attr]
    assert host.one(c.GetConfig(c.ConfigKind.MCCONF, default=True)).blob == old.blob  # type: ignore[union-attr]


def test_wrong_signature_gets_only_a_print_on_the_last_blocking_port() -> None:
    """3.51+ send PRINT to the port that last ran a blocking command (35c1c72a): before any since boot, the
    warning goes nowhere; after a TERMINAL_CMD it reaches that port. Up to 3.50 it went to the sender."""
    host = Host(make("6.02"), "6.02")
    old = host.one(c.GetConfig(c.ConfigKind.APPCONF))
    wrong = c.ConfigBlob(c.ConfigKind.APPCONF, 1234, bytes(489))
    assert host.ask(c.SetConfig(wrong)) == []
    host.ask(c.TerminalCmd("fault"))
    assert host.ask(c.SetConfig(wrong)) == [c.Print("Warning: Could not set appconf due to wrong signature")]
    assert host.one(c.GetConfig(c.ConfigKind.APPCONF)) == old
    old_host = Host(make("3.50"), "3.50")
    wrong = c.ConfigBlob(c.ConfigKind.APPCONF, 1234, bytes(165))
    assert old_host.ask(c.SetConfig(wrong)) == [c.Print("Warning: Could not set appconf due to wrong signature")]


def test_3_40_config_has_no_signature_and_no_length_check() -> None:
    host = Host(make("3.40"), "3.40")
    old = host.one(c.GetConfig(c.ConfigKind.APPCONF)).blob  # type: ignore[union-attr]
    assert old.signature is None and len(old.data) == 162
    short = c.ConfigBlob(c.ConfigKind.APPCONF, None, b"\x11" * 100)
    assert host.ask(c.SetConfig(short)) == [c.SetConfigAck(c.ConfigKind.APPCONF)]
    now = host.one(c.GetConfig(c.ConfigKind.APPCONF)).blob  # type: ignore[union-attr]
    assert now.data == b"\x11" * 100 + old.data[100:]  # stale bytes after a short blob


def test_config_signature_fault_changes_the_reported_signature() -> None:
    device = make("6.02", faults=("config_signature",))
    host = Host(device, "6.02")
    blob = host.one(c.GetConfig(c.ConfigKind.MCCONF)).blob  # type: ignore[union-attr]
    assert blob.signature == 776184161 ^ 0x5A5A5A5A
    real = c.ConfigBlob(c.ConfigKind.MCCONF, 776184161, blob.data)
    host.ask(c.TerminalCmd("fault"))  # a blocking command, so PRINT has a port
    assert host.ask(c.SetConfig(real)) == [c.Print("Warning: Could not set mcconf due to wrong signature")]


# --- terminal, housekeeping ------------------------------------------------------------------------


def test_terminal_texts() -> None:
    new = Host(make("6.02"), "6.02")
    assert new.ask(c.TerminalCmd("nope")) == [
        c.Print("-> nope \n"),
        c.Print("Invalid command: nope\ntype help to list all available commands\n"),
    ]
    old = Host(make("3.40"), "3.40")
    assert old.ask(c.TerminalCmd("ping")) == [c.Print("pong\n")]
    assert c.Print(f"UUID: {' '.join(f'{b:02X}' for b in UID)}") in old.ask(c.TerminalCmd("hw_status"))


def test_long_print_is_cut_as_the_firmware_cuts_it() -> None:
    host = Host(make("3.40"), "3.40")
    host.send(c.TerminalCmd("y" * 300))
    (payload,) = host.decoder.frames(host.raw())
    assert len(payload) == 1 + 253 + 1 and payload.endswith(b"\0")  # 253 characters and the NUL


def test_unknown_ids_alive_and_reboot_are_silent() -> None:
    device = make("6.02")
    host = Host(device, "6.02")
    device.receive(encode_frame(bytes((200, 1, 2))))
    assert host.ask(c.Alive()) == []
    changes: list[bool] = []
    device.on_usb = changes.append
    assert host.ask(c.Reboot()) == [] and not device.usb_up
    device.run_pending()
    assert changes == [False, True] and host.version() == "6.02"


@pytest.mark.parametrize(
    ("version", "mode", "exit_s"), [("3.40", "hung", None), ("6.02", "running", 32.0), ("6.06", "running", 0.0)]
)
def test_a_write_past_the_end_of_flash_is_a_bus_fault(version: str, mode: str, exit_s: float | None) -> None:
    """0x08080000 + 0x80000 is 0x08100000, reserved: no reply; the fault ends as the release leaves a hard
    fault (3.40: no watchdog, 3.50-6.05: IWDG slowest ~32 s, 6.06+: the fault handler resets)."""
    device = make(version)
    host = Host(device, version)
    before = device.clock.modelled_s
    assert host.ask(c.WriteNewAppData(0x80000, b"\0")) == []
    assert not device.usb_up
    device.run_pending()
    assert device.mode == mode
    if exit_s is not None:
        assert device.clock.modelled_s - before >= exit_s and host.version() == version


def test_offsets_wrap_at_32_bits_and_reach_sector_0_of_the_running_app() -> None:
    """WRITE_NEW_APP_DATA at 0xFFF80000 programs 0x08000000 and says OK; 3.56+ notice it in the background
    flash check, reset, and then hang blinking red at boot (research fw-flash.md 1.4, 4.2)."""
    device = make("6.06")
    host = Host(device, "6.06")
    assert host.one(c.WriteNewAppData(0xFFF8_0000 + 0x1000, bytes(16))) == c.WriteNewAppDataReply(True, 0xFFF8_1000)
    assert device.flash.read(FLASH_BASE + 0x1000, 16) == bytes(16)
    device.run_pending()
    assert device.mode == "hung" and "FLASH_CORRUPTION" in (device.halted or "")
    device.set_power(False)
    device.set_power(True)
    device.run_pending()
    assert device.mode == "hung" and not device.usb_up  # only SWD helps


def test_a_huge_erase_size_wraps_erases_nothing_and_says_ok() -> None:
    device = make("6.02")
    host = Host(device, "6.02")
    device.flash.program(NEW_APP_BASE, b"kept")
    assert host.one(c.EraseNewApp(0xF7F8_0000)) == c.StatusReply(Cmd.ERASE_NEW_APP, True)
    assert device.flash.read(NEW_APP_BASE, 4) == b"kept"
    assert host.one(c.EraseNewApp(0xF7F7_FFFF)) == c.StatusReply(Cmd.ERASE_NEW_APP, True)
    assert device.flash.is_erased(NEW_APP_BASE, 0x60000)


def test_a_wrap_into_ccm_overwrites_the_can_backup() -> None:
    device = make("7.00")
    host = Host(device, "7.00")
    assert device.ccm.can() is not None
    assert host.one(c.WriteNewAppData(0x07F8_0000 + 521, bytes(4))).ok  # type: ignore[union-attr]
    assert device.ccm.can() is None


# --- power, USB, decoder ---------------------------------------------------------------------------


def test_power_cycle_boots_from_flash_and_takes_modelled_time() -> None:
    device = make("6.02", on=False)
    changes: list[bool] = []
    device.on_usb = changes.append
    device.set_power(True)
    assert not device.usb_up
    device.run_pending()
    assert device.usb_up and changes == [True]
    assert device.clock.modelled_s >= profile_for("6.02").boot_s
    device.set_power(False)
    assert changes == [True, False] and not device.usb_up
    Host(device, "6.02").send(c.FwVersionRequest())  # ignored: nothing runs


def test_garbage_in_flash_leaves_the_board_dead() -> None:
    device = make("6.02", on=False)
    for sector in (0, 3):
        device.flash.erase_sector(sector)
    device.flash.program(FLASH_BASE, b"\x12\x34" * 4096)
    device.set_power(True)
    device.run_pending()
    assert device.mode == "dead" and not device.usb_up


def _partial_set_appconf(host: Host, size: int) -> bytes:
    blob = c.ConfigBlob(c.ConfigKind.APPCONF, None if size == 162 else 486554156, b"\x11" * size)
    return host.frame(c.SetConfig(blob))


def test_3_40_keeps_a_partial_frame_for_1000_ms_and_loses_the_bytes() -> None:
    device = make("3.40")
    host = Host(device, "3.40")
    frame = _partial_set_appconf(host, 162)
    assert frame[:3] == bytes.fromhex("02 a3 10")  # the F7 capture
    device.receive(frame[:20], now=0.0)
    polls = host.frame(c.FwVersionRequest()) * 30
    device.receive(polls, now=0.1)
    device.poll(now=0.9)
    assert host.replies() == []  # absorbed into the broken frame, then lost
    device.receive(host.frame(c.FwVersionRequest()), now=2.0)  # 1.9 s of silence: partial dropped
    assert [type(r) for r in host.replies()] == [c.FwVersionReply]


def test_5_02_times_out_a_partial_frame_but_6_02_keeps_it() -> None:
    for version, answers in (("5.02", 1), ("6.02", 0)):
        device = make(version)
        host = Host(device, version)
        device.receive(_partial_set_appconf(host, profile_for(version).appconf.size)[:20], now=0.0)
        device.receive(host.frame(c.FwVersionRequest()), now=1.5)
        assert len(host.replies()) == answers, version


def test_6_02_resyncs_and_answers_every_poll_after_the_partial_frame() -> None:
    device = make("6.02")
    host = Host(device, "6.02")
    frame = _partial_set_appconf(host, 489)
    device.receive(frame[:20], now=0.0)
    device.receive(host.frame(c.FwVersionRequest()) * 100, now=0.1)  # enough bytes to complete the bogus frame
    assert len(host.replies()) == 100  # skip one byte, rescan: nothing lost


def test_host_disconnect_keeps_the_decoder_state() -> None:
    device = make("6.02")
    host = Host(device, "6.02")
    device.receive(_partial_set_appconf(host, 489)[:20], now=0.0)
    device.host_disconnected()
    device.receive(host.frame(c.FwVersionRequest()), now=5.0)
    assert host.replies() == [] and device.host_sessions == 1


# --- faults ----------------------------------------------------------------------------------------


def _config_after_f7(faults: tuple[str, ...], polls: int) -> tuple[bytes, bytes, bytes]:
    """A SET_APPCONF cut after 20 bytes (the TCP link drops), then `polls` FW_VERSION polls, then silence."""
    device = make("3.40", faults=faults)
    host = Host(device, "3.40")
    old = host.one(c.GetConfig(c.ConfigKind.APPCONF)).blob.data  # type: ignore[union-attr]
    device.receive(_partial_set_appconf(host, 162)[:20], now=0.0)
    device.receive(host.frame(c.FwVersionRequest()) * polls, now=0.2)
    device.poll(now=5.0)
    host.raw()
    now = host.one(c.GetConfig(c.ConfigKind.APPCONF)).blob.data  # type: ignore[union-attr]
    return old, b"\x11" * 162, now


@pytest.mark.parametrize("polls", [0, 30])
def test_f7_real_decoder_keeps_the_old_config(polls: int) -> None:
    old, _, now = _config_after_f7((), polls)
    assert now == old


def test_f7_merge_partial_leaves_a_mixed_config() -> None:
    old, new, now = _config_after_f7(("merge_partial",), 0)
    assert now[:17] == new[:17] and now[17:] == old[17:] and now not in (old, new)
    old, new, now = _config_after_f7(("merge_partial",), 30)  # the polls became config bytes
    assert now[:17] == new[:17] and now not in (old, new)


def test_rx_timeout_fault_gives_6_02_a_timeout() -> None:
    device = make("6.02", faults=("rx_timeout:timeout_s=0.5",))
    host = Host(device, "6.02")
    device.receive(_partial_set_appconf(host, 489)[:20], now=0.0)
    device.receive(host.frame(c.FwVersionRequest()), now=0.6)
    assert len(host.replies()) == 1


def test_stuck_after_needs_a_power_cycle_once() -> None:
    device = make("6.02", faults=("stuck_after:commands=2",))
    host = Host(device, "6.02")
    assert len(host.ask(c.FwVersionRequest())) == 1
    assert len(host.ask(c.FwVersionRequest())) == 1
    assert host.ask(c.FwVersionRequest()) == []
    host.send(c.Reboot())
    device.run_pending()
    assert host.ask(c.FwVersionRequest()) == [] and device.usb_up
    device.set_power(False)
    device.set_power(True)
    device.run_pending()
    assert all(len(host.ask(c.FwVersionRequest())) == 1 for _ in range(5))
    assert "stuck_after" not in device.faults


def test_link_stall_and_corrupt() -> None:
    device = make("6.02")
    host = Host(device, "6.02")
    device.faults.set("link_stall")
    assert host.raw() == b"" and host.ask(c.FwVersionRequest()) == []
    device.faults.clear("link_stall")
    device.faults.set("link_corrupt", index=4)
    host.send(c.FwVersionRequest())
    raw = host.raw()
    assert len(raw) == 32 and host.decoder.frames(raw) == []


def test_link_slow_holds_replies_back() -> None:
    device = make("6.02", faults=("link_slow:delay_s=0.5",))
    host = Host(device, "6.02")
    host.send(c.FwVersionRequest(), now=10.0)
    device.poll(now=10.4)
    assert host.raw() == b""
    device.poll(now=10.5)
    assert len(host.replies()) == 1


def test_link_drop_re_enumerates_and_keeps_decoder_state() -> None:
    device = make("6.02", faults=("link_drop:after_bytes=10",))
    host = Host(device, "6.02")
    changes: list[bool] = []
    device.on_usb = changes.append
    device.receive(host.frame(c.FwVersionRequest()) * 3, now=0.0)  # 6 bytes answered, 4 more kept, rest lost
    assert changes == [False] and len(host.replies()) == 1
    device.poll(now=0.1)
    assert changes == [False, True] and "link_drop" not in device.faults
    device.receive(bytes.fromhex("00 03"), now=0.2)  # completes the second frame held across the drop
    assert len(host.replies()) == 1


def test_fault_names_and_parameters_are_checked() -> None:
    device = make("6.02", on=False)
    with pytest.raises(SimError, match="unknown fault"):
        device.faults.set("gremlins")
    with pytest.raises(SimError, match="no parameter"):
        device.faults.set("link_slow", delay=1)


# --- update (more in test_sim_bootloader.py) -------------------------------------------------------


def test_full_update_installs_the_new_version_and_wipes_the_config() -> None:
    device = make("3.40", hw="60")
    host = Host(device, "3.40")
    host.ask(c.SetConfig(c.ConfigBlob(c.ConfigKind.APPCONF, None, b"\x22" * 162)))
    changes: list[bool] = []
    device.on_usb = changes.append
    update(host, make_firmware_image("60", "5.03"))  # uncompressed: the 2018 bootloader takes it
    assert changes == [False] and not device.usb_up
    device.run_pending()
    assert changes == [False, True] and host.version() == "5.03"
    reply = host.one(c.GetConfig(c.ConfigKind.APPCONF))
    default = host.one(c.GetConfig(c.ConfigKind.APPCONF, default=True))
    assert isinstance(reply, c.ConfigReply) and isinstance(default, c.ConfigReply)
    assert reply.blob.signature == 3733512279 and reply.blob == default.blob


def test_first_boot_writes_the_integrity_record_and_resets_once_more() -> None:
    device = make("6.02")
    host = Host(device, "6.02")
    layout = profile_for("6.02").image
    assert record_of(device.flash.read(FLASH_BASE, 0x80000), layout)[0] == 0  # written when it first booted
    boots = device.boots
    update(host, make_firmware_image("60", "6.05"))
    device.run_pending()
    assert host.version() == "6.05" and device.boots == boots + 2  # first boot, record, reset, boot
    flash = device.flash.read(FLASH_BASE, 0x80000)
    assert record_of(flash, layout)[0] == 0 and record_verifies(flash, layout)
    device.reset()
    device.run_pending()
    assert device.boots == boots + 3


def test_write_reply_echoes_the_offset_from_5_00() -> None:
    assert Host(make("3.40"), "3.40").one(c.WriteNewAppData(8, b"\0")) == c.WriteNewAppDataReply(True)
    assert Host(make("5.02"), "5.02").one(c.WriteNewAppData(8, b"\0")) == c.WriteNewAppDataReply(True, 8)
