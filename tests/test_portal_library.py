"""The review's library against real SeaweedFS holding recordings from the demo: listed by
session, manifests downloaded once each (never a vault), the last listing kept while the archive
is down."""

from __future__ import annotations

import logging
import uuid

import boto3
import pytest

from appliance import vault
from appliance.portal.archived_recordings import MAX_MANIFEST_BYTES
from appliance.portal.library import Library
from tests.gatewaying import clinic_keys  # noqa: F401 (fixture)
from tests.portal_recordings import portal_recordings  # noqa: F401 (fixture)
from tests.servers.seaweedfs import unique_bucket


@pytest.fixture(scope="module")
def devices(clinic_keys):  # noqa: F811
    return [vault.keys.load_device_public(path) for path in clinic_keys.devices.glob("*.pub")]


class Clock:
    def __init__(self):
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_the_library_lists_the_archive_by_session_downloading_manifests_only_once(portal_recordings, devices,  # noqa: F811
                                                                                  caplog):
    caplog.set_level(logging.DEBUG)
    recordings = portal_recordings
    client = CountingClient(recordings.seaweedfs.client())
    clock = Clock()
    library = Library(lambda: client, recordings.bucket, devices, recordings.identity, clock=clock, refresh_s=30)
    listing = library.sessions()
    clips = recordings.clips
    by_session = {s["session"]: s for s in listing}
    assert set(by_session) == {clips[name].session for name in clips}
    mueller = by_session[clips["treatment"].session]
    assert mueller["patient"]["patient_name"] == "Müller^Zoë"
    assert {r["uid"]: r["state"] for r in mueller["recordings"]} == {clips["treatment"].uid: "sealed",
                                                                     clips["interrupted"].uid: "interrupted"}
    assert by_session[clips["follow_up"].session]["patient"]["patient_name"] == "山田^太郎"
    stranger = by_session[clips["stranger"].session]
    assert stranger["patient"] is None and "not enrolled" in stranger["recordings"][0]["problem"]
    treatment = library.recording(clips["treatment"].uid)
    assert treatment.emissions == [pytest.approx(interval) for interval in clips["treatment"].emissions]
    assert treatment.duration_s == pytest.approx(clips["treatment"].duration_s, abs=0.001)
    assert library.recording(clips["interrupted"].uid).interrupted and library.recording("0" * 32) is None
    # Only manifests were fetched, each once; within refresh_s the bucket is not listed again.
    assert client.listings == 1 and sorted(client.fetched) == sorted(
        f"{c.device_id}/{c.session}/{c.uid}.mp4.vault.manifest" for c in clips.values())
    library.sessions()
    assert client.listings == 1
    clock.now += 31
    assert library.sessions() == listing and client.listings == 2 and len(client.fetched) == len(clips)
    assert library.problem is None
    # The stranger's refusal is logged, by uid; no card's content ever is.
    assert clips["stranger"].uid in caplog.text and "not enrolled" in caplog.text
    assert not any(value in caplog.text for clip in clips.values() for name, value in clip.card.items()
                   if name in ("patient_name", "patient_id", "birth_date"))


def test_a_known_recording_is_answered_without_listing_and_an_unknown_one_lists_when_due(portal_recordings, devices):  # noqa: F811
    recordings, clock = portal_recordings, Clock()
    client = CountingClient(recordings.seaweedfs.client())
    library = Library(lambda: client, recordings.bucket, devices, recordings.identity, clock=clock, refresh_s=30)
    known = recordings.clips["treatment"].uid
    assert library.recording(known).uid == known and client.listings == 1
    clock.now += 31
    assert library.recording(known).uid == known and client.listings == 1    # a video range request
    assert library.recording("0" * 32) is None and client.listings == 2
    assert library.recording("1" * 32) is None and client.listings == 2      # not again within refresh_s


def test_when_the_archive_is_down_the_last_listing_stays_and_says_why(portal_recordings, devices):  # noqa: F811
    recordings, clock = portal_recordings, Clock()
    working = recordings.seaweedfs.client()
    clients = [working]
    library = Library(lambda: clients[-1], recordings.bucket, devices, recordings.identity, clock=clock, refresh_s=1)
    listing = library.sessions()
    clients.append(_refusing(recordings))
    clock.now += 2
    assert library.sessions() == listing and library.problem and "secret" not in library.problem.lower()
    clients.append(working)
    clock.now += 2
    assert library.sessions() == listing and library.problem is None


def test_an_oversized_manifest_is_listed_with_its_problem_and_not_downloaded(portal_recordings, devices):  # noqa: F811
    recordings, session, uid = portal_recordings, uuid.uuid4().hex, uuid.uuid4().hex
    bucket = recordings.seaweedfs.create_bucket(unique_bucket("oversized"), object_lock=False)
    client = CountingClient(recordings.seaweedfs.client())
    key = f"{recordings.clips['treatment'].device_id}/{session}/{uid}.mp4.vault"
    client._client.put_object(Bucket=bucket, Key=key, Body=b"v" * 100)
    client._client.put_object(Bucket=bucket, Key=key + ".manifest", Body=b" " * (MAX_MANIFEST_BYTES + 1))
    library = Library(lambda: client, bucket, devices, recordings.identity)
    [listed] = library.sessions()
    assert listed["session"] == session and "too large" in library.recording(uid).problem and client.fetched == []


class CountingClient:
    """The real client, counting what the library asks of it."""

    def __init__(self, client):
        self._client, self.listings, self.fetched = client, 0, []

    def get_paginator(self, name):
        self.listings += name == "list_objects_v2"
        return self._client.get_paginator(name)

    def get_object(self, **arguments):
        self.fetched.append(arguments["Key"])
        return self._client.get_object(**arguments)


def _refusing(recordings):
    """A client the archive refuses (unknown access key)."""
    return boto3.client("s3", endpoint_url=recordings.seaweedfs.endpoint, region_name="us-east-1",
                        aws_access_key_id="nobody", aws_secret_access_key="wrong-secret")
