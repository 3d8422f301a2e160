"""Audit anchors, the pure part: object keys, the signed codec (with the committed vector of
docs/archive.md#anchors) and the check of a local chain against anchors."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from appliance.archive.anchors import (FORMAT, Anchor, anchor_key, chain_problems, open_anchor, seal_anchor,
                                       seq_of_key)
from appliance.errors import IntegrityError
from appliance.storage.audit import GENESIS, AuditEntry, entry_hash
from appliance.vault import keys
from appliance.vault.manifest import canonical
from appliance.vault.signing import DeviceKey

VECTORS = Path(__file__).parent / "vectors" / "archive"
WHEN = datetime(2026, 12, 1, 9, 30, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def device_key():
    return DeviceKey.generate()


def chain(count: int, *, first_at: float = 1_764_000_000.0, actor: str = "appliance") -> list[AuditEntry]:
    entries, previous = [], GENESIS
    for seq in range(1, count + 1):
        at, details = first_at + seq, {"session": f"s{seq}"}
        digest = entry_hash(previous, seq, at, "session_opened", actor, details)
        entries.append(AuditEntry(seq, at, "session_opened", actor, details, previous, digest))
        previous = digest
    return entries


def anchor_of(entry: AuditEntry) -> Anchor:
    return Anchor("0" * 16, entry.seq, entry.hash, entry.at, "2026-12-01T09:30:00+00:00")


def test_anchor_keys_sort_in_seq_order_and_name_their_seq():
    assert anchor_key("00112233aabbccdd", 42) == "00112233aabbccdd/audit-anchors/000000000042.json"
    keys_ = [anchor_key("00112233aabbccdd", seq) for seq in (9, 10, 100, 1_000_000)]
    assert sorted(keys_) == keys_
    assert [seq_of_key(key) for key in keys_] == [9, 10, 100, 1_000_000]
    for other in ("00112233aabbccdd/s1/r1.mp4.vault", "00112233aabbccdd/audit-anchors/42.json",
                  "00112233aabbccdd/audit-anchors/000000000042.json.tmp", "x/audit-anchors/000000000042.json"):
        assert seq_of_key(other) is None


def test_a_sealed_anchor_opens_with_the_device_key_that_signed_it(device_key):
    head = chain(3)[-1]
    data = seal_anchor(head, device_key, WHEN)
    anchor = open_anchor(data, device_key.public_key(), anchor_key(device_key.public_key().key_id, 3))
    assert anchor == Anchor(device_key.public_key().key_id, 3, head.hash, head.at, "2026-12-01T09:30:00+00:00")
    signed = json.loads(data)["signed"]
    assert signed["format"] == FORMAT and set(json.loads(data)["signatures"]) == {"ecdsa-p256-sha256", "ml-dsa-65"}


def test_an_anchor_of_another_device_is_refused(device_key):
    data = seal_anchor(chain(1)[0], device_key, WHEN)
    with pytest.raises(IntegrityError, match="another device key"):
        open_anchor(data, DeviceKey.generate().public_key())


@pytest.mark.parametrize("field, value", [
    ("seq", 4), ("hash", "f" * 64), ("entry_at", 1.5), ("anchored_at", "2030-01-01T00:00:00+00:00")])
def test_any_change_to_a_signed_field_breaks_the_signature(device_key, field, value):
    document = json.loads(seal_anchor(chain(3)[-1], device_key, WHEN))
    document["signed"][field] = value
    with pytest.raises(IntegrityError, match="signature is invalid"):
        open_anchor(json.dumps(document).encode(), device_key.public_key())


def test_an_anchor_copied_to_another_key_is_refused(device_key):
    data = seal_anchor(chain(3)[-1], device_key, WHEN)
    with pytest.raises(IntegrityError, match="holds the anchor of entry 3"):
        open_anchor(data, device_key.public_key(), anchor_key(device_key.public_key().key_id, 5))


@pytest.mark.parametrize("mangle", [
    lambda d: b"not json", lambda d: b"[]", lambda d: d.replace(b'"signed"', b'"signet"'),
    lambda d: json.dumps({**json.loads(d), "signatures": ["x"]}).encode(),
    lambda d: json.dumps({**json.loads(d), "signed": {**json.loads(d)["signed"], "seq": "3"}}).encode(),
    lambda d: json.dumps({**json.loads(d), "signed": {**json.loads(d)["signed"], "seq": 0}}).encode(),
    lambda d: json.dumps({**json.loads(d), "signed": {**json.loads(d)["signed"], "hash": "abc"}}).encode(),
    lambda d: json.dumps({**json.loads(d), "signed": {**json.loads(d)["signed"],
                                                      "device_public_keys": {"rsa": "AAAA"}}}).encode(),
])
def test_a_malformed_anchor_is_one_clear_line(device_key, mangle):
    data = mangle(seal_anchor(chain(3)[-1], device_key, WHEN))
    with pytest.raises(IntegrityError, match="malformed"):
        open_anchor(data, device_key.public_key())


def test_a_manifest_signature_cannot_pass_for_an_anchor(device_key):
    """The same device key signs manifests: the format name in the signed fields keeps them apart."""
    head = chain(3)[-1]
    document = json.loads(seal_anchor(head, device_key, WHEN))
    document["signed"]["format"] = "treatment-vault-manifest/2"
    document["signatures"] = device_key.sign(canonical(document["signed"]))
    with pytest.raises(IntegrityError, match="is not a treatment-audit-anchor/1 object"):
        open_anchor(json.dumps(document).encode(), device_key.public_key())


def test_the_committed_vector_opens_and_its_canonical_bytes_are_as_documented():
    device = keys.load_device_public(VECTORS / "device.pub")
    expected = json.loads((VECTORS / "anchor-vector.json").read_text())
    key = anchor_key(device.key_id, expected["seq"])
    data = (VECTORS / Path(key).name).read_bytes()
    anchor = open_anchor(data, device, key)
    assert (anchor.seq, anchor.hash, anchor.entry_at, anchor.anchored_at) == \
        (expected["seq"], expected["hash"], expected["entry_at"], expected["anchored_at"])
    assert canonical(json.loads(data)["signed"]).decode() == expected["canonical_signed"]
    tampered = data.replace(expected["hash"].encode(), expected["hash"][::-1].encode())
    with pytest.raises(IntegrityError):
        open_anchor(tampered, device, key)


# -- the local chain against the anchors --------------------------------------------------------

def test_an_intact_chain_holding_every_anchor_has_no_problems():
    entries = chain(10)
    assert chain_problems(entries, [anchor_of(entries[2]), anchor_of(entries[9])]) == []
    assert chain_problems(entries, []) == []
    assert chain_problems([], []) == []


def test_a_completely_rewritten_chain_is_detected_even_though_it_links():
    """The attack anchors exist for: every entry recomputed, so the local chain alone verifies."""
    original, rewritten = chain(10), chain(10, actor="someone-else")
    assert chain_problems(rewritten, []) == []
    problems = chain_problems(rewritten, [anchor_of(original[4]), anchor_of(original[9])])
    assert problems == [
        "anchor of entry 5 (signed 2026-12-01T09:30:00+00:00): the local entry differs from the anchored one: "
        "the trail was rewritten",
        "anchor of entry 10 (signed 2026-12-01T09:30:00+00:00): the local entry differs from the anchored one: "
        "the trail was rewritten"]


def test_a_chain_cut_back_before_an_anchor_is_detected():
    entries = chain(10)
    problems = chain_problems(entries[:6], [anchor_of(entries[3]), anchor_of(entries[7])])
    assert problems == ["anchor of entry 8 (signed 2026-12-01T09:30:00+00:00): the local trail ends at entry 6: "
                        "entries were removed"]
    assert "ends at entry 0" in chain_problems([], [anchor_of(entries[0])])[0]


def test_entries_after_the_newest_anchor_may_change_undetected_by_anchors_but_not_by_the_chain():
    """The promise's limit: anchors vouch up to the newest one; later entries only by their links."""
    entries, rewritten_tail = chain(10), chain(10, actor="someone-else")
    assert chain_problems(entries[:8] + [rewritten_tail[8]], [anchor_of(entries[7])]) == [
        "local audit trail broken at entry 9: entry 9 does not link to entry 8"]


def test_a_broken_local_chain_is_reported_with_the_anchor_findings():
    entries = chain(5)
    altered = entries[:2] + [AuditEntry(3, entries[2].at, "export", "x", {}, entries[2].prev_hash,
                                        entries[2].hash)] + entries[3:]
    problems = chain_problems(altered, [anchor_of(entries[4])])
    assert problems == ["local audit trail broken at entry 3: entry 3 was altered after it was written"]
