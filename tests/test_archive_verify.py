"""`appliance archive verify`'s check (appliance/archive/verify.py) on a real SeaweedFS: an intact
archive passes; every way the archive or the local copy can stop matching is one line."""

from __future__ import annotations

import base64
import hashlib
import io
import time
from datetime import datetime, timedelta, timezone

import pytest

from appliance import vault
from appliance.archive.verify import stream_digests, verify_archive
from appliance.storage.database import ArchivedRecording, Store
from appliance.vault.digest import file_digest
from appliance.vault.manifest import manifest_path, read_vault_header, write_manifest
from appliance.vault.signing import DeviceKey
from tests.servers.seaweedfs import unique_bucket

RETAIN_S = 120   # long enough to outlive the test: verify must see it retained


@pytest.fixture(scope="module")
def device_key():
    return DeviceKey.generate()


@pytest.fixture(scope="module")
def recipient():
    return vault.XWingPrivateKey.generate()


@pytest.fixture
def store(tmp_path):
    opened = Store(tmp_path / "data")
    yield opened
    opened.close()


def record(store, device_key, recipient, plaintext: bytes = b"frames " * 40_000):
    """A sealed recording as the appliance leaves one: vault, signed manifest, database row."""
    session = store.open_session("PAT-0001", "TECH-7")
    recording = store.start_recording(session.uid)
    recording.path.parent.mkdir(parents=True, exist_ok=True)
    with open(recording.path, "wb") as out:
        writer = vault.encrypt(out, [recipient.public_key()])
        writer.write(plaintext)
        sealed = writer.close()
    write_manifest(recording.path, device_key, sealed=sealed)
    return store.seal_recording(recording.uid, bytes=sealed.ciphertext_length, duration_s=1.0, frames=30, dropped=0,
                                sha256=sealed.file_digest, manifest={"state": "sealed"})


def put(client, bucket: str, key: str, data: bytes, retain_s: float | None) -> str | None:
    lock = {} if retain_s is None else {
        "ObjectLockMode": "COMPLIANCE",
        "ObjectLockRetainUntilDate": datetime.now(timezone.utc) + timedelta(seconds=retain_s)}
    return client.put_object(Bucket=bucket, Key=key, Body=data, IfNoneMatch="*",
                             ChecksumSHA256=base64.b64encode(hashlib.sha256(data).digest()).decode(),
                             **lock).get("VersionId")


def archive(store, client, bucket: str, recording, device_key, *, retain_s: float | None = RETAIN_S,
            recorded_retain_s: float | None = None) -> ArchivedRecording:
    """Both objects put at the pinned keys, then marked archived as the service does."""
    key = f"{device_key.public_key().key_id}/{recording.session_uid}/{recording.path.name}"
    data = recording.path.read_bytes()
    retain_until = None if retain_s is None else time.time() + (recorded_retain_s or retain_s) - 2
    copy = ArchivedRecording(recording.uid, key, put(client, bucket, key, data, retain_s), key + ".manifest",
                             put(client, bucket, key + ".manifest", manifest_path(recording.path).read_bytes(),
                                 retain_s),
                             len(data), hashlib.sha256(data).hexdigest(), retain_until, time.time())
    return store.mark_archived(copy)


@pytest.fixture
def archived(seaweedfs, store, device_key, recipient):
    client, bucket = seaweedfs.client(), seaweedfs.create_bucket(unique_bucket())
    copies = [archive(store, client, bucket, record(store, device_key, recipient), device_key) for _ in range(2)]
    return client, bucket, copies


def test_an_intact_archive_passes_and_the_backlog_is_counted_not_blamed(archived, store, device_key, recipient):
    client, bucket, copies = archived
    record(store, device_key, recipient)   # finished, not archived yet
    check = verify_archive(store, client, bucket, device_key_id=device_key.public_key().key_id)
    assert check.problems == ()
    assert (check.ok, check.recordings, check.objects, check.backlog, check.incomplete) == (True, 2, 2, 1, 0)
    assert verify_archive(store, client, bucket, deep=False).ok


def test_a_missing_object_is_reported(seaweedfs, store, device_key, recipient):
    client, bucket = seaweedfs.client(), seaweedfs.create_bucket(unique_bucket(), object_lock=False)
    copy = archive(store, client, bucket, record(store, device_key, recipient), device_key, retain_s=None)
    client.delete_object(Bucket=bucket, Key=copy.vault_key)
    check = verify_archive(store, client, bucket)
    assert check.problems == (f"recording {copy.recording_uid}: the archive has no {copy.vault_key}",)


def test_an_archived_object_whose_bytes_changed_fails_its_manifest(seaweedfs, store, device_key, recipient):
    """Without Object Lock (retention_days = 0) the bytes can be replaced: only a deep check sees it."""
    client, bucket = seaweedfs.client(), seaweedfs.create_bucket(unique_bucket(), object_lock=False)
    copy = archive(store, client, bucket, record(store, device_key, recipient), device_key, retain_s=None)
    data = bytearray(client.get_object(Bucket=bucket, Key=copy.vault_key)["Body"].read())
    data[-100] ^= 0x01
    client.put_object(Bucket=bucket, Key=copy.vault_key, Body=bytes(data))
    check = verify_archive(store, client, bucket)
    assert check.problems == (f"recording {copy.recording_uid}: vault content does not match the manifest's SHA-256: "
                              "the vault was modified",)
    assert verify_archive(store, client, bucket, deep=False).ok


def test_retention_shorter_than_recorded_is_reported(seaweedfs, store, device_key, recipient):
    client, bucket = seaweedfs.client(), seaweedfs.create_bucket(unique_bucket())
    copy = archive(store, client, bucket, record(store, device_key, recipient), device_key,
                   recorded_retain_s=10 * RETAIN_S)
    problems = verify_archive(store, client, bucket, deep=False).problems
    assert len(problems) == 2 and all("shorter than recorded at archiving" in line for line in problems)
    assert problems[0].startswith(f"recording {copy.recording_uid}: {copy.vault_key}: retained only until")


def test_an_object_without_object_lock_is_reported_when_retention_was_recorded(seaweedfs, store, device_key,
                                                                              recipient):
    client, bucket = seaweedfs.client(), seaweedfs.create_bucket(unique_bucket(), object_lock=False)
    recording = record(store, device_key, recipient)
    key = f"{device_key.public_key().key_id}/{recording.session_uid}/{recording.path.name}"
    data = recording.path.read_bytes()
    put(client, bucket, key, data, None)
    put(client, bucket, key + ".manifest", manifest_path(recording.path).read_bytes(), None)
    store.mark_archived(ArchivedRecording(recording.uid, key, None, key + ".manifest", None, len(data),
                                          hashlib.sha256(data).hexdigest(), time.time() + 3600, time.time()))
    assert verify_archive(store, client, bucket, deep=False).problems == (
        f"recording {recording.uid}: {key}: no Object Lock retention: it can be deleted",
        f"recording {recording.uid}: {key}.manifest: no Object Lock retention: it can be deleted")


def test_a_local_copy_changed_after_archiving_is_reported(archived, store):
    client, bucket, copies = archived
    path = store.recording(copies[0].recording_uid).path
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))
    assert verify_archive(store, client, bucket).problems == (
        f"recording {copies[0].recording_uid}: the local copy's SHA-256 differs from the archived one: "
        "it changed after archiving",)
    path.unlink()
    assert verify_archive(store, client, bucket).problems == (
        f"recording {copies[0].recording_uid}: the local copy is gone, though the disk guard never reclaimed it",)


def test_a_reclaimed_recording_is_checked_in_the_archive_alone(archived, store):
    client, bucket, copies = archived
    store.recording(copies[0].recording_uid).path.unlink()
    store.mark_reclaimed(copies[0].recording_uid, copies[0].bytes)
    assert verify_archive(store, client, bucket).ok


def test_a_second_version_of_a_key_is_reported(archived, store):
    client, bucket, copies = archived
    client.put_object(Bucket=bucket, Key=copies[1].manifest_key, Body=b"{}")   # a retry without If-None-Match
    check = verify_archive(store, client, bucket)
    assert check.problems == (f"{copies[1].manifest_key}: 2 versions: a retry stored it twice",)


def test_objects_the_database_does_not_know_are_checked_against_their_manifests(archived, store, device_key):
    client, bucket, copies = archived
    device = device_key.public_key().key_id
    first, second = (client.get_object(Bucket=bucket, Key=copy.vault_key)["Body"].read() for copy in copies)
    stray = f"{device}/other-session/stray.mp4.vault"
    put(client, bucket, stray, first, RETAIN_S)          # a vault under another name ...
    put(client, bucket, f"{device}/other-session/pending.mp4.vault", second, RETAIN_S)   # ... one not finished
    put(client, bucket, f"{device}/other-session/lonely.mp4.vault.manifest", b"{}", RETAIN_S)
    put(client, bucket, stray + ".manifest", client.get_object(Bucket=bucket, Key=copies[0].manifest_key)["Body"].read(),
        RETAIN_S)
    check = verify_archive(store, client, bucket, device_key_id=device)
    assert check.incomplete == 1 and check.objects == 3
    assert check.problems == (
        f"{device}/other-session/lonely.mp4.vault.manifest: a manifest without its vault object",
        f"{stray}: its manifest was signed for {copies[0].vault_key.rsplit('/', 1)[1]} of device {device}: "
        "the objects were moved")


def test_stream_digests_equal_the_file_digests_of_the_same_vault(store, device_key, recipient):
    """The archive's one pass (no seeking) names the bytes as digest.py does on disk."""
    path = record(store, device_key, recipient, b"x" * 3_000_000).path
    data = path.read_bytes()
    header, digest, whole = stream_digests(io.BytesIO(data).read)
    assert digest == file_digest(path) and whole == hashlib.sha256(data).hexdigest()
    assert header.encode() == read_vault_header(path).encode()


def test_a_sha256_other_than_recorded_is_reported_by_the_server_checksum_and_the_bytes(seaweedfs, store,
                                                                                      device_key, recipient):
    """The database says one SHA-256, the archive holds other (intact, signed) bytes under the key."""
    client, bucket = seaweedfs.client(), seaweedfs.create_bucket(unique_bucket())
    first, second = record(store, device_key, recipient), record(store, device_key, recipient)
    key = f"{device_key.public_key().key_id}/{first.session_uid}/{first.path.name}"
    data = first.path.read_bytes()
    copy = store.mark_archived(ArchivedRecording(
        first.uid, key, put(client, bucket, key, data, RETAIN_S), key + ".manifest",
        put(client, bucket, key + ".manifest", manifest_path(first.path).read_bytes(), RETAIN_S),
        len(data), hashlib.sha256(second.path.read_bytes()).hexdigest(), time.time(), time.time()))
    problems = verify_archive(store, client, bucket).problems
    assert problems[0] == f"recording {copy.recording_uid}: the archive's SHA-256 differs from the one recorded at archiving"
    assert f"recording {copy.recording_uid}: its SHA-256 differs from the one recorded at archiving" in problems


def test_a_delete_marker_hiding_an_archived_object_is_reported(archived, store):
    """A plain DELETE on a locked bucket succeeds: it hides the object behind a delete marker."""
    client, bucket, copies = archived
    client.delete_object(Bucket=bucket, Key=copies[0].vault_key)
    assert verify_archive(store, client, bucket).problems == (
        f"{copies[0].vault_key}: deleted (a delete marker hides it; its locked versions remain)",)
