"""`appliance archive push|status|verify` against a real SeaweedFS: a session's recordings end
up archived (objects at the pinned keys, no subject ID in them, each vault's digest the one its
manifest signs, decryptable with the recipient key), a recording whose manifest fails is never
uploaded, and a refused archive is one line with the backlog kept and nothing deleted."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import threading
import time

import pytest

from appliance import vault
from appliance.storage.database import Store
from appliance.vault.digest import file_digest
from appliance.vault.manifest import manifest_path
from tests.clips import write_clip
from tests.servers.http_proxy import HttpProxy
from tests.servers.seaweedfs import unique_bucket, write_credentials
from tests.test_controller_e2e import PASSPHRASE, key_dir  # noqa: F401 (fixture)

SUBJECT = "PAT-0042"
DAY = 86_400.0


def record_session(data_dir, key_dir, *, sealed: int = 2, interrupted: int = 1, ended_days_ago: float = 0.0,
                   frames: int = 45, noisy: bool = False):
    """A session as the appliance leaves it: real vaults with signed manifests in the database,
    `interrupted` of them cut off (power loss) and marked interrupted. Returns the recordings."""
    recipient = vault.keys.load_recipient_public(key_dir / vault.keys.RECIPIENT_PUB)
    device_key = vault.keys.load_device_key(key_dir / vault.keys.DEVICE_KEY)
    store = Store(data_dir, clock=lambda: time.time() - ended_days_ago * DAY)
    try:
        session = store.open_session(SUBJECT, "TECH-1")
        recordings = []
        for index in range(sealed + interrupted):
            recording = store.start_recording(session.uid)
            complete = index < sealed
            with open(recording.path, "wb") as out:
                # An interrupted clip is noisy and longer, so segments reached the disk before the power went.
                sealed_stream = write_clip(out, recipient, frames if complete else 90, noisy=noisy or not complete,
                                           seal=complete)
            if complete:
                vault.write_manifest(recording.path, device_key, sealed=sealed_stream)
                done = store.seal_recording(recording.uid, bytes=sealed_stream.ciphertext_length, duration_s=1.5,
                                            frames=45, dropped=0, sha256=sealed_stream.file_digest, manifest=None)
            else:
                vault.mark_interrupted(recording.path, device_key)
                done = store.interrupt_recording(recording.uid, reason="power loss",
                                                 bytes=recording.path.stat().st_size)
            recordings.append(done)
        store.close_session(session.uid)
        return recordings
    finally:
        store.close()


def write_config(tmp_path, server, bucket, key_dir, *, access_key=None, secret_key=None, extra="", endpoint=None):
    credentials = write_credentials(tmp_path / "s3-credentials", access_key or server.access_key,
                                    secret_key or server.secret_key)
    path = tmp_path / "appliance.toml"
    path.write_text(f"""
[data]
dir = "data"
[keys]
recipients = ["{key_dir / vault.keys.RECIPIENT_PUB}"]
device_key = "{key_dir / vault.keys.DEVICE_KEY}"
[archive]
endpoint = "{endpoint or server.endpoint}"
bucket = "{bucket}"
credentials = "{credentials}"
retention_days = 1
{extra}
""")
    return path


def status(appliance_cli, config) -> dict:
    result = appliance_cli("archive", "status", "--config", str(config), "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def objects(client, bucket) -> dict[str, dict]:
    listing = client.list_object_versions(Bucket=bucket)
    return {version["Key"]: version for version in listing.get("Versions", [])}


def test_a_session_is_archived_verified_and_decryptable(tmp_path, seaweedfs, key_dir, appliance_cli):
    bucket = seaweedfs.create_bucket(unique_bucket())
    config = write_config(tmp_path, seaweedfs, bucket, key_dir)
    recordings = record_session(tmp_path / "data", key_dir)
    assert status(appliance_cli, config)["backlog"]["count"] == 3

    pushed = appliance_cli("archive", "push", "--config", str(config))
    assert pushed.returncode == 0, pushed.stderr.decode()
    assert "archived 3 recording(s)" in pushed.stdout.decode()
    assert status(appliance_cli, config)["backlog"] == {"count": 0, "bytes": 0, "oldest_age_s": None,
                                                        "overdue": False}

    client = seaweedfs.client()
    stored = objects(client, bucket)
    device_id = vault.keys.load_device_key(key_dir / vault.keys.DEVICE_KEY).public_key().key_id
    vault_keys = {f"{device_id}/{r.session_uid}/{r.uid}.mp4.vault" for r in recordings}
    assert {key for key in stored if "/audit-anchors/" not in key} == \
        vault_keys | {key + ".manifest" for key in vault_keys}
    assert [key for key in stored if "/audit-anchors/" in key], "the audit head was anchored"
    assert not any(SUBJECT in key for key in stored)
    assert len(client.list_object_versions(Bucket=bucket)["Versions"]) == len(stored)     # one version per key
    for recording in recordings:
        key = f"{device_id}/{recording.session_uid}/{recording.uid}.mp4.vault"
        body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert hashlib.sha256(body).digest() == hashlib.sha256(recording.path.read_bytes()).digest()
        sidecar = client.get_object(Bucket=bucket, Key=key + ".manifest")["Body"].read()
        signed = json.loads(sidecar)["signed"]
        # The digest the manifest signs, recomputed over the downloaded object's bytes.
        assert file_digest(io.BytesIO(body)).file_digest == signed["file_digest"]
        head = client.head_object(Bucket=bucket, Key=key)
        assert head["Metadata"]["recording-state"] == signed["state"] == recording.state
        assert head["ObjectLockMode"] == "COMPLIANCE"
        # A downloaded pair opens with the recipient key: to stdout, never to a plaintext file.
        downloaded = tmp_path / f"{recording.uid}.mp4.vault"
        downloaded.write_bytes(body)
        manifest_path(downloaded).write_bytes(sidecar)
        passphrase = tmp_path / "passphrase"
        passphrase.write_bytes(PASSPHRASE)
        opened = appliance_cli("vault", "decrypt", str(downloaded), "--identity",
                               str(key_dir / vault.keys.RECIPIENT_KEY), "--passphrase-file", str(passphrase), "-o", "-")
        assert opened.returncode == 0, opened.stderr.decode()
        assert opened.stdout[4:8] == b"ftyp"

    store = Store(tmp_path / "data")
    try:
        archived = [e for e in store.audit_entries() if e.event == "recording_archived"]
        assert sorted(e.details["recording"] for e in archived) == sorted(r.uid for r in recordings)
        assert store.verify_audit().ok and not any(SUBJECT in json.dumps(e.details) for e in archived)
    finally:
        store.close()
    again = appliance_cli("archive", "push", "--config", str(config))
    assert again.returncode == 0 and "archived 0 recording(s)" in again.stdout.decode()
    assert {k for k in objects(client, bucket) if "/audit-anchors/" not in k} == \
        {k for k in stored if "/audit-anchors/" not in k}
    verified = appliance_cli("archive", "verify", "--config", str(config))
    assert verified.returncode == 0, verified.stderr.decode()


def test_a_recording_whose_manifest_fails_is_reported_and_never_uploaded(tmp_path, seaweedfs, key_dir, appliance_cli):
    bucket = seaweedfs.create_bucket(unique_bucket())
    config = write_config(tmp_path, seaweedfs, bucket, key_dir)
    good, tampered = record_session(tmp_path / "data", key_dir, sealed=2, interrupted=0)
    data = bytearray(tampered.path.read_bytes())
    data[-100] ^= 0x01
    tampered.path.write_bytes(bytes(data))

    pushed = appliance_cli("archive", "push", "--config", str(config))
    assert pushed.returncode == 1
    lines = pushed.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and tampered.uid in lines[0] and "manifest does not verify" in lines[0]
    keys = objects(seaweedfs.client(), bucket)
    assert any(good.uid in key for key in keys) and not any(tampered.uid in key for key in keys)
    assert status(appliance_cli, config)["backlog"]["count"] == 1


def test_a_recording_signed_by_another_device_key_is_reported_and_never_uploaded(tmp_path, seaweedfs, key_dir,
                                                                                  appliance_cli):
    """Its manifest's signatures hold with the key it carries, but that is not this appliance's
    key (a recording copied in from elsewhere, or a manifest re-signed by whoever made a key)."""
    other_keys = tmp_path / "other-keys"
    vault.keys.generate_device(other_keys)
    shutil.copy(key_dir / vault.keys.RECIPIENT_PUB, other_keys / vault.keys.RECIPIENT_PUB)
    bucket = seaweedfs.create_bucket(unique_bucket())
    config = write_config(tmp_path, seaweedfs, bucket, key_dir)
    (foreign,) = record_session(tmp_path / "data", other_keys, sealed=1, interrupted=0)
    (own,) = record_session(tmp_path / "data", key_dir, sealed=1, interrupted=0)

    for attempt in range(2):      # reported at every pass, never uploaded
        pushed = appliance_cli("archive", "push", "--config", str(config))
        assert pushed.returncode == 1
        lines = pushed.stderr.decode().strip().splitlines()
        assert len(lines) == 1 and foreign.uid in lines[0] and "signed by a different device key" in lines[0], lines
    keys = objects(seaweedfs.client(), bucket)
    assert any(own.uid in key for key in keys) and not any(foreign.uid in key for key in keys)
    other_id = vault.keys.load_device_key(other_keys / vault.keys.DEVICE_KEY).public_key().key_id
    assert not any(key.startswith(other_id) for key in keys)
    assert status(appliance_cli, config)["backlog"]["count"] == 1


def test_an_anchor_that_failed_after_archiving_is_sent_at_the_next_pass_not_an_hour_later(tmp_path, seaweedfs,
                                                                                          key_dir):
    """The archive goes away between a recording's upload and its anchor (every request from the
    first anchor request on is cut), then comes back: the next pass anchors the head."""
    from appliance import config
    from appliance.archive.anchoring import archived_anchors
    from appliance.archive.service import ArchiveService

    proxy = HttpProxy(int(seaweedfs.endpoint.rsplit(":", 1)[1])).start()
    armed, down = threading.Event(), threading.Event()

    def archive_goes_away_at_the_anchor(request):
        if armed.is_set() and "/audit-anchors/" in request.target:
            armed.clear()
            down.set()
        if down.is_set():
            raise ConnectionResetError("the archive is down")
    try:
        bucket = seaweedfs.create_bucket(unique_bucket())
        settings = config.load(write_config(tmp_path, seaweedfs, bucket, key_dir, endpoint=proxy.endpoint))
        device = vault.keys.load_device_key(key_dir / vault.keys.DEVICE_KEY).public_key()
        record_session(tmp_path / "data", key_dir, sealed=1, interrupted=0)
        with ArchiveService(settings) as service:
            assert service.one_pass().ok                           # archived and anchored: the service's hour starts
            first_anchor = archived_anchors(seaweedfs.client(), bucket, device)[-1]
            (later,) = record_session(tmp_path / "data", key_dir, sealed=1, interrupted=0)
            proxy.before_request = archive_goes_away_at_the_anchor
            armed.set()
            cut = service.one_pass()
            assert cut.archived == [later.uid] and len(cut.problems) == 1 and "audit anchor" in cut.problems[0]
            assert down.is_set() and archived_anchors(seaweedfs.client(), bucket, device)[-1] == first_anchor
            head = service.store.audit_entries()[-1]
            assert head.seq > first_anchor.seq

            down.clear()                                           # back, seconds later
            assert service.one_pass().ok
            newest = archived_anchors(seaweedfs.client(), bucket, device)[-1]
            assert (newest.seq, newest.hash) == (head.seq, head.hash)
            assert service.one_pass().ok                           # anchored now: nothing owed, nothing sent
            assert len(archived_anchors(seaweedfs.client(), bucket, device)) == 2
    finally:
        proxy.stop()


@pytest.mark.parametrize("fault, words", [
    ("wrong credentials", "credentials refused"),
    ("unknown bucket", "no such bucket"),
    ("bucket without Object Lock", "has no Object Lock"),
])
def test_a_refused_archive_is_one_line_keeps_the_backlog_and_deletes_nothing(tmp_path, seaweedfs, key_dir,
                                                                           appliance_cli, fault, words):
    bucket = unique_bucket()
    if fault != "unknown bucket":
        seaweedfs.create_bucket(bucket, object_lock=fault != "bucket without Object Lock")
    secret = "not-the-secret" if fault == "wrong credentials" else None
    config = write_config(tmp_path, seaweedfs, bucket, key_dir, secret_key=secret,
                          extra='[storage]\nreserve_mb = 1\nmax_session_minutes = 100000\n')
    recordings = record_session(tmp_path / "data", key_dir, sealed=1, interrupted=0, ended_days_ago=60)
    for attempt in range(2):
        pushed = appliance_cli("archive", "push", "--config", str(config))
        assert pushed.returncode == 1
        lines = pushed.stderr.decode().strip().splitlines()
        assert len(lines) == 1 and words in lines[0] and "Traceback" not in pushed.stderr.decode(), lines
        assert status(appliance_cli, config)["backlog"]["count"] == 1
    assert all(r.path.exists() and manifest_path(r.path).exists() for r in recordings)


def test_reclaim_asks_the_archive_again_and_a_copy_not_as_recorded_is_not_confirmed(tmp_path, seaweedfs, key_dir,
                                                                                      appliance_cli):
    from dataclasses import replace

    from appliance import config
    from appliance.archive.service import ArchiveService

    bucket = seaweedfs.create_bucket(unique_bucket())
    settings_path = write_config(tmp_path, seaweedfs, bucket, key_dir)
    (recording,) = record_session(tmp_path / "data", key_dir, sealed=1, interrupted=0)
    assert appliance_cli("archive", "push", "--config", str(settings_path)).returncode == 0
    with ArchiveService(config.load(settings_path)) as service:
        copy = service.store.archived_recording(recording.uid)
        assert service.still_archived(copy) is None
        assert "differs from the copy recorded" in service.still_archived(replace(copy, sha256="0" * 64))
        assert "differs from the copy recorded" in service.still_archived(replace(copy, bytes=copy.bytes + 1))
        missing = service.still_archived(replace(copy, vault_key=copy.vault_key + ".gone", vault_version=None))
        assert missing is not None and copy.vault_key + ".gone" in missing


def flip_last_byte(path) -> None:
    with open(path, "r+b") as file:
        file.seek(-1, 2)
        last = file.read(1)
        file.seek(-1, 2)
        file.write(bytes([last[0] ^ 0x01]))


@pytest.mark.parametrize("after_upload, problem", [
    ("kept", "vault content does not match the manifest's SHA-256"),
    ("undone", "the vault changed while it was uploaded"),
])
def test_a_vault_changed_after_its_manifest_check_is_never_marked_archived(tmp_path, seaweedfs, key_dir,
                                                                          after_upload, problem):
    # The manifest check and the uploader's read are separate reads: bytes changed in between
    # (and kept, or changed back once sent) must not be recorded as a good archive copy.
    from appliance import config
    from appliance.archive.service import ArchiveService

    bucket = seaweedfs.create_bucket(unique_bucket())
    settings_path = write_config(tmp_path, seaweedfs, bucket, key_dir)
    changed, intact = record_session(tmp_path / "data", key_dir, sealed=2, interrupted=0)
    with ArchiveService(config.load(settings_path)) as service:
        upload_file = service.uploader.upload_file

        def changing_upload(path, key, metadata):
            if path != changed.path:
                return upload_file(path, key, metadata)
            flip_last_byte(path)                  # after the manifest check, before the uploader reads
            confirmed = upload_file(path, key, metadata)
            if after_upload == "undone":
                flip_last_byte(path)
            return confirmed

        service.uploader.upload_file = changing_upload
        report = service.one_pass()
        assert report.archived == [intact.uid]
        [line] = report.problems
        assert line.startswith(f"recording {changed.uid}: not marked archived: ") and problem in line, line
        assert [r.uid for r in service.store.unarchived_recordings()] == [changed.uid]
