"""One scheduled procedure step from the worklist, as the appliance uses it, and its JSON form.

The fields are the identity card's (appliance/vault/identity_card.py) minus what the session
adds (format, recording_id, source, operator_id). The JSON form is what the worklist channel
carries (docs/worklist.md). Name and birth date are left out of repr(), so an entry that ends
up in a log line or a traceback does not take the patient with it.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields

SEXES = ("M", "F", "O", "")
DATE = re.compile(r"\A(\d{8})?\Z")            # DICOM DA, or empty when the RIS does not say
DATE_TIME = re.compile(r"\A(\d{14})?\Z")      # YYYYMMDDHHMMSS, or empty


@dataclass(frozen=True)
class WorklistEntry:
    patient_name: str = field(repr=False)     # DICOM PN as decoded, e.g. "Müller^Zoë"
    patient_id: str
    birth_date: str = field(repr=False)       # YYYYMMDD or ""
    sex: str                                  # M, F, O or ""
    accession_number: str
    study_instance_uid: str
    requested_procedure: str                  # Requested Procedure Description
    scheduled_step_id: str
    scheduled_start: str                      # YYYYMMDDHHMMSS or ""

    def __post_init__(self):
        for item in fields(self):
            if not isinstance(getattr(self, item.name), str):
                raise ValueError(f"{item.name} must be text")
        if self.sex not in SEXES:
            raise ValueError(f"sex must be one of M, F, O or empty, got {self.sex!r}")
        if not DATE.match(self.birth_date):
            raise ValueError("birth_date must be YYYYMMDD or empty")
        if not DATE_TIME.match(self.scheduled_start):
            raise ValueError(f"scheduled_start must be YYYYMMDDHHMMSS or empty, got {self.scheduled_start!r}")


FIELD_NAMES = tuple(item.name for item in fields(WorklistEntry))


def entry_to_json(entry: WorklistEntry) -> dict:
    return asdict(entry)


def entry_from_json(data) -> WorklistEntry:
    """The entry a JSON object describes; ValueError naming the problem when it is not one
    (exactly the fields, each text)."""
    if not isinstance(data, dict):
        raise ValueError("a worklist entry must be a JSON object")
    missing = [name for name in FIELD_NAMES if name not in data]
    if missing:
        raise ValueError(f"worklist entry: missing {', '.join(missing)}")
    unknown = sorted(set(data) - set(FIELD_NAMES))
    if unknown:
        raise ValueError(f"worklist entry: unknown {', '.join(unknown)}")
    return WorklistEntry(**data)
