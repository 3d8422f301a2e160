"""The archive's records and rules without a server: the [archive] section, the archived table
and its audit entries, the backlog in words, and the reclaim rule (the only way the appliance
ever deletes a recording)."""

from __future__ import annotations

import dataclasses
import sqlite3

import pytest
from hypothesis import given, strategies as st

from appliance import config
from appliance.archive import backlog as words
from appliance.archive import reclaim
from appliance.errors import BadInput
from appliance.storage.database import MIGRATIONS, ArchivedRecording, Store
from appliance.storage.queries import ArchiveBacklog

NOW = 1_800_000_000.0
DAY = 86_400.0


@pytest.fixture
def store(tmp_path):
    clock = [NOW - 40 * DAY]
    opened = Store(tmp_path / "data", clock=lambda: clock[0])
    opened.test_clock = clock
    yield opened
    opened.close()


def finished(store, state="sealed", payload=b"v" * 1000):
    session = store.open_session("PAT-0042", "TECH-1")
    recording = store.start_recording(session.uid)
    recording.path.write_bytes(payload)
    recording.path.with_name(recording.path.name + ".manifest").write_bytes(b"{}")
    figures = dict(bytes=len(payload), sha256="ab" * 32, frames=3, dropped=0, duration_s=0.1, manifest=None)
    if state == "sealed":
        return store.seal_recording(recording.uid, **figures)
    return store.interrupt_recording(recording.uid, reason="power loss", **figures)


def archived_copy(recording, at=NOW - 35 * DAY) -> ArchivedRecording:
    return ArchivedRecording(recording.uid, f"dev/{recording.session_uid}/{recording.uid}.mp4.vault", "v1",
                             f"dev/{recording.session_uid}/{recording.uid}.mp4.vault.manifest", "v2",
                             recording.bytes, "cd" * 32, at + 3650 * DAY, at)


# -- the [archive] section ----------------------------------------------------------------------

def test_archive_section_is_read_with_paths_relative_to_the_file(tmp_path):
    path = tmp_path / "appliance.toml"
    path.write_text('[archive]\nendpoint = "https://s3.clinic.example"\nbucket = "recordings"\n'
                    'credentials = "s3.ini"\nkeep_local_days = 7\nwarn_after_hours = 12\n')
    archive = config.load(path).archive
    assert archive.configured and archive.bucket == "recordings"
    assert archive.credentials == tmp_path / "s3.ini" and archive.keep_local_days == 7.0
    assert not config.load(None).archive.configured     # the demo has no archive


@pytest.mark.parametrize("line, complaint", [
    ('endpoint = "ftp://x"\nbucket = "b"', "archive.endpoint must start with http:// or https://"),
    ('endpoint = "https://x"', "archive.bucket must be set when endpoint is"),
    ('retention_mode = "LOOSE"', "archive.retention_mode must be one of COMPLIANCE, GOVERNANCE"),
    ("keep_local_days = -1", "archive.keep_local_days must not be negative"),
    ("warn_after_hours = 0", "archive.warn_after_hours must be greater than 0"),
    ("part_mib = 64", "archive.part_mib must be between 8 and 16"),
    ('max_mbps = "fast"', "archive.max_mbps must be a number"),
    ("bucket_name = 1", "unknown key archive.bucket_name"),
])
def test_a_bad_archive_key_is_one_line_naming_it(tmp_path, line, complaint):
    path = tmp_path / "appliance.toml"
    path.write_text(f"[archive]\n{line}\n")
    with pytest.raises(BadInput) as refused:
        config.load(path)
    assert complaint in str(refused.value) and "\n" not in str(refused.value)


# -- the archived table --------------------------------------------------------------------------

def test_migration_adds_the_archive_table_to_an_existing_database(tmp_path):
    old = tmp_path / "data"
    old.mkdir(mode=0o700)
    before_archive = next(i for i, script in enumerate(MIGRATIONS) if "CREATE TABLE archived" in script)
    with sqlite3.connect(old / "appliance.sqlite3") as db:   # a database as the release before left it
        for script in MIGRATIONS[:before_archive]:
            db.executescript(script)
        db.execute(f"PRAGMA user_version = {before_archive}")
    upgraded = Store(old)
    try:
        assert upgraded.schema_version == len(MIGRATIONS) and upgraded.archive_backlog().count == 0
    finally:
        upgraded.close()


def test_backlog_counts_finished_recordings_until_each_is_archived(store):
    assert store.archive_backlog() == ArchiveBacklog(0, 0, None)
    first = finished(store)
    store.test_clock[0] += 3600
    second = finished(store, "interrupted", b"i" * 500)
    store.start_recording(store.open_session("PAT-7", "TECH-1").uid)     # still recording: not backlog
    assert store.archive_backlog() == ArchiveBacklog(2, 1500, first.ended_at)
    assert [r.uid for r in store.unarchived_recordings()] == [first.uid, second.uid]
    store.mark_archived(archived_copy(first))
    assert store.archive_backlog() == ArchiveBacklog(1, 500, second.ended_at)
    assert [r.uid for r in store.unarchived_recordings()] == [second.uid]


def test_archiving_is_audited_without_phi_and_only_once(store):
    recording = finished(store)
    copy = store.mark_archived(archived_copy(recording))
    assert copy == archived_copy(recording)
    entry = store.audit_entries()[-1]
    assert entry.event == "recording_archived" and entry.details["recording"] == recording.uid
    assert entry.details["sha256"] == "cd" * 32 and "PAT-0042" not in repr(entry)
    with pytest.raises(sqlite3.IntegrityError):
        store.mark_archived(archived_copy(recording))
    assert [e.event for e in store.audit_entries()].count("recording_archived") == 1
    assert store.verify_audit().ok


def test_reclaim_is_noted_once_and_audited(store):
    recording = finished(store)
    store.mark_archived(archived_copy(recording))
    store.mark_reclaimed(recording.uid, 1002)
    assert store.archived_recording(recording.uid).reclaimed_at is not None
    assert store.archived_recordings(local_only=True) == []
    entry = store.audit_entries()[-1]
    assert (entry.event, entry.details["bytes"]) == ("recording_reclaimed", 1002)
    with pytest.raises(BadInput, match="already reclaimed"):
        store.mark_reclaimed(recording.uid, 1002)


# -- the backlog in words ----------------------------------------------------------------------

def test_backlog_line_and_warning():
    empty = ArchiveBacklog(0, 0, None)
    assert words.backlog_line(empty, NOW) == "every finished recording is archived"
    assert words.start_screen_warning(empty, NOW, 24) is None
    assert words.start_screen_warning(None, NOW, 24) is None
    waiting = ArchiveBacklog(3, 2_500_000_000, NOW - 26 * 3600)
    assert words.backlog_line(waiting, NOW) == "3 recordings (2.50 GB) not archived yet, the oldest for 26 h"
    assert words.start_screen_warning(waiting, NOW, 48) is None
    warning = words.start_screen_warning(waiting, NOW, 24)
    assert warning.startswith("⚠ Archive: 3 recordings") and "only on this appliance" in warning
    assert words.as_json(waiting, NOW, 24) == {"count": 3, "bytes": 2_500_000_000, "oldest_age_s": 93600.0,
                                              "overdue": True}


@pytest.mark.parametrize("seconds, text", [(59, "0 min"), (3599, "59 min"), (3600, "1 h"), (47.9 * 3600, "47 h"),
                                           (48 * 3600, "2 days")])
def test_ages_read_as_a_person_reads_them(seconds, text):
    assert words.describe_age(seconds) == text


# -- the reclaim rule ------------------------------------------------------------------------------

def test_nothing_is_reclaimed_while_a_session_still_fits():
    assert reclaim.bytes_needed(free_bytes=10**10, bitrate_bps=8e6, reserve_bytes=10**8, max_session_s=600) == 0
    # 600 s at 1 MB/s plus the reserve is 700 MB: 100 MB short.
    assert reclaim.bytes_needed(free_bytes=600_000_000, bitrate_bps=8e6, reserve_bytes=100_000_000,
                                max_session_s=600) == 100_000_000


def test_oldest_old_enough_first_and_no_more_than_needed():
    old = [reclaim.Candidate(f"r{i}", NOW - (40 - i) * DAY, 100) for i in range(5)]    # 40..36 days old
    young = reclaim.Candidate("young", NOW - 2 * DAY, 10_000)
    chosen = reclaim.choose([young, *reversed(old)], now=NOW, keep_local_days=30, needed=250)
    assert [c.recording_uid for c in chosen] == ["r0", "r1", "r2"]
    assert reclaim.choose([young, *old], now=NOW, keep_local_days=30, needed=0) == []
    assert reclaim.choose([young], now=NOW, keep_local_days=30, needed=10**9) == []


@given(st.lists(st.tuples(st.floats(0, 100), st.integers(1, 10**6)), max_size=30),
       st.floats(0, 60), st.integers(-10, 10**7))
def test_reclaim_never_takes_a_young_copy_nor_more_than_needed(ages, keep_days, needed):
    candidates = [reclaim.Candidate(f"r{i}", NOW - age * DAY, size) for i, (age, size) in enumerate(ages)]
    chosen = reclaim.choose(candidates, now=NOW, keep_local_days=keep_days, needed=needed)
    assert all(c.ended_at < NOW - keep_days * DAY for c in chosen)
    if chosen:
        # Dropping the last one chosen would leave the need unmet: none is taken beyond it.
        assert sum(c.local_bytes for c in chosen[:-1]) < needed
    eligible = sorted((c for c in candidates if c.ended_at < NOW - keep_days * DAY),
                      key=lambda c: (c.ended_at, c.recording_uid))
    assert chosen == eligible[:len(chosen)]
    if needed > 0 and sum(c.local_bytes for c in chosen) < needed:
        assert chosen == eligible


def test_reclaim_deletes_only_what_the_archive_confirms_again_and_audits_it(store):
    recordings = []
    for _ in range(3):
        store.test_clock[0] += 60
        recordings.append(finished(store))
    for recording in recordings:
        store.mark_archived(archived_copy(recording))
    store.test_clock[0] = NOW
    asked = []

    def confirm(copy):
        asked.append(copy.recording_uid)
        return None if len(asked) == 1 else "HEAD: the object is gone"

    deleted = reclaim.reclaim(store, needed=10**9, now=NOW, keep_local_days=30, still_archived=confirm)
    assert deleted == [recordings[0].uid] and asked == [recordings[0].uid, recordings[1].uid]
    assert not recordings[0].path.exists() and recordings[1].path.exists() and recordings[2].path.exists()
    assert [e.event for e in store.audit_entries()].count("recording_reclaimed") == 1


def test_a_copy_archived_without_retention_is_never_reclaimed(store):
    # retention_days = 0: the archived copy is deletable, so the local one is kept, however full the disk.
    unlocked, locked = finished(store), finished(store)
    store.mark_archived(dataclasses.replace(archived_copy(unlocked), retain_until=None))
    store.mark_archived(archived_copy(locked))
    store.test_clock[0] = NOW
    deleted = reclaim.reclaim(store, needed=10**9, now=NOW, keep_local_days=30, still_archived=lambda copy: None)
    assert deleted == [locked.uid]
    assert unlocked.path.exists() and not locked.path.exists()


def test_reclaim_without_need_asks_nothing_and_deletes_nothing(store):
    recording = finished(store)
    store.mark_archived(archived_copy(recording))
    assert reclaim.reclaim(store, needed=0, now=NOW, keep_local_days=30, still_archived=pytest.fail) == []
    assert recording.path.exists()


# -- two processes, one audit chain ---------------------------------------------------------------

APPEND_AUDITS = """
import sys
from appliance.storage.database import Store
store = Store(sys.argv[1])
for i in range(int(sys.argv[2])):
    store.audit("export", "appliance", what=sys.argv[3], n=i)
store.close()
"""


def test_two_processes_appending_audit_entries_keep_one_linear_chain(tmp_path):
    import subprocess
    import sys

    Store(tmp_path / "data").close()
    writers = [subprocess.Popen([sys.executable, "-c", APPEND_AUDITS, str(tmp_path / "data"), "150", name])
               for name in ("kiosk", "archive")]
    assert [writer.wait(timeout=120) for writer in writers] == [0, 0]
    store = Store(tmp_path / "data")
    try:
        entries = store.audit_entries()
        assert len(entries) == 300 and store.verify_audit().ok
        assert {e.details["what"] for e in entries} == {"kiosk", "archive"}
    finally:
        store.close()


# -- the pass and the loop, without a server -------------------------------------------------------

class Stopper:
    """A stop event whose waits are recorded instead of slept; stops after `passes` waits."""

    def __init__(self, passes: int):
        self.waits: list[float] = []
        self.passes = passes

    def is_set(self) -> bool:
        return len(self.waits) >= self.passes

    def wait(self, seconds: float) -> bool:
        self.waits.append(seconds)
        return self.is_set()


def test_the_loop_backs_off_while_the_archive_fails_and_polls_calmly_otherwise(caplog):
    from appliance.archive.service import PassReport, run_forever

    outcomes = iter([PassReport(unavailable=True, problems=["archive: cannot reach the server"])] * 3
                    + [PassReport(refused=True, problems=["archive: credentials refused"])]
                    + [PassReport(archived=["r1"]),
                       PassReport(problems=["recording r2: manifest does not verify"])] * 2)
    stop = Stopper(passes=8)
    run_forever(lambda: next(outcomes), stop, idle_poll_s=15, backoff_s=(5, 10, 30))
    assert stop.waits == [5, 10, 30, 30, 15, 15, 15, 15]
    # A problem that persists is logged once, not at every pass.
    assert caplog.text.count("cannot reach the server") == 1
    assert caplog.text.count("manifest does not verify") == 2        # it went away in between


def test_a_recording_that_is_not_a_verifiable_vault_is_reported_and_never_handed_to_the_uploader(store):
    from appliance.archive.service import archive_pass
    from appliance.vault.signing import DeviceKey

    bad = finished(store)                    # no vault header at all: its manifest cannot verify
    attempted = []
    report = archive_pass(store, lambda recording, _: attempted.append(recording.uid), after_archived=pytest.fail,
                          device_public=DeviceKey.generate().public_key())
    assert attempted == [] and not report.refused and len(report.problems) == 1
    assert bad.uid in report.problems[0] and "manifest does not verify" in report.problems[0]


def test_doctor_says_where_the_only_copy_is():
    from appliance.archive.settings import ArchiveSettings
    from appliance.commands.doctor import OK, WARN, check_archive

    none = check_archive(ArchiveSettings(), ArchiveBacklog(0, 0, None), NOW)
    assert none.outcome == WARN and "exists only on this disk" in none.finding
    archive = ArchiveSettings(endpoint="https://s3.clinic.example", bucket="rec", warn_after_hours=24)
    assert check_archive(archive, ArchiveBacklog(0, 0, None), NOW).outcome == OK
    late = check_archive(archive, ArchiveBacklog(2, 10**9, NOW - 30 * 3600), NOW)
    assert late.outcome == WARN and "2 recordings (1.00 GB) not archived yet, the oldest for 30 h" in late.finding
    assert "journalctl -u appliance-archive" in late.fix
