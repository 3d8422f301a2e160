"""What the kiosk keypad accepts as a subject or operator ID.

The appliance-wide rule is `appliance.storage.identifiers.validated_id`; the keypad is stricter
(upper case letters, digits, inner dashes, at most 32) so that an ID typed with gloves reads
back unambiguously, and it offers exactly these characters.
"""

from __future__ import annotations

import re

from appliance.errors import BadInput
from appliance.storage.identifiers import validated_id

MAX_ID_LENGTH = 32
ID_CHARACTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-"
_ID_PATTERN = re.compile(r"[A-Z0-9](?:[A-Z0-9-]*[A-Z0-9])?")


def id_problem(label: str, value: str) -> str | None:
    """None when `value` is a valid ID, else one sentence saying what to change (it never
    repeats the value: subject IDs are PHI)."""
    if not value:
        return f"Enter the {label}."
    try:
        validated_id(label, value)
    except BadInput as refusal:
        return f"{str(refusal)[0].upper()}{str(refusal)[1:]}."
    if len(value) > MAX_ID_LENGTH:
        return f"The {label} is longer than {MAX_ID_LENGTH} characters."
    if not _ID_PATTERN.fullmatch(value):
        return f"The {label} may use capital letters, digits and inner dashes only."
    return None
