"""A session's identity, end to end in process: opened from a worklist entry or typed IDs, sealed
into every recording (also one salvaged after a crash), out again with `vault decrypt
--identity-card`, and never on the appliance's disk or in its logs in plaintext."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import stat

import pytest
from conftest import run_appliance

from appliance import vault
from appliance.control.identity import SessionIdentity, card_path, seal_beside
from appliance.control.keys import KeyRing
from appliance.control.recovery import recover
from appliance.controller import Controller
from appliance.errors import BadInput
from appliance.storage.database import Store
from appliance.vault.identity_card import open_card
from appliance.vault.manifest import read_signed
from appliance.worklist.entries import WorklistEntry, entry_to_json
from tests.test_controller_e2e import PASSPHRASE, identity, key_dir, small_settings  # noqa: F401
from tests.waiting import wait_for

ZOE = WorklistEntry(patient_name="Müller^Zoë", patient_id="PID-4711", birth_date="19840229", sex="F",
                    accession_number="ACC-2026-0042", study_instance_uid="1.2.826.0.1.3680043.8.498.42",
                    requested_procedure="Laser, rechtes Auge", scheduled_step_id="SPS-7",
                    scheduled_start="20261201093000")
YAMADA = WorklistEntry(patient_name="山田^太郎=やまだ^たろう", patient_id="PID-0815", birth_date="19700101",
                       sex="M", accession_number="ACC-2026-0043", study_instance_uid="1.2.826.0.1.3680043.8.498.43",
                       requested_procedure="眼科レーザー", scheduled_step_id="SPS-8", scheduled_start="20261201100000")


@pytest.fixture
def controller(tmp_path, key_dir, caplog):
    caplog.set_level(logging.DEBUG)
    running = Controller(small_settings(tmp_path / "data", key_dir))
    running.start()
    running.wait_for(lambda status: status.link.up, 10)
    yield running
    running.stop()


def record_clips(controller, count: int) -> None:
    wait_for(lambda: controller.simulator.permissive)
    for clip in range(1, count + 1):
        controller.simulator.press()
        controller.wait_for(lambda status: (status.recording_elapsed_s or 0) >= 0.5, 5)
        controller.simulator.release()
        controller.wait_for(lambda status: status.state == "Armed" and status.session.clip_count == clip, 20)


def cards_of(controller, session_uid: str, identity) -> list[dict]:
    cards = []
    for recording in controller.reader.recordings(session_uid):
        assert vault.verify(recording.path, controller.keys.load().device_key.public_key()).ok
        signed, problem = read_signed(recording.path)
        assert signed is not None, problem
        cards.append(open_card(signed, identity))
    return cards


def test_every_recording_of_a_worklist_session_carries_exactly_its_entry(controller, identity):
    session = controller.begin_session(ZOE.patient_id, "TECH-1", entry=ZOE)
    record_clips(controller, 2)
    controller.end_session()
    recordings = controller.reader.recordings(session.session_uid)
    cards = cards_of(controller, session.session_uid, identity)
    assert [card["recording_id"] for card in cards] == [read_signed(r.path)[0]["recording_id"] for r in recordings]
    for card in cards:
        assert {k: v for k, v in card.items() if k not in ("format", "recording_id")} == \
            {**entry_to_json(ZOE), "source": "worklist", "operator_id": "TECH-1"}
    stored = controller.reader.session(session.session_uid)
    assert (stored.subject_id, stored.accession_number, stored.study_instance_uid) == \
        ("PID-4711", "ACC-2026-0042", "1.2.826.0.1.3680043.8.498.42")
    assert all("identity_card" not in (r.manifest or {}) for r in recordings)   # the database keeps no copy
    assert not list(controller.settings.data.dir.rglob("*.card"))               # sidecars gone once signed


def test_a_session_from_typed_ids_carries_a_manual_card(controller, identity):
    session = controller.begin_session("SUBJ-9", "TECH-2")
    record_clips(controller, 1)
    (card,) = cards_of(controller, session.session_uid, identity)
    assert (card["source"], card["patient_id"], card["operator_id"], card["patient_name"]) == \
        ("manual", "SUBJ-9", "TECH-2", "")
    stored = controller.reader.session(session.session_uid)
    assert (stored.accession_number, stored.study_instance_uid) == ("", "")


def test_a_patient_id_with_a_slash_opens_a_session_and_stays_out_of_every_path(controller, identity):
    entry = dataclasses.replace(ZOE, patient_id="2024/1234")
    session = controller.begin_session(entry.patient_id, "TECH-1", entry=entry)
    record_clips(controller, 1)
    controller.end_session()
    (card,) = cards_of(controller, session.session_uid, identity)
    assert card["patient_id"] == "2024/1234"
    assert controller.reader.session(session.session_uid).subject_id == "2024/1234"
    data_dir = controller.settings.data.dir
    paths = [str(path.relative_to(data_dir)) for path in data_dir.rglob("*")]
    assert paths and not [path for path in paths if "2024" in path or "1234" in path]


def test_an_entry_for_another_patient_than_the_subject_is_refused(controller):
    with pytest.raises(BadInput, match="patient ID"):
        controller.begin_session("PID-0000", "TECH-1", entry=ZOE)
    assert controller.status.state == "Idle" and controller.reader.sessions() == []


def test_the_identity_never_shows_in_repr():
    text = repr(SessionIdentity(ZOE.patient_id, "TECH-1", ZOE))
    assert "Müller" not in text and "PID-4711" not in text and "19840229" not in text


def test_a_recording_cut_by_a_crash_still_carries_its_card(tmp_path, key_dir, identity):
    """What a power loss leaves: the card beside a vault whose writer never closed, the row open."""
    settings = small_settings(tmp_path / "data", key_dir)
    keys = KeyRing(settings).load()
    store = Store(settings.data.dir)
    try:
        session = store.open_session(YAMADA.patient_id, "TECH-1", accession_number=YAMADA.accession_number)
        recording = store.start_recording(session.uid)
        recording_id = os.urandom(16)
        seal_beside(recording.path, SessionIdentity(YAMADA.patient_id, "TECH-1", YAMADA), keys.recipients,
                    recording_id)
        assert stat.S_IMODE(card_path(recording.path).stat().st_mode) == 0o600
        with open(recording.path, "xb", buffering=0) as out:
            writer = vault.encrypt(out, keys.recipients, recording_id=recording_id)
            writer.write(os.urandom(200_000))
            writer.abandon()   # the process died here
        assert recover(store, lambda: keys.device_key)
        assert store.recording(recording.uid).state == "interrupted"
    finally:
        store.close()
    verification = vault.verify(recording.path, keys.device_key.public_key())
    assert verification.ok and verification.state == "interrupted"
    card = open_card(read_signed(recording.path)[0], identity)
    assert card["patient_name"] == "山田^太郎=やまだ^たろう" and card["recording_id"] == recording_id.hex()
    assert not card_path(recording.path).exists()


def test_vault_decrypt_writes_the_card_as_json(controller, identity, key_dir, tmp_path):
    session = controller.begin_session(YAMADA.patient_id, "TECH-1", entry=YAMADA)
    record_clips(controller, 1)
    (recording,) = controller.reader.recordings(session.session_uid)
    passphrase = tmp_path / "passphrase"
    passphrase.write_bytes(PASSPHRASE)
    key = ["--identity", str(key_dir / vault.keys.RECIPIENT_KEY), "--passphrase-file", str(passphrase)]
    out = tmp_path / "out"
    out.mkdir()
    result = run_appliance("vault", "decrypt", str(recording.path), *key, "-o", str(out / "clip.mp4"),
                           "--identity-card", str(out / "card.json"))
    assert result.returncode == 0, result.stderr
    card = json.loads((out / "card.json").read_text(encoding="utf-8"))
    assert card["patient_name"] == "山田^太郎=やまだ^たろう" and card["birth_date"] == "19700101"
    assert "山田".encode() in (out / "card.json").read_bytes()   # readable UTF-8, not \\u escapes
    assert stat.S_IMODE((out / "card.json").stat().st_mode) == 0o600
    assert (out / "clip.mp4").stat().st_size > 0
    only_card = run_appliance("vault", "decrypt", str(recording.path), *key, "--identity-card", str(out / "again.json"))
    assert only_card.returncode == 0 and json.loads((out / "again.json").read_text(encoding="utf-8")) == card
    refused = run_appliance("vault", "decrypt", str(recording.path), *key, "--identity-card", str(out / "card.json"))
    assert refused.returncode == 2 and len(refused.stderr.decode().strip().splitlines()) == 1


def plaintext_forms(text: str) -> set[bytes]:
    """`text` as bytes in every encoding it could plausibly have been written in."""
    forms = {json.dumps(text).encode("ascii")[1:-1]}
    for encoding in ("utf-8", "utf-16-le", "utf-16-be", "utf-32-le", "latin-1", "cp1252", "iso2022_jp",
                     "shift_jis", "euc_jp", "iso8859_15"):
        try:
            forms.add(text.encode(encoding))
        except UnicodeEncodeError:
            pass
    return forms


# Sealed files are random bytes to anyone without the key, and a k-byte form turns up in N random
# bytes by chance with probability about N / 256**k: Latin-1 "Zoë" (3 bytes) in about 6 % of 1 MB
# vaults. So sealed files are searched for the forms chance cannot produce (6 bytes and longer:
# under 1e-7 per MB), which still catches a name written into them in any encoding above.
SEALED_SUFFIXES = (".vault", ".card")
SHORTEST_FORM_IN_CIPHERTEXT = 6


def leaked_forms(name: str, content: bytes, forms: set[bytes]) -> list[bytes]:
    sealed = name.endswith(SEALED_SUFFIXES)
    return [form for form in forms if (not sealed or len(form) >= SHORTEST_FORM_IN_CIPHERTEXT) and form in content]


def test_no_patient_name_or_birth_date_on_disk_or_in_the_logs(controller, caplog):
    for entry in (ZOE, YAMADA):
        controller.begin_session(entry.patient_id, "TECH-1", entry=entry)
        record_clips(controller, 1)
        controller.end_session()
    controller.stop()   # everything flushed: database, WAL, journal
    secrets = {"Müller", "Zoë", "山田", "太郎", "やまだ", "たろう", "19840229", "1984-02-29", "29.02.1984",
               "19700101", "1970-01-01"}
    forms = {form for secret in secrets for form in plaintext_forms(secret)}
    files = [path for path in controller.settings.data.dir.rglob("*") if path.is_file()]
    names = [path.name for path in files]
    assert any(name.endswith(".vault") for name in names) and "appliance.sqlite3" in names
    for path in files:
        assert not leaked_forms(path.name, path.read_bytes(), forms), path.name
    logs = "\n".join(record.getMessage() + repr(record.args) for record in caplog.records).encode("utf-8")
    assert logs and not [form for form in forms if form in logs]
