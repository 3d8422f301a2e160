"""Audit anchors on a real SeaweedFS: the head goes to the archive once per seq, immutable; hourly
while the chain grows; `appliance audit verify --archive` detects a rewritten or cut local trail."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from datetime import datetime, timezone

import pytest

from appliance.archive.anchoring import Anchorer, anchor_due, archived_anchors
from appliance.archive.anchors import anchor_key, seal_anchor
from appliance.archive.settings import ArchiveSettings
from appliance.archive.uploader import Uploader
from appliance.errors import IntegrityError
from appliance.storage import audit
from appliance.storage.database import Store
from appliance.vault import keys
from tests.servers.seaweedfs import unique_bucket, write_credentials

HOUR = 3600.0


class Clock:
    def __init__(self):
        self.now = 1_764_581_400.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def site(tmp_path, seaweedfs):
    """An appliance's data and device key, an archive bucket with Object Lock, and its config file."""
    keys.generate_device(tmp_path / "keys")
    credentials = seaweedfs.write_credentials(tmp_path / "s3-credentials")
    bucket = seaweedfs.create_bucket(unique_bucket())
    settings = ArchiveSettings(endpoint=seaweedfs.endpoint, bucket=bucket, credentials=credentials,
                               retention_days=1)
    config = tmp_path / "appliance.toml"
    config.write_text(f'[data]\ndir = "data"\n[keys]\ndevice_key = "keys/device.key"\n'
                      f'[archive]\nendpoint = "{seaweedfs.endpoint}"\nbucket = "{bucket}"\n'
                      f'credentials = "s3-credentials"\nretention_days = 1\n')
    store = Store(tmp_path / "data", clock=Clock())
    for _ in range(3):
        store.close_session(store.open_session("PAT-0001", "TECH-7").uid)
    yield store, settings, keys.load_device_key(tmp_path / "keys" / "device.key"), config
    store.close()


def anchorer(seaweedfs, site, tmp_path, clock=None):
    store, settings, device_key, _ = site
    uploader = Uploader(seaweedfs.client(), settings, tmp_path / "upload-state")
    return Anchorer(uploader, store, device_key, **({"clock": clock} if clock else {}))


def test_the_head_is_anchored_once_immutable_at_its_pinned_key(seaweedfs, site, tmp_path):
    store, settings, device_key, _ = site
    head = store.audit_entries()[-1]
    anchor = anchorer(seaweedfs, site, tmp_path).anchor_now()
    assert (anchor.seq, anchor.hash) == (head.seq, head.hash)
    key = anchor_key(device_key.public_key().key_id, head.seq)
    client = seaweedfs.client()
    stored = client.head_object(Bucket=settings.bucket, Key=key)
    assert stored["ObjectLockMode"] == "COMPLIANCE" and stored["ObjectLockRetainUntilDate"] is not None
    assert anchorer(seaweedfs, site, tmp_path).anchor_now() == anchor    # a new process: read, not written again
    assert len(client.list_object_versions(Bucket=settings.bucket, Prefix=key)["Versions"]) == 1
    assert archived_anchors(client, settings.bucket, device_key.public_key()) == [anchor]


def test_an_archive_anchor_naming_another_entry_stops_anchoring(seaweedfs, site, tmp_path):
    """The archive remembers entry N differently: the local trail was rewritten; say so, anchor nothing."""
    store, settings, device_key, _ = site
    head = store.audit_entries()[-1]
    forged_head = audit.AuditEntry(head.seq, head.at, head.event, "someone-else", head.details, head.prev_hash,
                                   hashlib.sha256(b"another history").hexdigest())
    seaweedfs.client().put_object(Bucket=settings.bucket, Key=anchor_key(device_key.public_key().key_id, head.seq),
                                  Body=seal_anchor(forged_head, device_key, datetime.now(timezone.utc)))
    with pytest.raises(IntegrityError, match=f"anchor of audit entry {head.seq} .* the local trail was rewritten"):
        anchorer(seaweedfs, site, tmp_path).anchor_now()


def test_anchors_come_at_least_hourly_while_the_chain_grows(seaweedfs, site, tmp_path):
    store, settings, device_key, _ = site
    clock = Clock()
    anchoring = anchorer(seaweedfs, site, tmp_path, clock)
    assert anchoring.anchor_if_due().seq == 6                 # the first pass of a process anchors
    store.audit("login", "TECH-7", role="service")
    clock.now += HOUR - 1
    assert anchoring.anchor_if_due() is None                  # not an hour yet
    clock.now += 1
    assert anchoring.anchor_if_due().seq == 7
    clock.now += 5 * HOUR
    assert anchoring.anchor_if_due() is None                  # nothing new: entry 7 is anchored
    anchors = archived_anchors(seaweedfs.client(), settings.bucket, device_key.public_key())
    assert [anchor.seq for anchor in anchors] == [6, 7]


@pytest.mark.parametrize("head_seq, last_at, last_seq, now, owed, due", [
    (0, None, None, 0.0, False, False), (1, None, None, 0.0, False, True), (5, 0.0, 5, 10 * HOUR, False, False),
    (6, 0.0, 5, HOUR - 0.001, False, False), (6, 0.0, 5, HOUR, False, True),
    # an anchor owed (it failed after an archived recording) goes at the next pass, not an hour later
    (6, 0.0, 5, 1.0, True, True), (5, 0.0, 5, 1.0, True, False), (0, 0.0, 0, 1.0, True, False)])
def test_anchor_due(head_seq, last_at, last_seq, now, owed, due):
    assert anchor_due(last_at, last_seq, head_seq, now, owed=owed) is due


def rewrite_trail(database, *, keep: int | None = None, actor: str = "rewriter") -> None:
    """What someone with root on the kiosk could do: drop the append-only triggers, then replace
    the whole trail by a consistent, re-hashed one (optionally cut to `keep` entries)."""
    with sqlite3.connect(database) as db:
        rows = db.execute("SELECT seq, at, event, details FROM audit ORDER BY seq").fetchall()[:keep]
        db.execute("DROP TRIGGER audit_is_append_only_update")
        db.execute("DROP TRIGGER audit_is_append_only_delete")
        db.execute("DELETE FROM audit")
        previous = audit.GENESIS
        for seq, at, event, details in rows:
            digest = audit.entry_hash(previous, seq, at, event, actor, json.loads(details))
            db.execute("INSERT INTO audit VALUES (?, ?, ?, ?, ?, ?, ?)", (seq, at, event, actor, details, previous, digest))
            previous = digest


@pytest.mark.parametrize("keep, expected", [(None, "the trail was rewritten"), (2, "entries were removed")])
def test_audit_verify_archive_detects_a_rewritten_local_trail(seaweedfs, site, tmp_path, appliance_cli,
                                                              keep, expected):
    store, settings, device_key, config = site
    anchoring = anchorer(seaweedfs, site, tmp_path)
    anchoring.anchor_now()
    store.audit("login", "TECH-7", role="service")
    anchoring.anchor_now()
    passed = appliance_cli("audit", "verify", "--archive", "--config", str(config))
    assert passed.returncode == 0, passed.stderr
    assert "holds all 2 anchors" in passed.stdout.decode()
    store.close()
    rewrite_trail(store.layout.database, keep=keep)
    assert appliance_cli("audit", "verify", "--config", str(config)).returncode == 0   # the chain alone holds
    failed = appliance_cli("audit", "verify", "--archive", "--config", str(config))
    lines = failed.stderr.decode().strip().splitlines()
    assert failed.returncode == 1 and len(lines) == 1 and expected in lines[0], failed.stderr


def test_audit_verify_archive_without_an_archive_is_one_line_exit_2(tmp_path, appliance_cli):
    Store(tmp_path / "data").close()
    result = appliance_cli("audit", "verify", "--archive", "--data", str(tmp_path / "data"))
    assert result.returncode == 2 and result.stderr.decode().strip() == \
        "appliance: audit verify --archive: no archive configured ([archive] endpoint)"


def test_an_anchor_hidden_behind_a_delete_marker_still_counts(seaweedfs, site, tmp_path, appliance_cli):
    """A plain DELETE (allowed under Object Lock) adds a delete marker: the anchor must still be read."""
    store, settings, device_key, config = site
    anchor = anchorer(seaweedfs, site, tmp_path).anchor_now()
    client = seaweedfs.client()
    client.delete_object(Bucket=settings.bucket, Key=anchor_key(anchor.device_key_id, anchor.seq))
    assert archived_anchors(client, settings.bucket, device_key.public_key()) == [anchor]
    store.close()
    rewrite_trail(store.layout.database)
    failed = appliance_cli("audit", "verify", "--archive", "--config", str(config))
    assert failed.returncode == 1 and "the trail was rewritten" in failed.stderr.decode()


def test_audit_verify_archive_with_the_archive_unreachable_is_one_line(tmp_path, appliance_cli):
    from tests.servers import free_ports

    keys.generate_device(tmp_path / "keys")
    write_credentials(tmp_path / "s3-credentials", "a", "b")
    config = tmp_path / "appliance.toml"
    config.write_text(f'[data]\ndir = "data"\n[keys]\ndevice_key = "keys/device.key"\n[archive]\n'
                      f'endpoint = "http://127.0.0.1:{free_ports(1)[0]}"\nbucket = "b"\ncredentials = "s3-credentials"\n')
    Store(tmp_path / "data").close()
    result = appliance_cli("audit", "verify", "--archive", "--config", str(config))
    lines = result.stderr.decode().strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1 and "cannot reach the server" in lines[0], result.stderr


def test_device_pub_pins_whose_anchors_count(seaweedfs, site, tmp_path, appliance_cli):
    """The enrolled key's anchors pass; another key has none, which a trail with archived
    recordings does not accept (a replaced device key would start a series of its own)."""
    store, settings, device_key, config = site
    store.audit("recording_archived", "appliance", recording="r1")
    anchorer(seaweedfs, site, tmp_path).anchor_now()
    own = appliance_cli("audit", "verify", "--archive", "--config", str(config),
                        "--device-pub", str(tmp_path / "keys" / "device.pub"))
    assert own.returncode == 0 and "holds all 1 anchors" in own.stdout.decode(), own.stderr
    keys.generate_device(tmp_path / "other")
    other = appliance_cli("audit", "verify", "--archive", "--config", str(config),
                          "--device-pub", str(tmp_path / "other" / "device.pub"))
    assert other.returncode == 1 and "holds no audit anchors of device" in other.stderr.decode(), other.stderr
