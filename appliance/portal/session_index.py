"""The review's JSON documents, built from recording entries (pure: no I/O).

Sessions group by session uid, newest first; a session's patient is what its recordings'
identity cards say, and only when they agree. Times are seconds since the epoch; `date` is the
calendar day in the zone given (the gateway's own), for grouping by date. These documents carry
PHI (names, birth dates): they go out only in response bodies sent with `no-store`, never into
URLs or logs.
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Iterable

from appliance.portal.archived_recordings import RecordingEntry

PATIENT_FIELDS = ("patient_name", "patient_id", "birth_date", "sex")
STUDY_FIELDS = ("accession_number", "requested_procedure", "scheduled_start", "study_instance_uid", "source",
                "operator_id")
DIFFERENT_PATIENTS = "its recordings' identity cards name different patients"


def state(entry: RecordingEntry) -> str:
    """'sealed', 'interrupted' (cut short by a crash: plays up to its last complete second), or
    'refused' (entry.problem says why; never played)."""
    return "refused" if entry.problem else "interrupted" if entry.interrupted else "sealed"


def recording_summary(entry: RecordingEntry) -> dict:
    intervals = entry.emissions
    return {"uid": entry.uid, "state": state(entry), "problem": entry.problem,
            "started_at": entry.started_at, "signed_at": entry.signed_at, "duration_s": entry.duration_s,
            "timeline": entry.has_timeline, "emissions": len(intervals),
            "laser_on_s": round(sum(end - start for start, end in intervals), 3)}


def recording_document(entry: RecordingEntry) -> dict:
    """GET /api/recordings/<uid>: metadata, state and the treatment timeline."""
    card = entry.card or {}
    return {**recording_summary(entry), "session": entry.session_uid, "device": entry.device_id,
            "size": entry.size,
            "patient": _fields(card, PATIENT_FIELDS) if entry.card else None,
            "study": _fields(card, STUDY_FIELDS) if entry.card else None,
            "events": [event.as_dict() for event in entry.events],
            "emission_intervals": [[round(start, 3), round(end, 3)] for start, end in entry.emissions],
            "video": None if entry.problem else f"/recordings/{entry.uid}/video"}


def sessions(entries: Iterable[RecordingEntry], zone: tzinfo | None = None) -> list[dict]:
    """GET /api/sessions: every session with its recordings in recording order, newest first."""
    grouped: dict[str, list[RecordingEntry]] = {}
    for entry in entries:
        grouped.setdefault(entry.session_uid, []).append(entry)
    documents = [_session(uid, sorted(members, key=_recording_order), zone) for uid, members in grouped.items()]
    return sorted(documents, key=lambda document: (document["started_at"] is not None,
                                                   document["started_at"] or 0.0, document["session"]),
                  reverse=True)


def session_document(entries: Iterable[RecordingEntry], session_uid: str, zone: tzinfo | None = None) -> dict | None:
    members = sorted((entry for entry in entries if entry.session_uid == session_uid), key=_recording_order)
    return _session(session_uid, members, zone) if members else None


def _session(uid: str, members: list[RecordingEntry], zone: tzinfo | None) -> dict:
    cards = [entry.card for entry in members if entry.card is not None]
    patients = {tuple(card[name] for name in PATIENT_FIELDS) for card in cards}
    agreed = len(patients) == 1
    started = min((_when(entry) for entry in members if _when(entry) is not None), default=None)
    return {"session": uid, "devices": sorted({entry.device_id for entry in members}),
            "started_at": started,
            "date": datetime.fromtimestamp(started, zone).date().isoformat() if started is not None else None,
            "patient": _fields(cards[0], PATIENT_FIELDS) if agreed else None,
            "study": _fields(cards[0], STUDY_FIELDS) if agreed else None,
            "problem": DIFFERENT_PATIENTS if len(patients) > 1 else None,
            "recordings": [recording_summary(entry) for entry in members]}


def _when(entry: RecordingEntry) -> float | None:
    """When the clip began, or, not knowing (interrupted), when it was signed."""
    return entry.started_at if entry.started_at is not None else entry.signed_at


def _recording_order(entry: RecordingEntry) -> tuple:
    when = _when(entry)
    return (when is None, when or 0.0, entry.uid)


def _fields(card: dict, names: tuple[str, ...]) -> dict:
    return {name: card.get(name, "") for name in names}
