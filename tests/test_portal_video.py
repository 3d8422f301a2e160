"""GET /recordings/<uid>/video, in-process over recordings from the demo in SeaweedFS: the
recording's plaintext with its index, by Range, for clinicians only; an interrupted recording
up to its last complete second; and what one range request costs in archive reads."""

from __future__ import annotations

import io
import re

import av
import pytest

from appliance import vault
from appliance.gateway.state import GatewayState
from appliance.portal.indexed_view import scan
from appliance.portal.remote_object import RemoteObject
from tests.clips import FPS
from tests.gatewaying import clinic_keys  # noqa: F401 (fixture)
from tests.portal_recordings import portal_recordings, recordings_app  # noqa: F401 (fixtures)
from tests.portaling import CLINICIAN, IT, log_in_test_client


@pytest.fixture(scope="module")
def clinician(recordings_app):
    client = recordings_app.test_client()
    assert log_in_test_client(client, CLINICIAN).status_code == 303
    return client


def plaintext(portal_recordings, name: str) -> bytes:  # noqa: F811
    """The recording as the vault holds it, decrypted here from the archive object."""
    entry = next(iter([portal_recordings.clips[name]]))
    client = portal_recordings.seaweedfs.client()
    key = next(item["Key"] for item in client.list_objects_v2(Bucket=portal_recordings.bucket)["Contents"]
               if entry.uid in item["Key"] and not item["Key"].endswith(".manifest"))
    body = client.get_object(Bucket=portal_recordings.bucket, Key=key)["Body"].read()
    with vault.open_reader(io.BytesIO(body), portal_recordings.identity, torn_tail_ok=entry.interrupted) as reader:
        return reader.read()


def without_sidx(served: bytes) -> bytes:
    start = served.index(b"sidx") - 4
    return served[:start] + served[start + int.from_bytes(served[start:start + 4], "big"):]


def frames_in(data: bytes) -> int:
    with av.open(io.BytesIO(data)) as container:
        return sum(1 for _ in container.decode(video=0))


def test_a_clinician_gets_the_recording_with_its_index_by_range(clinician, portal_recordings):  # noqa: F811
    clip = portal_recordings.clips["treatment"]
    whole = clinician.get(f"/recordings/{clip.uid}/video")
    assert whole.status_code == 200
    assert whole.headers["Content-Type"] == "video/mp4" and whole.headers["Cache-Control"] == "no-store"
    assert whole.headers["Accept-Ranges"] == "bytes"
    served = whole.get_data()
    assert int(whole.headers["Content-Length"]) == len(served)
    expected = plaintext(portal_recordings, "treatment")
    assert expected.startswith(without_sidx(served)) and expected[len(without_sidx(served)) + 4:][:4] == b"mfra"
    assert frames_in(served) == clip.frames

    for first, last in [(0, 99), (len(served) // 2, len(served) // 2 + 70_000), (len(served) - 10, len(served) - 1)]:
        part = clinician.get(f"/recordings/{clip.uid}/video", headers={"Range": f"bytes={first}-{last}"})
        assert part.status_code == 206 and part.headers["Cache-Control"] == "no-store"
        assert part.headers["Content-Range"] == f"bytes {first}-{last}/{len(served)}"
        assert int(part.headers["Content-Length"]) == last + 1 - first
        assert part.get_data() == served[first:last + 1]
    beyond = clinician.get(f"/recordings/{clip.uid}/video", headers={"Range": f"bytes={len(served)}-"})
    assert beyond.status_code == 416


def test_an_interrupted_recording_plays_to_its_last_complete_second(clinician, portal_recordings):  # noqa: F811
    clip = portal_recordings.clips["interrupted"]
    response = clinician.get(f"/recordings/{clip.uid}/video")
    assert response.status_code == 200
    served = response.get_data()
    recorded = plaintext(portal_recordings, "interrupted")
    assert recorded.startswith(without_sidx(served)) and len(without_sidx(served)) < len(recorded)
    assert frames_in(served) % FPS == 0 and 0 < frames_in(served) < clip.frames


def test_others_are_refused(recordings_app, clinician, portal_recordings):  # noqa: F811
    uid = portal_recordings.clips["treatment"].uid
    anonymous = recordings_app.test_client().get(f"/recordings/{uid}/video")
    assert anonymous.status_code == 401 and anonymous.get_json() == {"error": "log in first"}
    it = recordings_app.test_client()
    assert log_in_test_client(it, IT).status_code == 303
    assert it.get(f"/recordings/{uid}/video").status_code == 403
    assert clinician.get("/recordings/" + "0" * 32 + "/video").status_code == 404
    stranger = clinician.get(f"/recordings/{portal_recordings.clips['stranger'].uid}/video")
    assert stranger.status_code == 409 and re.search(r"device|enrolled|signature", stranger.get_json()["error"])


def video_views(app) -> list[tuple]:
    state = GatewayState(app.extensions["portal"].config.gateway.data)
    try:
        return [(e.actor, e.details) for e in state.audit_entries()
                if e.event == "recording_viewed" and e.details.get("part") == "video"]
    finally:
        state.close()


def test_fetching_the_video_alone_is_audited_once_per_session(recordings_app, portal_recordings):  # noqa: F811
    """A script that skips the player page and only downloads the video leaves its entry; the
    many range requests of one play leave one."""
    uid, other = portal_recordings.clips["treatment"].uid, portal_recordings.clips["follow_up"].uid
    before = len(video_views(recordings_app))
    script = recordings_app.test_client()
    assert log_in_test_client(script, CLINICIAN).status_code == 303
    assert script.get(f"/recordings/{uid}/video").status_code == 200
    assert video_views(recordings_app)[before:] == [(CLINICIAN.name, {"recording": uid, "part": "video"})]
    for first in (0, 5000, 0):
        assert script.get(f"/recordings/{uid}/video", headers={"Range": f"bytes={first}-"}).status_code == 206
    assert script.get(f"/recordings/{other}/video").status_code == 200
    again = recordings_app.test_client()        # a new login is a new session: audited again
    assert log_in_test_client(again, CLINICIAN).status_code == 303
    assert again.get(f"/recordings/{uid}/video", headers={"Range": "bytes=100-200"}).status_code == 206
    assert [details["recording"] for _, details in video_views(recordings_app)[before:]] == [uid, other, uid]
    assert script.get("/recordings/" + "0" * 32 + "/video").status_code == 404    # not served: not viewed
    assert len(video_views(recordings_app)) == before + 3


def test_a_range_in_the_middle_fetches_and_decrypts_only_its_segments(portal_recordings):  # noqa: F811
    """The index scan reads a segment per second of video; then a seek reads the segments under
    the range, not the recording before it. (A noisy clip: many vault segments per second.)"""
    from appliance.portal.remote_object import MIN_FETCH
    from appliance.vault import stream
    from tests.clips import write_clip

    client = portal_recordings.seaweedfs.client()
    recipient = vault.keys.load_recipient_public(portal_recordings.keys.recipient_pub)
    ciphertext = io.BytesIO()
    write_clip(ciphertext, recipient, 3 * FPS, noisy=True)
    client.put_object(Bucket=portal_recordings.bucket, Key="noisy.vault", Body=ciphertext.getvalue())
    remote = RemoteObject(client, portal_recordings.bucket, "noisy.vault", len(ciphertext.getvalue()))
    reader = vault.open_reader(remote, portal_recordings.identity)
    assert reader.segments >= 20
    scan(reader)
    assert remote.requests <= 2 + 3      # the header with segment 0, the last segment, one per moof at most
    assert remote.bytes_fetched <= 5 * max(MIN_FETCH, stream.segment_start(1))
    remote.requests = remote.bytes_fetched = 0
    reader.seek(reader.plaintext_length // 2)
    assert len(reader.read(1000)) == 1000
    assert remote.requests == 1 and remote.bytes_fetched <= 2 * stream.segment_start(1)


def test_serving_a_long_recording_holds_only_a_bounded_part_of_it(
        recordings_app, clinician, portal_recordings, tmp_path):  # noqa: F811
    """A 17 MiB recording (replicated, 1280x720) streamed whole through the route, index scan
    included: the most memory Python held at once for it is the fetched spans and decrypted
    segments, a few MiB; a design holding the recording (or its ciphertext) cannot pass."""
    import tracemalloc

    from appliance.portal.remote_object import CACHE_BYTES, READ_AHEAD_MAX
    from bench.replicated import new_path, write_replicated
    from bench.sealed_recordings import upload
    from tests.portal_recordings import A_CARD

    keys = portal_recordings.keys
    signer = vault.keys.load_device_key(keys.device_key)
    path = new_path(tmp_path)
    metadata = write_replicated(path, vault.keys.load_recipient_public(keys.recipient_pub), signer, minutes=2,
                                size=(1280, 720), template_s=2, card=A_CARD)
    size = path.stat().st_size
    upload(portal_recordings.seaweedfs.client(), portal_recordings.seaweedfs.endpoint, portal_recordings.bucket,
           tmp_path / "upload-state", path, metadata["session"], signer.public_key().key_id)
    path.unlink()
    recordings_app.extensions["portal"].clock.advance(60)      # the library lists the bucket again
    bound = 2 * CACHE_BYTES + 2 * READ_AHEAD_MAX     # spans kept, one fetch in flight (and boto3's copy of it)
    assert size > 2.5 * bound    # a whole recording would not fit

    tracemalloc.start()
    try:
        response = clinician.get(f"/recordings/{metadata['recording']}/video", buffered=False)
        assert response.status_code == 200
        served = sum(len(chunk) for chunk in response.response)
        response.close()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert served == int(response.headers["Content-Length"]) > size * 0.99
    assert peak < bound, f"{peak / 2**20:.1f} MiB held at once while serving {size / 2**20:.1f} MiB"
