"""The identity card sealed in a recording's manifest: round trip, binding, tampering, the vector."""

from __future__ import annotations

import base64
import io
import json
import os
from pathlib import Path

import pytest
from conftest import run_appliance

from appliance import vault
from appliance.errors import BadInput, IntegrityError
from appliance.vault import identity_card
from appliance.vault.manifest import manifest_path, read_signed

VECTORS = Path(__file__).parent / "vectors" / "vault"
NAMES = ["Müller^Zoë", "山田^太郎=やまだ^たろう", "Ørsted^Åse", "Παπαδόπουλος^Ζωή", "김^민준"]


def entry(name: str = "Müller^Zoë", **changes) -> dict:
    card = {"source": "worklist", "patient_name": name, "patient_id": "PID-4711", "birth_date": "19840229",
            "sex": "F", "accession_number": "ACC-0042", "study_instance_uid": "1.2.826.0.1.3680043.8.498.1",
            "requested_procedure": "Laser, rechtes Auge", "scheduled_step_id": "SPS-7",
            "scheduled_start": "20261201093000", "operator_id": "op-17"}
    return {**card, **changes}


@pytest.fixture(scope="module")
def keys():
    return vault.XWingPrivateKey.generate(), vault.XWingPrivateKey.generate(), vault.DeviceKey.generate()


def record(directory: Path, keys, card: dict | None = None) -> Path:
    """A sealed recording whose manifest carries `card` (sealed for it), as the appliance writes one."""
    recipient, _, device = keys
    recording_id = os.urandom(16)
    path = directory / f"{recording_id.hex()[:8]}.mp4.vault"
    with open(path, "xb") as out:
        writer = vault.encrypt(out, [recipient.public_key()], recording_id=recording_id)
        writer.write(os.urandom(5000))
        sealed = writer.close()
    metadata = {} if card is None else {"identity_card": identity_card.seal_card(card, [recipient.public_key()],
                                                                                 recording_id)}
    vault.write_manifest(path, device, metadata=metadata, sealed=sealed)
    return path


def signed_of(path: Path) -> dict:
    signed, problem = read_signed(path)
    assert signed is not None, problem
    return signed


def resign_with_card(path: Path, keys, text: str) -> None:
    """What a holder of the device key could do: sign the file again with another card."""
    manifest_path(path).unlink()
    vault.write_manifest(path, keys[2], metadata={"identity_card": text})


@pytest.mark.parametrize("name", NAMES)
def test_a_sealed_card_opens_to_exactly_the_entry(tmp_path, keys, name):
    path = record(tmp_path, keys, entry(name))
    assert vault.verify(path).ok
    card = identity_card.open_card(signed_of(path), keys[0])
    assert card == {"format": "treatment-identity-card/1", "recording_id": signed_of(path)["recording_id"],
                    **entry(name)}
    assert card["patient_name"] == name


def test_the_manifest_shows_no_identity_without_a_key(tmp_path, keys):
    path = record(tmp_path, keys, entry())
    text = manifest_path(path).read_bytes()
    for secret in ("Müller", "M\\u00fcller", "19840229", "PID-4711", "ACC-0042", "1.2.826.0.1.3680043.8.498.1"):
        assert secret.encode() not in text
    sealed = base64.b64decode(signed_of(path)["metadata"]["identity_card"])
    for secret in ("Müller", "Zoë", "19840229", "PID-4711"):   # 4+ bytes: chance cannot put them in ciphertext
        assert secret.encode() not in sealed
    info = run_appliance("vault", "info", str(path))
    assert info.returncode == 0 and "identity_card: sealed, " in info.stdout.decode()
    assert signed_of(path)["metadata"]["identity_card"][:40] not in info.stdout.decode()


def test_a_recording_without_a_card_has_none(tmp_path, keys):
    assert identity_card.open_card(signed_of(record(tmp_path, keys)), keys[0]) is None


def test_a_manual_card_round_trips(tmp_path, keys):
    manual = entry("", source="manual", birth_date="", sex="", accession_number="", study_instance_uid="",
                   requested_procedure="", scheduled_step_id="", scheduled_start="")
    card = identity_card.open_card(signed_of(record(tmp_path, keys, manual)), keys[0])
    assert card["source"] == "manual" and card["patient_id"] == "PID-4711" and card["patient_name"] == ""


def test_a_key_that_is_no_recipient_is_refused(tmp_path, keys):
    with pytest.raises(BadInput, match="not a recipient"):
        identity_card.open_card(signed_of(record(tmp_path, keys, entry())), keys[1])


def test_an_edited_card_fails_verify_and_open(tmp_path, keys):
    path = record(tmp_path, keys, entry())
    document = json.loads(manifest_path(path).read_bytes())
    sealed = bytearray(base64.b64decode(document["signed"]["metadata"]["identity_card"]))
    sealed[-20] ^= 1
    edited = base64.b64encode(bytes(sealed)).decode()
    document["signed"]["metadata"]["identity_card"] = edited
    manifest_path(path).write_text(json.dumps(document))
    result = vault.verify(path)
    assert not result.ok and "signature" in result.problem
    assert read_signed(path)[0] is None
    resign_with_card(path, keys, edited)  # even signed again, the card itself does not open
    with pytest.raises(IntegrityError, match="failed authentication"):
        identity_card.open_card(signed_of(path), keys[0])


def test_a_card_moved_to_another_recording_fails_verify_and_open(tmp_path, keys):
    first, second = record(tmp_path, keys, entry("Müller^Zoë")), record(tmp_path, keys, entry("山田^太郎"))
    moved = signed_of(first)["metadata"]["identity_card"]
    document = json.loads(manifest_path(second).read_bytes())
    document["signed"]["metadata"]["identity_card"] = moved
    manifest_path(second).write_text(json.dumps(document))
    assert not vault.verify(second).ok  # the signature no longer holds
    resign_with_card(second, keys, moved)  # signed again: the card still names the first recording
    result = vault.verify(second)
    assert not result.ok and "another recording" in result.problem
    with pytest.raises(IntegrityError, match="another recording"):
        identity_card.open_card(signed_of(second), keys[0])
    cli = run_appliance("vault", "verify", str(second))
    assert cli.returncode == 1 and "identity card belongs to another recording" in cli.stderr.decode()


@pytest.mark.parametrize("text", ["not base64!", base64.b64encode(b"\x89VAULT\r\n\x07").decode(), 12])
def test_a_card_that_is_no_vault_fails_verify(text):
    signed = {"recording_id": "00" * 16, "metadata": {"identity_card": text}}
    assert identity_card.binding_problem(signed)
    with pytest.raises(IntegrityError):
        identity_card.open_card(signed, vault.XWingPrivateKey.generate())


@pytest.mark.parametrize("changes, field", [
    ({"birth_date": "1984-02-29"}, "birth_date"), ({"scheduled_start": "0930"}, "scheduled_start"),
    ({"sex": "X"}, "sex"), ({"source": "barcode"}, "source"), ({"study_instance_uid": "1.2.x"}, "study_instance_uid"),
    ({"study_instance_uid": "1." * 40 + "1"}, "study_instance_uid"), ({"patient_id": 4711}, "patient_id"),
    ({"ward": "3B"}, "ward"), ({"format": "treatment-identity-card/2"}, "format"),
    ({"recording_id": "ab" * 16}, "another recording"),
])
def test_malformed_cards_are_refused_naming_the_field_not_the_value(keys, changes, field):
    with pytest.raises(BadInput) as refused:
        identity_card.seal_card(entry(**changes), [keys[0].public_key()], bytes(16))
    assert field in str(refused.value)
    assert all(str(value) not in str(refused.value) for value in changes.values())
    card = {"format": identity_card.FORMAT, "recording_id": "00" * 16, **entry()}
    incomplete = {k: v for k, v in card.items() if k != "operator_id"}
    assert "missing: operator_id" in identity_card.card_problem(incomplete)


def test_the_published_vector_opens_with_the_test_key():
    vector = json.loads((VECTORS / "identity-card.json").read_text(encoding="utf-8"))
    key = vault.XWingPrivateKey(bytes.fromhex(vector["recipient_seed"]))
    signed = {"recording_id": vector["recording_id"], "metadata": {"identity_card": vector["sealed_base64"]}}
    assert identity_card.open_card(signed, key) == vector["card"]
    assert identity_card.encode_card(vector["card"]).hex() == vector["plaintext_utf8_hex"]
    assert "Müller^Zoë".encode() in bytes.fromhex(vector["plaintext_utf8_hex"])
    header = vault.read_header(io.BytesIO(base64.b64decode(vector["sealed_base64"])).read)
    assert header.version == 2 and header.recording_id.hex() == vector["recording_id"]
    assert [s.key_id.hex() for s in header.stanzas] == ["d4daf4eb1cae96e8"]
