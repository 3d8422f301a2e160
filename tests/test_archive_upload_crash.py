"""The uploader survives what a clinic network and a power cut do to it, on a real SeaweedFS:
the uploader SIGKILLed at random moments, the server SIGKILLed mid-upload, bytes damaged in
transit. Each time: the object is archived once, as sent, and nothing half-done is left."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import urllib.parse
from dataclasses import replace

import pytest

from appliance.archive import s3
from appliance.archive.pacing import Backoff
from appliance.archive.resume import StateStore
from appliance.archive.uploader import Uploader
from tests.servers.http_proxy import HttpProxy
from tests.test_archive_upload import KEY, PART, STATE, make_archive
from tests.waiting import wait_for

KILLS = 10
# The kill points are random, from a seed chosen per run and named in every failure message:
# ARCHIVE_CRASH_SEED=<seed> replays a failed run's kill points.
SEED_VARIABLE = "ARCHIVE_CRASH_SEED"
PART_TAIL = 777_777    # the last part's length: every part is at least this long
# The uploader in a process of its own, so that a SIGKILL hits it and nothing else.
UPLOAD_SCRIPT = """
import json, sys
from pathlib import Path
from appliance.archive import s3
from appliance.archive.pacing import Backoff
from appliance.archive.settings import ArchiveSettings
from appliance.archive.uploader import Uploader
settings = json.loads(sys.argv[1])
settings = ArchiveSettings(**{**settings, "credentials": Path(settings["credentials"])})
uploader = Uploader(s3.connect(settings), settings, Path(sys.argv[2]), backoff=Backoff(max_attempts=5, base=0.1))
print(uploader.upload_file(Path(sys.argv[3]), sys.argv[4], {"recording-state": "sealed"}).sha256, flush=True)
"""


def _proxy_for(server) -> HttpProxy:
    return HttpProxy(int(urllib.parse.urlparse(server.endpoint).port)).start()


def _part_number(request) -> int | None:
    if request.method != "PUT":
        return None
    query = urllib.parse.parse_qs(urllib.parse.urlparse(request.target).query)
    return int(query["partNumber"][0]) if "partNumber" in query else None


def _parts_on_server(archive, key) -> dict[int, int]:
    """{part number: size} the server holds for the upload the resume state names."""
    state = StateStore(archive.root / "uploads").load(key)
    if state is None:
        return {}
    try:
        listing = archive.server.client().list_parts(Bucket=archive.settings.bucket, Key=key, UploadId=state.upload_id)
    except Exception:   # no such upload (completed, or never created)
        return {}
    return {part["PartNumber"]: part["Size"] for part in listing.get("Parts", [])
            if state.parts.get(part["PartNumber"]) is not None
            and part["ETag"].strip('"') == state.parts[part["PartNumber"]].md5}


def _killer(started: dict, proxy, chance):
    """Hooks that SIGKILL started["child"] at a random moment: the head of its first or second
    request (every run sends at least two: an object already there gets HEAD, HEAD), or a random
    byte within the first PART_TAIL of a part body; with no part to send, at its complete or HEAD."""
    start, by_request = len(proxy.requests), chance.random() < 0.4
    nth_request, nth_byte = chance.randint(1, 2), chance.randrange(PART_TAIL)

    def kill(why: str):
        wait_for(lambda: "child" in started, what="the uploader's Popen to return")
        started["child"].send_signal(signal.SIGKILL)
        raise ConnectionAbortedError(why)

    def at_request(request):
        if by_request and len(proxy.requests) - start >= nth_request:
            kill("killed before this request went on")
        if not by_request and request.method in ("POST", "HEAD") and "uploads" not in request.target:
            kill("no part to send: killed before the complete or the check went on")

    def at_byte(request, offset, chunk):
        if not by_request and _part_number(request) is not None and offset + len(chunk) > nth_byte:
            kill("killed before these bytes went on")
        return chunk

    return at_request, at_byte


def test_an_uploader_killed_ten_times_at_random_archives_the_file_once_and_resends_no_held_part(
        seaweedfs, tmp_path):
    proxy = _proxy_for(seaweedfs)
    archive = make_archive(seaweedfs, tmp_path, endpoint=proxy.endpoint)
    path = archive.file(3 * PART + PART_TAIL)
    settings = {**archive.settings.__dict__, "credentials": str(archive.settings.credentials)}
    seed = int(os.environ.get(SEED_VARIABLE) or random.SystemRandom().randrange(2**32))
    replay = f"(replay: {SEED_VARIABLE}={seed})"
    print(f"kill points {replay}")   # pytest shows it with any failure, a timeout too
    chance = random.Random(seed)
    kills, resent_held, child = [], [], None
    try:
        for run in range(KILLS + 1):
            held = _parts_on_server(archive, KEY)
            first_request = len(proxy.requests)
            started = {}
            if run < KILLS:   # armed before the uploader starts, so no request of it goes unseen
                proxy.before_request, proxy.body_chunk = _killer(started, proxy, chance)
            started["child"] = child = subprocess.Popen(
                [sys.executable, "-c", UPLOAD_SCRIPT, json.dumps(settings), str(tmp_path / "uploads"),
                 str(path), KEY], stdout=subprocess.PIPE, text=True)
            output, _ = child.communicate(timeout=120)
            # bytes the dead uploader left in the proxy's buffers may still complete a part
            wait_for(proxy.idle, timeout=60, what="the dead uploader's connections to close")
            proxy.before_request = lambda request: None
            proxy.body_chunk = lambda request, offset, chunk: chunk
            if run < KILLS:
                kills.append(child.returncode)
            else:
                assert child.returncode == 0, f"the last run, not killed, must archive the file {replay}"
                assert output.strip() == archive.uploader().upload_file(path, KEY, STATE).sha256, replay
            resent_held += [n for r in proxy.requests[first_request:] if (n := _part_number(r)) in held]
    finally:
        if child is not None and child.poll() is None:
            child.kill()
            child.wait()
        proxy.stop()

    assert kills == [-signal.SIGKILL] * KILLS, replay
    assert resent_held == [], f"a part the server already held was sent again {replay}"
    assert archive.content(KEY) == path.read_bytes(), replay
    assert len(archive.versions(KEY)) == 1, replay
    assert archive.unfinished_uploads() == [], replay
    assert list((tmp_path / "uploads").iterdir()) == [], replay
    part_puts = [r for r in proxy.requests if _part_number(r) is not None]
    assert len(part_puts) >= 4, replay   # every part went at least once; the count above: none needlessly


def test_a_server_killed_mid_upload_and_restarted_is_finished_by_the_uploader_itself(own_seaweedfs, tmp_path):
    proxy = _proxy_for(own_seaweedfs)
    archive = make_archive(own_seaweedfs, tmp_path, endpoint=proxy.endpoint)
    path = archive.file(3 * PART + PART // 2)
    server_killed = threading.Event()

    def kill_the_server_halfway_through_the_last_part(request, offset, chunk):
        if _part_number(request) == 4 and offset >= PART // 4 and not server_killed.is_set():
            own_seaweedfs.kill()
            server_killed.set()
        return chunk

    proxy.body_chunk = kill_the_server_halfway_through_the_last_part
    outcome = {}
    uploader = archive.uploader(backoff=Backoff(base=0.05, cap=0.5))   # for ever, quickly
    worker = threading.Thread(target=lambda: outcome.update(
        confirmed=uploader.upload_file(path, KEY, STATE)), daemon=True)
    try:
        worker.start()
        wait_for(server_killed.is_set, timeout=120, what="the server killed mid-upload")
        own_seaweedfs.restart()
        worker.join(timeout=180)
    finally:
        proxy.stop()
    assert not worker.is_alive() and "confirmed" in outcome
    assert archive.content(KEY) == path.read_bytes()
    assert len(archive.versions(KEY)) == 1 and archive.unfinished_uploads() == []
    assert list((tmp_path / "uploads").iterdir()) == []


@pytest.mark.parametrize("size", [3 * PART + 10, 5000])
def test_bytes_damaged_in_transit_are_refused_by_the_server_and_sent_again(seaweedfs, tmp_path, size):
    proxy = _proxy_for(seaweedfs)
    archive = make_archive(seaweedfs, tmp_path, endpoint=proxy.endpoint)
    path = archive.file(size)
    damaged = []

    def flip_one_byte_once(request, offset, chunk):
        if request.method == "PUT" and not damaged and offset <= 1000 < offset + len(chunk):
            damaged.append(request)
            request.tampered = True
            at = 1000 - offset
            return chunk[:at] + bytes([chunk[at] ^ 0x01]) + chunk[at + 1:]
        return chunk

    proxy.body_chunk = flip_one_byte_once
    try:
        confirmed = archive.uploader().upload_file(path, KEY, STATE)
    finally:
        proxy.stop()
    assert len(damaged) == 1
    assert confirmed.size == size and archive.content(KEY) == path.read_bytes()
    same_target = [r for r in proxy.requests if r.method == "PUT" and r.target == damaged[0].target]
    assert [r.tampered for r in same_target] == [True, False]   # the damaged request, sent again
    assert len(archive.versions(KEY)) == 1


@pytest.mark.parametrize("size", [3 * PART + 10, 5000])
def test_bytes_damaged_on_every_attempt_are_never_confirmed(seaweedfs, tmp_path, size):
    proxy = _proxy_for(seaweedfs)
    archive = make_archive(seaweedfs, tmp_path, endpoint=proxy.endpoint)
    path = archive.file(size)

    def flip_every_time(request, offset, chunk):   # the single PUT, or part 2
        if request.method == "PUT" and _part_number(request) in (None, 2) and offset == 0:
            request.tampered = True
            return bytes([chunk[0] ^ 0x80]) + chunk[1:]
        return chunk

    proxy.body_chunk = flip_every_time
    try:
        with pytest.raises(s3.ArchiveUnavailable, match="BadDigest"):
            archive.uploader().upload_file(path, KEY, STATE)
    finally:
        proxy.stop()
    assert archive.versions(KEY) == []
    assert len([r for r in proxy.requests if r.tampered]) == 3   # the attempts allowed, each refused
    # and it resumes from there once the link is clean again
    clean = replace(archive.settings, endpoint=archive.server.endpoint)
    assert Uploader(s3.connect(clean), clean, tmp_path / "uploads").upload_file(path, KEY, STATE).size == size


def test_an_upload_left_half_done_with_another_part_size_is_aborted_and_started_again(seaweedfs, tmp_path):
    proxy = _proxy_for(seaweedfs)
    archive = make_archive(seaweedfs, tmp_path, endpoint=proxy.endpoint)
    path = archive.file(3 * PART + 10)
    proxy.body_chunk = lambda request, offset, chunk: (
        bytes([chunk[0] ^ 0x80]) + chunk[1:] if _part_number(request) == 4 and offset == 0 else chunk)
    try:
        with pytest.raises(s3.ArchiveUnavailable):
            archive.uploader().upload_file(path, KEY, STATE)
    finally:
        proxy.stop()
    assert len(archive.unfinished_uploads()) == 1   # parts 1-3 wait on the server

    larger = replace(archive.settings, endpoint=archive.server.endpoint, part_mib=16)
    confirmed = Uploader(s3.connect(larger), larger, tmp_path / "uploads").upload_file(path, KEY, STATE)
    assert confirmed.size == path.stat().st_size and archive.content(KEY) == path.read_bytes()
    assert archive.unfinished_uploads() == [] and len(archive.versions(KEY)) == 1
