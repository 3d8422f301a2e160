"""The archive as the review sees it: every recording in the bucket, from its signed manifest.

Listing the bucket and downloading manifests (small; never a vault) is all it does with S3.
Each manifest is checked (archived_recordings.py) and its identity card opened in memory only;
the result is cached per object ETag, so a refresh downloads only what is new or changed, and
the bucket is listed at most every `refresh_s` seconds. When the archive cannot be listed, the
last listing stays and `problem` says why. Logs name object keys (uids) and problems, never a
card's content.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from appliance.portal import session_index
from appliance.portal.archived_recordings import (MAX_MANIFEST_BYTES, ArchivedObject, ArchivedRecording,
                                                  RecordingEntry, entry_from_manifest, pair_objects, unverified,
                                                  withheld)

__all__ = ["Library", "RecordingEntry"]

log = logging.getLogger("appliance.portal")
MANIFEST_DOWNLOADS = 8     # at once, on the first listing of a full bucket


class Library:
    def __init__(self, archive_client: Callable[[], object], bucket: str, devices: list, identity, *,
                 clock: Callable[[], float] = time.time, refresh_s: float = 30.0):
        self._archive_client, self._bucket = archive_client, bucket
        self._devices, self._identity = devices, identity
        self._clock, self._refresh_s = clock, refresh_s
        self._refreshing = threading.Lock()
        self._entries: dict[str, RecordingEntry] = {}       # by recording uid
        self._cache: dict[tuple, RecordingEntry] = {}        # by the objects' keys, sizes and ETags
        self._listed_at: float | None = None
        self.problem: str | None = None                      # why the last listing failed

    def sessions(self) -> list[dict]:
        return session_index.sessions(self._current())

    def session(self, session_uid: str) -> dict | None:
        return session_index.session_document(self._current(), session_uid)

    def recording(self, uid: str) -> RecordingEntry | None:
        """A known recording at once, without listing (the video route asks on every range
        request, and archived objects do not change); an unknown uid lists when one is due."""
        entry = self._entries.get(uid)
        if entry is None:
            self._refresh_if_due()
            entry = self._entries.get(uid)
        return entry

    def _current(self) -> list[RecordingEntry]:
        self._refresh_if_due()
        return list(self._entries.values())

    def _refresh_if_due(self) -> None:
        """One listing at a time; a request arriving meanwhile waits for it and takes its result.
        Readers never wait: the entries are replaced whole when a listing is done."""
        with self._refreshing:
            now = self._clock()
            if self._listed_at is not None and now - self._listed_at < self._refresh_s:
                return
            self._listed_at = now
            from botocore.exceptions import BotoCoreError, ClientError

            from appliance.archive import s3

            try:
                self._refresh(self._archive_client())
            except s3.ArchiveError as error:
                self._unavailable(str(error))
            except (ClientError, BotoCoreError) as error:
                self._unavailable(str(s3.classify(error, "list the archive")))
            else:
                if self.problem is not None:
                    log.info("the archive answers again")
                self.problem = None

    def _unavailable(self, problem: str) -> None:
        if problem != self.problem:    # once per outage, not once per page view
            log.warning("review listing: %s (showing the last listing)", problem)
        self.problem = problem

    def _refresh(self, client) -> None:
        objects = []
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=self._bucket):
            objects.extend(ArchivedObject(item["Key"], item["Size"], item["ETag"]) for item in page.get("Contents", []))
        recordings = pair_objects(objects)
        fresh = [recording for recording in recordings if _cache_key(recording) not in self._cache]
        with ThreadPoolExecutor(MANIFEST_DOWNLOADS) as pool:
            built = dict(zip(map(_cache_key, fresh), pool.map(lambda recording: self._entry(client, recording), fresh)))
        cache = {key: entry for key, entry in
                 ((_cache_key(recording), self._cache.get(_cache_key(recording)) or built[_cache_key(recording)])
                  for recording in recordings) if entry is not None}
        entries: dict[str, RecordingEntry] = {}
        for entry in cache.values():
            if entry.uid in entries:   # one uid under two prefixes: neither may pass for the other
                log.warning("recording %s is archived twice (%s, %s)", entry.uid, entries[entry.uid].vault_key,
                            entry.vault_key)
                entries[entry.uid] = withheld(entry, "the archive holds two recordings of this uid")
            else:
                entries[entry.uid] = entry
        self._cache, self._entries = cache, entries

    def _entry(self, client, recording: ArchivedRecording) -> RecordingEntry | None:
        """None: the manifest went away since the listing (looked at again next time)."""
        if recording.manifest.size > MAX_MANIFEST_BYTES:
            entry = unverified(recording, f"its manifest is {recording.manifest.size} bytes: too large to be one")
        else:
            from botocore.exceptions import ClientError

            from appliance.archive.s3 import error_code

            try:
                answer = client.get_object(Bucket=self._bucket, Key=recording.manifest.key,
                                           IfMatch=recording.manifest.etag)
                data = answer["Body"].read(MAX_MANIFEST_BYTES + 1)
            except ClientError as error:
                if error_code(error) in ("NoSuchKey", "PreconditionFailed", "404", "412"):
                    return None
                raise
            entry = entry_from_manifest(recording, data, self._devices, self._identity)
        if entry.problem:
            log.warning("recording %s (%s) not shown: %s", recording.uid, recording.vault.key, entry.problem)
        return entry


def _cache_key(recording: ArchivedRecording) -> tuple:
    return (recording.vault, recording.manifest)
