"""The gateway's own records: one row per recording it found, and an audit trail.

SQLite (stdlib, WAL) in `<gateway.data>/gateway.sqlite3`, 0600 in a 0700 directory. A row is
keyed by where the recording was found (`location`: the source's name for it, made of opaque
uids only) and moves pending -> delivered, or -> failed (retried later, with a growing delay),
or -> refused (verification failed: never sent, never retried; except a recording whose signer
was not enrolled, looked at again once the enrolled keys differ from those it was refused
under). The audit table is append-only and hash-chained exactly like the appliance's
(appliance/storage/audit.py).
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from appliance.errors import IntegrityError
from appliance.storage import audit
from appliance.storage.database import make_private_dir

STATES = ("delivered", "failed", "refused")
EVENTS = frozenset({
    "gateway_pass", "recording_refused", "recording_delivered", "delivery_failed",
    # the portal's (appliance/portal/auth.py, accounts.py): actor = the account or "anonymous"
    "portal_login", "portal_login_failed", "portal_lockout", "portal_logout", "portal_session_expired",
    "portal_refused", "portal_user_added", "portal_user_removed",
    "recording_viewed",   # appliance/portal/review.py
})

_SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    location TEXT PRIMARY KEY,
    recording_id TEXT,
    state TEXT NOT NULL CHECK (state IN ('delivered', 'failed', 'refused')),
    reason TEXT,
    attempts INTEGER NOT NULL,
    next_attempt_at REAL NOT NULL,
    instances TEXT NOT NULL,
    updated_at REAL NOT NULL,
    enrolment TEXT
);
CREATE INDEX IF NOT EXISTS deliveries_by_recording ON deliveries(recording_id, state);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    event TEXT NOT NULL,
    actor TEXT NOT NULL,
    details TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS audit_is_append_only_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_is_append_only_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"""


@dataclass(frozen=True)
class Delivery:
    location: str
    recording_id: str | None
    state: str
    reason: str | None
    attempts: int
    next_attempt_at: float
    instances: tuple[str, ...]     # SOP Instance UIDs the PACS confirmed
    updated_at: float
    # Refused only because its signer was not enrolled: the enrolled keys' fingerprint then
    # (verify.enrolment_fingerprint); None for every other state and refusal.
    enrolment: str | None = None


class GatewayState:
    def __init__(self, data_dir: Path, clock: Callable[[], float] = time.time, *, shared: bool = False):
        """`shared`: the connection may be used from several threads (the portal's), the caller
        serialising every use with its own lock."""
        self.clock = clock
        make_private_dir(Path(data_dir))
        self.path = Path(data_dir) / "gateway.sqlite3"
        if not self.path.exists():
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=not shared)
        try:
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")   # a recorded delivery survives power loss
            self._db.executescript(_SCHEMA)
            columns = {row["name"] for row in self._db.execute("PRAGMA table_info(deliveries)")}
            if "enrolment" not in columns:    # a database from before refusals could be re-checked
                self._db.execute("ALTER TABLE deliveries ADD COLUMN enrolment TEXT")
        except sqlite3.DatabaseError as error:
            self._db.close()
            raise IntegrityError(f"the gateway database {self.path} is damaged ({error}); "
                                 "keep it as evidence") from None

    def close(self) -> None:
        self._db.close()

    # -- deliveries --------------------------------------------------------------------------

    def delivery(self, location: str) -> Delivery | None:
        row = self._db.execute("SELECT * FROM deliveries WHERE location = ?", (location,)).fetchone()
        return _delivery(row) if row else None

    def deliveries(self) -> list[Delivery]:
        return [_delivery(row) for row in self._db.execute("SELECT * FROM deliveries ORDER BY location")]

    def delivered_elsewhere(self, recording_id: str) -> Delivery | None:
        """The delivery of this recording found at another location (a USB copy of an archived one)."""
        row = self._db.execute("SELECT * FROM deliveries WHERE recording_id = ? AND state = 'delivered' "
                               "LIMIT 1", (recording_id,)).fetchone()
        return _delivery(row) if row else None

    def due(self, location: str, *, ignore_backoff: bool = False, enrolment: str | None = None) -> bool:
        """Whether a pass should handle `location`: never seen, failed and its retry is due, or
        refused for a signer not enrolled while the enrolled keys were other than `enrolment`."""
        known = self.delivery(location)
        if known is None:
            return True
        if known.state == "refused":
            return None not in (known.enrolment, enrolment) and known.enrolment != enrolment
        return known.state == "failed" and (ignore_backoff or known.next_attempt_at <= self.clock())

    def refuse(self, location: str, reason: str, recording_id: str | None = None, *,
               enrolment: str | None = None) -> None:
        """Refused for good; with `enrolment` (the enrolled keys' fingerprint) only until those change."""
        self._record(location, recording_id, "refused", reason, (), "recording_refused", retry_in=None,
                     enrolment=enrolment)

    def fail(self, location: str, recording_id: str | None, reason: str, *, retry_s: float,
             retry_max_s: float) -> Delivery:
        known = self.delivery(location)
        delay = min(retry_s * 2 ** (known.attempts if known else 0), retry_max_s)
        self._record(location, recording_id, "failed", reason, (), "delivery_failed", retry_in=delay)
        return self.delivery(location)

    def deliver(self, location: str, recording_id: str, instances: tuple[str, ...]) -> None:
        self._record(location, recording_id, "delivered", None, instances, "recording_delivered", retry_in=None)

    def _record(self, location, recording_id, state, reason, instances, event, *, retry_in,
                enrolment=None) -> None:
        now = self.clock()
        known = self.delivery(location)
        attempts = (known.attempts if known else 0) + (state != "refused")
        with self._transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO deliveries (location, recording_id, state, reason, attempts, "
                "next_attempt_at, instances, updated_at, enrolment) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (location, recording_id, state, reason, attempts, now + (retry_in or 0),
                 json.dumps(list(instances)), now, enrolment))
            details = {"location": location, "recording": recording_id}
            details |= {"reason": reason} if reason else {}
            details |= {"instances": list(instances)} if instances else {}
            self._append_audit(event, details, at=now)

    # -- audit -------------------------------------------------------------------------------

    def audit(self, event: str, actor: str = "gateway", **details) -> None:
        with self._transaction():
            self._append_audit(event, details, at=self.clock(), actor=actor)

    def audit_entries(self) -> list[audit.AuditEntry]:
        return [audit.AuditEntry(row["seq"], row["at"], row["event"], row["actor"], json.loads(row["details"]),
                                 row["prev_hash"], row["hash"])
                for row in self._db.execute("SELECT * FROM audit ORDER BY seq")]

    def verify_audit(self) -> audit.ChainReport:
        return audit.first_broken_link(self.audit_entries())

    def _append_audit(self, event: str, details: dict, *, at: float, actor: str = "gateway") -> None:
        if event not in EVENTS:
            raise ValueError(f"unknown gateway audit event {event!r}")
        last = self._db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        seq, prev_hash = (last["seq"] + 1, last["hash"]) if last else (1, audit.GENESIS)
        digest = audit.entry_hash(prev_hash, seq, at, event, actor, details)
        self._db.execute("INSERT INTO audit (seq, at, event, actor, details, prev_hash, hash) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?)",
                         (seq, at, event, actor, json.dumps(details, sort_keys=True), prev_hash, digest))

    def _transaction(self):
        return _Transaction(self._db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection):
        self._db = db

    def __enter__(self):
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind, value, traceback):
        self._db.execute("ROLLBACK" if kind else "COMMIT")
        return False


def _delivery(row: sqlite3.Row) -> Delivery:
    return Delivery(row["location"], row["recording_id"], row["state"], row["reason"], row["attempts"],
                    row["next_attempt_at"], tuple(json.loads(row["instances"])), row["updated_at"],
                    row["enrolment"])
