"""Subject and operator IDs: what the appliance accepts before anything is stored.

IDs are PHI (subject) or personal data (operator): they live only in the sessions table, never
in a path or a log line, and an error message never repeats them. The kiosk keypad offers a
stricter alphabet (appliance/ui/identifiers.py); this is the rule every entry point enforces.
"""

from __future__ import annotations

import unicodedata

from appliance.errors import BadInput

MAX_ID_LENGTH = 64


def validated_id(label: str, value: str) -> str:
    """`value` unchanged if usable as a `label` typed on the appliance (operator ID, export actor),
    else BadInput saying why."""
    _check_text(label, value)
    if "/" in value or "\\" in value:
        raise BadInput(f"the {label} must not contain a path separator")
    if not value.strip("."):
        raise BadInput(f"the {label} must not consist of dots only")
    return value


def validated_subject_id(value: str) -> str:
    """`value` unchanged if usable as a subject (patient) ID, else BadInput saying why. Clinics
    issue IDs such as "2024/1234", and no path, object key or file name carries a subject ID
    (uids only), so a slash is fine; a backslash is not: it separates values in DICOM, and the
    gateway writes the ID as the DICOM object's PatientID."""
    _check_text("subject ID", value)
    if "\\" in value:
        raise BadInput("the subject ID must not contain a backslash (DICOM's value separator)")
    return value


def _check_text(label: str, value: str) -> None:
    if not isinstance(value, str) or not value:
        raise BadInput(f"the {label} is empty")
    if len(value) > MAX_ID_LENGTH:
        raise BadInput(f"the {label} is longer than {MAX_ID_LENGTH} characters")
    if any(unicodedata.category(ch)[0] == "C" for ch in value):
        raise BadInput(f"the {label} must not contain control or invisible characters")
    if value != value.strip():
        raise BadInput(f"the {label} must not start or end with a space")
