"""The service PIN: how it is stored, checked and locked out. Pure apart from reading and
writing the PIN file; no Qt.

The PIN file holds `pbkdf2-sha256$<rounds>$<salt hex>$<hash hex>` (mode 0600). Failed and
successful service logins are audit entries, and the lockout is derived from that trail once at
start (then kept in memory): five wrong PINs in a row lock service mode for LOCKOUT_S seconds,
and restarting the kiosk does not reset the count.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from pathlib import Path

from appliance.atomic import write_atomically
from appliance.errors import BadInput

PIN_ROUNDS = 200_000
MAX_WRONG_PINS = 5
LOCKOUT_S = 300.0
MIN_PIN_LENGTH = 6
SERVICE_ROLE = "service"


def hash_pin(pin: str, *, salt: bytes | None = None, rounds: int = PIN_ROUNDS) -> str:
    if len(pin) < MIN_PIN_LENGTH or not pin.isdigit():
        raise BadInput(f"the service PIN must be at least {MIN_PIN_LENGTH} digits")
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", pin.encode(), salt, rounds)
    return f"pbkdf2-sha256${rounds}${salt.hex()}${digest.hex()}"


def pin_matches(pin: str, record: str) -> bool:
    try:
        scheme, rounds, salt, expected = record.strip().split("$")
        if scheme != "pbkdf2-sha256":
            return False
        digest = hashlib.pbkdf2_hmac("sha256", pin.encode(), bytes.fromhex(salt), int(rounds))
    except ValueError:
        return False
    return hmac.compare_digest(digest.hex(), expected)


def write_pin(path: Path, pin: str) -> None:
    """Stores the PIN's hash atomically, readable by the owner only."""
    write_atomically(path, (hash_pin(pin) + "\n").encode(), overwrite=True)


def read_pin(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        return None


def check_pin(pin: str, pin_path: Path) -> bool | str:
    """Whether `pin` is the service PIN, or what to say when none is set. PBKDF2 is slow: the
    kiosk calls this on a worker thread."""
    record = read_pin(pin_path)
    if record is None:
        return "No service PIN is set on this appliance (appliance kiosk --set-service-pin)."
    return pin_matches(pin, record)


@dataclass(frozen=True)
class Lockout:
    """Where the count of wrong service PINs stands. The kiosk derives it once from the audit
    trail at start, then keeps it in memory, applying each attempt as the audit entry is written."""

    wrong_in_a_row: int = 0
    locked_until: float | None = None    # wall clock; None when not locked

    def locked(self, now: float) -> bool:
        return self.locked_until is not None and now < self.locked_until

    def tries_left(self) -> int:
        return max(0, MAX_WRONG_PINS - self.wrong_in_a_row)

    def as_of(self, now: float) -> Lockout:
        """A lockout that has expired starts a fresh count of tries."""
        return Lockout() if self.locked_until is not None and now >= self.locked_until else self

    def after_wrong_pin(self, at: float) -> Lockout:
        wrong = self.as_of(at).wrong_in_a_row + 1
        locked_until = self.locked_until if self.locked(at) else None
        if wrong >= MAX_WRONG_PINS and locked_until is None:
            locked_until = at + LOCKOUT_S
        return Lockout(wrong, locked_until)


def lockout_from(entries, now: float) -> Lockout:
    """The lockout state from the audit trail's service logins (oldest first; a successful
    login resets the count, so the entries from the last one on are enough)."""
    lockout = Lockout()
    for entry in entries:
        if entry.details.get("role") != SERVICE_ROLE:
            continue
        if entry.event == "login":
            lockout = Lockout()
        elif entry.event == "login_failed":
            lockout = lockout.after_wrong_pin(entry.at)
    return lockout.as_of(now)
