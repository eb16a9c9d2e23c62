"""The selfcheck catalogue: each fault the simulator can inject, the scenario that must catch it, and
the diagnosis the failure must carry. docs/selfcheck.md is generated from this table."""

from __future__ import annotations

from dataclasses import dataclass

from rig.errors import Diagnosis

UPDATE = "tests/scenarios/test_update.py::test_update_to_candidate_and_roll_back"
CAN_UPDATE = "tests/scenarios/test_can.py::test_all_can_nodes_take_the_update_and_agree"
CONFIG = "tests/scenarios/test_config.py::test_config_round_trip"
CONFIG_CUT = "tests/scenarios/test_disconnects.py::test_config_write_cut"
CAN_IDENTITY = "tests/scenarios/test_can_identity.py::test_can_id_and_baud_survive_an_update"


@dataclass(frozen=True)
class SelfCheck:
    failure: str  # F1..F10, "link", or "gen" (firmware-generation behaviour)
    fault: str  # as a rack file writes it: "name" or "name:key=value"
    station: str
    scenario: str
    diagnosis: Diagnosis | None  # None: the scenario's own assertion fails (no rig error involved)
    can_id: int | None = None  # the CAN peer that carries the fault (None: the USB node)

    @property
    def id(self) -> str:
        return f"{self.failure}-{self.fault.split(':')[0]}-{self.station}"


CASES = (
    SelfCheck("F1", "no_bootloader_returns", "esc-602", UPDATE, Diagnosis.BOOTLOADER_MISSING),
    SelfCheck("F2", "no_bootloader_hangs", "esc-602", UPDATE, Diagnosis.UNRESPONSIVE_AFTER_UPDATE),
    SelfCheck("F2", "bootloader_rejects", "esc-502", UPDATE, Diagnosis.BOOTLOADER_MISSING),
    SelfCheck("F2", "reset_during_copy", "esc-602", UPDATE, Diagnosis.UNRESPONSIVE_AFTER_UPDATE),
    SelfCheck("F3", "can_peer_update_fails", "dual-602", CAN_UPDATE, Diagnosis.CAN_VERSION_MISMATCH, can_id=1),
    SelfCheck("F7", "merge_partial", "esc-340", CONFIG_CUT, Diagnosis.CONFIG_MIXED),
    SelfCheck("F7", "merge_partial", "esc-502", CONFIG_CUT, Diagnosis.CONFIG_MIXED),
    SelfCheck("F8", "config_signature", "esc-602", CONFIG, Diagnosis.CONFIG_SIGNATURE_MISMATCH),
    SelfCheck("F9", "stuck_after:commands=3", "esc-602", CONFIG, Diagnosis.TIMEOUT),
    SelfCheck("link", "link_stall", "esc-602", CONFIG, Diagnosis.TIMEOUT),
    SelfCheck("link", "link_corrupt", "esc-602", CONFIG, Diagnosis.TIMEOUT),
    SelfCheck("link", "link_slow:delay_s=1.2", "esc-602", CONFIG, Diagnosis.TIMEOUT),
    # a drop while connecting is absorbed (connect tries again within its bound); 4300 bytes from the host
    # land inside a SET_MCCONF of the test (every connection first sends 1032 flush bytes), which must not be retried
    SelfCheck("link", "link_drop:after_bytes=4300", "esc-602", CONFIG, Diagnosis.LINK_LOST),
    # a 6.06 build without 6fe2d789 (the release commit b0931d01 reports 6.06 too): the id and baud reset
    SelfCheck("gen", "no_can_backup", "esc-606", CAN_IDENTITY, None),
)

NOT_INJECTED = {
    "F4": "recovery over SWD: shown by tests/scenarios/test_swd_bringup.py and the recovery scenario",
    "F5": "an unreachable SWD target: shown by tests/unit/test_swd.py (the probe's fault, not the ESC's)",
    "F6": "nothing to inject: the firmware takes any image; test_guards.py shows the simulated board "
    "accepts a wrong-hardware image and the rig's guard refuses it",
    "F10": "not a fault but the real behaviour (every update wipes the config): "
    "test_config_survives_update.py checks the wipe and the rig's restore",
}


def table_markdown() -> str:
    """The selfcheck table as docs/selfcheck.md holds it."""
    lines = [
        "# Selfcheck: every injectable fault is caught",
        "",
        "Generated from `tests/selfcheck/cases.py` (`tests/selfcheck/test_docs_table.py` keeps it current).",
        "Each row: the simulator runs with the fault, the scenario must fail with the diagnosis; without",
        "the fault the same scenario must pass.",
        "",
        "| failure | fault | station | scenario | diagnosis |",
        "|---|---|---|---|---|",
    ]
    for case in CASES:
        where = f"{case.station} CAN {case.can_id}" if case.can_id is not None else case.station
        lines.append(
            f"| {case.failure} | `{case.fault}` | {where} | `{case.scenario.split('/')[-1]}` | "
            f"{case.diagnosis.value if case.diagnosis else '(its assertion)'} |"
        )
    lines += ["", "Not injected:", ""]
    lines += [f"- {failure}: {why}" for failure, why in NOT_INJECTED.items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(table_markdown(), end="")
