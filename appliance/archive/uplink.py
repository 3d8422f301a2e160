"""The fleet status uplink: at start and every minute, a signed status object (status_object.py)
to `<device id>/status/latest.json` in the archive bucket, so clinic IT sees every room's health
on the portal's fleet page without walking to it (docs/fleet-status.md).

It runs as a thread of `appliance archive run`, beside the upload loop, on its own read-only
database connection: a long upload never delays a status, and a failed post never delays an
upload. The recording process's state comes from its live snapshot file
(appliance/control/snapshot.py); the backlog and the last recording from the database; the clock
offset from the archive's Date header, measured just before each post. A failed post is logged
once per outage, and again once when posts work again.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import threading
import time
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Callable

from botocore.exceptions import BotoCoreError, ClientError

from appliance import __version__
from appliance.archive import backlog as backlog_words
from appliance.archive.s3 import ArchiveError, classify
from appliance.archive.status_object import NOT_REPORTING, FleetStatus, seal_status, status_key
from appliance.control.snapshot import LiveSnapshot, read_fresh
from appliance.storage.queries import ArchiveBacklog, RecordQueries
from appliance.vault import signing

log = logging.getLogger("appliance.archive")

POST_INTERVAL_S = 60.0


def compose_status(device_key_id: str, now: float, snapshot: LiveSnapshot | None, backlog: ArchiveBacklog,
                   last_recording_at: float | None, clock_offset_s: float | None,
                   version: str = __version__) -> FleetStatus:
    """The status to post: the snapshot's live part (all None, "not reporting", without one)
    and the archive's own figures."""
    age = backlog_words.oldest_age_s(backlog, now)
    live = dict(state=NOT_REPORTING, camera_up=None, link_up=None, disk_seconds_left=None, fault=None,
                software_version=version)
    if snapshot is not None:
        live = dict(state=snapshot.state, camera_up=snapshot.camera_up, link_up=snapshot.link_up,
                    disk_seconds_left=snapshot.disk_seconds_left, fault=snapshot.fault,
                    software_version=snapshot.software_version)
    return FleetStatus(device_key_id=device_key_id, posted_at=round(now, 3), backlog_count=backlog.count,
                       backlog_bytes=backlog.bytes, backlog_oldest_age_s=None if age is None else round(age, 1),
                       last_recording_at=last_recording_at, clock_offset_s=clock_offset_s, **live)


def clock_offset(before: float, after: float, server_date: str) -> float:
    """The local clock minus the server's, from a request sent at `before` and answered at
    `after` (local clock) with the HTTP Date `server_date` (whole seconds: about ±1 s)."""
    return round((before + after) / 2 - parsedate_to_datetime(server_date).timestamp(), 1)


class StatusUplink:
    def __init__(self, client, bucket: str, device_key, records: RecordQueries, snapshot_path: Path, *,
                 clock: Callable[[], float] = time.time, version: str = __version__):
        self._client, self._bucket, self._records = client, bucket, records
        self._device_key = signing.as_device_key(device_key)
        self.device_key_id = self._device_key.public_key().key_id
        self._snapshot_path, self._clock, self._version = Path(snapshot_path), clock, version

    def post(self) -> FleetStatus:
        """Posts one status and returns it; ArchiveError (one line) when the archive refuses or
        cannot be reached."""
        try:
            before = self._clock()
            answer = self._client.head_bucket(Bucket=self._bucket)
            offset = clock_offset(before, self._clock(), answer["ResponseMetadata"]["HTTPHeaders"]["date"])
            now = self._clock()
            status = compose_status(self.device_key_id, now, read_fresh(self._snapshot_path, now),
                                    self._records.archive_backlog(), self._records.last_recording_at(),
                                    offset, self._version)
            body = seal_status(status, self._device_key)
            # No Object Lock retention: a status is a heartbeat, not a record (docs/archive.md).
            # The digests by hand, as the uploader's: the shared client has botocore's own checksums
            # and payload signing off (s3.py), so these signed headers are all that makes the
            # server refuse a body damaged on the way.
            self._client.put_object(Bucket=self._bucket, Key=status_key(self.device_key_id), Body=body,
                                    ContentType="application/json",
                                    ContentMD5=base64.b64encode(hashlib.md5(body).digest()).decode(),
                                    ChecksumSHA256=base64.b64encode(hashlib.sha256(body).digest()).decode())
        except (ClientError, BotoCoreError) as error:
            raise classify(error, "post the fleet status") from None
        return status

    def run(self, stop: threading.Event, interval_s: float = POST_INTERVAL_S) -> None:
        """Posts at once, then every `interval_s`, until `stop` is set (waiting on it, so a
        SIGTERM ends the wait at once)."""
        failing = False
        while not stop.is_set():
            try:
                self.post()
            except Exception as error:   # ArchiveError, or a database that cannot be read: never ends the thread
                if not failing:
                    log.warning("fleet status not posted: %s (said once until it works again; uploads "
                                "go on)", error, exc_info=not isinstance(error, ArchiveError))
                failing = True
            else:
                if failing:
                    log.info("fleet status posted again")
                failing = False
            stop.wait(interval_s)

    def start(self, stop: threading.Event) -> threading.Thread:
        thread = threading.Thread(target=self.run, args=(stop,), name="status-uplink", daemon=True)
        thread.start()
        return thread
