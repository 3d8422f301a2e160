"""Puts one file into the archive bucket, immutable, exactly once, and confirms it.

- A file up to one part long goes in one PUT; a longer one as a multipart upload whose state
  (resume.py) is on disk before each part goes out, so a kill costs at most the part in flight.
- Every request with a body carries Content-MD5 and x-amz-checksum-sha256 computed from the
  bytes read once: the server refuses bytes damaged on the way (BadDigest) and we send again.
- PUT and CompleteMultipartUpload carry If-None-Match: *: a key is written once, never gets a
  second (locked, undeletable) version. When the key is already there (a run killed after its
  upload), the object is compared, never written again.
- Object Lock retention (mode, retain-until) and legal hold go with every object.
- Confirmed only after HEAD shows the size, the SHA-256 checksum (whole object for a PUT; for
  multipart the composite SHA-256 of the parts' SHA-256s, "-N", recomputed here from the
  parts we hashed), our own whole-file SHA-256 in the metadata, and the retention.
Transient failures are retried with backoff (pacing.py); permanent ones raise ArchiveRefused.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from appliance.archive.pacing import Backoff, CpuBudget, Pacer
from appliance.archive.retention import hold_missing, lock_arguments, retention_needed
from appliance.archive.resume import Part, PartRecord, ResumeState, StateStore, plan_parts
from appliance.archive.s3 import ArchiveRefused, ArchiveUnavailable, classify, error_code
from appliance.archive.settings import ArchiveSettings

READ_CHUNK = 1 << 20
SHA256_METADATA = "sha256"                      # x-amz-meta-sha256: the whole object, hex
# Parts sent at once. One at a time leaves the link idle while a part is read and hashed and
# reaches half boto3's own upload_file on two cores; three overlap hashing and sending.
PARTS_IN_FLIGHT = 3


@dataclass(frozen=True)
class Confirmed:
    """An object the server holds as we sent it, with the retention we asked for."""
    key: str
    version_id: str | None
    size: int
    sha256: str                              # hex, the whole object, computed here from the file
    retain_until: datetime.datetime | None   # None: retention_days = 0
    legal_hold: bool


class _Recorded:
    """The resume state as parts are recorded from several threads, saved after each."""

    def __init__(self, state: ResumeState, store: StateStore):
        self.state, self._store, self._lock = state, store, threading.Lock()

    def add(self, number: int, record: PartRecord) -> None:
        with self._lock:
            self.state = self.state.with_part(number, record)
            self._store.save(self.state)


@dataclass(frozen=True)
class _Expected:
    size: int
    sha256: str          # hex, whole file
    checksum: str        # x-amz-checksum-sha256 as HEAD must show it


class Uploader:
    def __init__(self, client, settings: ArchiveSettings, state_dir: Path, *,
                 backoff: Backoff | None = None, pacer: Pacer | None = None, budget: CpuBudget | None = None,
                 part_size: int | None = None,
                 now=lambda: datetime.datetime.now(datetime.timezone.utc)):
        self.client, self.settings = client, settings
        self.store = StateStore(state_dir)
        self.backoff = backoff or Backoff()
        self.pacer = pacer or Pacer(settings.max_mbps)
        self.budget = budget or CpuBudget(settings.cpu_percent)
        self.part_size = part_size or settings.part_size
        self._now = now

    def upload_file(self, path: Path, key: str, metadata: dict[str, str]) -> Confirmed:
        size, sha256 = _size_and_sha256(path, self.budget)
        with open(path, "rb") as file:
            if size <= self.part_size:
                data = file.read()
                self._put(data, key, {**metadata, SHA256_METADATA: sha256})
                expected = _Expected(size, sha256, _b64(hashlib.sha256(data).digest()))
            else:
                expected = self._multipart(file, key, size, sha256, {**metadata, SHA256_METADATA: sha256})
        confirmed = self._confirm(key, expected)
        self.store.forget(key)
        return confirmed

    def upload_bytes(self, data: bytes, key: str, metadata: dict[str, str]) -> Confirmed:
        """A small object (an audit anchor) in one PUT, confirmed like a file."""
        if len(data) > self.part_size:
            raise ValueError("upload_bytes is for objects up to one part; use upload_file")
        sha256 = hashlib.sha256(data).hexdigest()
        self._put(data, key, {**metadata, SHA256_METADATA: sha256})
        return self._confirm(key, _Expected(len(data), sha256, _b64(bytes.fromhex(sha256))))

    # -- sending --------------------------------------------------------------------------------

    def _put(self, data: bytes, key: str, metadata: dict[str, str]) -> None:
        self.pacer.pace(len(data))
        self.budget.check()
        try:
            self._call(self.client.put_object, f"put {key}", pass_codes={"PreconditionFailed"},
                       Body=data, IfNoneMatch="*", Metadata=metadata, **self._bucket_key(key),
                       **_digests(data), **lock_arguments(self.settings, self._now()))
        except ClientError:   # PreconditionFailed: already there; _confirm compares it with ours
            pass

    def _multipart(self, file, key: str, size: int, sha256: str, metadata: dict) -> _Expected:
        state = self.store.load(key)
        if state is not None and not state.matches(key, size, sha256, self.part_size):
            self._abort(key, state.upload_id)   # another file or part size: its parts are no use
            self.store.forget(key)
            state = None
        server_parts = self._list_parts(state) if state is not None else None
        if server_parts is None:   # no upload, or it is gone: completed by a killed run, or expired
            self.store.forget(key)
            if self._head(key) is not None:   # never a second (locked) version: compare instead
                return self._expected_by_reading(file, size, sha256)
            state, server_parts = self._create(key, size, sha256, metadata), {}
        missing = [part for part in plan_parts(size, self.part_size)
                   if part.number not in state.parts
                   or server_parts.get(part.number) != (part.length, state.parts[part.number].md5)]
        state = self._send_parts(file.fileno(), key, state, missing)
        self._complete(key, state)
        return self._expected_from(state)

    def _send_parts(self, fd: int, key: str, state: ResumeState, parts: list[Part]) -> ResumeState:
        """Sends `parts` (those the server does not hold), PARTS_IN_FLIGHT at a time, each read
        and hashed by its own thread (hashing and sending overlap on two cores; memory stays at
        PARTS_IN_FLIGHT parts). Returns the state with every part recorded."""
        recorded = _Recorded(state, self.store)

        def send(part: Part) -> None:
            data = os.pread(fd, part.length, part.offset)
            md5, sha256 = hashlib.md5(), hashlib.sha256()
            for chunk in _chunks(data, self.budget):
                md5.update(chunk)
                sha256.update(chunk)
            record = PartRecord(len(data), md5.hexdigest(), sha256.hexdigest())
            recorded.add(part.number, record)   # durable before the part goes out
            self.pacer.pace(len(data))
            self.budget.check()
            try:
                self._call(self.client.upload_part, f"part {part.number} of {key}", Body=data,
                           pass_codes={"NoSuchUpload"}, UploadId=state.upload_id, PartNumber=part.number,
                           ContentMD5=_b64(bytes.fromhex(record.md5)),
                           ChecksumSHA256=_b64(bytes.fromhex(record.sha256)), **self._bucket_key(key))
            except ClientError:   # the server dropped the upload (expired, or lost): start again
                self.store.forget(key)
                raise ArchiveUnavailable(f"archive: the server dropped the upload of {key}; "
                                         f"it starts again") from None

        with ThreadPoolExecutor(PARTS_IN_FLIGHT, thread_name_prefix="archive-part") as pool:
            futures = [pool.submit(send, part) for part in parts]
            try:
                for future in as_completed(futures):
                    future.result()
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
        return recorded.state

    def _create(self, key: str, size: int, sha256: str, metadata: dict) -> ResumeState:
        self._abort_strays(key)   # a run killed between create and saving its upload id
        created = self._call(self.client.create_multipart_upload, f"start {key}",
                             ChecksumAlgorithm="SHA256", Metadata=metadata, **self._bucket_key(key),
                             **lock_arguments(self.settings, self._now()))
        state = ResumeState(key, size, sha256, self.part_size, created["UploadId"])
        self.store.save(state)
        return state

    def _complete(self, key: str, state: ResumeState) -> None:
        parts = [{"PartNumber": n, "ETag": f'"{record.md5}"',
                  "ChecksumSHA256": _b64(bytes.fromhex(record.sha256))}
                 for n, record in sorted(state.parts.items())]
        try:
            self._call(self.client.complete_multipart_upload, f"complete {key}",
                       pass_codes={"PreconditionFailed", "NoSuchUpload"}, UploadId=state.upload_id,
                       MultipartUpload={"Parts": parts}, IfNoneMatch="*", **self._bucket_key(key))
        except ClientError:   # the key holds an object already: ours from a killed run, or not ours
            self._abort(key, state.upload_id)

    def _list_parts(self, state: ResumeState) -> dict[int, tuple[int, str]] | None:
        """{part number: (size, md5 hex)} the server holds for the upload; None if it is gone."""
        held, marker = {}, 0
        while True:
            try:
                page = self._call(self.client.list_parts, f"list parts of {state.key}",
                                  pass_codes={"NoSuchUpload"}, UploadId=state.upload_id,
                                  PartNumberMarker=marker, **self._bucket_key(state.key))
            except ClientError:
                return None
            for part in page.get("Parts", []):
                held[part["PartNumber"]] = (part["Size"], part["ETag"].strip('"'))
            if not page.get("IsTruncated"):
                return held
            marker = page["NextPartNumberMarker"]

    def _abort_strays(self, key: str) -> None:
        page = self._call(self.client.list_multipart_uploads, f"list uploads of {key}",
                          Bucket=self.settings.bucket, Prefix=key)
        for upload in page.get("Uploads", []):
            if upload["Key"] == key:
                self._abort(key, upload["UploadId"])

    def _abort(self, key: str, upload_id: str) -> None:
        try:
            self._call(self.client.abort_multipart_upload, f"abort upload of {key}",
                       pass_codes={"NoSuchUpload"}, UploadId=upload_id, **self._bucket_key(key))
        except ClientError:
            pass   # already gone

    # -- confirming ----------------------------------------------------------------------------

    def _head(self, key: str) -> dict | None:
        try:
            return self._call(self.client.head_object, f"check {key}", pass_codes={"404", "NoSuchKey"},
                              ChecksumMode="ENABLED", **self._bucket_key(key))
        except ClientError:
            return None

    def _confirm(self, key: str, expected: _Expected) -> Confirmed:
        head = self._head(key)
        if head is None:
            raise ArchiveUnavailable(f"archive: {key} is not on the server after its upload")
        if (head["ContentLength"] != expected.size or head.get("ChecksumSHA256") != expected.checksum
                or head.get("Metadata", {}).get(SHA256_METADATA) != expected.sha256):
            raise ArchiveRefused(f"archive: the object at {key} does not match the file sent "
                                 f"(size or SHA-256 differ); nothing confirmed")
        head = self._keep_locked(key, head)
        return Confirmed(key, head.get("VersionId"), expected.size, expected.sha256,
                         head.get("ObjectLockRetainUntilDate"), head.get("ObjectLockLegalHoldStatus") == "ON")

    def _keep_locked(self, key: str, head: dict) -> dict:
        """The head of an object whose retention and legal hold are at least what the settings
        ask. An object retained too short (put by an earlier run with other settings, or by a
        server that dropped the header) is extended, which Object Lock always allows; then the
        server is asked again."""
        until = retention_needed(self.settings, head)
        if until is not None:
            self._call(self.client.put_object_retention, f"retain {key}", **self._bucket_key(key),
                       VersionId=head["VersionId"],
                       Retention={"Mode": self.settings.retention_mode, "RetainUntilDate": until})
        if hold_missing(self.settings, head):
            self._call(self.client.put_object_legal_hold, f"hold {key}", **self._bucket_key(key),
                       VersionId=head["VersionId"], LegalHold={"Status": "ON"})
        if until is None and not hold_missing(self.settings, head):
            return head
        head = self._head(key)
        if head is None or retention_needed(self.settings, head) is not None or hold_missing(self.settings, head):
            raise ArchiveRefused(f"archive: the server does not keep the retention asked for {key}")
        return head

    # -- plumbing --------------------------------------------------------------------------------

    def _expected_from(self, state: ResumeState) -> _Expected:
        return _composite(state.size, state.sha256, [bytes.fromhex(r.sha256) for _, r in sorted(state.parts.items())])

    def _expected_by_reading(self, file, size: int, sha256: str) -> _Expected:
        digests = []
        for part in plan_parts(size, self.part_size):
            file.seek(part.offset)
            digest = hashlib.sha256()
            for chunk in _chunks(file.read(part.length), self.budget):
                digest.update(chunk)
            digests.append(digest.digest())
        return _composite(size, sha256, digests)

    def _bucket_key(self, key: str) -> dict:
        return {"Bucket": self.settings.bucket, "Key": key}

    def _call(self, operation, doing: str, pass_codes: frozenset | set = frozenset(), **arguments):
        """`operation(**arguments)`, retried with backoff while the failure is transient; a
        ClientError whose code is in `pass_codes` is the caller's to handle."""
        attempt = 0
        while True:
            try:
                return operation(**arguments)
            except ClientError as error:
                if error_code(error) in pass_codes:
                    raise
                failure = classify(error, doing)
            except BotoCoreError as error:
                failure = classify(error, doing)
            if isinstance(failure, ArchiveRefused) or self.backoff.gives_up_after(attempt):
                raise failure from None
            self.backoff.wait(attempt)
            attempt += 1


def _composite(size: int, sha256: str, part_digests: list[bytes]) -> _Expected:
    """What HEAD shows for a multipart object: SHA-256 over the parts' SHA-256s, "-" part count."""
    checksum = f"{_b64(hashlib.sha256(b''.join(part_digests)).digest())}-{len(part_digests)}"
    return _Expected(size, sha256, checksum)


def _digests(data: bytes) -> dict:
    return {"ContentMD5": _b64(hashlib.md5(data).digest()), "ChecksumSHA256": _b64(hashlib.sha256(data).digest())}


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def _chunks(data: bytes, budget: CpuBudget):
    """`data` in READ_CHUNK slices (no copies), the CPU budget checked before each."""
    view = memoryview(data)
    for offset in range(0, len(view), READ_CHUNK):
        budget.check()
        yield view[offset:offset + READ_CHUNK]


def _size_and_sha256(path: Path, budget: CpuBudget) -> tuple[int, str]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as file:
        while chunk := file.read(READ_CHUNK):
            budget.check()
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()
