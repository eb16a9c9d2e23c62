"""Power control: relay boards and bench supplies behind one small interface, and proven power cycles."""

from rig.hardware.power.base import (
    BOARD_KINDS,
    SUPPLY_KINDS,
    PowerChannel,
    PowerSupply,
    RelayBoard,
    SupplyOutput,
    open_relay_board,
    open_supply,
)
from rig.hardware.power.cycle import PowerCycleResult, power_cycle

__all__ = [
    "BOARD_KINDS",
    "SUPPLY_KINDS",
    "PowerChannel",
    "PowerCycleResult",
    "PowerSupply",
    "RelayBoard",
    "SupplyOutput",
    "open_relay_board",
    "open_supply",
    "power_cycle",
]
