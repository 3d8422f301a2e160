"""The one database writer (a thread owning the read-write Store) and the read-only StoreReader:
order, failures that stay on their Future, draining on close, and reads that never wait for a
write transaction."""

from __future__ import annotations

import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from appliance.errors import BadInput, IntegrityError
from appliance.storage.database import MIGRATIONS, Store
from appliance.storage.layout import DataLayout
from appliance.storage.reader import StoreReader
from appliance.storage.writer import DatabaseWriter, WriterClosed
from appliance.ui.service_access import SERVICE_ROLE, lockout_from

EVENT_BOUND_S = 5.0     # only bounds a failure: a broken writer would otherwise hang the test


@pytest.fixture
def writer(tmp_path):
    started = DatabaseWriter(tmp_path / "data").start()
    yield started
    started.close()


@pytest.fixture
def reader(writer):
    opened = StoreReader(writer.layout.root)
    yield opened
    opened.close()


def hold_writer(writer, *, in_transaction: bool):
    """Occupies the writer thread until the returned `release` is set; `inside` is set once it is."""
    inside, release = threading.Event(), threading.Event()

    def work(store):
        if not in_transaction:
            inside.set()
            release.wait(EVENT_BOUND_S)
            return
        with store.transaction():
            store.open_session("PAT-UNCOMMITTED", "TECH-7")
            inside.set()
            release.wait(EVENT_BOUND_S)

    held = writer.submit(work)
    assert inside.wait(EVENT_BOUND_S)
    return release, held


def test_writes_run_in_submission_order_and_chain(writer, reader):
    futures = [writer.audit("login_failed", "service", role="service", attempt=n) for n in range(20)]
    writer.call(lambda store: None)
    assert all(f.done() for f in futures)
    assert [e.details["attempt"] for e in reader.audit_entries()] == list(range(20))
    assert reader.verify_audit().ok


def test_submit_returns_at_once_while_the_writer_is_busy(writer, reader):
    release, held = hold_writer(writer, in_transaction=False)
    queued = writer.audit("login")
    assert not queued.done()            # submit did not wait for the busy writer
    release.set()
    assert queued.result(EVENT_BOUND_S).event == "login"
    held.result(EVENT_BOUND_S)


def test_a_failure_lands_on_its_future_and_the_writer_carries_on(writer, reader):
    session = writer.call(lambda store: store.open_session("PAT-0001", "TECH-7"))

    def duplicate_session(store):
        with store.transaction():
            store.audit("login")        # rolled back with the failing insert below
            store._db.execute("INSERT INTO sessions (uid, subject_id, operator_id, opened_at) "
                              "VALUES (?, 'x', 'y', 0)", (session.uid,))

    with pytest.raises(sqlite3.IntegrityError):
        writer.call(duplicate_session)
    with pytest.raises(BadInput, match="no session"):
        writer.call(lambda store: store.close_session("no-such-session"))
    assert writer.call(lambda store: store.close_session(session.uid)).closed_at is not None
    assert [e.event for e in reader.audit_entries()] == ["session_opened", "session_closed"]


def test_close_drains_what_was_submitted(tmp_path):
    writer = DatabaseWriter(tmp_path / "data").start()
    release, _ = hold_writer(writer, in_transaction=False)
    pending = [writer.audit("fault", kind="camera_lost", n=n) for n in range(30)]
    release.set()
    writer.close()
    assert all(f.result(0).event == "fault" for f in pending)
    reader = StoreReader(tmp_path / "data")
    assert len(reader.audit_entries()) == 30
    reader.close()
    with pytest.raises(WriterClosed):
        writer.submit(lambda store: None)
    writer.close()                      # a second close is harmless


def test_only_the_writer_thread_can_use_the_store(writer):
    store = writer.call(lambda store: store)
    with pytest.raises(sqlite3.ProgrammingError, match="thread"):
        store.audit("login")


def test_waiting_on_the_writer_from_inside_its_work_is_refused(writer):
    with pytest.raises(RuntimeError, match="wait for itself"):
        writer.call(lambda store: writer.call(lambda inner: None))


def test_an_unknown_audit_event_is_refused_at_the_call(writer):
    with pytest.raises(ValueError, match="unknown audit event"):
        writer.audit("coffee_break")


def test_start_reports_a_damaged_database(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    DataLayout(data).database.write_bytes(b"this is not SQLite" * 100)
    with pytest.raises(IntegrityError, match="damaged"):
        DatabaseWriter(data).start()


def test_the_reader_does_not_wait_for_a_write_transaction(writer, reader):
    committed = writer.call(lambda store: store.open_session("PAT-0001", "TECH-7"))
    release, held = hold_writer(writer, in_transaction=True)
    try:
        with ThreadPoolExecutor(1) as pool:
            # sqlite3 would wait 5 s for a lock before failing; the bound is well below that
            listed = pool.submit(reader.sessions).result(timeout=2.0)
        assert [s.session.uid for s in listed] == [committed.uid]    # the last commit, not the open write
        assert reader._rows("PRAGMA journal_mode")[0][0] == "wal"
    finally:
        release.set()
    held.result(EVENT_BOUND_S)
    assert len(reader.sessions()) == 2


def test_the_reader_refuses_to_write(writer, reader):
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        reader._rows("INSERT INTO sessions (uid, subject_id, operator_id, opened_at) VALUES ('u', 's', 'o', 0)")
    assert reader.sessions() == []


def test_the_reader_returns_the_same_records_as_the_store(writer, reader):
    def session_with_a_recording(store: Store):
        session = store.open_session("PAT-0001", "TECH-7")
        recording = store.start_recording(session.uid)
        return store.session(session.uid), recording, store.sessions()

    session, recording, summaries = writer.call(session_with_a_recording)
    assert reader.session(session.uid) == session
    assert reader.recordings(session.uid) == [recording] and reader.recording(recording.uid) == recording
    assert reader.sessions() == summaries and reader.open_recordings() == [recording]


@pytest.mark.parametrize("attempts", [
    [],
    ["login_failed"] * 3,
    ["login_failed"] * 4 + ["login"] + ["login_failed"] * 2,
    ["login_failed"] * 6 + ["login"],
    ["login", "login_failed", "login", "login_failed", "login_failed"],
])
def test_recent_logins_decide_the_lockout_as_the_whole_trail_does(writer, reader, attempts):
    def record(store):
        for n, event in enumerate(attempts):
            store.audit(event, SERVICE_ROLE, role=SERVICE_ROLE)
            store.audit("login_failed", "clinician", role="clinician")     # another role's tries do not count
            store.audit("export", "TECH-7", n=n)
    writer.call(record)
    now = writer.clock()
    recent = reader.recent_logins(SERVICE_ROLE)
    assert all(e.details["role"] == SERVICE_ROLE for e in recent)
    assert lockout_from(recent, now) == lockout_from(reader.audit_entries(), now)
    assert "login" not in [e.event for e in recent[1:]]    # nothing before the last success is read


def test_recent_logins_use_an_index_not_the_whole_trail(reader):
    plan = " ".join(row[3] for row in reader._rows("EXPLAIN QUERY PLAN SELECT * FROM audit "
                                                    "WHERE event IN ('login', 'login_failed') ORDER BY seq"))
    assert "audit_by_event" in plan


def test_the_reader_needs_a_database_it_understands(tmp_path):
    with pytest.raises(BadInput, match="no appliance database"):
        StoreReader(tmp_path)
    Store(tmp_path).close()
    with sqlite3.connect(DataLayout(tmp_path).database) as db:
        db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    with pytest.raises(BadInput, match="newer"):
        StoreReader(tmp_path)
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    DataLayout(damaged).database.write_bytes(b"this is not SQLite" * 100)
    with pytest.raises(IntegrityError, match="damaged"):
        StoreReader(damaged)
