"""The SeaweedFS test server itself: an Object-Lock bucket keeps what was put, refuses to
overwrite it or delete it, and keeps it across a SIGKILL of the server."""

import base64
import datetime
import hashlib

import pytest
from botocore.exceptions import ClientError

from tests.servers.seaweedfs import unique_bucket

BODY = b"sealed vault bytes " * 512


def _put_retained(client, bucket: str, key: str):
    until = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)
    return client.put_object(
        Bucket=bucket, Key=key, Body=BODY, IfNoneMatch="*",
        ContentMD5=base64.b64encode(hashlib.md5(BODY).digest()).decode(),
        ChecksumSHA256=base64.b64encode(hashlib.sha256(BODY).digest()).decode(),
        ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=until)


def test_an_object_lock_bucket_keeps_a_retained_object_and_refuses_to_delete_or_overwrite_it(seaweedfs):
    client = seaweedfs.client()
    bucket = seaweedfs.create_bucket(unique_bucket())
    assert client.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"][
        "ObjectLockEnabled"] == "Enabled"
    version = _put_retained(client, bucket, "device/session/recording.mp4.vault")["VersionId"]

    head = client.head_object(Bucket=bucket, Key="device/session/recording.mp4.vault", ChecksumMode="ENABLED")
    assert head["ContentLength"] == len(BODY)
    assert head["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(BODY).digest()).decode()
    assert head["ObjectLockMode"] == "COMPLIANCE"
    with pytest.raises(ClientError) as overwrite:
        _put_retained(client, bucket, "device/session/recording.mp4.vault")
    assert overwrite.value.response["Error"]["Code"] == "PreconditionFailed"
    with pytest.raises(ClientError) as delete:
        client.delete_object(Bucket=bucket, Key="device/session/recording.mp4.vault", VersionId=version)
    assert delete.value.response["Error"]["Code"] == "AccessDenied"
    assert client.get_object(Bucket=bucket, Key="device/session/recording.mp4.vault")["Body"].read() == BODY


def test_a_bucket_made_without_object_lock_says_so(seaweedfs):
    bucket = seaweedfs.create_bucket(unique_bucket(), object_lock=False)
    with pytest.raises(ClientError) as lookup:
        seaweedfs.client().get_object_lock_configuration(Bucket=bucket)
    assert lookup.value.response["Error"]["Code"] == "ObjectLockConfigurationNotFoundError"


def test_the_server_keeps_its_objects_across_a_sigkill_and_restart(own_seaweedfs):
    bucket = own_seaweedfs.create_bucket(unique_bucket())
    _put_retained(own_seaweedfs.client(), bucket, "kept")
    endpoint = own_seaweedfs.endpoint
    own_seaweedfs.kill()
    with pytest.raises(Exception):
        own_seaweedfs.client().list_buckets()
    own_seaweedfs.restart()
    assert own_seaweedfs.endpoint == endpoint
    assert own_seaweedfs.client().get_object(Bucket=bucket, Key="kept")["Body"].read() == BODY
