"""The review list, without Qt: sessions newest first, each with its recordings in order and
marked as the clinician needs to read them (sealed, interrupted, still being recorded). Read
by a worker thread through the StoreReader: SQLite never runs on the GUI thread."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from appliance.storage.reader import StoreReader
from appliance.ui.presentation import format_duration


@dataclass(frozen=True)
class RecordingRow:
    uid: str
    path: Path
    label: str
    playable: bool
    interrupted: bool


def session_heading(summary) -> str:
    """'2026-11-24 08:14 · Subject PT-0042 · Operator OP-7 · 3 clips, 1 interrupted'."""
    session = summary.session
    opened = time.strftime("%Y-%m-%d %H:%M", time.localtime(session.opened_at))
    clips = "no clips" if summary.recordings == 0 else f"{summary.recordings} clip{'s' * (summary.recordings != 1)}"
    if summary.interrupted:
        clips += f", {summary.interrupted} interrupted"
    if summary.recording:
        clips += f", {summary.recording} being recorded"
    return f"{opened} · Subject {session.subject_id} · Operator {session.operator_id} · {clips}"


def recording_rows(reader: StoreReader) -> list[tuple[str, list[RecordingRow]]]:
    """Sessions, newest first, each with its recordings in order, as the list shows them
    (a worker thread reads them: SQLite never runs on the GUI thread)."""
    listing = []
    for summary in reader.sessions():
        rows = []
        recordings = reader.recordings(summary.session.uid) if summary.recordings else []
        for number, recording in enumerate(recordings, start=1):
            length = format_duration(recording.duration_s) if recording.duration_s is not None else "–"
            if recording.state == "interrupted":
                label = f"Clip {number} · {length} · INTERRUPTED: ends early"
            elif recording.state == "recording":
                label = f"Clip {number} · being recorded"
            else:
                label = f"Clip {number} · {length} · sealed"
            rows.append(RecordingRow(recording.uid, recording.path, label, recording.state != "recording",
                                     recording.state == "interrupted"))
        listing.append((session_heading(summary), rows))
    return listing
