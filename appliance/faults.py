"""The faults the appliance shows, and their wording: one table the UI, docs and screenshots use.

A fault stops recording until the technician acknowledges it (appliance/machine.py). Each kind
has one sentence for what happened ("{reason}" is filled with the measured detail) and one for
what to do next. A fault reported by the treatment controller's board is not a kind here: it is
audited and logged, never shown as an Error screen, since the board keeps the laser safe itself.
"""

from __future__ import annotations

from enum import Enum

from appliance.status import Fault


class FaultKind(str, Enum):
    CAMERA_LOST = "camera_lost"
    LINK_LOST = "link_lost"
    STORAGE_CRITICAL = "storage_critical"
    STORAGE_ERROR = "storage_error"
    ENCODER_FAILURE = "encoder_failure"
    KEY_MISSING = "key_missing"


FAULT_TEXT: dict[FaultKind, tuple[str, str]] = {
    FaultKind.CAMERA_LOST: (
        "The camera stopped delivering video ({reason}).",
        "Check the camera cable and power, then acknowledge."),
    FaultKind.LINK_LOST: (
        "The treatment controller stopped answering ({reason}).",
        "Check the USB cable to the treatment controller, then acknowledge once it is connected."),
    FaultKind.STORAGE_CRITICAL: (
        "The disk is almost full; the recording was stopped and sealed ({reason}).",
        "Ask clinic IT to export and remove old recordings, then acknowledge."),
    FaultKind.STORAGE_ERROR: (
        "Recordings could not be written to the disk ({reason}).",
        "Call service; do not treat until recording works again."),
    FaultKind.ENCODER_FAILURE: (
        "The video encoder failed ({reason}); everything captured until then was kept.",
        "Acknowledge and open a new session; call service if this repeats."),
    FaultKind.KEY_MISSING: (
        "The encryption key for recordings is missing or unreadable ({reason}).",
        "Ask clinic IT to install the recipient key (appliance doctor shows where), then acknowledge."),
}


def make_fault(kind: FaultKind, reason: str) -> Fault:
    """The Fault the status carries; its `kind` is the plain string value (logs, audit, JSON)."""
    kind = FaultKind(kind)
    what, action = FAULT_TEXT[kind]
    return Fault(kind.value, what.format(reason=reason), action)
