"""The fleet status object, the pure part: its key, the signed codec (with the committed vector of
docs/fleet-status.md) and the verdict against the enrolled device keys: genuine, forged (bad
signature, another key, moved, malformed) or unknown device."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

import pytest

from appliance.archive.anchors import seal_anchor
from appliance.archive.status_object import (FORGED, FORMAT, GENUINE, NOT_REPORTING, UNKNOWN_DEVICE, FleetStatus,
                                             device_of_key, open_status, seal_status, status_key)
from appliance.storage.audit import GENESIS, AuditEntry, entry_hash
from appliance.vault import keys
from appliance.vault.manifest import canonical
from appliance.vault.signing import DeviceKey

VECTORS = Path(__file__).parent / "vectors" / "fleet"


@pytest.fixture(scope="module")
def device_key():
    return DeviceKey.generate()


@pytest.fixture(scope="module")
def other_key():
    return DeviceKey.generate()


def a_status(device_key, **changes) -> FleetStatus:
    fields = dict(device_key_id=device_key.public_key().key_id, posted_at=1_764_581_400.0, state="Recording",
                  camera_up=True, link_up=True, disk_seconds_left=36_000.0, backlog_count=1,
                  backlog_bytes=12_000_000, backlog_oldest_age_s=30.0, last_recording_at=1_764_581_300.0,
                  software_version="0.1.0", clock_offset_s=0.3, fault=None)
    return FleetStatus(**fields | changes)


def enrolled(*device_keys) -> dict:
    return {key.public_key().key_id: key.public_key() for key in device_keys}


def resign(data: bytes, key, **claims) -> bytes:
    """The object with some signed fields changed, then signed again by `key`."""
    document = json.loads(data)
    document["signed"] |= claims
    document["signatures"] = key.sign(canonical(document["signed"]))
    return json.dumps(document).encode()


def test_the_status_key_is_one_per_device_and_names_it():
    assert status_key("00112233aabbccdd") == "00112233aabbccdd/status/latest.json"
    assert device_of_key("00112233aabbccdd/status/latest.json") == "00112233aabbccdd"
    for other in ("00112233aabbccdd/s1/r1.mp4.vault", "00112233aabbccdd/audit-anchors/000000000042.json",
                  "00112233aabbccdd/status/latest.json.tmp", "x/status/latest.json", "status/latest.json"):
        assert device_of_key(other) is None


def test_a_sealed_status_opens_genuine_with_every_field_as_posted(device_key):
    status = a_status(device_key, fault="camera_lost", state="Error", camera_up=False)
    data = seal_status(status, device_key)
    opened = open_status(data, status_key(status.device_key_id), enrolled(device_key))
    assert (opened.verdict, opened.status, opened.problem) == (GENUINE, status, None)
    document = json.loads(data)
    assert document["signed"]["format"] == FORMAT
    assert set(document["signatures"]) == {"ecdsa-p256-sha256", "ml-dsa-65"}


def test_not_reporting_carries_no_live_values(device_key):
    status = a_status(device_key, state=NOT_REPORTING, camera_up=None, link_up=None, disk_seconds_left=None)
    opened = open_status(seal_status(status, device_key), status_key(status.device_key_id), enrolled(device_key))
    assert opened.status == status


def test_a_changed_claim_is_forged_and_its_values_are_not_given(device_key):
    status = a_status(device_key, backlog_count=40)
    document = json.loads(seal_status(status, device_key))
    document["signed"]["backlog_count"] = 0           # someone hides the backlog
    opened = open_status(json.dumps(document).encode(), status_key(status.device_key_id), enrolled(device_key))
    assert opened.verdict == FORGED and opened.status is None
    assert "status ECDSA P-256 signature is invalid" in opened.problem


def test_a_status_signed_by_another_key_than_the_device_it_claims_is_forged(device_key, other_key):
    claimed = device_key.public_key().key_id
    data = resign(seal_status(a_status(other_key), other_key), other_key, device_key_id=claimed)
    opened = open_status(data, status_key(claimed), enrolled(device_key, other_key))
    assert (opened.device_key_id, opened.verdict, opened.status) == (claimed, FORGED, None)


def test_a_genuine_status_copied_under_another_device_is_forged(device_key, other_key):
    data = seal_status(a_status(other_key), other_key)
    opened = open_status(data, status_key(device_key.public_key().key_id), enrolled(device_key, other_key))
    assert opened.verdict == FORGED and "names device " + other_key.public_key().key_id in opened.problem


def test_a_status_of_a_device_not_enrolled_is_unknown_and_unshown(device_key, other_key):
    data = seal_status(a_status(other_key), other_key)
    opened = open_status(data, status_key(other_key.public_key().key_id), enrolled(device_key))
    assert (opened.verdict, opened.status) == (UNKNOWN_DEVICE, None)


def test_one_signature_of_a_hybrid_device_is_not_enough(device_key):
    document = json.loads(seal_status(a_status(device_key), device_key))
    del document["signatures"]["ml-dsa-65"]
    opened = open_status(json.dumps(document).encode(), status_key(device_key.public_key().key_id),
                         enrolled(device_key))
    assert opened.verdict == FORGED and "do not match its device keys" in opened.problem


def test_an_audit_anchor_of_the_same_device_does_not_pass_for_a_status(device_key):
    entry = AuditEntry(1, 1.0, "session_opened", "x", {}, GENESIS, entry_hash(GENESIS, 1, 1.0, "session_opened", "x", {}))
    anchor = seal_anchor(entry, device_key, datetime(2026, 12, 1, tzinfo=timezone.utc))
    opened = open_status(anchor, status_key(device_key.public_key().key_id), enrolled(device_key))
    assert opened.verdict == FORGED and opened.status is None


@pytest.mark.parametrize("claims", [
    {"state": "Exploded"}, {"backlog_count": -1}, {"backlog_count": 1.5}, {"camera_up": "yes"},
    {"posted_at": True}, {"posted_at": None}, {"software_version": None}, {"patient_id": "P-1"},
    {"device_key_id": "ABC"},
])
def test_a_malformed_status_is_forged_even_when_signed(device_key, claims):
    """Signed garbage (or extra fields, where PHI could hide) is never shown as health."""
    data = resign(seal_status(a_status(device_key), device_key), device_key, **claims)
    opened = open_status(data, status_key(device_key.public_key().key_id), enrolled(device_key))
    assert opened.verdict == FORGED and opened.problem.startswith(("malformed", "it names device"))


@pytest.mark.parametrize("data", [b"", b"{", b"[]", b'{"signed": 1, "signatures": {}}', b'{"signed": {}}'])
def test_bytes_that_are_no_status_object_are_forged(device_key, data):
    opened = open_status(data, status_key(device_key.public_key().key_id), enrolled(device_key))
    assert (opened.verdict, opened.status) == (FORGED, None)


def test_seal_refuses_a_status_it_could_not_open_again(device_key, other_key):
    with pytest.raises(ValueError):
        seal_status(a_status(device_key, state="Exploded"), device_key)
    with pytest.raises(ValueError):
        seal_status(a_status(other_key), device_key)


def test_the_committed_vector_opens_and_its_canonical_bytes_are_as_documented():
    vector = json.loads((VECTORS / "status-vector.json").read_text())
    public = keys.load_device_public(VECTORS / "device.pub")
    data = (VECTORS / vector["object_file"]).read_bytes()
    opened = open_status(data, vector["object_key"], {public.key_id: public})
    assert opened.verdict == GENUINE and asdict(opened.status) == vector["status"]
    assert canonical(json.loads(data)["signed"]).decode() == vector["canonical_signed"]
    tampered = data.replace(b'"backlog_count": 2', b'"backlog_count": 0')
    assert tampered != data
    assert open_status(tampered, vector["object_key"], {public.key_id: public}).verdict == FORGED

