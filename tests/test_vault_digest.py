"""The file digest (appliance/vault/digest.py): version 1 keeps the whole file's SHA-256, version 2
is SHA-256(header || SHA-256(body)) -- what the writer, the manifest, start-up recovery, the
database and export agree on, so a rewrap changes the file digest but never the body's."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pytest

from appliance import vault
from appliance.control.recovery import keep_what_was_written
from appliance.storage.database import Store

VECTORS = Path(__file__).parent / "vectors" / "vault"


@pytest.fixture(scope="module")
def recipient():
    return vault.XWingPrivateKey.generate()


@pytest.fixture(scope="module")
def device():
    return vault.DeviceKey.generate()


def write_vault(path: Path, recipient, plaintext: bytes):
    with open(path, "wb") as out:
        writer = vault.encrypt(out, [recipient.public_key()])
        writer.write(plaintext)
        return writer.close()


def split(path: Path) -> tuple[bytes, bytes]:
    data = path.read_bytes()
    length = vault.read_header(io.BytesIO(data).read).length
    return data[:length], data[length:]


def test_a_version_1_file_digest_is_the_whole_file_sha256_its_manifest_recorded():
    path = VECTORS / "two-segments.vault"
    digest = vault.file_digest(path)
    assert digest.file_digest == hashlib.sha256(path.read_bytes()).hexdigest()
    assert digest.body_sha256 is None and digest.length == path.stat().st_size
    signed = json.loads((VECTORS / "two-segments.vault.manifest").read_text())["signed"]
    assert digest.file_digest == signed["ciphertext_sha256"]


def test_a_version_2_digest_is_the_header_and_the_body_digest_and_the_writer_agrees(tmp_path, recipient, device):
    path = tmp_path / "clip.vault"
    sealed = write_vault(path, recipient, b"treatment video" * 10_000)
    header, body = split(path)
    expected = hashlib.sha256(header + hashlib.sha256(body).digest()).hexdigest()
    digest = vault.file_digest(path)
    assert digest.file_digest == sealed.file_digest == expected != hashlib.sha256(header + body).hexdigest()
    assert digest.body_sha256 == sealed.body_sha256 == hashlib.sha256(body).hexdigest()
    vault.write_manifest(path, device, sealed=sealed)
    signed, _ = vault.read_signed(path)
    assert (signed["file_digest"], signed["body_sha256"]) == (expected, digest.body_sha256)


def test_a_rewrap_changes_the_file_digest_and_keeps_the_body_digest_and_the_manifest(tmp_path, recipient, device):
    path = tmp_path / "clip.vault"
    vault.write_manifest(path, device, sealed=write_vault(path, recipient, b"frame" * 50_000))
    before = vault.file_digest(path)
    vault.rewrap(path, recipient, add=[vault.XWingPrivateKey.generate().public_key()])
    after = vault.file_digest(path)
    header, body = split(path)
    assert after.file_digest != before.file_digest
    assert after.file_digest == hashlib.sha256(header + hashlib.sha256(body).digest()).hexdigest()
    assert after.body_sha256 == before.body_sha256 == vault.read_signed(path)[0]["body_sha256"]
    result = vault.verify(path, device.public_key())
    assert result.ok and "recipients rewritten since signing" in result.note
    assert result.file_digest == before.file_digest  # the manifest records the file as it was signed


def test_recovery_records_the_file_digest_even_when_the_manifest_no_longer_verifies(tmp_path, recipient, device):
    store = Store(tmp_path / "data")
    try:
        session = store.open_session("PAT-1", "TECH-1")
        recordings = [store.start_recording(session.uid) for _ in range(2)]
        for recording in recordings:
            recording.path.parent.mkdir(parents=True, exist_ok=True)
            with open(recording.path, "wb") as out:
                writer = vault.encrypt(out, [recipient.public_key()])
                writer.write(b"x" * 200_000)
                writer.abandon()  # the power went out
        unsigned, badly_signed = recordings
        badly_signed.path.with_name(badly_signed.path.name + ".manifest").write_text("{}")
        for recording in recordings:
            reason, figures = keep_what_was_written(recording, device, "the appliance stopped")
            digest = vault.file_digest(recording.path)
            assert (figures["sha256"], figures["bytes"]) == (digest.file_digest, digest.length)
        assert "malformed" in reason
    finally:
        store.close()
