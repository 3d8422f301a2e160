"""The fleet board: every appliance's latest status object read from the archive bucket, opened
against the enrolled device keys and judged (fleet_health.py), read afresh on every request, so
the page never shows a status older than the bucket's.

Which rooms: every enrolled device (one without a status object is "no status"), and every
device prefix in the bucket that holds a status object (a device not enrolled is "unknown
device"). One listing of the bucket's top level and one small GET per device; the GET's
LastModified (when the archive stored the status) goes to the judgement beside `posted_at`.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from botocore.exceptions import BotoCoreError, ClientError

from appliance.archive.s3 import classify, error_code
from appliance.archive.status_object import open_status, status_key
from appliance.portal.fleet_health import Room, board, judge
from appliance.vault.keys import load_device_public

_MISSING = {"404", "NoSuchKey"}
MAX_STATUS_BYTES = 64 * 1024   # a status is about 5 kB; anything longer is cut, so it fails as forged


class FleetBoard:
    def __init__(self, context):
        self._context = context      # PortalContext: archive_client(), config, devices, clock
        self._names: dict[str, str] | None = None

    def names(self) -> dict[str, str]:
        """Device key id -> the name it is enrolled under (its .pub file's stem, e.g. "room-3"),
        read once: the enrolled keys themselves are read once, at start."""
        if self._names is None:
            enrolled = {device.key_id for device in self._context.devices}
            names = {}
            for path in sorted(Path(self._context.config.gateway.devices).glob("*.pub")):
                key_id = load_device_public(path).key_id
                if key_id in enrolled:
                    names.setdefault(key_id, path.stem)
            self._names = names
        return self._names

    def rooms(self) -> list[Room]:
        """Every room, worst first; ArchiveError (one line) when the archive cannot be read."""
        context = self._context
        client, bucket = context.archive_client(), context.config.archive.bucket
        enrolled = {device.key_id: device for device in context.devices}
        try:
            devices = sorted(set(enrolled) | _device_prefixes(client, bucket))
            found = {device: _read(client, bucket, status_key(device)) for device in devices}
        except (ClientError, BotoCoreError) as error:
            raise classify(error, f"read the fleet statuses in bucket {bucket}") from None
        now, names = context.clock(), self.names()
        rooms = []
        for device, stored in found.items():
            if stored is None:
                if device in enrolled:
                    rooms.append(judge(device, None, now, names.get(device)))
                continue
            opened = open_status(stored.data, status_key(device), enrolled)
            rooms.append(judge(device, opened, now, names.get(device), stored.stored_at))
        return board(rooms)


def _device_prefixes(client, bucket: str) -> set[str]:
    """The bucket's top-level prefixes that are device key ids (16 hex)."""
    prefixes = set()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Delimiter="/"):
        prefixes.update(item["Prefix"].rstrip("/") for item in page.get("CommonPrefixes", []))
    return {prefix for prefix in prefixes if len(prefix) == 16 and all(c in "0123456789abcdef" for c in prefix)}


class _Stored(NamedTuple):
    data: bytes          # the object's first MAX_STATUS_BYTES
    stored_at: float     # its LastModified: when the archive stored it, by the archive's clock


def _read(client, bucket: str, key: str) -> _Stored | None:
    """The status object at `key`; None when there is none."""
    try:
        answer = client.get_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if error_code(error) in _MISSING:
            return None
        raise
    with answer["Body"] as body:
        return _Stored(body.read(MAX_STATUS_BYTES), answer["LastModified"].timestamp())
