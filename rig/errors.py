"""Typed errors of the rig, each carrying a diagnosis that reports group failures by."""

from __future__ import annotations

from enum import StrEnum


class Diagnosis(StrEnum):
    """What went wrong, in words a report can group by (Allure categories use these strings)."""

    TIMEOUT = "timeout"
    LINK_LOST = "link lost"
    NO_PORT = "port not found"
    BAD_REPLY = "bad reply"
    PROTOCOL = "protocol error"
    UNSUPPORTED = "unsupported by this firmware"
    BOOTLOADER_MISSING = "update did not take: bootloader missing or rejected the image"
    UNRESPONSIVE_AFTER_UPDATE = "unresponsive after update"
    CAN_VERSION_MISMATCH = "CAN version mismatch"
    WRONG_HARDWARE = "wrong hardware"
    CONFIG_SIGNATURE_MISMATCH = "config signature mismatch"
    CONFIG_MIXED = "config is neither the old nor the new one"
    CONFIG_SCHEMA_MISSING = "config schema missing (point the rig at VESC Tool's res/config)"
    BAD_IMAGE = "bad image"
    SWD_CONNECT_FAILED = "SWD connect failed"
    SWD_PROBE_MISSING = "SWD probe missing"
    SWD_PROBE_BUSY = "SWD probe busy"
    SWD_TARGET_LOCKED = "SWD target locked"
    SWD_VERIFY_MISMATCH = "SWD verify mismatch"
    POWER_FAILED = "power control failed"
    PORT_NEVER_WENT = "relay switched but the port never went away (wrong channel or wiring)"
    PORT_NEVER_CAME_BACK = "port never came back after power on"
    BRICKED = "bricked: no answer after power cycle"
    RACK_FILE = "rack file error"
    LEASE = "station held by another run, or its lease lost"
    NOT_PERMITTED = "refused: needs explicit permission"
    IDENTITY_LOST = "identity lost: FW_VERSION without the UID its version sends"
    STATION_BROKEN = "station broken: an earlier step left its board unusable"
    CONFIG_NOT_RESTORED = "config not restored after the operation"
    CONFIG_NOT_APPLIED = "config not applied: the board reads back other values than were written"
    CONFIG_NOT_PERSISTED = "config not persisted: a written config did not survive a power cycle"
    BOOTLOADER_NOT_WRITTEN = "bootloader sector does not hold the uploaded bootloader"
    FIRMWARE_NOT_WRITTEN = "the board does not run the image that was written"
    IDENTITY_CHANGED = "identity changed: another UID or hardware after a reboot"
    CAN_NODE_MISSING = "a CAN node is missing or answers for another"
    LATE_REPLIES = "late replies: the board answered after the bound"
    INTERRUPTED = "interrupted (stopped at a safe point)"
    RECORDS = "record store error"
    REPORT = "report generation failed"
    PANEL = "operator panel: action refused"
    NOT_INSTALLED = "an optional part of the rig is not installed"
    SIM = "simulator error"


class RigError(Exception):
    """Base of every error the rig raises on purpose."""

    diagnosis: Diagnosis = Diagnosis.PROTOCOL

    def __init__(self, message: str, *, diagnosis: Diagnosis | None = None) -> None:
        super().__init__(message)
        if diagnosis is not None:
            self.diagnosis = diagnosis


class ProtocolError(RigError):
    """A frame or payload that cannot be encoded or decoded."""

    diagnosis = Diagnosis.PROTOCOL


class PayloadError(ProtocolError):
    """A payload too short, too long or otherwise not of the expected form."""


class LinkError(RigError):
    """The byte link failed."""

    diagnosis = Diagnosis.LINK_LOST


class LinkLost(LinkError):
    """The link went away (port vanished, TCP dropped, or a forced cut)."""


class RigTimeout(RigError):
    """A bounded wait ran out; the message names the bound."""

    diagnosis = Diagnosis.TIMEOUT

    def __init__(self, what: str, bound_s: float, *, diagnosis: Diagnosis | None = None) -> None:
        super().__init__(f"{what}: no answer within {bound_s:.3g} s", diagnosis=diagnosis)
        self.what = what
        self.bound_s = bound_s


class BadReply(RigError):
    """The device answered, but not with what the command expects."""

    diagnosis = Diagnosis.BAD_REPLY


class UnsupportedCommand(RigError):
    """The command does not exist in the connected firmware version."""

    diagnosis = Diagnosis.UNSUPPORTED


class CommandFailed(RigError):
    """The device answered with a failure (for example ERASE_NEW_APP replied 0)."""

    diagnosis = Diagnosis.BAD_REPLY


class ConfigError(RigError):
    """A config blob the rig cannot vouch for (signature or firmware version mismatch)."""

    diagnosis = Diagnosis.CONFIG_SIGNATURE_MISMATCH


class ImageError(RigError):
    """A firmware or bootloader image that must not be uploaded."""

    diagnosis = Diagnosis.BAD_IMAGE


class WrongHardware(ImageError):
    """An image built for another hardware name (F6)."""

    diagnosis = Diagnosis.WRONG_HARDWARE


class UpdateError(RigError):
    """A firmware update that did not end with the board on the new firmware."""

    diagnosis = Diagnosis.BOOTLOADER_MISSING


class PowerError(RigError):
    """A relay board, supply or power cycle that failed."""

    diagnosis = Diagnosis.POWER_FAILED


class SwdError(RigError):
    """An SWD operation that failed."""

    diagnosis = Diagnosis.SWD_CONNECT_FAILED


class RackFileError(RigError):
    """A rack file with mistakes; the message names the file, the entry and the key."""

    diagnosis = Diagnosis.RACK_FILE


class NotPermitted(RigError):
    """A destructive step asked for without the explicit permission it needs (rig.station.permissions)."""

    diagnosis = Diagnosis.NOT_PERMITTED


class IdentityLost(RigError):
    """A board whose FW_VERSION lacks the UID its firmware version must send, or two nodes with one UID."""

    diagnosis = Diagnosis.IDENTITY_LOST
