"""Which archived recordings the portal shows, and as what: the pure parts of the review's
library (archived_recordings.py, session_index.py) on real signed manifests of tiny vaults."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from appliance import vault
from appliance.portal.archived_recordings import (ArchivedObject, ArchivedRecording, entry_from_manifest, pair_objects,
                                                  withheld)
from appliance.portal.session_index import DIFFERENT_PATIENTS, recording_document, session_document, sessions
from appliance.timeline import ClipEvent
from bench.sealed_recordings import sealed_card
from tests.gatewaying import A_CARD, PASSPHRASE, ClinicKeys, clinic_keys  # noqa: F401 (fixture)
from tests.portal_recordings import YAMADA_CARD, laser_events

EVENTS = laser_events(range(30, 45))   # laser on 1.0 s -> 1.5 s


class Made:
    """A tiny real vault with a signed manifest, as the listing would see it in the bucket."""

    def __init__(self, directory: Path, keys: ClinicKeys, *, card: dict | None = A_CARD, interrupted: bool = False,
                 signer: Path | None = None, metadata: dict | None = None, recipient_pub: Path | None = None):
        self.session, self.uid = uuid.uuid4().hex, uuid.uuid4().hex
        self.path = directory / f"{self.uid}.mp4.vault"
        recipient = vault.keys.load_recipient_public(recipient_pub or keys.recipient_pub)
        with open(self.path, "wb") as out:
            writer = vault.encrypt(out, [recipient])
            writer.write(b"\0" * 1000)
            sealed = None if interrupted else writer.close()
            if interrupted:
                writer.flush()
        found = {"session": self.session, "recording": self.uid}
        if card is not None:
            found |= sealed_card(self.path, card, recipient)
        key = vault.keys.load_device_key(signer or keys.device_key)
        self.device = key.public_key().key_id
        if interrupted:
            vault.mark_interrupted(self.path, key, found)
        else:
            found |= {"duration_s": 4.0, "events": [event.as_dict() for event in EVENTS]}
            vault.write_manifest(self.path, key, metadata=found | (metadata or {}), sealed=sealed)
        self.manifest = vault.manifest.manifest_path(self.path).read_bytes()

    def listed(self, *, device: str | None = None, session: str | None = None, uid: str | None = None,
               size: int | None = None) -> ArchivedRecording:
        key = f"{device or self.device}/{session or self.session}/{uid or self.uid}.mp4.vault"
        return ArchivedRecording(device or self.device, session or self.session, uid or self.uid,
                                 ArchivedObject(key, size or self.path.stat().st_size, '"v"'),
                                 ArchivedObject(key + ".manifest", len(self.manifest), '"m"'))

    def signed_at(self) -> float:
        return datetime.fromisoformat(json.loads(self.manifest)["signed"]["signed_at"]).timestamp()


@pytest.fixture(scope="module")
def devices(clinic_keys):  # noqa: F811
    return [vault.keys.load_device_public(path) for path in clinic_keys.devices.glob("*.pub")]


@pytest.fixture(scope="module")
def identity(clinic_keys):  # noqa: F811
    return vault.keys.load_identity(clinic_keys.recipient_key, PASSPHRASE.encode())


@pytest.fixture(scope="module")
def made(tmp_path_factory, clinic_keys):  # noqa: F811
    directory = tmp_path_factory.mktemp("made")
    return {"sealed": Made(directory, clinic_keys), "interrupted": Made(directory, clinic_keys, interrupted=True),
            "no card": Made(directory, clinic_keys, card=None),
            "stranger": Made(directory, clinic_keys, signer=clinic_keys.stranger_key),
            "yamada": Made(directory, clinic_keys, card=YAMADA_CARD)}


# -- the bucket listing -------------------------------------------------------------------------

def test_a_vault_pairs_with_its_manifest_and_everything_else_is_not_a_recording():
    session, uid, other = (uuid.uuid4().hex for _ in range(3))
    keys = [f"dev1/{session}/{uid}.mp4.vault", f"dev1/{session}/{uid}.mp4.vault.manifest",
            f"dev1/{session}/{other}.mp4.vault",                      # manifest not there yet
            f"dev1/{session}/{other}.mp4.vault.part.manifest",
            "dev1/status/latest.json", f"dev1/audit/{uid}.json",        # statuses, anchors
            f"dev1/{uid}.mp4.vault", f"dev1/{uid}.mp4.vault.manifest",  # not in a session
            f"dev1/x/{session}/{uid}.mp4.vault", f"dev1/x/{session}/{uid}.mp4.vault.manifest",
            f"dev1/NOT-A-UID/{uid}.mp4.vault", f"dev1/NOT-A-UID/{uid}.mp4.vault.manifest",
            f"/{session}/{uid}.mp4.vault", f"/{session}/{uid}.mp4.vault.manifest"]
    found = pair_objects(ArchivedObject(key, index, f'"{index}"') for index, key in enumerate(keys))
    assert found == [ArchivedRecording("dev1", session, uid, ArchivedObject(keys[0], 0, '"0"'),
                                       ArchivedObject(keys[1], 1, '"1"'))]


def test_recordings_are_listed_in_key_order():
    sessions_ = sorted(uuid.uuid4().hex for _ in range(3))
    keys = [f"d/{s}/{s}.mp4.vault{suffix}" for s in reversed(sessions_) for suffix in ("", ".manifest")]
    assert [r.session_uid for r in pair_objects(ArchivedObject(k, 1, "e") for k in keys)] == sessions_


# -- one recording from its manifest ------------------------------------------------------------

def test_a_genuine_recording_shows_its_card_events_and_times(made, devices, identity):
    clip = made["sealed"]
    entry = entry_from_manifest(clip.listed(), clip.manifest, devices, identity)
    assert entry.problem is None and not entry.interrupted
    assert (entry.uid, entry.session_uid, entry.device_id) == (clip.uid, clip.session, clip.device)
    assert entry.vault_key == f"{clip.device}/{clip.session}/{clip.uid}.mp4.vault"
    assert entry.card["patient_name"] == "Müller^Zoë" and entry.card["recording_id"] == \
        vault.manifest.read_vault_header(clip.path).recording_id.hex()
    assert entry.events == EVENTS and entry.emissions == [(1.0, 1.5)] and entry.has_timeline
    assert entry.duration_s == 4.0 and entry.signed_at == clip.signed_at()
    assert entry.started_at == clip.signed_at() - 4.0


def test_an_interrupted_recording_is_marked_and_claims_no_duration(made, devices, identity):
    clip = made["interrupted"]
    entry = entry_from_manifest(clip.listed(), clip.manifest, devices, identity)
    assert entry.problem is None and entry.interrupted and entry.card["patient_id"] == "PID-0042"
    assert entry.duration_s is None and entry.started_at is None and entry.signed_at == clip.signed_at()
    assert entry.events == [] and entry.emissions == [] and not entry.has_timeline


def test_a_recording_without_a_card_is_shown_without_a_patient(made, devices, identity):
    clip = made["no card"]
    entry = entry_from_manifest(clip.listed(), clip.manifest, devices, identity)
    assert entry.problem is None and entry.card is None and entry.duration_s == 4.0


def refused(entry) -> str:
    """The problem, after checking the manifest's claims were withheld with the card."""
    assert entry.card is None and entry.events == [] and entry.duration_s is None and entry.started_at is None
    assert not entry.interrupted and entry.problem
    return entry.problem


def resigned_elsewhere(clip: Made, keys: ClinicKeys, **changes) -> bytes:
    """The manifest with `changes` to its signed fields, validly signed again by the room's key."""
    document = json.loads(clip.manifest)
    signed = document["signed"] | changes
    key = vault.keys.load_device_key(keys.device_key)
    return json.dumps({"signed": signed, "signatures": key.sign(vault.manifest.canonical(signed))}).encode()


def test_a_modified_manifest_is_refused(made, devices, identity):
    clip = made["sealed"]
    document = json.loads(clip.manifest)
    document["signed"]["metadata"]["duration_s"] = 400.0
    problem = refused(entry_from_manifest(clip.listed(), json.dumps(document).encode(), devices, identity))
    assert "signature" in problem


@pytest.mark.parametrize("data", [b"", b"not json", b"{}", b'{"signed": {"format": "treatment-vault-manifest/2"}}',
                                  b"[1, 2]"])
def test_a_malformed_manifest_is_refused(made, devices, identity, data):
    problem = refused(entry_from_manifest(made["sealed"].listed(), data, devices, identity))
    assert problem.endswith(("is malformed", "is not a treatment-vault-manifest/2 manifest"))


def test_a_recording_signed_by_a_device_nobody_enrolled_is_refused(made, devices, identity):
    clip = made["stranger"]
    assert f"signed by device key {clip.device}, which is not enrolled" == \
        refused(entry_from_manifest(clip.listed(), clip.manifest, devices, identity))


def test_a_genuine_manifest_vouches_only_for_the_object_it_was_signed_for(made, devices, identity, clinic_keys):  # noqa: F811
    clip = made["sealed"]
    assert "signed for another recording" in refused(
        entry_from_manifest(clip.listed(uid=uuid.uuid4().hex), clip.manifest, devices, identity))
    assert "another session" in refused(
        entry_from_manifest(clip.listed(session=uuid.uuid4().hex), clip.manifest, devices, identity))
    assert f"archived under device elsewhere but signed by device {clip.device}" == refused(
        entry_from_manifest(clip.listed(device="elsewhere"), clip.manifest, devices, identity))
    assert "signed for another recording" in refused(entry_from_manifest(
        clip.listed(), resigned_elsewhere(clip, clinic_keys, vault_name="other.mp4.vault"), devices, identity))
    assert "names another device key" in refused(entry_from_manifest(
        clip.listed(), resigned_elsewhere(clip, clinic_keys, device_key_id="0" * 16), devices, identity))
    assert "state is unknown" in refused(entry_from_manifest(
        clip.listed(), resigned_elsewhere(clip, clinic_keys, state="paused"), devices, identity))


def test_an_archived_vault_shorter_than_signed_is_refused(made, devices, identity):
    clip = made["sealed"]
    body = json.loads(clip.manifest)["signed"]["body_length"]
    assert "10 bytes shorter than its manifest: cut off" in refused(
        entry_from_manifest(clip.listed(size=body - 10), clip.manifest, devices, identity))


def test_a_card_moved_or_sealed_to_another_key_is_refused(made, devices, identity, clinic_keys, tmp_path):  # noqa: F811
    clip, other = made["sealed"], made["yamada"]
    moved = resigned_elsewhere(clip, clinic_keys, metadata=json.loads(clip.manifest)["signed"]["metadata"] | {
        "identity_card": json.loads(other.manifest)["signed"]["metadata"]["identity_card"]})
    assert "another recording" in refused(entry_from_manifest(clip.listed(), moved, devices, identity))
    _, stranger_pub = vault.keys.generate_recipient(tmp_path / "other-clinic", b"another passphrase")
    foreign = Made(tmp_path, clinic_keys, recipient_pub=stranger_pub)
    assert "not sealed to this gateway's recipient key" in refused(
        entry_from_manifest(foreign.listed(), foreign.manifest, devices, identity))


def test_malformed_events_refuse_the_recording(made, devices, identity, clinic_keys):  # noqa: F811
    clip = made["sealed"]
    metadata = json.loads(clip.manifest)["signed"]["metadata"] | {"events": [{"t": 1, "input": "door"}]}
    problem = refused(entry_from_manifest(clip.listed(), resigned_elsewhere(clip, clinic_keys, metadata=metadata),
                                          devices, identity))
    assert "treatment events are malformed" in problem


def test_problems_never_carry_the_patients_data(made, devices, identity, clinic_keys):  # noqa: F811
    clip = made["sealed"]
    tampered = json.loads(clip.manifest)
    tampered["signed"]["metadata"]["identity_card"] = base64.b64encode(A_CARD["patient_name"].encode()).decode()
    problems = [refused(entry_from_manifest(clip.listed(), json.dumps(tampered).encode(), devices, identity)),
                refused(entry_from_manifest(made["stranger"].listed(), made["stranger"].manifest, devices, identity))]
    assert not any(value in problem for problem in problems for value in A_CARD.values() if len(value) > 2)


def test_withholding_drops_every_claim(made, devices, identity):
    clip = made["sealed"]
    entry = withheld(entry_from_manifest(clip.listed(), clip.manifest, devices, identity), "twice")
    assert refused(entry) == "twice" and entry.uid == clip.uid


# -- the JSON documents -------------------------------------------------------------------------

def test_sessions_group_by_session_newest_first_with_the_patient_from_the_cards(made, devices, identity):
    entries = {name: entry_from_manifest(clip.listed(), clip.manifest, devices, identity) for name, clip in made.items()}
    earlier = entries["yamada"].__class__(**{**entries["yamada"].__dict__, "started_at": 1_700_000_000.0})
    listing = sessions([earlier, entries["sealed"], entries["stranger"]], timezone(timedelta(hours=9)))
    assert [s["session"] for s in listing] == [made["sealed"].session, made["yamada"].session, made["stranger"].session]
    mueller, yamada, stranger = listing
    assert mueller["patient"] == {"patient_name": "Müller^Zoë", "patient_id": "PID-0042", "birth_date": "19761105",
                                  "sex": "F"}
    assert mueller["study"]["accession_number"] == "ACC-7" and mueller["problem"] is None
    assert yamada["date"] == "2023-11-15" and yamada["started_at"] == 1_700_000_000.0   # 07:13 in UTC+9
    assert yamada["patient"]["patient_name"] == "山田^太郎"
    assert stranger["patient"] is None and stranger["date"] is None and stranger["started_at"] is None
    assert stranger["recordings"][0]["state"] == "refused" and "not enrolled" in stranger["recordings"][0]["problem"]
    assert mueller["recordings"] == [{"uid": made["sealed"].uid, "state": "sealed", "problem": None,
                                      "started_at": entries["sealed"].started_at,
                                      "signed_at": entries["sealed"].signed_at, "duration_s": 4.0,
                                      "timeline": True, "emissions": 1, "laser_on_s": 0.5}]


def test_a_session_whose_cards_disagree_names_no_patient(made, devices, identity):
    mueller = entry_from_manifest(made["sealed"].listed(), made["sealed"].manifest, devices, identity)
    yamada = entry_from_manifest(made["yamada"].listed(), made["yamada"].manifest, devices, identity)
    moved = yamada.__class__(**{**yamada.__dict__, "session_uid": mueller.session_uid})
    document = session_document([mueller, moved], mueller.session_uid)
    assert document["patient"] is None and document["study"] is None and document["problem"] == DIFFERENT_PATIENTS
    assert len(document["recordings"]) == 2 and session_document([mueller], uuid.uuid4().hex) is None


def test_a_session_lists_its_recordings_in_recording_order_and_an_interrupted_one_by_its_signing(
        made, devices, identity):
    sealed = entry_from_manifest(made["sealed"].listed(), made["sealed"].manifest, devices, identity)
    cut = entry_from_manifest(made["interrupted"].listed(session=made["sealed"].session),
                              made["interrupted"].manifest, devices, identity)
    assert cut.problem == "its manifest was signed for another session than the one it is archived under"
    cut = cut.__class__(**{**cut.__dict__, "problem": None, "interrupted": True, "signed_at": sealed.started_at - 60})
    document = session_document([sealed, cut], sealed.session_uid)
    assert [r["uid"] for r in document["recordings"]] == [cut.uid, sealed.uid]
    assert document["started_at"] == sealed.started_at - 60 and document["recordings"][0]["state"] == "interrupted"


def test_a_recording_document_has_metadata_state_and_timeline(made, devices, identity):
    entry = entry_from_manifest(made["sealed"].listed(), made["sealed"].manifest, devices, identity)
    document = recording_document(entry)
    assert document["video"] == f"/recordings/{entry.uid}/video" and document["state"] == "sealed"
    assert document["session"] == entry.session_uid and document["device"] == entry.device_id
    assert document["events"] == [event.as_dict() for event in EVENTS]
    assert document["emission_intervals"] == [[1.0, 1.5]] and document["laser_on_s"] == 0.5
    assert document["patient"]["birth_date"] == "19761105" and document["study"]["requested_procedure"] == \
        "Laser treatment"
    stranger = entry_from_manifest(made["stranger"].listed(), made["stranger"].manifest, devices, identity)
    refused_document = recording_document(stranger)
    assert refused_document["video"] is None and refused_document["patient"] is None
    assert refused_document["state"] == "refused" and refused_document["events"] == []


def test_an_emission_still_on_at_the_end_of_an_interrupted_clip_ends_at_its_last_event(made, devices, identity):
    entry = entry_from_manifest(made["interrupted"].listed(), made["interrupted"].manifest, devices, identity)
    on = entry.__class__(**{**entry.__dict__, "events": [ClipEvent(0.5, "laser", 1, 1), ClipEvent(2.0, "footswitch", 0, 2)]})
    assert on.emissions == [(0.5, 2.0)]
