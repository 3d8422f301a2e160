"""The archive backlog in words: pure projections for `appliance doctor`, `appliance archive
status`, the service screen and the start-screen warning (no Qt, no I/O).

The backlog is every sealed or interrupted recording without a HEAD-confirmed archive copy
(StoreReader.archive_backlog). Its age is measured from when the oldest one ended: that is
how long the clinic has had only one copy of it.
"""

from __future__ import annotations

from appliance.storage.queries import ArchiveBacklog

HOUR_S = 3600.0


def oldest_age_s(backlog: ArchiveBacklog, now: float) -> float | None:
    """Seconds since the oldest unarchived recording ended; None when nothing waits."""
    if backlog.oldest_ended_at is None:
        return None
    return max(0.0, now - backlog.oldest_ended_at)


def describe_age(seconds: float) -> str:
    """An age as a person reads it: minutes below an hour, hours below two days, then days."""
    if seconds < HOUR_S:
        return f"{int(seconds // 60)} min"
    if seconds < 48 * HOUR_S:
        return f"{int(seconds // HOUR_S)} h"
    return f"{int(seconds // (24 * HOUR_S))} days"


def backlog_line(backlog: ArchiveBacklog, now: float) -> str:
    """One line: how many recordings, how many bytes, and how long the oldest has waited."""
    age = oldest_age_s(backlog, now)
    if age is None:
        return "every finished recording is archived"
    what = "1 recording" if backlog.count == 1 else f"{backlog.count} recordings"
    return f"{what} ({backlog.bytes / 1e9:.2f} GB) not archived yet, the oldest for {describe_age(age)}"


def overdue(backlog: ArchiveBacklog, now: float, warn_after_hours: float) -> bool:
    """Whether the oldest unarchived recording has waited longer than the clinic allows."""
    age = oldest_age_s(backlog, now)
    return age is not None and age > warn_after_hours * HOUR_S


def start_screen_warning(backlog: ArchiveBacklog | None, now: float, warn_after_hours: float) -> str | None:
    """The start screen's warning once a recording has waited too long for its archive copy,
    else None (also while the backlog is not read yet)."""
    if backlog is None or not overdue(backlog, now, warn_after_hours):
        return None
    return (f"⚠ Archive: {backlog_line(backlog, now)}. "
            "These recordings exist only on this appliance: call clinic IT.")


def as_json(backlog: ArchiveBacklog, now: float, warn_after_hours: float) -> dict:
    """The backlog for `appliance archive status --json`."""
    age = oldest_age_s(backlog, now)
    return {"count": backlog.count, "bytes": backlog.bytes,
            "oldest_age_s": round(age, 1) if age is not None else None,
            "overdue": overdue(backlog, now, warn_after_hours)}
