"""The review list, without Qt: sessions newest first, each with its recordings in order and
marked as the clinician needs to read them (sealed, interrupted, still being recorded), with
their laser emissions. Read by a worker thread through the StoreReader: SQLite never runs on the
GUI thread. Also the seek rules of the "previous/next emission" buttons."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from appliance import timeline
from appliance.storage.reader import StoreReader
from appliance.ui.presentation import format_duration
from appliance.vault.manifest import read_signed

# "Previous emission" within this long after an emission's start goes to the one before it, as a
# media player's "previous" does: the frame shown after a jump lies up to a frame past the start.
PREVIOUS_GRACE_S = 0.5


@dataclass(frozen=True)
class RecordingRow:
    uid: str
    path: Path
    label: str
    playable: bool
    interrupted: bool
    events: tuple[timeline.ClipEvent, ...] | None = None   # None: recorded before events were

    def emissions(self, duration_s: float) -> list[tuple[float, float]]:
        """Laser on -> off intervals within the clip, once its length is known."""
        return timeline.emissions(list(self.events or ()), duration_s)


def clip_events(reader: StoreReader, recording) -> list[timeline.ClipEvent] | None:
    """A recording's controller events: from the database when its sealing committed them there,
    otherwise from the signed manifest beside the vault (a clip salvaged as interrupted). None
    when neither holds a timeline (a clip recorded before events were kept)."""
    if recording.emissions is not None:
        return reader.clip_events(recording.uid)
    signed, _ = read_signed(recording.path)
    if signed is None or timeline.EVENTS_KEY not in signed["metadata"]:
        return None
    try:
        return timeline.events_from_manifest(signed["metadata"])
    except ValueError:          # listed anyway; the clip plays without markers
        return None


def emission_summary(intervals: list[tuple[float, float]]) -> str:
    """'2 emissions, laser on 1.3 s', or 'no laser emission'."""
    if not intervals:
        return "no laser emission"
    total = sum(end - start for start, end in intervals)
    return f"{len(intervals)} emission{'s' * (len(intervals) != 1)}, laser on {total:.1f} s"


def next_emission(intervals: list[tuple[float, float]], position_s: float) -> float | None:
    """Where "next emission" seeks from `position_s`: the first emission starting after it."""
    return next((start for start, _ in intervals if start > position_s + 1e-3), None)


def previous_emission(intervals: list[tuple[float, float]], position_s: float) -> float | None:
    """Where "previous emission" seeks: the last emission starting before `position_s` (less the grace)."""
    earlier = [start for start, _ in intervals if start < position_s - PREVIOUS_GRACE_S]
    return earlier[-1] if earlier else None


def session_heading(summary, emissions: int | None = None) -> str:
    """'2026-11-24 08:14 · Subject PT-0042 · Operator OP-7 · 3 clips, 1 interrupted · 7 emissions'."""
    session = summary.session
    opened = time.strftime("%Y-%m-%d %H:%M", time.localtime(session.opened_at))
    clips = "no clips" if summary.recordings == 0 else f"{summary.recordings} clip{'s' * (summary.recordings != 1)}"
    if summary.interrupted:
        clips += f", {summary.interrupted} interrupted"
    if summary.recording:
        clips += f", {summary.recording} being recorded"
    if emissions is not None:
        clips += f" · {emissions} emission{'s' * (emissions != 1)}"
    return f"{opened} · Subject {session.subject_id} · Operator {session.operator_id} · {clips}"


def recording_rows(reader: StoreReader) -> list[tuple[str, list[RecordingRow]]]:
    """Sessions, newest first, each with its recordings in order, as the list shows them
    (a worker thread reads them: SQLite never runs on the GUI thread)."""
    listing = []
    freed = reader.reclaimed_recordings()   # local copies the archive freed once the archive confirmed them
    for summary in reader.sessions():
        # Clips can share frames (a pre-roll reaching into the last clip): an emission seen by two
        # clips counts once, known by its laser-on edge number, as the database counts them.
        rows, laser_on_edges, measured = [], set(), False
        recordings = reader.recordings(summary.session.uid) if summary.recordings else []
        for number, recording in enumerate(recordings, start=1):
            length = format_duration(recording.duration_s) if recording.duration_s is not None else "–"
            found = clip_events(reader, recording) if recording.state != "recording" else None
            events = tuple(found) if found is not None else None
            # An interrupted clip's length is known only once played: its emissions end at the last edge.
            known_length = recording.duration_s if recording.duration_s is not None else \
                max((event.t for event in events or ()), default=0.0)
            intervals = timeline.emissions(list(events or ()), known_length)
            laser_on_edges.update(event.edge for event in events or () if event.input == "laser" and event.level)
            measured = measured or events is not None
            lasers = f" · {emission_summary(intervals)}" if events is not None else ""
            reclaimed = recording.uid in freed
            if reclaimed:
                label = f"Clip {number} · {length} · in the clinic archive only (local copy freed)"
            elif recording.state == "interrupted":
                label = f"Clip {number} · {length} · INTERRUPTED: ends early{lasers}"
            elif recording.state == "recording":
                label = f"Clip {number} · being recorded"
            else:
                label = f"Clip {number} · {length} · sealed{lasers}"
            playable = recording.state != "recording" and not reclaimed
            rows.append(RecordingRow(recording.uid, recording.path, label, playable,
                                     recording.state == "interrupted", events))
        listing.append((session_heading(summary, len(laser_on_edges) if measured else None), rows))
    return listing
