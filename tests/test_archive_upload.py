"""The uploader against a real SeaweedFS: objects land once, immutable, confirmed by checksum;
what cannot work is refused in one line; what is there already is compared, never rewritten."""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from appliance.archive import s3
from appliance.archive.pacing import Backoff, Pacer
from appliance.archive.settings import ArchiveSettings
from appliance.archive.uploader import Uploader
from tests.servers import free_ports
from tests.servers.http_proxy import HttpProxy
from tests.servers.seaweedfs import unique_bucket, write_credentials

MIB = 1024 * 1024
PART = 8 * MIB
KEY = "5e1f0c2a9b7d4e31/1.2.826.0.1.3680043.10.1/1.2.826.0.1.3680043.10.2.mp4.vault"
STATE = {"recording-state": "sealed"}


@dataclass
class Archive:
    settings: ArchiveSettings
    root: Path
    server: object     # the SeaweedFS: what the test inspects goes there directly, not via a proxy

    def client(self):
        return s3.connect(self.settings)

    def uploader(self, **options) -> Uploader:
        options.setdefault("backoff", Backoff(max_attempts=3, sleep=lambda s: None))
        return Uploader(self.client(), self.settings, self.root / "uploads", **options)

    def file(self, size: int, name: str = "rec.mp4.vault") -> Path:
        path = self.root / name
        path.write_bytes(os.urandom(size))
        return path

    def versions(self, key: str) -> list:
        listing = self.server.client().list_object_versions(Bucket=self.settings.bucket, Prefix=key)
        return [v for v in listing.get("Versions", []) if v["Key"] == key]

    def unfinished_uploads(self) -> list:
        return self.server.client().list_multipart_uploads(Bucket=self.settings.bucket).get("Uploads", [])

    def content(self, key: str) -> bytes:
        return self.server.client().get_object(Bucket=self.settings.bucket, Key=key)["Body"].read()


def make_archive(server, root: Path, *, endpoint: str | None = None, **settings) -> Archive:
    credentials = server.write_credentials(root / "s3-credentials")
    bucket = server.create_bucket(unique_bucket())
    settings.setdefault("retention_days", 1)
    return Archive(ArchiveSettings(endpoint=endpoint or server.endpoint, bucket=bucket,
                                   credentials=credentials, **settings), root, server)


@pytest.fixture
def archive(seaweedfs, tmp_path):
    return make_archive(seaweedfs, tmp_path)


def test_a_multipart_upload_is_confirmed_by_size_checksum_and_retention(archive):
    path = archive.file(3 * PART + 12_345)
    confirmed = archive.uploader().upload_file(path, KEY, STATE)

    data = path.read_bytes()
    assert confirmed.sha256 == hashlib.sha256(data).hexdigest()
    assert confirmed.size == len(data) and confirmed.retain_until is not None
    assert archive.content(KEY) == data
    head = archive.server.client().head_object(Bucket=archive.settings.bucket, Key=KEY)
    assert head["Metadata"] == {"recording-state": "sealed", "sha256": confirmed.sha256}
    assert head["ObjectLockMode"] == "COMPLIANCE" and head["ETag"].endswith('-4"')
    assert len(archive.versions(KEY)) == 1 and archive.unfinished_uploads() == []
    assert list((archive.root / "uploads").iterdir()) == []   # resume state gone once confirmed


def test_a_small_file_goes_in_one_put_with_a_legal_hold(seaweedfs, tmp_path):
    archive = make_archive(seaweedfs, tmp_path, legal_hold=True, retention_mode="GOVERNANCE")
    path = archive.file(1000)
    confirmed = archive.uploader().upload_file(path, KEY + ".manifest", {})
    assert confirmed.legal_hold and archive.content(KEY + ".manifest") == path.read_bytes()
    head = archive.client().head_object(Bucket=archive.settings.bucket, Key=KEY + ".manifest",
                                        ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(path.read_bytes()).digest()).decode()
    assert head["ObjectLockMode"] == "GOVERNANCE" and head["ObjectLockLegalHoldStatus"] == "ON"


def test_a_retained_object_cannot_be_deleted(archive):
    confirmed = archive.uploader().upload_file(archive.file(2000), KEY, STATE)
    with pytest.raises(ClientError) as refused:
        archive.client().delete_object(Bucket=archive.settings.bucket, Key=KEY, VersionId=confirmed.version_id)
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    assert len(archive.content(KEY)) == 2000


def test_uploading_again_sends_nothing_and_confirms_the_same_single_version(seaweedfs, tmp_path):
    proxy = HttpProxy(int(seaweedfs.endpoint.rsplit(":", 1)[1])).start()
    try:
        archive = make_archive(seaweedfs, tmp_path, endpoint=proxy.endpoint)
        path = archive.file(2 * PART + 1)
        first = archive.uploader().upload_file(path, KEY, STATE)
        sent_before = len(proxy.requests)
        again = archive.uploader().upload_file(path, KEY, STATE)
        assert again == first and len(archive.versions(KEY)) == 1
        assert [r for r in proxy.requests[sent_before:] if r.method == "PUT"] == []
    finally:
        proxy.stop()


def test_a_longer_retention_asked_later_extends_the_object_already_there(archive):
    path = archive.file(1000)
    short = archive.uploader().upload_file(path, KEY, STATE)
    longer = replace(archive, settings=replace(archive.settings, retention_days=3))
    extended = longer.uploader().upload_file(path, KEY, STATE)
    assert (extended.retain_until - short.retain_until).days >= 1
    assert len(archive.versions(KEY)) == 1


@pytest.mark.parametrize("size", [1000, 2 * PART + 1])
def test_another_file_at_a_key_already_taken_is_refused_and_the_object_kept(archive, size):
    original = archive.file(size)
    archive.uploader().upload_file(original, KEY, STATE)
    impostor = archive.file(size, "other.mp4.vault")
    with pytest.raises(s3.ArchiveRefused, match="does not match the file sent"):
        archive.uploader().upload_file(impostor, KEY, STATE)
    assert archive.content(KEY) == original.read_bytes()
    assert len(archive.versions(KEY)) == 1 and archive.unfinished_uploads() == []


def test_every_body_carries_content_md5_and_sha256_and_every_write_if_none_match(seaweedfs, tmp_path):
    proxy = HttpProxy(int(seaweedfs.endpoint.rsplit(":", 1)[1])).start()
    try:
        archive = make_archive(seaweedfs, tmp_path, endpoint=proxy.endpoint)
        archive.uploader().upload_file(archive.file(2 * PART + 5), KEY, STATE)
        archive.uploader().upload_file(archive.file(100, "small"), KEY + ".manifest", STATE)
    finally:
        proxy.stop()
    with_body = [r for r in proxy.requests if r.method in ("PUT", "POST") and r.body_length > 0]
    part_puts = [r for r in with_body if "partNumber=" in r.target]
    whole_puts = [r for r in with_body if r.method == "PUT" and "uploadId=" not in r.target]
    completes = [r for r in proxy.requests if r.method == "POST" and "uploadId=" in r.target]
    assert len(part_puts) == 3 and len(whole_puts) == 1 and len(completes) == 1
    for request in part_puts + whole_puts:
        assert "content-md5" in request.headers and "x-amz-checksum-sha256" in request.headers
    for request in whole_puts + completes:
        assert request.headers.get("if-none-match") == "*"


def test_a_bucket_without_object_lock_is_refused_unless_retention_is_off(seaweedfs, tmp_path):
    archive = make_archive(seaweedfs, tmp_path)
    unlocked = seaweedfs.create_bucket(unique_bucket(), object_lock=False)
    settings = replace(archive.settings, bucket=unlocked)
    with pytest.raises(s3.ArchiveRefused, match="has no Object Lock"):
        s3.check_bucket(s3.connect(settings), settings)
    s3.check_bucket(s3.connect(settings), replace(settings, retention_days=0))


def test_an_unknown_bucket_and_wrong_credentials_are_refused_in_one_line(archive):
    unknown = replace(archive.settings, bucket=unique_bucket("missing"))
    with pytest.raises(s3.ArchiveRefused, match="no such bucket"):
        s3.check_bucket(s3.connect(unknown), unknown)
    write_credentials(archive.settings.credentials, "nobody", "wrong-secret")
    with pytest.raises(s3.ArchiveRefused, match="credentials refused") as refused:
        s3.check_bucket(s3.connect(archive.settings), archive.settings)
    assert "wrong-secret" not in str(refused.value) and "\n" not in str(refused.value)


def test_an_unreachable_server_is_unavailable_after_the_attempts_allowed(tmp_path):
    path = write_credentials(tmp_path / "s3-credentials", "a", "b")
    settings = ArchiveSettings(endpoint=f"http://127.0.0.1:{free_ports(1)[0]}", bucket="bucket",
                               credentials=path, retention_days=1)
    slept = []
    uploader = Uploader(s3.connect(settings), settings, tmp_path / "uploads",
                        backoff=Backoff(max_attempts=4, sleep=slept.append, random=lambda: 0.5))
    (tmp_path / "f").write_bytes(b"x" * 100)
    with pytest.raises(s3.ArchiveUnavailable, match="cannot reach the server"):
        uploader.upload_file(tmp_path / "f", KEY, STATE)
    assert slept == [0.5, 1.0, 2.0]


class CountingPacer(Pacer):
    """The real pacer with no limit, counting what the uploader asks to send."""

    def __init__(self):
        super().__init__(0)
        self.paced = []

    def pace(self, size: int) -> None:
        self.paced.append(size)
        super().pace(size)


def test_every_byte_sent_is_paced_by_the_bandwidth_limit(archive):
    pacer = CountingPacer()
    archive.uploader(pacer=pacer).upload_file(archive.file(2 * PART + 3), KEY, STATE)
    archive.uploader(pacer=pacer).upload_file(archive.file(3, "small"), KEY + ".manifest", STATE)
    assert sorted(pacer.paced) == [3, 3, PART, PART]
