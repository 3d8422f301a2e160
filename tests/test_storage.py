"""Storage: sessions and recordings in SQLite, the audit chain and its tamper detection, IDs,
the disk guard's projections, and verified export."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from appliance import config, vault
from appliance.errors import BadInput, IntegrityError
from appliance.storage import disk_guard
from appliance.storage.database import MIGRATIONS, Store
from appliance.storage.export import export_recording, sha256_of
from appliance.storage.identifiers import validated_id, validated_subject_id
from appliance.storage.layout import DataLayout


@pytest.fixture
def store(tmp_path):
    opened = Store(tmp_path / "data")
    yield opened
    opened.close()


def sealed_recording(store, session, payload=b"ciphertext"):
    recording = store.start_recording(session.uid)
    recording.path.write_bytes(payload)
    import hashlib
    return store.seal_recording(recording.uid, bytes=len(payload), duration_s=3.0, frames=90, dropped=0,
                                sha256=hashlib.sha256(payload).hexdigest(), manifest={"state": "sealed"})


@pytest.fixture(scope="module")
def recipient():
    return vault.XWingPrivateKey.generate()


def sealed_vault_recording(store, session, recipient, plaintext: bytes):
    """A recording sealed as the appliance seals one: a real version 2 vault, its file digest recorded."""
    recording = store.start_recording(session.uid)
    recording.path.parent.mkdir(parents=True, exist_ok=True)
    with open(recording.path, "wb") as out:
        writer = vault.encrypt(out, [recipient.public_key()])
        writer.write(plaintext)
        sealed = writer.close()
    return store.seal_recording(recording.uid, bytes=sealed.ciphertext_length, duration_s=3.0, frames=90, dropped=0,
                                sha256=sealed.file_digest, manifest={"state": "sealed"})


def test_session_and_recording_lifecycle_is_recorded_in_order(store):
    session = store.open_session("PAT-0001", "TECH-7")
    recording = sealed_recording(store, session)
    store.close_session(session.uid)
    assert recording.state == "sealed" and recording.frames == 90
    assert [e.event for e in store.audit_entries()] == [
        "session_opened", "recording_started", "recording_sealed", "session_closed"]
    assert store.session(session.uid).closed_at is not None
    assert store.verify_audit().ok


def test_paths_are_opaque_and_private(store):
    session = store.open_session("PAT-0001", "TECH-7")
    recording = store.start_recording(session.uid)
    assert "PAT-0001" not in str(recording.path)
    assert recording.path.parent == session.dir
    for directory in (store.data_dir, store.sessions_dir, session.dir):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600


def test_subject_ids_stay_out_of_the_audit_trail(store):
    store.open_session("PAT-SECRET-42", "TECH-7")
    assert all("PAT-SECRET-42" not in repr(entry) for entry in store.audit_entries())


def test_open_recordings_are_what_recovery_must_handle(store):
    session = store.open_session("PAT-1", "TECH-1")
    left_open = store.start_recording(session.uid)
    sealed_recording(store, session)
    assert [r.uid for r in store.open_recordings()] == [left_open.uid]
    store.interrupt_recording(left_open.uid, reason="the appliance stopped while recording")
    assert store.open_recordings() == []
    with pytest.raises(BadInput, match="already interrupted"):
        store.interrupt_recording(left_open.uid, reason="again")


def test_records_survive_reopening_and_the_schema_is_versioned(tmp_path):
    first = Store(tmp_path)
    session = first.open_session("PAT-1", "TECH-1")
    first.close()
    second = Store(tmp_path)
    assert second.schema_version == len(MIGRATIONS)
    assert second.session(session.uid).operator_id == "TECH-1"
    second.close()


def test_a_version_1_database_is_upgraded_in_place(tmp_path):
    with sqlite3.connect(DataLayout(tmp_path).database, isolation_level=None) as db:
        db.executescript(MIGRATIONS[0] + "PRAGMA user_version = 1;")
    db.close()
    store = Store(tmp_path)
    entry = store.audit("login_failed", "service", role="service")
    assert store.schema_version == len(MIGRATIONS) and store.audit_entries() == [entry]
    store.close()


def test_every_path_comes_from_the_data_layout(store):
    layout = DataLayout(store.data_dir)
    session = store.open_session("PAT-0001", "TECH-7")
    recording = store.start_recording(session.uid)
    assert store.path == layout.database and session.dir == layout.session_dir(session.uid)
    assert recording.path == layout.recording_path(session.uid, recording.uid)
    settings = config.Settings(data=config.DataSettings(dir=store.data_dir))
    assert (settings.database_path, settings.sessions_dir) == (layout.database, layout.sessions)


def test_a_newer_database_is_refused(tmp_path):
    Store(tmp_path).close()
    with sqlite3.connect(DataLayout(tmp_path).database) as db:
        db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    with pytest.raises(BadInput, match="newer"):
        Store(tmp_path)


def test_the_database_itself_refuses_to_change_the_audit_trail(store):
    store.audit("login", "CLIN-1", role="clinician")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        store._db.execute("UPDATE audit SET actor = 'someone else'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        store._db.execute("DELETE FROM audit")


def tamper(store, sql, *params):
    """What an attacker with the file could do: drop the guard triggers, then edit."""
    store._db.execute("DROP TRIGGER audit_is_append_only_update")
    store._db.execute("DROP TRIGGER audit_is_append_only_delete")
    store._db.execute(sql, params)


def filled(store, count=6):
    for index in range(count):
        store.audit("login", f"CLIN-{index}", role="clinician")
    return store


@pytest.mark.parametrize("sql, params, broken_at", [
    ("UPDATE audit SET actor = ? WHERE seq = 3", ("CLIN-X",), 3),
    ("UPDATE audit SET details = ? WHERE seq = 4", ('{"role": "service"}',), 4),
    ("UPDATE audit SET at = at + 1 WHERE seq = 2", (), 2),
    ("DELETE FROM audit WHERE seq = 3", (), 4),
    ("UPDATE audit SET seq = seq + 100 WHERE seq = 5", (), 6),
])
def test_audit_verify_reports_the_first_broken_link(store, sql, params, broken_at):
    tamper(filled(store), sql, *params)
    report = store.verify_audit()
    assert not report.ok and report.broken_at == broken_at


def test_rewriting_an_entry_with_a_fresh_hash_still_breaks_the_next_link(store):
    from appliance.storage.audit import entry_hash
    filled(store)
    entry = store.audit_entries()[2]
    forged = entry_hash(entry.prev_hash, entry.seq, entry.at, entry.event, "CLIN-X", entry.details)
    tamper(store, "UPDATE audit SET actor = 'CLIN-X', hash = ? WHERE seq = 3", forged)
    assert store.verify_audit().broken_at == 4


def test_audit_verify_command_exit_codes(store, appliance_cli):
    filled(store)
    intact = appliance_cli("audit", "verify", "--data", str(store.data_dir))
    assert intact.returncode == 0 and b"6 entries" in intact.stdout
    assert store.audit_entries()[-1].hash.encode() in intact.stdout   # the head, to note down
    tamper(store, "UPDATE audit SET actor = 'CLIN-X' WHERE seq = 2")
    broken = appliance_cli("audit", "verify", "--data", str(store.data_dir))
    assert broken.returncode == 1 and b"entry 2" in broken.stderr and b"Traceback" not in broken.stderr
    missing = appliance_cli("audit", "verify", "--data", str(store.data_dir / "nowhere"))
    assert missing.returncode == 2


@pytest.mark.parametrize("bad", ["", "a/b", "a\\b", "PAT\n1", "PAT\x00", "PAT\u200b1", "x" * 65, " PAT", ".."])
def test_bad_ids_are_rejected_without_repeating_them(bad):
    with pytest.raises(BadInput) as raised:
        validated_id("operator ID", bad)
    assert "operator ID" in str(raised.value)
    assert not bad.strip() or bad.strip() not in str(raised.value)


@pytest.mark.parametrize("bad", ["", "a\\b", "PAT\n1", "PAT\x00", "PAT\u200b1", "x" * 65, " PAT", "PAT\t"])
def test_bad_subject_ids_are_rejected_without_repeating_them(bad):
    with pytest.raises(BadInput) as raised:
        validated_subject_id(bad)
    assert "subject ID" in str(raised.value)
    assert not bad.strip() or bad.strip() not in str(raised.value)


def test_bad_ids_never_reach_the_database(store):
    with pytest.raises(BadInput, match="operator ID"):
        store.open_session("PAT-1", "../etc")
    with pytest.raises(BadInput, match="subject ID"):
        store.open_session("PAT\n1", "TECH-1")
    assert store.open_sessions() == [] and store.audit_entries() == []


@pytest.mark.parametrize("good", ["PAT-0001", "Müller 7", "x" * 64])
def test_reasonable_ids_are_accepted(good):
    assert validated_id("operator ID", good) == good
    assert validated_subject_id(good) == good


@pytest.mark.parametrize("clinic_id", ["2024/1234", "12.345.678", "..", "A/B/C"])
def test_clinic_patient_ids_with_slashes_or_dots_are_accepted_as_subject_ids(store, clinic_id):
    assert validated_subject_id(clinic_id) == clinic_id
    assert store.open_session(clinic_id, "TECH-1").subject_id == clinic_id


MB = 1_000_000


def test_disk_guard_arms_only_when_a_full_session_fits_above_the_reserve():
    # 8 Mbit/s is 1 MB/s: a 60-minute session needs 3600 MB above the reserve.
    common = dict(bitrate_bps=8e6, reserve_bytes=500 * MB, max_session_s=3600, warn_s=600)
    assert disk_guard.project(free_bytes=4100 * MB, **common).can_arm
    assert not disk_guard.project(free_bytes=4099 * MB, **common).can_arm
    tight = disk_guard.project(free_bytes=800 * MB, **common)
    assert tight.seconds_left == pytest.approx(300) and tight.warn and not tight.must_stop
    assert disk_guard.project(free_bytes=505 * MB, **common).must_stop
    below_reserve = disk_guard.project(free_bytes=100 * MB, **common)
    assert below_reserve.seconds_left == 0 and below_reserve.must_stop and not below_reserve.can_arm


@settings(deadline=None, max_examples=200)
@given(free=st.integers(0, 10**13), used=st.integers(0, 10**9), bitrate=st.floats(1e5, 1e8),
       reserve=st.integers(0, 10**10))
def test_disk_guard_time_left_only_shrinks_as_the_disk_fills(free, used, bitrate, reserve):
    args = dict(bitrate_bps=bitrate, reserve_bytes=reserve, max_session_s=3600, warn_s=600)
    before = disk_guard.project(free_bytes=free, **args)
    after = disk_guard.project(free_bytes=max(0, free - used), **args)
    assert after.seconds_left <= before.seconds_left
    assert before.seconds_left >= 0
    # once it says stop, less space never says go on
    assert not before.must_stop or after.must_stop


def test_free_bytes_reads_the_real_filesystem(tmp_path):
    assert disk_guard.free_bytes(tmp_path) > 0


def test_export_copies_then_verifies_and_is_audited(store, tmp_path, recipient):
    session = store.open_session("PAT-1", "CLIN-1")
    recording = sealed_vault_recording(store, session, recipient, b"sealed bytes" * 10_000)
    recording.path.with_name(recording.path.name + ".manifest").write_text("{}")
    usb = tmp_path / "usb"
    usb.mkdir()
    result = export_recording(store, recording.uid, usb, actor="CLIN-1")
    assert result.path.read_bytes() == recording.path.read_bytes()
    assert vault.file_digest(result.path).file_digest == result.digest == recording.sha256
    assert (usb / (recording.path.name + ".manifest")).read_text() == "{}"
    assert store.audit_entries()[-1].event == "export"
    assert sorted(p.name for p in usb.iterdir()) == sorted([result.path.name, result.path.name + ".manifest"])


@pytest.mark.parametrize("damage", ["body byte", "header byte", "magic", "truncated"])
def test_export_of_a_changed_file_fails_and_leaves_nothing(store, tmp_path, recipient, damage):
    session = store.open_session("PAT-1", "CLIN-1")
    recording = sealed_vault_recording(store, session, recipient, b"original" * 20_000)
    data = bytearray(recording.path.read_bytes())
    where = {"body byte": len(data) - 100, "header byte": 40, "magic": 1, "truncated": None}[damage]
    if where is None:
        del data[-1]
    else:
        data[where] ^= 0x01
    recording.path.write_bytes(bytes(data))
    usb = tmp_path / "usb"
    usb.mkdir()
    with pytest.raises(IntegrityError, match="verification"):
        export_recording(store, recording.uid, usb, actor="CLIN-1")
    assert list(usb.iterdir()) == []
    assert store.audit_entries()[-1].event != "export"


def test_a_version_1_recording_exports_against_its_whole_file_sha256(store, tmp_path):
    session = store.open_session("PAT-1", "CLIN-1")
    recording = sealed_recording(store, session, (Path(__file__).parent / "vectors" / "vault" /
                                                  "two-segments.vault").read_bytes())
    usb = tmp_path / "usb"
    usb.mkdir()
    result = export_recording(store, recording.uid, usb, actor="CLIN-1")
    assert sha256_of(result.path) == result.digest == recording.sha256


def test_audit_hash_vectors_match_the_specification():
    from appliance.storage.audit import GENESIS, entry_hash
    session, recording = "0f1e2d3c4b5a69788796a5b4c3d2e1f0", "00112233445566778899aabbccddeeff"
    first = entry_hash(GENESIS, 1, 1767225600.0, "session_opened", "TECH-1", {"session": session})
    assert first == "b5971f14ded834dcc749bd51c46f96dbcc0d1a749ec104d046f16ec4237b720f"
    second = entry_hash(first, 2, 1767225612.5, "recording_started", "TECH-1",
                        {"session": session, "recording": recording})
    assert second == "edcb8e7fb774da764411bb34811dcc0b2c4e83175e14dd1d0e47b832fcbaabcf"


def test_export_command_copies_a_session_verified_and_refuses_bad_input(store, tmp_path, appliance_cli, recipient):
    session = store.open_session("PAT-1", "CLIN-1")
    recordings = [sealed_vault_recording(store, session, recipient, plaintext) for plaintext in (b"first", b"second")]
    config = tmp_path / "appliance.toml"
    config.write_text(f'[data]\ndir = "{store.data_dir}"\n')
    usb = tmp_path / "usb"
    usb.mkdir()
    result = appliance_cli("export", "--session", session.uid, "--to", str(usb), "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in usb.iterdir()) == sorted(r.path.name for r in recordings)
    assert [e.event for e in store.audit_entries()][-2:] == ["export", "export"]
    again = appliance_cli("export", "--session", session.uid, "--to", str(usb), "--config", str(config))
    assert again.returncode == 2 and b"already holds" in again.stderr
    unknown = appliance_cli("export", "--recording", "nope", "--to", str(usb), "--config", str(config))
    assert unknown.returncode == 2 and len(unknown.stderr.splitlines()) == 1


def test_a_damaged_database_is_an_integrity_failure_in_one_line(tmp_path, appliance_cli):
    (DataLayout(tmp_path).database).write_bytes(b"this is not SQLite" * 100)
    with pytest.raises(IntegrityError, match="damaged"):
        Store(tmp_path)
    result = appliance_cli("audit", "verify", "--data", str(tmp_path))
    assert result.returncode == 1 and len(result.stderr.splitlines()) == 1


def test_sessions_lists_every_session_newest_first_with_its_recordings_by_state(store):
    first = store.open_session("PAT-0001", "TECH-7")
    sealed_recording(store, first)
    torn = store.start_recording(first.uid)
    store.interrupt_recording(torn.uid, reason="power loss")
    store.close_session(first.uid)
    empty = store.open_session("PAT-0002", "TECH-7")
    store.close_session(empty.uid)
    latest = store.open_session("PAT-0003", "TECH-8")
    sealed_recording(store, latest)
    store.start_recording(latest.uid)                   # still being written
    (store.sessions_dir / "0123456789abcdef").mkdir()   # a directory whose row never committed: not a session

    listing = store.sessions()
    assert [summary.session.uid for summary in listing] == [latest.uid, empty.uid, first.uid]
    assert [(s.sealed, s.interrupted, s.recording, s.recordings) for s in listing] == [
        (1, 0, 1, 2), (0, 0, 0, 0), (1, 1, 0, 2)]
    assert listing[2].session.subject_id == "PAT-0001" and listing[2].session.closed_at is not None
    assert listing[0].session.closed_at is None


def test_the_store_stamps_rows_and_audit_entries_with_its_clock(tmp_path):
    store = Store(tmp_path / "data", clock=lambda: 1_795_000_000.0)
    session = store.open_session("PAT-0001", "TECH-7")
    recording = store.start_recording(session.uid)
    assert (session.opened_at, recording.started_at) == (1_795_000_000.0, 1_795_000_000.0)
    assert {entry.at for entry in store.audit_entries()} == {1_795_000_000.0}
    store.close()


def test_a_sealed_clips_timeline_is_stored_and_an_emission_in_two_clips_counts_once(tmp_path):
    from appliance.storage.database import Store
    from appliance.timeline import ClipEvent, manifest_metadata

    store = Store(tmp_path / "data")
    session = store.open_session("PAT-0200", "TECH-1")
    first_clip = [ClipEvent(0.5, "footswitch", 1, 1), ClipEvent(1.0, "laser", 1, 2), ClipEvent(1.5, "laser", 0, 3)]
    # The next clip's pre-roll reaches back into the first: the same emission, edges 2 and 3.
    second_clip = [ClipEvent(-0.1, "laser", 1, 2), ClipEvent(0.4, "laser", 0, 3), ClipEvent(2.0, "laser", 1, 4)]
    uids = []
    for events in (first_clip, second_clip):
        recording = store.start_recording(session.uid)
        store.seal_recording(recording.uid, bytes=1, duration_s=3.0, frames=90, dropped=0, sha256="0" * 64,
                             manifest=manifest_metadata(events, 3.0, 1.5))
        uids.append(recording.uid)
    first, second = (store.recording(uid) for uid in uids)
    assert (first.emissions, first.laser_on_s) == (1, 0.5)
    assert (second.emissions, second.laser_on_s) == (2, 1.4)
    assert store.clip_events(second.uid) == second_clip
    assert store.sessions()[0].emissions == 2      # edges 2 and 4, not 1 + 2
