"""The CAN bus: a dual board (two nodes, USB on one), FORWARD_CAN, PING_CAN and the *_ALL_CAN update."""

from __future__ import annotations

import pytest
from simhost import UID, Host, update

from rig.protocol import codecs as c
from rig.sim.can import CanBus, dual_board
from rig.sim.clock import DeviceClock
from rig.sim.device import SimEsc, SimEscSpec
from rig.sim.errors import SimError
from rig.sim.image import make_firmware_image


def _board(fw1: str = "6.02", fw2: str = "6.02", faults2: tuple[str, ...] = ()) -> tuple[CanBus, SimEsc, SimEsc]:
    first, second = dual_board(SimEscSpec("dual", "60", fw1, UID, "SIMDUAL", can_id=10))
    bus = CanBus()
    a = SimEsc(first, DeviceClock(), bus)
    b = SimEsc(SimEscSpec(**{**second.__dict__, "fw": fw2, "faults": faults2}), DeviceClock(), bus)
    for node in (a, b):
        node.set_power(True)
    bus.run_pending()
    return bus, a, b


def _ask(bus: CanBus, host: Host, message: c.Message) -> list[c.Message | c.Unknown]:
    host.send(message)
    bus.run_pending()
    return host.replies()


def test_dual_board_second_node() -> None:
    first, second = dual_board(SimEscSpec("dual", "60", "6.02", UID, "SIMDUAL", can_id=10))
    assert second.can_id == 11 and second.usb_serial == "" and second.uid == UID[:-1] + bytes((UID[-1] + 1,))
    assert first.uid == UID


def test_forward_can_reply_comes_back_unwrapped() -> None:
    bus, a, b = _board(fw2="5.02")
    host = Host(a, "6.02")
    inner = c.encode(c.FwVersionRequest(), host.table)
    (reply,) = _ask(bus, host, c.ForwardCan(11, inner))
    assert isinstance(reply, c.FwVersionReply)
    assert str(reply.version) == "5.02" and reply.uid == b.spec.uid  # F3: the peer is on another version
    assert _ask(bus, host, c.ForwardCan(42, inner)) == []  # no such node: no reply
    assert _ask(bus, host, c.ForwardCan(10, inner)) == []  # own id on the bus: no reply


def test_ping_can_lists_the_other_nodes() -> None:
    bus, a, b = _board()
    host = Host(a, "6.02")
    before = a.clock.modelled_s
    assert _ask(bus, host, c.PingCan()) == [c.PingCanReply((11,))]
    assert a.clock.modelled_s - before == pytest.approx(2.54, abs=0.01)  # 10 ms per silent id
    b.set_power(False)
    assert _ask(bus, host, c.PingCan()) == [c.PingCanReply(())]


def test_all_can_update_updates_both_nodes() -> None:
    bus, a, b = _board()
    host = Host(a, "6.02")
    update(host, make_firmware_image("60", "5.02"), all_can=True)
    bus.run_pending()
    assert host.version() == "5.02"
    (peer,) = _ask(bus, host, c.ForwardCan(11, c.encode(c.FwVersionRequest(), host.table)))
    assert str(peer.version) == "5.02"  # type: ignore[union-attr]


def test_f3_peer_update_fails_leaves_versions_apart() -> None:
    bus, a, b = _board(faults2=("can_peer_update_fails",))
    host = Host(a, "6.02")
    update(host, make_firmware_image("60", "5.02"), all_can=True)
    bus.run_pending()
    assert host.version() == "5.02" and b.profile is not None and str(b.profile.version) == "6.02"


def test_can_ids_must_be_unique() -> None:
    bus = CanBus()
    SimEsc(SimEscSpec("a", "60", "6.02", UID, "A", can_id=3), DeviceClock(), bus)
    with pytest.raises(SimError, match="CAN id 3 is taken"):
        SimEsc(SimEscSpec("b", "60", "6.02", UID, "B", can_id=3), DeviceClock(), bus)
