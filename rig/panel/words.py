"""What a failure means to an operator at the bench, and what to do about it: one entry per diagnosis.

The rig's diagnoses (rig.errors.Diagnosis) are written for engineers and reports; an operator needs a short
sentence and a remedy they can carry out (set the board aside, reseat it, call the technician).
"""

from __future__ import annotations

from dataclasses import dataclass

from rig.errors import Diagnosis

TECHNICIAN = "Put the board in the repair tray and tell the technician."
RESEAT = "Reseat the board in the fixture (USB, power and SWD cable), then start it again."
CALL_MANAGER = "Call the line manager: the station or its set-up needs attention, not the board."


@dataclass(frozen=True)
class Words:
    """A failure in plain words, and the remedy."""

    what: str
    remedy: str


PLAIN: dict[Diagnosis, Words] = {
    Diagnosis.TIMEOUT: Words("The board stopped answering in time.", RESEAT),
    Diagnosis.LINK_LOST: Words("The USB connection to the board was lost.", RESEAT),
    Diagnosis.NO_PORT: Words("The board's USB port did not appear.", RESEAT),
    Diagnosis.BAD_REPLY: Words("The board answered with something unexpected.", TECHNICIAN),
    Diagnosis.PROTOCOL: Words("The board's messages could not be understood.", TECHNICIAN),
    Diagnosis.UNSUPPORTED: Words("The board's firmware cannot do what this step needs.", CALL_MANAGER),
    Diagnosis.BOOTLOADER_MISSING: Words(
        "The new firmware did not take: the bootloader is missing or refused the image.", TECHNICIAN
    ),
    Diagnosis.UNRESPONSIVE_AFTER_UPDATE: Words("The board did not come back after the firmware update.", TECHNICIAN),
    Diagnosis.CAN_VERSION_MISMATCH: Words("A second board on the CAN bus runs other firmware.", TECHNICIAN),
    Diagnosis.WRONG_HARDWARE: Words(
        "This board is a different model than the firmware is for.", "Check the board model; " + CALL_MANAGER
    ),
    Diagnosis.CONFIG_SIGNATURE_MISMATCH: Words("The board's settings are of an unexpected layout.", TECHNICIAN),
    Diagnosis.CONFIG_MIXED: Words("The board's settings were only partly written.", TECHNICIAN),
    Diagnosis.CONFIG_SCHEMA_MISSING: Words("The rig lacks the settings description for this firmware.", CALL_MANAGER),
    Diagnosis.BAD_IMAGE: Words("The firmware file of this station is not usable.", CALL_MANAGER),
    Diagnosis.SWD_CONNECT_FAILED: Words("The programmer could not reach the chip.", RESEAT),
    Diagnosis.SWD_PROBE_MISSING: Words("The station's programmer is not connected.", CALL_MANAGER),
    Diagnosis.SWD_PROBE_BUSY: Words("The station's programmer is in use by another program.", CALL_MANAGER),
    Diagnosis.SWD_TARGET_LOCKED: Words("The chip is locked and could not be unlocked.", TECHNICIAN),
    Diagnosis.SWD_VERIFY_MISMATCH: Words("The chip did not keep what was programmed.", TECHNICIAN),
    Diagnosis.POWER_FAILED: Words("The station could not switch the board's power.", CALL_MANAGER),
    Diagnosis.PORT_NEVER_WENT: Words("Switching the power off did not turn the board off.", CALL_MANAGER),
    Diagnosis.PORT_NEVER_CAME_BACK: Words("The board did not start after power on.", RESEAT),
    Diagnosis.BRICKED: Words("The board does not answer at all after a power cycle.", TECHNICIAN),
    Diagnosis.RACK_FILE: Words("The rack file has a mistake.", CALL_MANAGER),
    Diagnosis.LEASE: Words("Another program is using this station.", CALL_MANAGER),
    Diagnosis.NOT_PERMITTED: Words(
        "This board already has firmware on it, and this rack does not allow erasing such boards.",
        "Use a blank board. A returned board needs the line manager's rack setting ([factory] erase_answering_boards).",
    ),
    Diagnosis.IDENTITY_LOST: Words("The board did not report its serial number (UID).", TECHNICIAN),
    Diagnosis.STATION_BROKEN: Words("An earlier step left this station's board unusable.", TECHNICIAN),
    Diagnosis.CONFIG_NOT_RESTORED: Words("The board's settings could not be given back.", TECHNICIAN),
    Diagnosis.CONFIG_NOT_APPLIED: Words("The board did not take the settings written to it.", TECHNICIAN),
    Diagnosis.CONFIG_NOT_PERSISTED: Words("The board forgot its settings when it was switched off.", TECHNICIAN),
    Diagnosis.BOOTLOADER_NOT_WRITTEN: Words("The bootloader was not written to the board.", TECHNICIAN),
    Diagnosis.FIRMWARE_NOT_WRITTEN: Words("The board does not run the firmware that was written.", TECHNICIAN),
    Diagnosis.IDENTITY_CHANGED: Words("The board reported another identity after a restart.", TECHNICIAN),
    Diagnosis.CAN_NODE_MISSING: Words("A board on the CAN bus is missing or answers for another.", TECHNICIAN),
    Diagnosis.LATE_REPLIES: Words("The board answered too late.", TECHNICIAN),
    Diagnosis.INTERRUPTED: Words(
        "Stopped at a safe point; the board keeps the firmware it had before the step that was stopped.",
        "Take the board out, or start it again.",
    ),
    Diagnosis.RECORDS: Words("The record could not be written.", CALL_MANAGER),
    Diagnosis.REPORT: Words("A report could not be made.", CALL_MANAGER),
    Diagnosis.PANEL: Words("The panel refused the action.", CALL_MANAGER),
    Diagnosis.NOT_INSTALLED: Words("A part of the rig is not installed.", CALL_MANAGER),
    Diagnosis.SIM: Words("The simulated board failed.", CALL_MANAGER),
}

OUT_OF_LIMITS = Words("A measurement is out of its limits.", TECHNICIAN)
NO_VERDICT = Words(
    "The bring-up ended without a verdict (the panel or the computer stopped during it).",
    "Take the board out and start it again from the beginning.",
)


def plain(diagnosis: str) -> Words:
    """The words for a diagnosis value (Diagnosis.value); an unknown one is named as it is."""
    try:
        return PLAIN[Diagnosis(diagnosis)]
    except ValueError:
        return Words(diagnosis, TECHNICIAN)
