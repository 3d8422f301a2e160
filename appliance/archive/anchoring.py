"""Anchoring the audit chain in the archive, and checking the local chain against the anchors.

The archive service anchors the head after each archived recording (`Anchorer.anchor_now`) and
at least hourly while the chain grows (`anchor_if_due`, every pass of its loop); an anchor that
failed after an archived recording is owed, and the next pass's `anchor_if_due` sends it. Each
anchor is a new immutable object (the uploader: If-None-Match, Object Lock, HEAD-confirmed). An
anchor for the head's seq already in the archive is read, not written again: if it names the
same hash the head is anchored; if not, the local chain was rewritten, and that is said instead
of anchoring. `appliance audit verify --archive` reads every anchor of the device
(`archived_anchors`) and checks the local chain against them (anchors.chain_problems).
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Callable

from botocore.exceptions import BotoCoreError, ClientError

from appliance.archive.anchors import Anchor, anchor_key, anchor_prefix, open_anchor, seal_anchor, seq_of_key
from appliance.archive.s3 import classify, error_code
from appliance.errors import IntegrityError
from appliance.storage.audit import first_broken_link
from appliance.storage.queries import RecordQueries
from appliance.vault import signing

ANCHOR_INTERVAL_S = 3600.0
_MISSING = {"404", "NoSuchKey"}


def anchor_due(last_anchored_at: float | None, last_seq: int | None, head_seq: int, now: float, *,
               owed: bool = False, interval_s: float = ANCHOR_INTERVAL_S) -> bool:
    """Whether an anchor is due: the chain has entries, and nothing was anchored yet by this
    process, or the head moved since the last anchor and either that anchor is `interval_s`
    old or one is `owed` (asked for after an archived recording, and it failed). An unchanged
    head is anchored already."""
    if head_seq == 0:
        return False
    if last_anchored_at is None:
        return True
    return head_seq != last_seq and (owed or now - last_anchored_at >= interval_s)


class Anchorer:
    """Anchors `records`' audit head with `device_key` through `uploader` (uploader.Uploader)."""

    def __init__(self, uploader, records: RecordQueries, device_key, *, clock: Callable[[], float] = time.time):
        self._uploader, self._records, self._clock = uploader, records, clock
        self._device_key = signing.as_device_key(device_key)
        self._public = self._device_key.public_key()
        self._last_at: float | None = None
        self._last_seq: int | None = None
        self._owed = False      # an anchor_now failed: the newest anchor is behind the head

    def anchor_if_due(self) -> Anchor | None:
        """The anchor when due (anchor_due: hourly, or owed); None otherwise. Reads the chain
        only when the hour is up or an anchor is owed, so the service may call it every pass."""
        now = self._clock()
        if not self._owed and self._last_at is not None and now - self._last_at < ANCHOR_INTERVAL_S:
            return None
        entries = self._records.audit_entries()
        if not anchor_due(self._last_at, self._last_seq, entries[-1].seq if entries else 0, now, owed=self._owed):
            return None
        return self._anchor(entries)

    def anchor_now(self) -> Anchor | None:
        """Anchors the current head (None when the trail is empty). IntegrityError, and nothing
        anchored, when the local chain is broken or the archive's anchor of this seq differs;
        ArchiveError when the archive cannot be reached. Until it succeeds, an anchor is owed."""
        self._owed = True
        return self._anchor(self._records.audit_entries())

    def _anchor(self, entries) -> Anchor | None:
        report = first_broken_link(entries)
        if not report.ok:
            raise IntegrityError(f"audit trail broken at entry {report.broken_at}: not anchoring it ({report.problem})")
        if not entries:
            return None
        head = entries[-1]
        key = anchor_key(self._public.key_id, head.seq)
        existing = _read(self._uploader.client, self._uploader.settings.bucket, key)
        if existing is None:
            now = self._clock()
            data = seal_anchor(head, self._device_key, datetime.fromtimestamp(now, timezone.utc))
            self._uploader.upload_bytes(data, key, {})
        else:
            data = existing
        anchor = open_anchor(data, self._public, key)
        if anchor.hash != head.hash:
            raise IntegrityError(f"the archive's anchor of audit entry {head.seq} (signed {anchor.anchored_at}) "
                                 "names another entry than the local one: the local trail was rewritten")
        self._last_at, self._last_seq, self._owed = self._clock(), head.seq, False
        return anchor


def archived_anchors(client, bucket: str, device: signing.DevicePublicKey) -> list[Anchor]:
    """Every anchor of `device` in `bucket`, in seq order, each checked (open_anchor):
    IntegrityError when one is forged or moved; ArchiveError when the archive cannot be read.
    Every version is read: a delete marker (a plain DELETE, allowed under a lock) hides nothing."""
    anchors = []
    try:
        pages = client.get_paginator("list_object_versions").paginate(Bucket=bucket,
                                                                      Prefix=anchor_prefix(device.key_id))
        for page in pages:
            for item in page.get("Versions", []):
                if seq_of_key(item["Key"]) is not None:
                    data = _read(client, bucket, item["Key"], item.get("VersionId")) or b""
                    anchors.append(open_anchor(data, device, item["Key"]))
    except (ClientError, BotoCoreError) as error:
        raise classify(error, f"list the audit anchors in bucket {bucket}") from None
    return sorted(anchors, key=lambda anchor: anchor.seq)


def _read(client, bucket: str, key: str, version: str | None = None) -> bytes | None:
    """The object's bytes (that version's, if not "null", the id of an unversioned object); None when missing."""
    where = {"VersionId": version} if version and version != "null" else {}
    try:
        return client.get_object(Bucket=bucket, Key=key, **where)["Body"].read()
    except ClientError as error:
        if error_code(error) in _MISSING:
            return None
        raise classify(error, f"read {key}") from None
    except BotoCoreError as error:
        raise classify(error, f"read {key}") from None
