"""Object Lock as the settings ask it: the headers a new object carries, and whether an object
the server holds (its HEAD) is retained and held at least that much."""

from __future__ import annotations

import datetime

from appliance.archive.settings import ArchiveSettings

RETENTION_SLACK = datetime.timedelta(hours=1)   # clocks differ; S3 keeps whole seconds


def lock_arguments(settings: ArchiveSettings, now: datetime.datetime) -> dict:
    """The Object Lock arguments of a PUT or CreateMultipartUpload made at `now` (UTC)."""
    lock = {}
    if settings.retention_days:
        until = now.replace(microsecond=0) + datetime.timedelta(days=settings.retention_days)
        lock |= {"ObjectLockMode": settings.retention_mode, "ObjectLockRetainUntilDate": until}
    if settings.legal_hold:
        lock["ObjectLockLegalHoldStatus"] = "ON"
    return lock


def retention_needed(settings: ArchiveSettings, head: dict) -> datetime.datetime | None:
    """The retain-until an object needs when it is retained shorter than the settings ask
    (retention_days after it was written, in the settings' mode), else None."""
    if not settings.retention_days:
        return None
    until = head["LastModified"] + datetime.timedelta(days=settings.retention_days)
    held = head.get("ObjectLockRetainUntilDate")
    if head.get("ObjectLockMode") == settings.retention_mode and held is not None \
            and held >= until - RETENTION_SLACK:
        return None
    return until


def hold_missing(settings: ArchiveSettings, head: dict) -> bool:
    return settings.legal_hold and head.get("ObjectLockLegalHoldStatus") != "ON"
