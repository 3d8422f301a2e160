"""Sessions, recordings and the audit trail in one SQLite file (stdlib sqlite3, WAL).

The schema is versioned with `PRAGMA user_version`; `MIGRATIONS[i]` brings version i to i+1
inside one transaction, so an interrupted upgrade leaves the old version intact. The audit table
refuses UPDATE and DELETE (triggers) and every entry is chained (appliance/storage/audit.py).

Layout under the data directory (dirs 0700, files 0600; no subject ID in any path):
    appliance.sqlite3                      this database
    sessions/<session uid>/                one directory per session
    sessions/<session uid>/<recording uid>.mp4.vault   one encrypted recording (+ .manifest)

One connection, shared by the controller thread and its sealing workers under a lock.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from appliance.errors import BadInput, IntegrityError
from appliance.storage import audit
from appliance.storage.identifiers import validated_id

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
)

RECORDING_SUFFIX = ".mp4.vault"


@dataclass(frozen=True)
class Session:
    uid: str
    subject_id: str
    operator_id: str
    opened_at: float
    closed_at: float | None
    dir: Path


@dataclass(frozen=True)
class Recording:
    uid: str
    session_uid: str
    path: Path
    state: str
    started_at: float
    ended_at: float | None = None
    bytes: int | None = None
    duration_s: float | None = None
    frames: int | None = None
    dropped: int | None = None
    sha256: str | None = None
    manifest: dict | None = None


@dataclass(frozen=True)
class SessionSummary:
    """A session with how many of its recordings are in each state: one row of a listing."""

    session: Session
    sealed: int
    interrupted: int
    recording: int          # rows whose writer has not finished (in progress, or a crash not yet recovered)

    @property
    def recordings(self) -> int:
        return self.sealed + self.interrupted + self.recording


class Store:
    """The appliance's records under `data_dir`; creates the directory and database if needed.
    `clock` stamps every row and audit entry (wall clock; documentation renders pass a fixed one)."""

    def __init__(self, data_dir: Path, clock: Callable[[], float] = time.time):
        self.data_dir = Path(data_dir)
        self.clock = clock
        make_private_dir(self.data_dir)
        make_private_dir(self.sessions_dir)
        self.path = self.data_dir / "appliance.sqlite3"
        if not self.path.exists():
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        try:
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")   # a committed seal survives power loss
            self._db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.DatabaseError as error:
            self._db.close()
            raise IntegrityError(f"the database {self.path} is damaged or not an appliance database "
                                 f"({error}); keep it as evidence and call service") from None
        except BaseException:
            self._db.close()
            raise

    @property
    def sessions_dir(self) -> Path:
        return self.data_dir / "sessions"

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- schema ------------------------------------------------------------------------------

    @property
    def schema_version(self) -> int:
        return self._db.execute("PRAGMA user_version").fetchone()[0]

    def _migrate(self) -> None:
        with self._lock:
            version = self.schema_version
            if version > len(MIGRATIONS):
                raise BadInput(f"the database {self.path} has schema version {version}, newer than this "
                               f"appliance understands ({len(MIGRATIONS)}); update the software")
            for target, script in enumerate(MIGRATIONS[version:], start=version + 1):
                statements = [s.strip() for s in _split_sql(script) if s.strip()]
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    for statement in statements:
                        self._db.execute(statement)
                    self._db.execute(f"PRAGMA user_version = {target}")
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise

    # -- sessions ----------------------------------------------------------------------------

    def open_session(self, subject_id: str, operator_id: str) -> Session:
        subject_id = validated_id("subject ID", subject_id)
        operator_id = validated_id("operator ID", operator_id)
        uid, now = uuid.uuid4().hex, self.clock()
        make_private_dir(self.sessions_dir / uid)
        with self._transaction():
            self._db.execute("INSERT INTO sessions (uid, subject_id, operator_id, opened_at) VALUES (?, ?, ?, ?)",
                             (uid, subject_id, operator_id, now))
            self._append_audit("session_opened", operator_id, {"session": uid}, at=now)
        return self.session(uid)

    def close_session(self, uid: str) -> Session:
        now = self.clock()
        with self._transaction():
            session = self.session(uid)
            self._db.execute("UPDATE sessions SET closed_at = ? WHERE uid = ? AND closed_at IS NULL", (now, uid))
            self._append_audit("session_closed", session.operator_id, {"session": uid}, at=now)
        return self.session(uid)

    def session(self, uid: str) -> Session:
        with self._lock:
            row = self._db.execute("SELECT * FROM sessions WHERE uid = ?", (uid,)).fetchone()
        if row is None:
            raise BadInput(f"no session {uid}")
        return self._session_from(row)

    def open_sessions(self) -> list[Session]:
        with self._lock:
            uids = [r[0] for r in self._db.execute("SELECT uid FROM sessions WHERE closed_at IS NULL ORDER BY opened_at")]
        return [self.session(uid) for uid in uids]

    def sessions(self) -> list[SessionSummary]:
        """Every session, newest first, with its recordings counted by state (one query)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT s.*, "
                "COUNT(CASE WHEN r.state = 'sealed' THEN 1 END) AS sealed, "
                "COUNT(CASE WHEN r.state = 'interrupted' THEN 1 END) AS interrupted, "
                "COUNT(CASE WHEN r.state = 'recording' THEN 1 END) AS recording "
                "FROM sessions s LEFT JOIN recordings r ON r.session_uid = s.uid "
                "GROUP BY s.uid ORDER BY s.opened_at DESC, s.rowid DESC").fetchall()
        return [SessionSummary(self._session_from(row), row["sealed"], row["interrupted"], row["recording"])
                for row in rows]

    def _session_from(self, row: sqlite3.Row) -> Session:
        return Session(row["uid"], row["subject_id"], row["operator_id"], row["opened_at"], row["closed_at"],
                       self.sessions_dir / row["uid"])

    # -- recordings --------------------------------------------------------------------------

    def start_recording(self, session_uid: str) -> Recording:
        """A new row in state `recording`; the caller writes the vault at `Recording.path`."""
        uid, now = uuid.uuid4().hex, self.clock()
        relative = Path("sessions") / session_uid / f"{uid}{RECORDING_SUFFIX}"
        with self._transaction():
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
        with self._transaction():
            recording = self.recording(uid)
            if recording.state != "recording":
                raise BadInput(f"recording {uid} is already {recording.state}")
            manifest = figures.pop("manifest")
            self._db.execute(
                "UPDATE recordings SET state = ?, ended_at = ?, bytes = ?, duration_s = ?, frames = ?, "
                "dropped = ?, sha256 = ?, manifest = ? WHERE uid = ?",
                (state, now, figures["bytes"], figures["duration_s"], figures["frames"], figures["dropped"],
                 figures["sha256"], json.dumps(manifest, sort_keys=True) if manifest is not None else None, uid))
            details = {"session": recording.session_uid, "recording": uid, "sha256": figures["sha256"],
                       "bytes": figures["bytes"], "frames": figures["frames"], "dropped": figures["dropped"]}
            if reason is not None:
                details["reason"] = reason
            self._append_audit(f"recording_{state}", "appliance", details, at=now)
        return self.recording(uid)

    def recording(self, uid: str) -> Recording:
        with self._lock:
            row = self._db.execute("SELECT * FROM recordings WHERE uid = ?", (uid,)).fetchone()
        if row is None:
            raise BadInput(f"no recording {uid}")
        return self._recording_from(row)

    def recordings(self, session_uid: str) -> list[Recording]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM recordings WHERE session_uid = ? ORDER BY started_at, rowid",
                                    (session_uid,)).fetchall()
        return [self._recording_from(row) for row in rows]

    def open_recordings(self) -> list[Recording]:
        """Recordings whose writer never finished: what start-up recovery must mark interrupted."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM recordings WHERE state = 'recording' ORDER BY started_at").fetchall()
        return [self._recording_from(row) for row in rows]

    def _recording_from(self, row: sqlite3.Row) -> Recording:
        return Recording(
            uid=row["uid"], session_uid=row["session_uid"], path=self.data_dir / row["path"], state=row["state"],
            started_at=row["started_at"], ended_at=row["ended_at"], bytes=row["bytes"], duration_s=row["duration_s"],
            frames=row["frames"], dropped=row["dropped"], sha256=row["sha256"],
            manifest=json.loads(row["manifest"]) if row["manifest"] else None)

    # -- audit -------------------------------------------------------------------------------

    def audit(self, event: str, actor: str = "appliance", **details) -> audit.AuditEntry:
        """Appends one chained entry. `details` must not carry subject IDs."""
        with self._transaction():
            return self._append_audit(event, actor, details, at=self.clock())

    def audit_entries(self) -> list[audit.AuditEntry]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM audit ORDER BY seq").fetchall()
        return [audit.AuditEntry(r["seq"], r["at"], r["event"], r["actor"], json.loads(r["details"]),
                                 r["prev_hash"], r["hash"]) for r in rows]

    def verify_audit(self) -> audit.ChainReport:
        return audit.first_broken_link(self.audit_entries())

    def _append_audit(self, event: str, actor: str, details: dict, *, at: float) -> audit.AuditEntry:
        if event not in audit.EVENTS:
            raise ValueError(f"unknown audit event {event!r}")
        last = self._db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        seq, prev_hash = (last["seq"] + 1, last["hash"]) if last else (1, audit.GENESIS)
        digest = audit.entry_hash(prev_hash, seq, at, event, actor, details)
        self._db.execute("INSERT INTO audit (seq, at, event, actor, details, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?)",
                         (seq, at, event, actor, json.dumps(details, sort_keys=True), prev_hash, digest))
        return audit.AuditEntry(seq, at, event, actor, details, prev_hash, digest)

    def _transaction(self):
        return _Transaction(self._db, self._lock)


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT under the store's lock; ROLLBACK on any error."""

    def __init__(self, db: sqlite3.Connection, lock: threading.RLock):
        self._db, self._lock, self._outer = db, lock, False

    def __enter__(self):
        self._lock.acquire()
        self._outer = not self._db.in_transaction
        if self._outer:
            self._db.execute("BEGIN IMMEDIATE")
        return self

    def __exit__(self, kind, value, traceback):
        try:
            if self._outer:
                self._db.execute("COMMIT" if kind is None else "ROLLBACK")
        finally:
            self._lock.release()
        return False


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
