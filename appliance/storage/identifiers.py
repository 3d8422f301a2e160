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
    """`value` unchanged if usable as a `label` (e.g. "subject ID"), else BadInput saying why."""
    if not isinstance(value, str) or not value:
        raise BadInput(f"the {label} is empty")
    if len(value) > MAX_ID_LENGTH:
        raise BadInput(f"the {label} is longer than {MAX_ID_LENGTH} characters")
    if "/" in value or "\\" in value:
        raise BadInput(f"the {label} must not contain a path separator")
    if any(unicodedata.category(ch)[0] == "C" for ch in value):
        raise BadInput(f"the {label} must not contain control or invisible characters")
    if value != value.strip():
        raise BadInput(f"the {label} must not start or end with a space")
    if not value.strip("."):
        raise BadInput(f"the {label} must not consist of dots only")
    return value
