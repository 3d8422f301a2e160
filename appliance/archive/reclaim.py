"""Reclaiming local space: the one rule by which the appliance ever deletes a recording.

The local copy of a recording may go only when (1) the archive confirmed it (a row in
`archived`, written after a HEAD showed size, SHA-256 and retention) under a retention: with
`retention_days = 0` (no Object Lock) the archived copy could be deleted by anyone with the
bucket's credentials, so the local one would not be a backup but the only safe copy, and stays;
(2) it ended more than
`[archive] keep_local_days` ago, and (3) space is needed: free space no longer holds a
full-length session above the reserve (what the disk guard needs to arm). Oldest first, and
only as many as make the space. Right before deleting, the archive process asks the archive
again (a fresh HEAD); when the archive does not answer or the copy is not as recorded, nothing
is deleted. It runs in the archive process because only that process has the network to ask.

`bytes_needed` and `choose` are pure; `reclaim` is the thin shell.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from appliance.storage.queries import ArchivedRecording, Recording
from appliance.vault.manifest import manifest_path

DAY_S = 86_400.0

log = logging.getLogger("appliance.archive")


@dataclass(frozen=True)
class Candidate:
    recording_uid: str
    ended_at: float
    local_bytes: int        # the vault and its manifest on disk


def bytes_needed(*, free_bytes: int, bitrate_bps: float, reserve_bytes: int, max_session_s: float) -> int:
    """How many bytes must be freed so a full-length session fits above the reserve; 0 when
    it already fits."""
    wanted = reserve_bytes + max_session_s * bitrate_bps / 8
    return max(0, int(wanted - free_bytes + 0.999))


def choose(candidates: Sequence[Candidate], *, now: float, keep_local_days: float, needed: int) -> list[Candidate]:
    """The archived recordings to delete locally: older than keep_local_days, oldest first,
    no more than free `needed` bytes. Candidates must all be archived and confirmed."""
    if needed <= 0:
        return []
    cutoff = now - keep_local_days * DAY_S
    chosen, freed = [], 0
    for candidate in sorted(candidates, key=lambda c: (c.ended_at, c.recording_uid)):
        if freed >= needed:
            break
        if candidate.ended_at < cutoff:
            chosen.append(candidate)
            freed += candidate.local_bytes
    return chosen


def candidates_from(archived: Sequence[tuple[Recording, ArchivedRecording]]) -> list[Candidate]:
    """The archived recordings whose local copy still exists, with their size on disk; only
    those archived under a retention (retain-until recorded), whose archived copy cannot be
    deleted."""
    found = []
    for recording, copy in archived:
        if copy.retain_until is None:
            continue
        files = [recording.path, manifest_path(recording.path)]
        size = sum(path.stat().st_size for path in files if path.exists())
        if size and recording.ended_at is not None:
            found.append(Candidate(recording.uid, recording.ended_at, size))
    return found


def reclaim(store, *, needed: int, now: float, keep_local_days: float,
            still_archived: Callable[[ArchivedRecording], str | None]) -> list[str]:
    """Deletes the chosen local copies, each only after `still_archived` (a fresh HEAD) returned
    None; audits each (`recording_reclaimed`). Returns the uids deleted. A copy the archive
    does not confirm stops the reclaim: something is wrong with the archive, so nothing more
    is deleted this pass."""
    archived = store.archived_recordings(local_only=True)
    by_uid = {recording.uid: (recording, copy) for recording, copy in archived}
    deleted = []
    for candidate in choose(candidates_from(archived), now=now, keep_local_days=keep_local_days, needed=needed):
        recording, copy = by_uid[candidate.recording_uid]
        problem = still_archived(copy)
        if problem is not None:
            log.warning("not reclaiming recording %s: %s", recording.uid, problem)
            break
        _delete_local_copy(recording.path)
        store.mark_reclaimed(recording.uid, candidate.local_bytes)
        deleted.append(recording.uid)
    return deleted


def _delete_local_copy(vault_path: Path) -> None:
    """The vault first, then its manifest: a crash in between leaves a manifest without a vault,
    which `vault verify` reports plainly, never a vault without its signature."""
    vault_path.unlink(missing_ok=True)
    manifest_path(vault_path).unlink(missing_ok=True)
