"""The CAN bus joining simulated ESCs (a dual board is two nodes on one bus, USB on the first).

Delivery is asynchronous: a packet for a node is queued in that node's CAN inbox and processed by
its own ``poll()`` (its own thread in the server), as the real nodes run in parallel; a reply is
queued back to the sender the same way. No lock of one node is ever taken by another node's
thread, so nodes that talk to each other cannot deadlock. CAN transfer time is not modelled.

Facts (research section 4): a node accepts a packet for its id or for 255; FORWARD_CAN to a missing
node, or to the sender's own id on single-motor hardware, gets no reply; a packet longer than the
receiver's reassembly buffer (its max payload) is dropped; PING_CAN lists the other nodes in
ascending order.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from rig.sim.errors import SimError

if TYPE_CHECKING:
    from rig.sim.device import SimEsc, SimEscSpec

BROADCAST_ID = 255
Reply = Callable[[bytes], None]


class CanBus:
    """Simulated ESCs by CAN id. Thread-safe."""

    def __init__(self) -> None:
        self._nodes: dict[int, SimEsc] = {}
        self._lock = threading.Lock()

    def attach(self, node: SimEsc) -> None:
        with self._lock:
            other = self._nodes.get(node.can_id)
            if other is not None and other is not node:
                raise SimError(f"CAN id {node.can_id} is taken by {other.spec.name}; {node.spec.name} needs another")
            self._nodes[node.can_id] = node

    def detach(self, node: SimEsc) -> None:
        with self._lock:
            if self._nodes.get(node.can_id) is node:
                del self._nodes[node.can_id]

    @property
    def nodes(self) -> list[SimEsc]:
        with self._lock:
            return [self._nodes[i] for i in sorted(self._nodes)]

    def send(self, sender: SimEsc, target_id: int, payload: bytes, reply: Reply | None) -> int:
        """Queue `payload` for node `target_id` (255: every other node); returns how many got it.

        `reply` is called (in the sender's poll) with each reply payload; None = "process, no reply".
        """
        targets = [n for n in self.nodes if n is not sender and target_id in (n.can_id, BROADCAST_ID)]
        delivered = 0
        for node in targets:
            back = None if reply is None else _reply_via(sender, reply)
            delivered += node.can_receive(payload, back)
        return delivered

    def update_baud(self, sender: SimEsc, baud: int) -> None:
        """CAN_PACKET_UPDATE_BAUD to every other node (CAN_UPDATE_BAUD_ALL); the rate itself is not modelled:
        nodes on different rates still hear each other."""
        for node in self.nodes:
            if node is not sender:
                node.can_update_baud(baud)

    def ping(self, sender: SimEsc) -> tuple[int, ...]:
        """CAN ids of the other nodes whose firmware runs, ascending (PING_CAN)."""
        return tuple(n.can_id for n in self.nodes if n is not sender and n.running)

    def poll(self, now: float | None = None) -> None:
        """Poll every node (for nodes that no server thread polls, e.g. motor 2 of a dual board)."""
        for node in self.nodes:
            node.poll(now)

    def run_pending(self, max_rounds: int = 100_000) -> None:
        """Poll every node until none has work left (tests at speed 0)."""
        for _ in range(max_rounds):
            if not any(n.busy for n in self.nodes):
                return
            self.poll()
        raise SimError(f"CAN bus still busy after {max_rounds} polling rounds")


def _reply_via(sender: SimEsc, reply: Reply) -> Reply:
    """A reply function for the receiving node: the reply travels back and is handled in sender's poll."""
    return lambda payload: sender.can_reply(payload, reply)


def dual_board(spec: SimEscSpec) -> tuple[SimEscSpec, SimEscSpec]:
    """The two nodes of a dual ESC: motor 2 has CAN id +1, the UID with its last byte +1, and no USB."""
    uid = spec.uid[:-1] + bytes(((spec.uid[-1] + 1) & 0xFF,))  # facts sheet section 3
    second = replace(spec, name=f"{spec.name}/2", uid=uid, usb_serial="", can_id=(spec.can_id + 1) & 0xFF)
    return spec, second
