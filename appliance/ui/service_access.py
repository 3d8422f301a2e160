"""The service PIN: how it is stored, checked and locked out. Pure apart from reading and
writing the PIN file; no Qt.

The PIN file holds `pbkdf2-sha256$<rounds>$<salt hex>$<hash hex>` (mode 0600). Failed and
successful service logins are audit entries, and the lockout is derived from that trail: five
wrong PINs in a row lock service mode for LOCKOUT_S seconds, and restarting the kiosk does not
reset the count.
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


@dataclass(frozen=True)
class Lockout:
    wrong_in_a_row: int
    locked_until: float | None    # wall clock; None when not locked

    def locked(self, now: float) -> bool:
        return self.locked_until is not None and now < self.locked_until

    def tries_left(self) -> int:
        return max(0, MAX_WRONG_PINS - self.wrong_in_a_row)


def lockout_from(entries, now: float) -> Lockout:
    """The lockout state from the audit trail's service logins (oldest first). A lockout that
    has expired starts a fresh count of tries."""
    wrong, locked_until = 0, None
    for entry in entries:
        if entry.details.get("role") != SERVICE_ROLE:
            continue
        if entry.event == "login":
            wrong, locked_until = 0, None
        elif entry.event == "login_failed":
            if locked_until is not None and entry.at >= locked_until:
                wrong, locked_until = 0, None
            wrong += 1
            if wrong >= MAX_WRONG_PINS and locked_until is None:
                locked_until = entry.at + LOCKOUT_S
    if locked_until is not None and now >= locked_until:
        return Lockout(0, None)
    return Lockout(wrong, locked_until)
