"""What the gateway accepts: vault v1 and v2 test vectors verify when their device is enrolled;
another device, a renamed file or a modified byte is refused with one line, and only the first
may change (once the device is enrolled); a genuine recording without its identity card, or with
another recording's, cannot be filed to a patient."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from appliance import vault
from appliance.gateway.verify import NO_CARD, enrolled_devices, enrolment_fingerprint, filing_problem, verify_recording
from appliance.vault import identity_card
from tests.gatewaying import A_CARD

VECTORS = Path(__file__).parent / "vectors" / "vault"
# The rewrapped vector's manifest was signed before the file got its vector name: it goes back
# under the name it was signed for (a recording is identified by the name its manifest signs).
CASES = [("two-segments.vault", "device.pub", 1), ("v2-two-segments.vault", "v2-device.pub", 2),
         ("v2-two-segments-rewrapped.vault", "v2-device.pub", 2)]
SIGNED_NAMES = {"v2-two-segments-rewrapped.vault": "v2-two-segments.vault"}


def copy_of(name: str, directory: Path, as_name: str | None = None) -> Path:
    target = directory / (as_name or SIGNED_NAMES.get(name, name))
    shutil.copy(VECTORS / name, target)
    shutil.copy(VECTORS / (name + ".manifest"), target.with_name(target.name + ".manifest"))
    return target


@pytest.mark.parametrize("name, device, version", CASES)
def test_a_vector_v1_or_v2_rewrapped_or_not_verifies_when_its_device_is_enrolled(tmp_path, name, device, version):
    verdict = verify_recording(copy_of(name, tmp_path), [vault.keys.load_device_public(VECTORS / device)])
    assert verdict.ok, verdict.problem
    assert verdict.signed["vault_version" if version == 2 else "format"] in (2, "treatment-vault-manifest/1")
    assert verdict.recording_id == verdict.signed["recording_id"]


@pytest.mark.parametrize("name, device, version", CASES)
def test_a_vector_from_a_device_nobody_enrolled_is_refused(tmp_path, name, device, version):
    other = "v2-device.pub" if device == "device.pub" else "device.pub"
    verdict = verify_recording(copy_of(name, tmp_path), [vault.keys.load_device_public(VECTORS / other)])
    assert not verdict.ok and "which is not enrolled" in verdict.problem
    assert verdict.problem.endswith("the next pass delivers it)")      # what the clinic can do
    assert verdict.awaits_enrolment
    assert verify_recording(copy_of(name, tmp_path), []).awaits_enrolment


def test_a_renamed_recording_or_a_modified_byte_is_refused(tmp_path):
    devices = [vault.keys.load_device_public(VECTORS / "v2-device.pub")]
    renamed = copy_of("v2-two-segments.vault", tmp_path, as_name="another.mp4.vault")
    verdict = verify_recording(renamed, devices)
    assert verdict.problem == "the manifest was signed for v2-two-segments.vault, not another.mp4.vault"
    assert not verdict.awaits_enrolment                      # enrolling nothing will change this
    modified = copy_of("v2-two-segments.vault", tmp_path)
    data = bytearray(modified.read_bytes())
    data[len(data) // 2] ^= 0x80
    modified.write_bytes(bytes(data))
    modified_verdict = verify_recording(modified, devices)
    assert "the vault was modified" in modified_verdict.problem and not modified_verdict.awaits_enrolment


def test_the_enrolled_devices_are_the_pub_files_of_the_directory(tmp_path):
    shutil.copy(VECTORS / "device.pub", tmp_path / "room-1.pub")
    shutil.copy(VECTORS / "v2-device.pub", tmp_path / "room-2.pub")
    (tmp_path / "notes.txt").write_text("not a key")
    assert len(enrolled_devices(tmp_path)) == 2


def test_the_enrolment_fingerprint_follows_the_keys_not_the_file_names(tmp_path):
    shutil.copy(VECTORS / "device.pub", tmp_path / "room-1.pub")
    one = enrolment_fingerprint(enrolled_devices(tmp_path))
    (tmp_path / "room-1.pub").rename(tmp_path / "treatment-room.pub")
    assert enrolment_fingerprint(enrolled_devices(tmp_path)) == one
    shutil.copy(VECTORS / "v2-device.pub", tmp_path / "room-2.pub")
    two = enrolment_fingerprint(enrolled_devices(tmp_path))
    assert two != one
    (tmp_path / "room-2.pub").unlink()
    assert enrolment_fingerprint(enrolled_devices(tmp_path)) == one
    assert enrolment_fingerprint([]) not in (one, two)


def test_a_genuine_recording_without_its_own_identity_card_cannot_be_filed(tmp_path):
    devices = [vault.keys.load_device_public(VECTORS / "v2-device.pub")]
    verdict = verify_recording(copy_of("v2-two-segments.vault", tmp_path), devices)
    assert verdict.ok and filing_problem(verdict.signed) == NO_CARD     # recorded before worklist support
    _, recipient_pub = vault.keys.generate_recipient(tmp_path / "recipient", b"a passphrase for the test")
    recipient = vault.keys.load_recipient_public(recipient_pub)
    other = bytes(range(16, 32))
    card = identity_card.seal_card({"format": identity_card.FORMAT, "recording_id": other.hex(), **A_CARD},
                                   [recipient], other)
    moved = {**verdict.signed, "metadata": {**verdict.signed["metadata"], identity_card.METADATA_KEY: card}}
    assert filing_problem(moved) == "the identity card belongs to another recording: it was moved into this manifest"
    own = bytes.fromhex(verdict.signed["recording_id"])
    card = identity_card.seal_card({"format": identity_card.FORMAT, "recording_id": own.hex(), **A_CARD},
                                   [recipient], own)
    assert filing_problem({**moved, "metadata": {**moved["metadata"], identity_card.METADATA_KEY: card}}) is None
