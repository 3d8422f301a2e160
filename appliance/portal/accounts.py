"""Portal accounts and their server-side sessions, in the gateway's database (gateway.sqlite3,
tables of their own beside the deliveries and the audit trail).

Passwords are stored as Argon2id hashes (argon2-cffi's defaults); a session is a random token
the browser holds (in Flask's signed cookie) of which only the SHA-256 is stored, so a copy of
the database opens no session. Wrong passwords count per account; `lockout_failures` in a row
lock it for `lockout_minutes`. An unknown name costs the same hash as a known one and gets the
same answer (the caller's), so trying names tells an attacker nothing about which exist.

Each check costs Argon2's 64 MiB: at most PASSWORD_CHECKS run at once (a login that cannot get a
turn within BUSY_WAIT_S is told the portal is busy), so anonymous logins on every request thread
cannot take the unit past its memory limit. Failures also count per client address
(ADDRESS_FAILURES per ADDRESS_WINDOW_S; flood.py): one address cannot guess across many names.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from appliance.errors import BadInput
from appliance.portal.flood import FailureThrottle
from appliance.storage.database import make_private_dir

ROLES = ("clinician", "it")
MIN_PASSWORD_LENGTH = 12
# A session's idle time restarts at most this often: a session may end up to this much sooner
# than idle_minutes after its last request, and a playing video does not write on every range.
RENEW_S = 30.0
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
PASSWORD_CHECKS = 2           # Argon2 checks at once: 2 x 64 MiB within the unit's MemoryMax
BUSY_WAIT_S = 5.0             # a login waits this long for a turn, then hears "busy"
ADDRESS_FAILURES = 20         # failed logins from one client address ...
ADDRESS_WINDOW_S = 15 * 60.0  # ... per this long, then it is refused until the window ends

_SCHEMA = """
CREATE TABLE IF NOT EXISTS portal_accounts (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    failures INTEGER NOT NULL DEFAULT 0,
    locked_until REAL NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS portal_sessions (
    token_hash TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    created_at REAL NOT NULL,
    last_seen REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS portal_sessions_by_account ON portal_sessions(account);
"""


@dataclass(frozen=True)
class User:
    name: str
    role: str     # "clinician" or "it"


@dataclass(frozen=True)
class LoginResult:
    user: User | None          # set when the password was right and the account not locked
    known: bool                # the name is an account (for the audit trail, never the answer)
    locked: bool = False       # the account is locked (now or already)
    locked_now: bool = False   # this failure locked it
    retry_after_s: float = 0   # > 0: this client address failed too often; nothing was checked


class PortalBusy(Exception):
    """Every password-check turn stayed taken for BUSY_WAIT_S: try again shortly."""


@dataclass(frozen=True)
class SessionLookup:
    user: User | None          # the session's user, its idle time renewed
    expired: str | None = None   # the account whose session just ended for idleness


class Accounts:
    """Thread-safe: one connection behind a lock (the portal serves from many threads)."""

    def __init__(self, database_path: Path, clock: Callable[[], float], *, hasher: PasswordHasher | None = None,
                 busy_wait_s: float = BUSY_WAIT_S):
        self._clock = clock
        self._hasher = hasher or PasswordHasher()
        self._lock = threading.Lock()
        self._checks = threading.BoundedSemaphore(PASSWORD_CHECKS)
        self._busy_wait_s = busy_wait_s
        self._throttle = FailureThrottle(ADDRESS_FAILURES, ADDRESS_WINDOW_S)
        make_private_dir(Path(database_path).parent)
        if not Path(database_path).exists():   # 0600 from the start, as the gateway makes it
            os.close(os.open(database_path, os.O_CREAT | os.O_WRONLY, 0o600))
        self._db = sqlite3.connect(database_path, isolation_level=None, check_same_thread=False, timeout=30)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        self._decoy: str | None = None

    def close(self) -> None:
        self._db.close()

    # -- accounts ----------------------------------------------------------------------------

    def add(self, name: str, role: str, password: str) -> User:
        if not NAME.fullmatch(name):
            raise BadInput(f"account name must be 1 to 64 of letters, digits and . _ @ - , got {name!r}")
        if role not in ROLES:
            raise BadInput(f"role must be one of {', '.join(ROLES)}, got {role!r}")
        if len(password) < MIN_PASSWORD_LENGTH:
            raise BadInput(f"the password must be at least {MIN_PASSWORD_LENGTH} characters long")
        if any(user.name == name for user in self.users()):   # before a second of hashing; the insert still decides
            raise _taken(name)
        password_hash = self._hasher.hash(password)
        with self._lock:
            try:
                self._db.execute("INSERT INTO portal_accounts (name, role, password_hash) VALUES (?, ?, ?)",
                                 (name, role, password_hash))
            except sqlite3.IntegrityError:
                raise _taken(name) from None
        return User(name, role)

    def remove(self, name: str) -> None:
        """The account and, at once, every session it has."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                gone = self._db.execute("DELETE FROM portal_accounts WHERE name = ?", (name,)).rowcount
                self._db.execute("DELETE FROM portal_sessions WHERE account = ?", (name,))
            finally:
                self._db.execute("COMMIT")
        if not gone:
            raise BadInput(f"no account named {name!r}")

    def users(self) -> list[User]:
        with self._lock:
            rows = self._db.execute("SELECT name, role FROM portal_accounts ORDER BY name").fetchall()
        return [User(row["name"], row["role"]) for row in rows]

    # -- logging in --------------------------------------------------------------------------

    def log_in(self, name: str, password: str, *, client: str, failures_allowed: int, lockout_s: float
               ) -> LoginResult:
        """`client`: the caller's address (failures count per address too). PortalBusy when no
        password-check turn came free in time."""
        if (retry_after := self._throttle.retry_after(client, self._clock())) > 0:
            return LoginResult(None, known=False, retry_after_s=retry_after)
        if not self._checks.acquire(timeout=self._busy_wait_s):
            raise PortalBusy()
        try:
            result = self._check(name, password, failures_allowed=failures_allowed, lockout_s=lockout_s)
        finally:
            self._checks.release()
        if result.user is None:
            self._throttle.failed(client, self._clock())
        return result

    def _check(self, name: str, password: str, *, failures_allowed: int, lockout_s: float) -> LoginResult:
        decoy = self._decoy_hash()
        with self._lock:
            row = self._db.execute("SELECT * FROM portal_accounts WHERE name = ?", (name,)).fetchone()
        right = self._verify(row["password_hash"] if row else decoy, password)
        if row is None:
            return LoginResult(None, known=False)
        now = self._clock()
        with self._lock:
            # Read again under the lock: concurrent failures must each count.
            row = self._db.execute("SELECT * FROM portal_accounts WHERE name = ?", (name,)).fetchone()
            if row is None:
                return LoginResult(None, known=False)
            if row["locked_until"] > now:
                return LoginResult(None, known=True, locked=True)
            if right:
                self._db.execute("UPDATE portal_accounts SET failures = 0, locked_until = 0 WHERE name = ?", (name,))
                if self._hasher.check_needs_rehash(row["password_hash"]):
                    self._db.execute("UPDATE portal_accounts SET password_hash = ? WHERE name = ?",
                                     (self._hasher.hash(password), name))
                return LoginResult(User(row["name"], row["role"]), known=True)
            failures = row["failures"] + 1
            locked_now = failures >= failures_allowed
            self._db.execute("UPDATE portal_accounts SET failures = ?, locked_until = ? WHERE name = ?",
                             (0 if locked_now else failures, now + lockout_s if locked_now else 0, name))
        return LoginResult(None, known=True, locked=locked_now, locked_now=locked_now)

    def _decoy_hash(self) -> str:
        """Verified against when the name is unknown, so that answer costs the same time. Made on
        the first login of any name (not at start: the CLI never needs it), so that one extra
        hash says nothing about the name either."""
        with self._lock:
            if self._decoy is None:
                self._decoy = self._hasher.hash(secrets.token_hex(16))
            return self._decoy

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    # -- sessions ----------------------------------------------------------------------------

    def open_session(self, user: User) -> str:
        token = secrets.token_urlsafe(32)
        now = self._clock()
        with self._lock:
            self._db.execute("INSERT INTO portal_sessions (token_hash, account, created_at, last_seen) "
                             "VALUES (?, ?, ?, ?)", (_digest(token), user.name, now, now))
        return token

    def purge_idle(self, *, idle_s: float) -> list[str]:
        """Deletes the sessions idle longer than `idle_s` (a browser that never came back would
        otherwise keep its row for ever); the accounts whose sessions ended, one per session."""
        cutoff = self._clock() - idle_s
        with self._lock:
            rows = self._db.execute("DELETE FROM portal_sessions WHERE last_seen < ? RETURNING account",
                                    (cutoff,)).fetchall()
        return sorted(row["account"] for row in rows)

    def session(self, token: str, *, idle_s: float) -> SessionLookup:
        """The session's user, renewing its idle time; an idle one ends here."""
        now = self._clock()
        with self._lock:
            row = self._db.execute(
                "SELECT s.account, s.last_seen, a.role FROM portal_sessions s "
                "JOIN portal_accounts a ON a.name = s.account WHERE s.token_hash = ?", (_digest(token),)).fetchone()
            if row is None:
                return SessionLookup(None)
            if now - row["last_seen"] > idle_s:
                self._db.execute("DELETE FROM portal_sessions WHERE token_hash = ?", (_digest(token),))
                return SessionLookup(None, expired=row["account"])
            if now - row["last_seen"] >= RENEW_S:   # not a disk write for every range request of a video
                self._db.execute("UPDATE portal_sessions SET last_seen = ? WHERE token_hash = ?",
                                 (now, _digest(token)))
        return SessionLookup(User(row["account"], row["role"]))

    def end_session(self, token: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM portal_sessions WHERE token_hash = ?", (_digest(token),))


def _taken(name: str) -> BadInput:
    return BadInput(f"account {name!r} already exists (remove it first to replace it)")


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
