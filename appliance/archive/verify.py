"""`appliance archive verify`: the archive checked against the database and against the manifests.

Two directions (docs/archive.md#verify):
- every recording the database calls archived: both objects present (at the recorded version),
  the recorded size and whole-file SHA-256 (the server's full-object checksum where it gives one,
  and the bytes themselves when `deep`), retention at least until the recorded date, and the
  local copy, while it exists, still the archived bytes;
- every vault object under the device prefixes: its manifest object's signatures hold, name this
  object and device, and (when `deep`) the object's bytes are what the manifest signed; one
  version per key.
`deep` streams every vault object once (bounded memory); without it only HEADs and the small
manifests are read. A finished recording not archived yet is backlog, counted, not a problem.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from botocore.exceptions import ClientError

from appliance.archive.status_object import is_status_key
from appliance.archive.uploader import SHA256_METADATA
from appliance.errors import ApplianceError
from appliance.storage.layout import RECORDING_SUFFIX
from appliance.storage.queries import ArchivedRecording, Recording, RecordQueries
from appliance.vault import header as vault_header
from appliance.vault.digest import READ_CHUNK, DigestBuilder, VaultDigest
from appliance.vault.manifest import content_problem, header_problem, parse_manifest

MANIFEST_SUFFIX = ".manifest"
_MISSING = {"404", "NoSuchKey", "NoSuchVersion", "NotFound"}
RETAIN_SLACK_S = 1.0   # the server keeps retain-until to the second


@dataclass(frozen=True)
class ArchiveCheck:
    recordings: int               # archived recordings the database knows, checked
    objects: int                  # vault objects checked against their manifests
    backlog: int                  # finished recordings not archived yet (not a problem)
    incomplete: int               # vault objects whose manifest is not uploaded yet (an upload in progress)
    problems: tuple[str, ...]     # one line each; none when everything holds

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_archive(records: RecordQueries, client, bucket: str, *, device_key_id: str | None = None,
                   deep: bool = True) -> ArchiveCheck:
    """Checks the archive in `bucket` (a boto3 S3 client's) against the database in `records`.
    `device_key_id` adds the prefix of the appliance's current device key to those the database's
    keys name. Transport errors propagate (the caller says the archive is unreachable)."""
    store = _Bucket(client, bucket)
    archived = records.archived_recordings()
    problems: list[str] = []
    for recording, copy in archived:
        problems += [f"recording {recording.uid}: {problem}"
                     for problem in _recording_problems(store, recording, copy, deep)]
    known = {copy.vault_key: copy for _, copy in archived}
    devices = {key.split("/", 1)[0] for key in known} | ({device_key_id} if device_key_id else set())
    objects = incomplete = 0
    for device in sorted(devices):
        versions, hidden = store.versions(f"{device}/")
        # The fleet status is one key overwritten every minute (docs/archive.md): many versions by design.
        versions = {key: count for key, count in versions.items() if not is_status_key(key)}
        hidden = [key for key in hidden if not is_status_key(key)]
        problems += [f"{key}: {count} versions: a retry stored it twice"
                     for key, count in versions.items() if count > 1]
        problems += [f"{key}: deleted (a delete marker hides it; its locked versions remain)" for key in hidden]
        for key in sorted(versions):
            vault_key = key.removesuffix(MANIFEST_SUFFIX)
            if key.endswith(MANIFEST_SUFFIX) and vault_key not in versions and vault_key not in known:
                problems.append(f"{key}: a manifest without its vault object")
            if not key.endswith(RECORDING_SUFFIX) or key in known:
                continue   # anchors are checked by `audit verify --archive`; known vaults above
            if key + MANIFEST_SUFFIX not in versions:
                incomplete += 1
                continue
            objects += 1
            problems += [f"{key}: {problem}" for problem in _object_problems(store, key, None, None, deep)]
    return ArchiveCheck(len(archived), objects + len(archived), len(records.unarchived_recordings()), incomplete,
                        tuple(problems))


def _recording_problems(store: "_Bucket", recording: Recording, copy: ArchivedRecording, deep: bool) -> list[str]:
    problems = []
    for key, version in ((copy.vault_key, copy.vault_version), (copy.manifest_key, copy.manifest_version)):
        head = store.head(key, version)
        if head is None:
            return [f"the archive has no {key}" + (f" version {version}" if version else "")]
        retention = _retention_problem(head, copy.retain_until)
        if retention:
            problems.append(f"{key}: {retention}")
        if key == copy.vault_key:
            problems += _size_and_checksum_problems(head, copy)
    local = _local_problem(recording, copy, deep)
    if local:
        problems.append(local)
    return problems + _object_problems(store, copy.vault_key, copy.vault_version, copy, deep)


def _size_and_checksum_problems(head: dict, copy: ArchivedRecording) -> list[str]:
    problems = []
    if head["ContentLength"] != copy.bytes:
        problems.append(f"the archive holds {head['ContentLength']} bytes, the database recorded {copy.bytes}")
    # A multipart object's checksum is over its parts ("-N"): then the uploader's metadata says it.
    checksum = head.get("ChecksumSHA256")
    whole = base64.b64decode(checksum).hex() if checksum and "-" not in checksum \
        else head.get("Metadata", {}).get(SHA256_METADATA)
    if whole is not None and whole != copy.sha256:
        problems.append("the archive's SHA-256 differs from the one recorded at archiving")
    return problems


def _retention_problem(head: dict, retain_until: float | None) -> str | None:
    """None when the object is locked at least until the recorded date (or none was recorded)."""
    if retain_until is None:
        return None
    until: datetime | None = head.get("ObjectLockRetainUntilDate")
    if head.get("ObjectLockMode") not in ("COMPLIANCE", "GOVERNANCE") or until is None:
        return "no Object Lock retention: it can be deleted"
    if until.timestamp() + RETAIN_SLACK_S < retain_until:
        return f"retained only until {until.isoformat()}, shorter than recorded at archiving"
    return None


def _local_problem(recording: Recording, copy: ArchivedRecording, deep: bool) -> str | None:
    """The local copy, while it exists, must still be the archived bytes."""
    if copy.reclaimed_at is not None:
        return None
    path = Path(recording.path)
    if not path.exists():
        return "the local copy is gone, though the disk guard never reclaimed it"
    if path.stat().st_size != copy.bytes:
        return "the local copy's size differs from the archived one"
    if deep and _file_sha256(path) != copy.sha256:
        return "the local copy's SHA-256 differs from the archived one: it changed after archiving"
    return None


def _object_problems(store: "_Bucket", key: str, version: str | None, copy: ArchivedRecording | None,
                     deep: bool) -> list[str]:
    """The vault object at `key` against the manifest object beside it."""
    manifest_key = key + MANIFEST_SUFFIX
    manifest_version = copy.manifest_version if copy else None
    data = store.read(manifest_key, manifest_version)
    if data is None:
        return [f"the archive has no {manifest_key}"]
    signed, _, problem = parse_manifest(data, manifest_key)
    if signed is None:
        return [problem]
    device = key.split("/", 1)[0]
    if signed["device_key_id"] != device or signed.get("vault_name", Path(key).name) != Path(key).name:
        return [f"its manifest was signed for {signed.get('vault_name')} of device {signed['device_key_id']}: "
                "the objects were moved"]
    if not deep:
        return []
    try:
        header, digest, sha256 = store.digests(key, version)
    except ApplianceError as error:   # not a vault, or its header is cut short
        return [str(error)]
    problem = header_problem(signed, header) or content_problem(signed, header, digest)
    if problem:
        return [problem]
    if copy is not None and sha256 != copy.sha256:
        return ["its SHA-256 differs from the one recorded at archiving"]
    return []


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(READ_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class _Bucket:
    """The few reads verify needs, with a missing object as None rather than an exception."""

    def __init__(self, client, bucket: str):
        self._client, self._bucket = client, bucket

    def _where(self, key: str, version: str | None) -> dict:
        return {"Bucket": self._bucket, "Key": key, **({"VersionId": version} if version else {})}

    def head(self, key: str, version: str | None) -> dict | None:
        try:
            return self._client.head_object(**self._where(key, version), ChecksumMode="ENABLED")
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in _MISSING:
                return None
            raise

    def read(self, key: str, version: str | None) -> bytes | None:
        """A small object's bytes (a manifest); None when it is missing."""
        try:
            return self._client.get_object(**self._where(key, version))["Body"].read()
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in _MISSING:
                return None
            raise

    def digests(self, key: str, version: str | None) -> tuple[object, VaultDigest, str]:
        """A vault object's header, file digest and whole-file SHA-256, streamed in one pass."""
        body = self._client.get_object(**self._where(key, version))["Body"]
        try:
            return stream_digests(body.read)
        finally:
            body.close()

    def versions(self, prefix: str) -> tuple[dict[str, int], list[str]]:
        """Every key under `prefix` with how many versions it has, and the keys whose latest
        version is a delete marker (a plain DELETE on a versioned bucket, allowed even under a lock)."""
        counts: dict[str, int] = {}
        hidden = []
        for page in self._client.get_paginator("list_object_versions").paginate(Bucket=self._bucket, Prefix=prefix):
            for version in page.get("Versions", []):
                counts[version["Key"]] = counts.get(version["Key"], 0) + 1
            hidden += [marker["Key"] for marker in page.get("DeleteMarkers", []) if marker.get("IsLatest")]
        return counts, sorted(hidden)


def stream_digests(read) -> tuple[object, VaultDigest, str]:
    """(header, file digest, whole-file SHA-256 hex) of a vault read front to back by `read(n)`,
    without seeking: the header's bytes are kept as the parser reads them."""
    taken = bytearray()

    def taking(size: int) -> bytes:
        chunk = read(size)
        taken.extend(chunk)
        return chunk

    header = vault_header.read_header(taking)
    whole = hashlib.sha256(taken)
    builder = DigestBuilder(bytes(taken[:header.length]), header.version)
    builder.update(bytes(taken[header.length:]))
    while chunk := read(READ_CHUNK):
        builder.update(chunk)
        whole.update(chunk)
    return header, builder.result(), whole.hexdigest()
