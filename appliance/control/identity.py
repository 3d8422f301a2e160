"""The session's identity: held in memory for the session, sealed into each of its recordings.

A session is opened from a worklist entry (patient, study, procedure) or from typed IDs. The
controller keeps that identity in memory only; the database keeps the subject and operator IDs,
the accession number and the Study Instance UID, never the name or birth date.

Each recording carries the identity as its sealed identity card (appliance/vault/identity_card.py)
in its signed manifest. The card is sealed when the clip *starts* (its recording id is chosen
then) and written beside the vault as `<vault>.card`: ciphertext only, so it may touch the
disk, and it is what lets a recording salvaged after a crash or power loss still carry its
identity (recovery signs the manifest from the files alone; the memory is gone). Whoever writes
the manifest takes the card into it and removes the sidecar (docs/vault-format.md#identity-card).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

from appliance.atomic import write_atomically
from appliance.errors import BadInput
from appliance.storage.identifiers import validated_id, validated_subject_id
from appliance.vault import identity_card
from appliance.worklist.entries import WorklistEntry, entry_to_json

CARD_SUFFIX = ".card"


@dataclass(frozen=True)
class SessionIdentity:
    """Who the session is for. `entry` is the worklist's step (None for typed IDs); it never
    appears in repr(), so an identity in a log line or a traceback does not take the patient along."""

    subject_id: str = field(repr=False)
    operator_id: str = field(repr=False)
    entry: WorklistEntry | None = field(default=None, repr=False)

    def __post_init__(self):
        validated_subject_id(self.subject_id)
        validated_id("operator ID", self.operator_id)
        if self.entry is not None and self.entry.patient_id != self.subject_id:
            raise BadInput("the subject ID is not the worklist entry's patient ID")

    @property
    def accession_number(self) -> str:
        return self.entry.accession_number if self.entry else ""

    @property
    def study_instance_uid(self) -> str:
        return self.entry.study_instance_uid if self.entry else ""

    def card(self) -> dict:
        """The identity card's fields (format and recording id are the sealing's)."""
        if self.entry is not None:
            return {**entry_to_json(self.entry), "source": "worklist", "operator_id": self.operator_id}
        blank = dict.fromkeys(("patient_name", "birth_date", "sex", "accession_number", "study_instance_uid",
                               "requested_procedure", "scheduled_step_id", "scheduled_start"), "")
        return {**blank, "source": "manual", "patient_id": self.subject_id, "operator_id": self.operator_id}


def card_path(vault_path: Path) -> Path:
    vault_path = Path(vault_path)
    return vault_path.with_name(vault_path.name + CARD_SUFFIX)


def seal_beside(vault_path: Path, identity: SessionIdentity, recipients, recording_id: bytes) -> str:
    """Seals the identity for the recording `recording_id` and writes it beside its vault
    (0600, atomically) before the vault exists; returns the card's text for the manifest."""
    text = identity_card.seal_card(identity.card(), recipients, recording_id)
    write_atomically(card_path(vault_path), text.encode("ascii"))
    return text


def pending_card(vault_path: Path) -> dict:
    """The manifest metadata for the card waiting beside a vault: {} when there is none."""
    try:
        return {identity_card.METADATA_KEY: card_path(vault_path).read_text(encoding="ascii")}
    except (FileNotFoundError, NotADirectoryError):
        return {}


def discard_card(vault_path: Path) -> None:
    """Removes the sidecar once a manifest carries the card (or no vault was made)."""
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        card_path(vault_path).unlink()
