"""The identity card: who and which study a recording belongs to, sealed inside its manifest.

The card is a UTF-8 JSON object (FIELDS below) sealed as a complete version 2 vault to the
recording's recipients, with the recording's id in its header, and carried base64 in the signed
manifest at `signed["metadata"]["identity_card"]` (docs/vault-format.md#identity-card).

    text = seal_card(card, recipients, recording_id)     # -> manifest metadata "identity_card"
    card = open_card(signed, identity)                   # -> dict, or None without a card

Whoever can decrypt the video can open its card; without a recipient key the manifest shows
only ciphertext. The manifest's signature covers the card, and the card's header names its
recording (checked by `binding_problem`, key-free, so `vault verify` catches a card moved to
another recording's manifest even when that manifest was re-signed). Error messages name
fields, never their values: a value may be a patient's name.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import re

from appliance.errors import BadInput, IntegrityError
from appliance.vault import header as vault_header
from appliance.vault.reader import VaultReader
from appliance.vault.writer import encrypt

FORMAT = "treatment-identity-card/1"
METADATA_KEY = "identity_card"
SOURCES = ("worklist", "manual")
SEXES = ("M", "F", "O", "")
# Every field is a string; these must match their pattern (all others: any text).
PATTERNS = {
    "recording_id": re.compile(r"[0-9a-f]{32}"),
    "birth_date": re.compile(r"(\d{8})?"),
    "scheduled_start": re.compile(r"(\d{14})?"),
    "study_instance_uid": re.compile(r"([0-9]+(\.[0-9]+)*)?"),
}
FIELDS = ("format", "recording_id", "source", "patient_name", "patient_id", "birth_date", "sex",
          "accession_number", "study_instance_uid", "requested_procedure", "scheduled_step_id",
          "scheduled_start", "operator_id")
MAX_SEALED_BYTES = 64 * 1024  # a card is a few hundred bytes; refuse anything absurd before decoding


def card_problem(card) -> str | None:
    """One line naming what is wrong with a card (never a value), or None when it is well formed."""
    if not isinstance(card, dict):
        return "an identity card must be a JSON object"
    missing, unknown = set(FIELDS) - card.keys(), card.keys() - set(FIELDS)
    if missing or unknown:
        return "identity card fields " + "; ".join(
            part for part in (f"missing: {', '.join(sorted(missing))}" if missing else "",
                              f"unknown: {', '.join(sorted(map(str, unknown)))}" if unknown else "") if part)
    not_text = sorted(name for name in FIELDS if not isinstance(card[name], str))
    if not_text:
        return f"identity card fields must be text: {', '.join(not_text)}"
    if card["format"] != FORMAT:
        return f"identity card format must be {FORMAT}"
    if card["source"] not in SOURCES:
        return f"identity card source must be one of {', '.join(SOURCES)}"
    if card["sex"] not in SEXES:
        return "identity card sex must be M, F, O or empty"
    bad = sorted(name for name, pattern in PATTERNS.items() if not pattern.fullmatch(card[name]))
    if bad or len(card["study_instance_uid"]) > 64:
        return f"identity card fields malformed: {', '.join(bad or ['study_instance_uid'])}"
    return None


def encode_card(card: dict) -> bytes:
    """The exact plaintext sealed: sorted keys, no spaces, UTF-8 (not \\u escapes)."""
    return json.dumps(card, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def seal_card(card: dict, recipients, recording_id: bytes) -> str:
    """The base64 text of `card` sealed for the recording `recording_id` (16 bytes). `format` and
    `recording_id` are filled in when absent; BadInput names a field that is wrong."""
    complete = {"format": FORMAT, "recording_id": recording_id.hex(), **card}
    if complete["recording_id"] != recording_id.hex():
        raise BadInput("the identity card names another recording than the one it is sealed for")
    problem = card_problem(complete)
    if problem:
        raise BadInput(problem)
    sealed = io.BytesIO()
    writer = encrypt(sealed, list(recipients), recording_id=recording_id, fsync_every=0)
    writer.write(encode_card(complete))
    writer.close()
    return base64.b64encode(sealed.getvalue()).decode("ascii")


def _sealed_bytes(text) -> bytes:
    if not isinstance(text, str) or len(text) > MAX_SEALED_BYTES * 4 // 3 + 4:
        raise IntegrityError("the identity card in the manifest is malformed (not base64 text of a sensible size)")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise IntegrityError("the identity card in the manifest is malformed (not base64)") from None


def _card_header(sealed: bytes):
    try:
        header = vault_header.read_header(io.BytesIO(sealed).read)
    except (BadInput, IntegrityError):
        raise IntegrityError("the identity card in the manifest is not a sealed vault") from None
    if header.version != 2:
        raise IntegrityError("the identity card in the manifest is not a version 2 vault")
    return header


def binding_problem(signed: dict) -> str | None:
    """Key-free: one line when the manifest carries a card that is not a vault of this recording."""
    text = (signed.get("metadata") or {}).get(METADATA_KEY)
    if text is None:
        return None
    try:
        header = _card_header(_sealed_bytes(text))
    except IntegrityError as error:
        return str(error)
    if header.recording_id.hex() != signed.get("recording_id"):
        return "the identity card belongs to another recording: it was moved into this manifest"
    return None


def open_card(signed: dict, identity) -> dict | None:
    """The card in a manifest's verified signed fields, decrypted with a recipient key; None when
    the recording carries none. IntegrityError when it is not this recording's or was modified;
    BadInput when `identity` is not one of its recipients."""
    problem = binding_problem(signed)
    if problem:
        raise IntegrityError(problem)
    text = (signed.get("metadata") or {}).get(METADATA_KEY)
    if text is None:
        return None
    with VaultReader(io.BytesIO(_sealed_bytes(text)), identity) as reader:
        if not reader.finalized:
            raise IntegrityError("the identity card was cut short: it was modified")
        plaintext = reader.read()
    try:
        card = json.loads(plaintext.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise IntegrityError("the identity card does not hold JSON: it was modified") from None
    problem = card_problem(card)
    if problem:
        raise IntegrityError(f"the identity card is malformed: {problem}")
    if card["recording_id"] != signed.get("recording_id"):
        raise IntegrityError("the identity card names another recording: it was moved into this manifest")
    return card
