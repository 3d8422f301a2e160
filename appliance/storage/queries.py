"""The read side of the records, shared by Store (the writer's read-write connection) and
StoreReader (read-only): the SQL and the mapping of rows to Session, Recording and AuditEntry.

A class using RecordQueries provides `layout` and `_rows(sql, params)`; every query here is one
statement, so each answer is one consistent snapshot even while the writer commits.
"""

from __future__ import annotations

import json
import sqlite3
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from appliance.errors import BadInput
from appliance.storage import audit
from appliance.storage.layout import DataLayout
from appliance.timeline import ClipEvent


@dataclass(frozen=True)
class Session:
    uid: str
    subject_id: str
    operator_id: str
    opened_at: float
    closed_at: float | None
    dir: Path
    accession_number: str = ""      # from the worklist entry the session was opened with, else ""
    study_instance_uid: str = ""


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
    laser_on_s: float | None = None   # None: sealed before the timeline, or no manifest
    emissions: int | None = None


@dataclass(frozen=True)
class SessionSummary:
    """A session with how many of its recordings are in each state: one row of a listing."""

    session: Session
    sealed: int
    interrupted: int
    recording: int          # rows whose writer has not finished (in progress, or a crash not yet recovered)
    emissions: int = 0      # laser emissions on video in the session (one seen by two clips counts once)

    @property
    def recordings(self) -> int:
        return self.sealed + self.interrupted + self.recording


@dataclass(frozen=True)
class ArchivedRecording:
    """A recording's HEAD-confirmed copy in the clinic archive (appliance/archive/)."""

    recording_uid: str
    vault_key: str
    vault_version: str | None
    manifest_key: str
    manifest_version: str | None
    bytes: int
    sha256: str                       # whole-file SHA-256 of the vault, as the archive confirmed it
    retain_until: float | None        # None: the bucket keeps it without Object Lock (retention_days = 0)
    archived_at: float
    reclaimed_at: float | None = None  # the disk guard deleted the local copy


@dataclass(frozen=True)
class ArchiveBacklog:
    """Finished recordings not archived yet: what the clinic is missing a second copy of."""

    count: int
    bytes: int
    oldest_ended_at: float | None     # None when nothing is waiting


class RecordQueries(ABC):
    layout: DataLayout

    @abstractmethod
    def _rows(self, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
        """The rows `sql` selects, on the subclass's own connection."""

    # -- sessions ----------------------------------------------------------------------------

    def session(self, uid: str) -> Session:
        rows = self._rows("SELECT * FROM sessions WHERE uid = ?", (uid,))
        if not rows:
            raise BadInput(f"no session {uid}")
        return self._session_from(rows[0])

    def open_sessions(self) -> list[Session]:
        return [self._session_from(row)
                for row in self._rows("SELECT * FROM sessions WHERE closed_at IS NULL ORDER BY opened_at")]

    def sessions(self) -> list[SessionSummary]:
        """Every session, newest first, with its recordings counted by state (one query)."""
        rows = self._rows(
            "SELECT s.*, "
            "COUNT(CASE WHEN r.state = 'sealed' THEN 1 END) AS sealed, "
            "COUNT(CASE WHEN r.state = 'interrupted' THEN 1 END) AS interrupted, "
            "COUNT(CASE WHEN r.state = 'recording' THEN 1 END) AS recording, "
            # Clips can share frames (a pre-roll reaching into the last clip): an emission in
            # two clips is one emission, known by its laser-on edge number.
            "(SELECT COUNT(DISTINCT e.edge) FROM clip_events e JOIN recordings er ON er.uid = e.recording_uid "
            " WHERE er.session_uid = s.uid AND e.input = 'laser' AND e.level = 1) AS emissions "
            "FROM sessions s LEFT JOIN recordings r ON r.session_uid = s.uid "
            "GROUP BY s.uid ORDER BY s.opened_at DESC, s.rowid DESC")
        return [SessionSummary(self._session_from(row), row["sealed"], row["interrupted"], row["recording"],
                               row["emissions"]) for row in rows]

    def _session_from(self, row: sqlite3.Row) -> Session:
        return Session(row["uid"], row["subject_id"], row["operator_id"], row["opened_at"], row["closed_at"],
                       self.layout.session_dir(row["uid"]), row["accession_number"], row["study_instance_uid"])

    # -- recordings --------------------------------------------------------------------------

    def recording(self, uid: str) -> Recording:
        rows = self._rows("SELECT * FROM recordings WHERE uid = ?", (uid,))
        if not rows:
            raise BadInput(f"no recording {uid}")
        return self._recording_from(rows[0])

    def recordings(self, session_uid: str) -> list[Recording]:
        rows = self._rows("SELECT * FROM recordings WHERE session_uid = ? ORDER BY started_at, rowid", (session_uid,))
        return [self._recording_from(row) for row in rows]

    def open_recordings(self) -> list[Recording]:
        """Recordings whose writer never finished: what start-up recovery must mark interrupted."""
        rows = self._rows("SELECT * FROM recordings WHERE state = 'recording' ORDER BY started_at")
        return [self._recording_from(row) for row in rows]

    def _recording_from(self, row: sqlite3.Row) -> Recording:
        return Recording(
            uid=row["uid"], session_uid=row["session_uid"], path=self.layout.root / row["path"], state=row["state"],
            started_at=row["started_at"], ended_at=row["ended_at"], bytes=row["bytes"], duration_s=row["duration_s"],
            frames=row["frames"], dropped=row["dropped"], sha256=row["sha256"],
            manifest=json.loads(row["manifest"]) if row["manifest"] else None,
            laser_on_s=row["laser_on_s"], emissions=row["emissions"])

    def clip_events(self, recording_uid: str) -> list[ClipEvent]:
        """A clip's controller edges, seconds from its first frame, in time order."""
        rows = self._rows("SELECT t, input, level, edge FROM clip_events WHERE recording_uid = ? ORDER BY t, rowid",
                          (recording_uid,))
        return [ClipEvent(row["t"], row["input"], row["level"], row["edge"]) for row in rows]

    def unrecorded_emissions(self) -> int:
        """Laser emissions the appliance saw while nothing recorded, over its whole audit trail."""
        return self._rows("SELECT COUNT(*) AS n FROM audit WHERE event = 'emission_unrecorded'")[0]["n"]

    # -- archive -----------------------------------------------------------------------------

    def unarchived_recordings(self) -> list[Recording]:
        """Sealed and interrupted recordings without a confirmed archive copy, oldest first."""
        rows = self._rows("SELECT r.* FROM recordings r LEFT JOIN archived a ON a.recording_uid = r.uid "
                          "WHERE r.state IN ('sealed', 'interrupted') AND a.recording_uid IS NULL "
                          "ORDER BY r.started_at, r.rowid")
        return [self._recording_from(row) for row in rows]

    def archive_backlog(self) -> ArchiveBacklog:
        row = self._rows("SELECT COUNT(*) AS n, COALESCE(SUM(r.bytes), 0) AS bytes, "
                         "MIN(COALESCE(r.ended_at, r.started_at)) AS oldest "
                         "FROM recordings r LEFT JOIN archived a ON a.recording_uid = r.uid "
                         "WHERE r.state IN ('sealed', 'interrupted') AND a.recording_uid IS NULL")[0]
        return ArchiveBacklog(row["n"], row["bytes"], row["oldest"])

    def last_recording_at(self) -> float | None:
        """When the newest recording started (any state); None before the first."""
        return self._rows("SELECT MAX(started_at) AS t FROM recordings")[0]["t"]

    def archived_recording(self, recording_uid: str) -> ArchivedRecording:
        rows = self._rows("SELECT * FROM archived WHERE recording_uid = ?", (recording_uid,))
        if not rows:
            raise BadInput(f"recording {recording_uid} is not archived")
        return _archived_from(rows[0])

    def reclaimed_recordings(self) -> set[str]:
        """Uids of the recordings whose local copy the archive freed (they are in the archive only)."""
        return {row["recording_uid"] for row in self._rows("SELECT recording_uid FROM archived "
                                                           "WHERE reclaimed_at IS NOT NULL")}

    def archived_recordings(self, *, local_only: bool = False) -> list[tuple[Recording, ArchivedRecording]]:
        """Archived recordings, oldest first; `local_only`: those whose local copy still exists."""
        rows = self._rows("SELECT r.*, a.recording_uid, a.vault_key, a.vault_version, a.manifest_key, "
                          "a.manifest_version, a.bytes AS archived_bytes, a.sha256 AS archived_sha256, "
                          "a.retain_until, a.archived_at, a.reclaimed_at "
                          "FROM recordings r JOIN archived a ON a.recording_uid = r.uid "
                          + ("WHERE a.reclaimed_at IS NULL " if local_only else "")
                          + "ORDER BY r.started_at, r.rowid")
        return [(self._recording_from(row), _archived_from(row, prefix="archived_")) for row in rows]

    # -- audit -------------------------------------------------------------------------------

    def audit_entries(self) -> list[audit.AuditEntry]:
        return [_entry_from(row) for row in self._rows("SELECT * FROM audit ORDER BY seq")]

    def verify_audit(self) -> audit.ChainReport:
        return audit.first_broken_link(self.audit_entries())

    def recent_logins(self, role: str) -> list[audit.AuditEntry]:
        """The `role`'s login attempts from its last successful login on (that one included),
        oldest first: all a lockout needs, without reading the rest of the trail."""
        rows = self._rows(
            "SELECT * FROM audit WHERE event IN ('login', 'login_failed') "
            "AND json_extract(details, '$.role') = :role AND seq >= coalesce(("
            "  SELECT max(seq) FROM audit WHERE event = 'login' AND json_extract(details, '$.role') = :role"
            "), 0) ORDER BY seq", {"role": role})
        return [_entry_from(row) for row in rows]


def _archived_from(row: sqlite3.Row, prefix: str = "") -> ArchivedRecording:
    """`prefix` names bytes and sha256 when joined with a recordings row that has its own."""
    return ArchivedRecording(row["recording_uid"], row["vault_key"], row["vault_version"], row["manifest_key"],
                             row["manifest_version"], row[prefix + "bytes"], row[prefix + "sha256"],
                             row["retain_until"], row["archived_at"], row["reclaimed_at"])


def _entry_from(row: sqlite3.Row) -> audit.AuditEntry:
    return audit.AuditEntry(row["seq"], row["at"], row["event"], row["actor"], json.loads(row["details"]),
                            row["prev_hash"], row["hash"])
