"""Sessions, recordings and the audit trail in one SQLite file (stdlib sqlite3, WAL).

The schema is versioned with `PRAGMA user_version`; `MIGRATIONS[i]` brings version i to i+1
inside one transaction, so an interrupted upgrade leaves the old version intact. The audit table
refuses UPDATE and DELETE (triggers) and every entry is chained (appliance/storage/audit.py).
Where the files live: appliance/storage/layout.py.

A Store is the one read-write connection and belongs to the thread that opened it (sqlite3
enforces that): in the appliance, the DatabaseWriter's thread (appliance/storage/writer.py), which
runs every write in turn; others read through a StoreReader (appliance/storage/reader.py).
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from appliance import timeline
from appliance.errors import BadInput, IntegrityError
from appliance.storage import audit
from appliance.storage.identifiers import validated_id, validated_subject_id
from appliance.storage.layout import DataLayout
from appliance.storage.queries import ArchivedRecording, RecordQueries, Recording, Session, SessionSummary

# Two processes write this file: the appliance (its DatabaseWriter) and the archive. Every write
# is a short BEGIN IMMEDIATE transaction, so the other waits for the lock instead of failing;
# reading the audit head and appending to it happen under that one lock, so the chain stays
# linear across processes.
BUSY_TIMEOUT_S = 30.0

__all__ = ["MIGRATIONS", "ArchivedRecording", "Recording", "Session", "SessionSummary", "Store", "make_private_dir"]

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE sessions (
        uid TEXT PRIMARY KEY,
        subject_id TEXT NOT NULL,
        operator_id TEXT NOT NULL,
        opened_at REAL NOT NULL,
        closed_at REAL
    );
    CREATE TABLE recordings (
        uid TEXT PRIMARY KEY,
        session_uid TEXT NOT NULL REFERENCES sessions(uid),
        path TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('recording', 'sealed', 'interrupted')),
        started_at REAL NOT NULL,
        ended_at REAL,
        bytes INTEGER,
        duration_s REAL,
        frames INTEGER,
        dropped INTEGER,
        sha256 TEXT,
        manifest TEXT
    );
    CREATE INDEX recordings_by_session ON recordings(session_uid, started_at);
    CREATE TABLE audit (
        seq INTEGER PRIMARY KEY,
        at REAL NOT NULL,
        event TEXT NOT NULL,
        actor TEXT NOT NULL,
        details TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    );
    CREATE TRIGGER audit_is_append_only_update BEFORE UPDATE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TRIGGER audit_is_append_only_delete BEFORE DELETE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    """,
    # The service-PIN lockout reads only the login attempts (StoreReader.recent_logins).
    "CREATE INDEX audit_by_event ON audit(event, seq);",
    # The treatment timeline (appliance/timeline.py): a sealed clip's controller edges on its own
    # clock, copied from its signed manifest, and its totals for listings.
    """
    ALTER TABLE recordings ADD COLUMN laser_on_s REAL;
    ALTER TABLE recordings ADD COLUMN emissions INTEGER;
    CREATE TABLE clip_events (
        recording_uid TEXT NOT NULL REFERENCES recordings(uid),
        t REAL NOT NULL,
        input TEXT NOT NULL CHECK (input IN ('laser', 'footswitch', 'interlock')),
        level INTEGER NOT NULL CHECK (level IN (0, 1)),
        edge INTEGER NOT NULL
    );
    CREATE INDEX clip_events_by_recording ON clip_events(recording_uid, t);
    """,
    # The clinic archive (appliance/archive/): a recording is archived once a HEAD confirmed its
    # vault and manifest objects (size, whole-file SHA-256, retention); the disk guard may then
    # reclaim the local copy (reclaimed_at). No PHI: keys carry only opaque uids.
    """
    CREATE TABLE archived (
        recording_uid TEXT PRIMARY KEY REFERENCES recordings(uid),
        vault_key TEXT NOT NULL,
        vault_version TEXT,
        manifest_key TEXT NOT NULL,
        manifest_version TEXT,
        bytes INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        retain_until REAL,
        archived_at REAL NOT NULL,
        reclaimed_at REAL
    );
    """,
    # A session opened from the worklist (appliance/control/identity.py): what files its videos
    # in the clinic's records. Never the patient's name or birth date (those travel sealed).
    """
    ALTER TABLE sessions ADD COLUMN accession_number TEXT NOT NULL DEFAULT '';
    ALTER TABLE sessions ADD COLUMN study_instance_uid TEXT NOT NULL DEFAULT '';
    """,
)


class Store(RecordQueries):
    """The appliance's records under `data_dir`; creates the directory and database if needed.
    `clock` stamps every row and audit entry (wall clock; documentation renders pass a fixed one)."""

    def __init__(self, data_dir: Path, clock: Callable[[], float] = time.time):
        self.layout = DataLayout(Path(data_dir))
        self.clock = clock
        make_private_dir(self.data_dir)
        make_private_dir(self.sessions_dir)
        self.path = self.layout.database
        if not self.path.exists():
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        self._db = sqlite3.connect(self.path, isolation_level=None, timeout=BUSY_TIMEOUT_S)
        try:
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")   # a committed seal survives power loss
            self._db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.DatabaseError as error:
            self._db.close()
            raise damaged_database(self.path, error) from None
        except BaseException:
            self._db.close()
            raise

    @property
    def data_dir(self) -> Path:
        return self.layout.root

    @property
    def sessions_dir(self) -> Path:
        return self.layout.sessions

    def close(self) -> None:
        self._db.close()

    def _rows(self, sql: str, params=()) -> list[sqlite3.Row]:
        return self._db.execute(sql, params).fetchall()

    # -- schema ------------------------------------------------------------------------------

    @property
    def schema_version(self) -> int:
        return self._db.execute("PRAGMA user_version").fetchone()[0]

    def _migrate(self) -> None:
        version = self.schema_version
        if version > len(MIGRATIONS):
            raise too_new(self.path, version)
        for target, script in enumerate(MIGRATIONS[version:], start=version + 1):
            with self.transaction():
                for statement in _split_sql(script):
                    if statement.strip():
                        self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version = {target}")

    # -- sessions ----------------------------------------------------------------------------

    def open_session(self, subject_id: str, operator_id: str, *, accession_number: str = "",
                     study_instance_uid: str = "") -> Session:
        subject_id = validated_subject_id(subject_id)
        operator_id = validated_id("operator ID", operator_id)
        uid, now = uuid.uuid4().hex, self.clock()
        make_private_dir(self.layout.session_dir(uid))
        with self.transaction():
            self._db.execute("INSERT INTO sessions (uid, subject_id, operator_id, opened_at, accession_number, "
                             "study_instance_uid) VALUES (?, ?, ?, ?, ?, ?)",
                             (uid, subject_id, operator_id, now, accession_number, study_instance_uid))
            self._append_audit("session_opened", operator_id, {"session": uid}, at=now)
        return self.session(uid)

    def close_session(self, uid: str) -> Session:
        now = self.clock()
        with self.transaction():
            session = self.session(uid)
            self._db.execute("UPDATE sessions SET closed_at = ? WHERE uid = ? AND closed_at IS NULL", (now, uid))
            self._append_audit("session_closed", session.operator_id, {"session": uid}, at=now)
        return self.session(uid)

    # -- recordings --------------------------------------------------------------------------

    def start_recording(self, session_uid: str) -> Recording:
        """A new row in state `recording`; the caller writes the vault at `Recording.path`."""
        uid, now = uuid.uuid4().hex, self.clock()
        relative = self.layout.recording_path(session_uid, uid).relative_to(self.layout.root)
        with self.transaction():
            session = self.session(session_uid)
            self._db.execute("INSERT INTO recordings (uid, session_uid, path, state, started_at) "
                             "VALUES (?, ?, ?, 'recording', ?)", (uid, session_uid, str(relative), now))
            self._append_audit("recording_started", session.operator_id,
                               {"session": session_uid, "recording": uid}, at=now)
        return self.recording(uid)

    def seal_recording(self, uid: str, *, bytes: int, duration_s: float, frames: int, dropped: int,
                       sha256: str, manifest: dict) -> Recording:
        return self._finish_recording(uid, "sealed", bytes=bytes, duration_s=duration_s, frames=frames,
                                      dropped=dropped, sha256=sha256, manifest=manifest)

    def interrupt_recording(self, uid: str, *, reason: str, bytes: int | None = None, sha256: str | None = None,
                            frames: int | None = None, dropped: int | None = None, duration_s: float | None = None,
                            manifest: dict | None = None) -> Recording:
        return self._finish_recording(uid, "interrupted", reason=reason, bytes=bytes, duration_s=duration_s,
                                      frames=frames, dropped=dropped, sha256=sha256, manifest=manifest)

    def _finish_recording(self, uid: str, state: str, *, reason: str | None = None, **figures) -> Recording:
        now = self.clock()
        with self.transaction():
            recording = self.recording(uid)
            if recording.state != "recording":
                raise BadInput(f"recording {uid} is already {recording.state}")
            manifest = figures.pop("manifest")
            self._db.execute(
                "UPDATE recordings SET state = ?, ended_at = ?, bytes = ?, duration_s = ?, frames = ?, "
                "dropped = ?, sha256 = ?, manifest = ? WHERE uid = ?",
                (state, now, figures["bytes"], figures["duration_s"], figures["frames"], figures["dropped"],
                 figures["sha256"], json.dumps(manifest, sort_keys=True) if manifest is not None else None, uid))
            self._store_timeline(uid, manifest or {})
            details = {"session": recording.session_uid, "recording": uid, "sha256": figures["sha256"],
                       "bytes": figures["bytes"], "frames": figures["frames"], "dropped": figures["dropped"]}
            if reason is not None:
                details["reason"] = reason
            self._append_audit(f"recording_{state}", "appliance", details, at=now)
        return self.recording(uid)

    def _store_timeline(self, uid: str, manifest: dict) -> None:
        events = timeline.events_from_manifest(manifest)
        totals = manifest.get(timeline.TIMELINE_KEY)
        if totals is None:
            return   # a manifest from before the timeline, or a clip salvaged without one
        self._db.execute("UPDATE recordings SET laser_on_s = ?, emissions = ? WHERE uid = ?",
                         (totals["laser_on_s"], len(totals["emissions"]), uid))
        self._db.executemany("INSERT INTO clip_events (recording_uid, t, input, level, edge) VALUES (?, ?, ?, ?, ?)",
                             [(uid, event.t, event.input, event.level, event.edge) for event in events])

    # -- archive -----------------------------------------------------------------------------

    def mark_archived(self, archived: ArchivedRecording) -> ArchivedRecording:
        """Records a HEAD-confirmed archive copy, with its audit entry, in one transaction."""
        with self.transaction():
            recording = self.recording(archived.recording_uid)
            self._db.execute(
                "INSERT INTO archived (recording_uid, vault_key, vault_version, manifest_key, manifest_version, "
                "bytes, sha256, retain_until, archived_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (archived.recording_uid, archived.vault_key, archived.vault_version, archived.manifest_key,
                 archived.manifest_version, archived.bytes, archived.sha256, archived.retain_until,
                 archived.archived_at))
            self._append_audit("recording_archived", "appliance",
                               {"session": recording.session_uid, "recording": recording.uid,
                                "key": archived.vault_key, "version": archived.vault_version,
                                "sha256": archived.sha256, "bytes": archived.bytes,
                                "retain_until": archived.retain_until}, at=self.clock())
        return self.archived_recording(archived.recording_uid)

    def mark_reclaimed(self, recording_uid: str, freed_bytes: int) -> None:
        """Notes that the disk guard deleted the local copy of an archived recording (audited)."""
        now = self.clock()
        with self.transaction():
            archived = self.archived_recording(recording_uid)
            if archived.reclaimed_at is not None:
                raise BadInput(f"recording {recording_uid} was already reclaimed")
            self._db.execute("UPDATE archived SET reclaimed_at = ? WHERE recording_uid = ?", (now, recording_uid))
            self._append_audit("recording_reclaimed", "appliance",
                               {"recording": recording_uid, "key": archived.vault_key, "bytes": freed_bytes},
                               at=now)

    # -- audit -------------------------------------------------------------------------------

    def audit(self, event: str, actor: str = "appliance", **details) -> audit.AuditEntry:
        """Appends one chained entry. `details` must not carry subject IDs."""
        with self.transaction():
            return self._append_audit(event, actor, details, at=self.clock())

    def _append_audit(self, event: str, actor: str, details: dict, *, at: float) -> audit.AuditEntry:
        audit.check_event(event)
        last = self._db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        seq, prev_hash = (last["seq"] + 1, last["hash"]) if last else (1, audit.GENESIS)
        digest = audit.entry_hash(prev_hash, seq, at, event, actor, details)
        self._db.execute("INSERT INTO audit (seq, at, event, actor, details, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?)",
                         (seq, at, event, actor, json.dumps(details, sort_keys=True), prev_hash, digest))
        return audit.AuditEntry(seq, at, event, actor, details, prev_hash, digest)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """BEGIN IMMEDIATE ... COMMIT, ROLLBACK on any error; nested uses join the outer one."""
        if self._db.in_transaction:
            yield
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")


def damaged_database(path: Path, error: sqlite3.DatabaseError) -> IntegrityError:
    return IntegrityError(f"the database {path} is damaged or not an appliance database "
                          f"({error}); keep it as evidence and call service")


def too_new(path: Path, version: int) -> BadInput:
    return BadInput(f"the database {path} has schema version {version}, newer than this "
                    f"appliance understands ({len(MIGRATIONS)}); update the software")


def make_private_dir(path: Path) -> None:
    """Creates `path` (and parents) as 0700; tightens an existing directory to 0700."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)


def _split_sql(script: str) -> list[str]:
    """Statements of a migration script; trigger bodies keep their inner semicolons."""
    statements, current = [], []
    for line in script.splitlines(keepends=True):
        current.append(line)
        text = "".join(current)
        if sqlite3.complete_statement(text):
            statements.append(text)
            current = []
    statements.append("".join(current))
    return statements
