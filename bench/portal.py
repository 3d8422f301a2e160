"""Portal video: time to first frame and seek latency in Chromium, Range first-byte time, portal RSS.

Two replicated recordings of --minutes (bench/replicated.py) sealed and uploaded by the archive's
own uploader into a SeaweedFS (the test server, on 127.0.0.1, data in the work dir); the portal
runs as `appliance gateway serve` (real HTTPS). Measured:
  range     first-byte time of Range requests at random offsets (fixed seed) by a script's
            HTTPS client (first recording), after the first request (which builds the
            recording's index: its own figure, `first_request_s`);
  chromium  Debian's chromium (headless): time to first frame (`loadeddata`) of a <video> on the
            second recording's video URL (not indexed yet: the scan is part of it), then seeks
            to random times (`seeked`), p50/p99;
  rss       the portal process's peak RSS (VmHWM) while two browsers play the two recordings;
  plaintext meanwhile, a scan for plaintext video in the portal's config and data dirs, its
            TMPDIR, what is new in /dev/shm and its open files (bench/plaintext_scan.py),
            proven first to find a run of served plaintext planted in each;
  old       the old design's review pipeline: decrypt the whole vault to a file on tmpfs
            (/dev/shm: RAM, never a disk), then play it from a plain static file server
            (werkzeug send_file, HTTP) in the same chromium: decrypt time + time to first frame.
Quick run: --minutes 2 --seeks 3 --play-seconds 1.
"""

from __future__ import annotations

import os
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from bench.decrypt_then_play import old_design
from bench.plaintext_scan import PlaintextScan, shared_memory_entries
from bench.replicated import new_path, write_replicated
from bench.served_portal import CHROMIUM, CLINICIAN, FLAGS, PASSPHRASE, ServedPortal, log_in, make_keys

CARD = {"source": "worklist", "patient_name": "Bench^Patient", "patient_id": "BENCH-1", "birth_date": "19700101",
        "sex": "O", "accession_number": "ACC-BENCH", "study_instance_uid": "1.2.826.0.1.3680043.8.498.16",
        "requested_procedure": "Laser treatment", "scheduled_step_id": "SPS-1", "scheduled_start": "20261201090000",
        "operator_id": "op-1"}


def add_arguments(parser) -> None:
    parser.add_argument("--minutes", type=float, default=60.0, help="length of each recording (default 60)")
    parser.add_argument("--frame-size", default="512x288", help="WxH of the template encoding")
    parser.add_argument("--seeks", type=int, default=20, help="random seeks per measurement")
    parser.add_argument("--play-seconds", type=float, default=10.0, help="two browsers play this long (RSS)")


def run(args) -> dict:
    from tests.servers.seaweedfs import SeaweedFS, unique_bucket   # the S3 server; bench/archive.py's too

    width, height = (int(part) for part in args.frame_size.split("x"))
    work = Path(tempfile.mkdtemp(prefix="bench-portal-"))
    weed = SeaweedFS().start(work / "s3")
    portal = None
    try:
        bucket = weed.create_bucket(unique_bucket("bench-portal"))
        keys, uids, sizes = make_keys(work / "keys"), [], []
        started = time.monotonic()
        for _ in range(2):
            uid, size = _recording(work, keys, weed, bucket, args.minutes, (width, height))
            uids.append(uid)
            sizes.append(size)
        build_s = time.monotonic() - started
        shared_memory_before = shared_memory_entries()
        portal = ServedPortal(work / "portal", keys, weed, bucket)
        portal.add(CLINICIAN)
        portal.start()
        ranges, plaintext_run = _ranges(portal, uids[0], args.seeks)
        scan = PlaintextScan([portal.directory], portal.process.pid, shared_memory_before)
        browser = _chromium(portal, uids, args, scan, plaintext_run)
        rss = browser.pop("portal_rss")
        old = old_design(weed, bucket, uids[0], keys.recipient_key, PASSPHRASE, SEEK_SCRIPT, args.seeks)
        old["seek_ms"] = _percentiles(old.pop("seek_times_ms"))
    finally:
        if portal is not None:
            portal.stop()
        weed.kill()        # its data is removed next: no orderly stop to wait for
        shutil.rmtree(work, ignore_errors=True)
    return {
        "machine_load": {"load_average": list(os.getloadavg())},
        "recordings": {"count": 2, "minutes": args.minutes, "frame_size": args.frame_size,
                       "bytes": sizes, "replicated": True, "build_and_upload_s": round(build_s, 2)},
        "range": ranges, "chromium": browser, "portal_rss_mb": rss, "old_design": old,
        "ratios": {"time_to_first_frame_old_vs_portal": round(old["time_to_first_frame_s"]
                                                              / browser["time_to_first_frame_s"], 2)},
        "targets": {"range_first_byte_p99_at_most_200_ms": ranges["first_byte_ms"]["p99"] <= 200,
                    "portal_rss_at_most_300_mb": rss["peak"] <= 300},
    }


def _recording(work: Path, keys, weed, bucket: str, minutes: float, size) -> tuple[str, int]:
    from appliance import vault
    from bench.sealed_recordings import upload

    directory = work / "recordings"
    directory.mkdir(mode=0o700, exist_ok=True)
    path = new_path(directory)
    signer = vault.keys.load_device_key(keys.device_key)
    metadata = write_replicated(path, vault.keys.load_recipient_public(keys.recipient_pub), signer,
                                minutes=minutes, size=size, card=CARD)
    upload(weed.client(), weed.endpoint, bucket, work / "upload-state", path, metadata["session"],
           signer.public_key().key_id)
    size_bytes = path.stat().st_size
    path.unlink()
    return metadata["recording"], size_bytes


def _percentiles(values: list[float]) -> dict:
    ordered = sorted(values)
    return {"p50": round(statistics.median(ordered), 1),
            "p99": round(ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))], 1),
            "max": round(ordered[-1], 1), "count": len(ordered)}


def _ranges(portal, uid: str, count: int) -> tuple[dict, bytes]:
    """The figures, and a run of served plaintext from the middle (for the scan's self-test)."""
    client = portal.client()
    assert client.log_in(CLINICIAN) == 303, "the bench account cannot log in"
    url = f"/recordings/{uid}/video"
    started = time.monotonic()
    status, headers, _ = client.get(url, headers={"Range": "bytes=0-1"})
    first_request_s = time.monotonic() - started
    length = int(headers["Content-Range"].rsplit("/", 1)[1])
    chooser, times = random.Random(16), []
    for _ in range(count):
        offset = chooser.randrange(length - 65536)
        request_started = time.monotonic()
        status, _, body = client.get(url, headers={"Range": f"bytes={offset}-{offset + 65535}"})
        if status != 206 or len(body) != 65536:
            raise RuntimeError(f"range request answered {status} with {len(body)} bytes")
        times.append((time.monotonic() - request_started) * 1000)
    status, _, run = client.get(url, headers={"Range": f"bytes={length // 2}-{length // 2 + (256 << 10) - 1}"})
    return ({"first_request_s": round(first_request_s, 3), "served_length": length,
             "first_byte_ms": _percentiles(times), "note": "whole 64 KiB answer, so an upper bound of first byte"},
            run)


SEEK_SCRIPT = """async ([url, seeks, seed]) => {
  const video = document.createElement('video');
  video.muted = true;
  document.body.appendChild(video);
  const once = (name) => new Promise((resolve, reject) => {
    video.addEventListener(name, resolve, {once: true});
    video.addEventListener('error', () => reject(new Error('video error ' + video.error?.message)), {once: true});
  });
  let started = performance.now();
  video.src = url;
  await once('loadeddata');
  const first = performance.now() - started;
  let state = seed, times = [];
  for (let i = 0; i < seeks; i++) {
    state = (state * 1103515245 + 12345) % 2147483648;
    started = performance.now();
    video.currentTime = (state / 2147483648) * (video.duration - 2);
    await once('seeked');
    times.push(performance.now() - started);
  }
  return {first, times, duration: video.duration, width: video.videoWidth};
}"""

PLAY_SCRIPT = """async ([url]) => {
  const video = document.createElement('video');
  video.muted = true; video.src = url;
  document.body.appendChild(video);
  window.playing = video;
  await video.play();
  await new Promise((resolve) => {   // the first frame past 0 s: it really plays
    const check = () => video.currentTime > 0 ? resolve() : video.addEventListener('timeupdate', check, {once: true});
    check();
  });
  return video.duration;
}"""


def _chromium(portal, uids: list[str], args, scan: PlaintextScan, plaintext_run: bytes) -> dict:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browsers = [playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS + [
            "--autoplay-policy=no-user-gesture-required"]) for _ in uids]
        try:
            pages = []
            for browser in browsers:
                page = browser.new_context(ignore_https_errors=True).new_page()
                page.set_default_timeout(120_000)
                log_in(page, portal.base_url, CLINICIAN.name, CLINICIAN.password)
                pages.append(page)
            # The second recording: not yet indexed (the range figures used the first), so the
            # time to first frame includes the index scan, as a clinician's first play does.
            measured = pages[0].evaluate(SEEK_SCRIPT, [f"/recordings/{uids[1]}/video", args.seeks, 16])
            for page, uid in zip(pages, uids):
                page.evaluate(PLAY_SCRIPT, [f"/recordings/{uid}/video"])
            samples, deadline = [], time.monotonic() + args.play_seconds
            while time.monotonic() < deadline:
                samples.append(_rss_mb(portal.process.pid, "VmRSS"))
                time.sleep(0.2)     # a sampling period, not synchronisation
            found, files_read = scan.found()
            self_test = scan.self_test(plaintext_run, [portal.data, portal.tmp])
            playing = [page.evaluate("window.playing.currentTime") for page in pages]
        finally:
            for browser in browsers:
                browser.close()
    return {"time_to_first_frame_s": round(measured["first"] / 1000, 3), "duration_s": measured["duration"],
            "video_width": measured["width"], "seek_ms": _percentiles(measured["times"]),
            "played_s_while_sampling": playing,
            "plaintext_scan": {"found": found, "files_read": files_read, "self_test": self_test},
            "portal_rss": {"peak": _rss_mb(portal.process.pid, "VmHWM"), "max_sampled": max(samples)}}


def _rss_mb(pid: int, field: str) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError(f"/proc/{pid}/status has no {field}")
