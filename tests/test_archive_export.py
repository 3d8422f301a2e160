"""`appliance export` of recordings whose local copy the clinic archive freed: one line each
("in the clinic archive only", with its archive object), the session's other recordings exported
and verified, nothing half-written on the medium."""

from __future__ import annotations

import time

import pytest

from appliance import vault
from appliance.archive import reclaim
from appliance.storage.database import ArchivedRecording, Store

DAY = 86_400.0


def sealed(store, session_uid: str, recipient, plaintext: bytes):
    """A recording sealed as the appliance seals one: a real vault, its file digest recorded."""
    recording = store.start_recording(session_uid)
    recording.path.parent.mkdir(parents=True, exist_ok=True)
    with open(recording.path, "wb") as out:
        writer = vault.encrypt(out, [recipient.public_key()])
        writer.write(plaintext)
        done = writer.close()
    return store.seal_recording(recording.uid, bytes=done.ciphertext_length, duration_s=3.0, frames=90, dropped=0,
                                sha256=done.file_digest, manifest={"state": "sealed"})


def archive_key(recording) -> str:
    return f"50576b240566e39e/{recording.session_uid}/{recording.uid}.mp4.vault"


def archive_and_free(store, recordings) -> None:
    """Archived, then freed by the archive's own reclaim rule (the only way a copy goes)."""
    for recording in recordings:
        key = archive_key(recording)
        store.mark_archived(ArchivedRecording(recording.uid, key, "v1", key + ".manifest", "v2", recording.bytes,
                                              "cd" * 32, time.time() + 3650 * DAY, time.time()))
    freed = reclaim.reclaim(store, needed=10**12, now=time.time() + DAY, keep_local_days=0,
                            still_archived=lambda copy: None)
    assert sorted(freed) == sorted(r.uid for r in recordings)
    assert not any(r.path.exists() for r in recordings)


@pytest.fixture(scope="module")
def recipient():
    return vault.XWingPrivateKey.generate()


@pytest.fixture
def site(tmp_path, recipient):
    """A session of three clips, the first and last freed locally after archiving; a USB stick."""
    store = Store(tmp_path / "data")
    session = store.open_session("PAT-0042", "CLIN-1")
    first, kept, last = (sealed(store, session.uid, recipient, b"clip %d" % n * 5000) for n in range(3))
    archive_and_free(store, [first, last])
    store.close()
    config = tmp_path / "appliance.toml"
    config.write_text(f'[data]\ndir = "{tmp_path / "data"}"\n')
    usb = tmp_path / "usb"
    usb.mkdir()
    return config, usb, session, (first, kept, last)


def exports(data_dir) -> list[str]:
    store = Store(data_dir)
    try:
        return [entry.details["recording"] for entry in store.audit_entries() if entry.event == "export"]
    finally:
        store.close()


def test_a_session_with_freed_clips_exports_the_rest_and_names_each_freed_one(site, tmp_path, appliance_cli):
    config, usb, session, (first, kept, last) = site
    result = appliance_cli("export", "--session", session.uid, "--to", str(usb), "--config", str(config))
    assert result.returncode == 1
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 2 and "Traceback" not in result.stderr.decode(), lines
    for line, freed in zip(lines, (first, last)):
        assert freed.uid in line and "in the clinic archive only" in line and archive_key(freed) in line
        assert "PAT-0042" not in line
    assert sorted(p.name for p in usb.iterdir()) == [kept.path.name]
    assert vault.file_digest(usb / kept.path.name).file_digest == kept.sha256
    assert f"file digest {kept.sha256} verified" in result.stdout.decode()
    assert exports(tmp_path / "data") == [kept.uid]


def test_a_single_freed_clip_is_one_line_and_nothing_is_written(site, tmp_path, appliance_cli):
    config, usb, _, (first, _, _) = site
    result = appliance_cli("export", "--recording", first.uid, "--to", str(usb), "--config", str(config))
    lines = result.stderr.decode().strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "in the clinic archive only" in lines[0], lines
    assert list(usb.iterdir()) == [] and exports(tmp_path / "data") == []


def test_a_session_whose_clips_are_all_freed_writes_nothing(tmp_path, recipient, appliance_cli):
    store = Store(tmp_path / "data")
    session = store.open_session("PAT-0042", "CLIN-1")
    archive_and_free(store, [sealed(store, session.uid, recipient, b"only clip" * 1000)])
    store.close()
    config = tmp_path / "appliance.toml"
    config.write_text(f'[data]\ndir = "{tmp_path / "data"}"\n')
    usb = tmp_path / "usb"
    usb.mkdir()
    result = appliance_cli("export", "--session", session.uid, "--to", str(usb), "--config", str(config))
    assert result.returncode == 1 and len(result.stderr.decode().strip().splitlines()) == 1
    assert result.stdout == b"" and list(usb.iterdir()) == []


def test_a_local_copy_gone_without_a_reclaim_is_an_integrity_line_and_nothing_is_written(site, tmp_path,
                                                                                         appliance_cli):
    config, usb, _, (_, kept, _) = site
    kept.path.unlink()        # not the archive's doing: someone deleted it
    result = appliance_cli("export", "--recording", kept.uid, "--to", str(usb), "--config", str(config))
    lines = result.stderr.decode().strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1 and "local copy is missing" in lines[0], lines
    assert list(usb.iterdir()) == [] and exports(tmp_path / "data") == []
