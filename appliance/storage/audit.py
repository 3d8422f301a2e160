"""The audit trail's hash chain: pure functions over entries (no SQLite here).

Each entry's hash is SHA-256 over the previous entry's hash and the entry's canonical JSON
(sorted keys, no whitespace, UTF-8). The first entry's previous hash is 64 zeros. Changing,
removing, inserting or reordering any entry breaks the link at that entry and every later one;
`first_broken_link` names the first. Details never carry subject IDs (PHI): entries refer to
sessions by their opaque uid.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Iterable

GENESIS = "0" * 64

# The events the appliance records (21 CFR Part 11-style: who, what, when).
EVENTS = frozenset({
    "appliance_started", "session_opened", "session_closed", "recording_started",
    "recording_sealed", "recording_interrupted", "fault", "fault_acknowledged", "export",
    "login", "login_failed", "key_used", "emission_unrecorded",
    "recording_archived", "recording_reclaimed",   # the clinic archive (appliance/archive/)
})


def check_event(event: str) -> None:
    if event not in EVENTS:
        raise ValueError(f"unknown audit event {event!r}")


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    at: float          # wall clock, seconds since the epoch
    event: str
    actor: str         # operator ID, "appliance" for automatic actions
    details: dict
    prev_hash: str
    hash: str


def entry_hash(prev_hash: str, seq: int, at: float, event: str, actor: str, details: dict) -> str:
    body = json.dumps({"seq": seq, "at": at, "event": event, "actor": actor, "details": details},
                      sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(bytes.fromhex(prev_hash) + body.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ChainReport:
    entries: int
    broken_at: int | None      # seq of the first entry whose link does not hold
    problem: str | None
    head: str = GENESIS        # hash of the last entry of an intact chain: note it to detect a rewrite later

    @property
    def ok(self) -> bool:
        return self.broken_at is None


def first_broken_link(entries: Iterable[AuditEntry]) -> ChainReport:
    """Walks the chain in seq order and reports the first entry that does not link."""
    previous_hash, expected_seq, count = GENESIS, 1, 0
    for entry in entries:
        count += 1
        if entry.seq != expected_seq:
            return ChainReport(count, entry.seq, f"entry {entry.seq} follows entry {expected_seq - 1}: "
                                                 "entries are missing or reordered")
        if entry.prev_hash != previous_hash:
            return ChainReport(count, entry.seq, f"entry {entry.seq} does not link to entry {entry.seq - 1}")
        if entry_hash(entry.prev_hash, entry.seq, entry.at, entry.event, entry.actor, entry.details) != entry.hash:
            return ChainReport(count, entry.seq, f"entry {entry.seq} was altered after it was written")
        previous_hash, expected_seq = entry.hash, expected_seq + 1
    return ChainReport(count, None, None, previous_hash)
