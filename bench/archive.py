"""Archive upload: our resumable uploader vs boto3's own upload_file, and recording while it runs.

On one synthetic vault-sized file (random bytes: ciphertext looks like that), each in its own
process so CPU time and peak RSS belong to one uploader:
  ours   appliance/archive/uploader.py: local whole-file SHA-256, then 8 MiB parts, three in
         flight, each with Content-MD5 and SHA-256, resume state fsynced before each part, Object
         Lock, HEAD-confirmed (size, checksum, retention), within its CPU budget (--cpu-percent,
         default: the setting's default);
  boto3  boto3's S3Transfer `upload_file` with its default TransferConfig (8 MiB parts, 10
         threads), the same Object Lock retention, SHA-256 checksums, no confirmation.
Then a paced 30 fps recording (bench/record.py's worker) while our uploader uploads the file
again and again at full speed (no max_mbps), with the settings and priority the archive service
gives itself (CPU budget, nice, idle I/O): dropped frames must be 0. The same recording alone,
just before, tells the uploader's share from the machine's own load.
The S3 server is SeaweedFS (the test server, tests/servers/seaweedfs.py, from a checkout) on
127.0.0.1 of the same machine: no network in the way, so MiB/s compares the clients' own cost
(the uploaders take turns, ours, boto3, ours, ... --rounds times each; the medians and their
ratio count, so a burst of load from elsewhere does not decide the figure; the machine's cores
and load average go into the JSON). While the recording runs the server has the lowest
priority (every thread: idle scheduling class, nice 19, idle I/O), and its data lives in
/dev/shm (--server-dir), as it would run, with its own disks, on another machine in a clinic.
Quick run: --mib 16 --rounds 1 --record-seconds 2 --frame-size 640x480.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from appliance.archive.settings import ArchiveSettings
from appliance.errors import BadInput
from bench.rss import peak_rss_mb

MIB, GIB = 1 << 20, 1 << 30
RETENTION_DAYS = 1
SERVER_NICENESS = 19
SHARED_MEMORY = Path("/dev/shm")


def add_arguments(parser) -> None:
    parser.add_argument("--mib", type=int, default=200, help="size of the synthetic vault (MiB)")
    parser.add_argument("--record-seconds", type=float, default=30.0,
                        help="length of the 30 fps recording made while the uploader runs")
    parser.add_argument("--frame-size", default="1920x1200", help="camera WIDTHxHEIGHT of that recording")
    parser.add_argument("--rounds", type=int, default=3,
                        help="uploads by each uploader, interleaved; the medians count")
    parser.add_argument("--upload-mbps", type=float, default=0.0,
                        help="[archive] max_mbps for the uploader that runs during the recording (0: none)")
    parser.add_argument("--cpu-percent", type=float, default=ArchiveSettings.cpu_percent,
                        help="[archive] cpu_percent of our uploader (default: the setting's default)")
    parser.add_argument("--workdir", type=Path, default=None, help="where the synthetic vault goes (default: temp)")
    parser.add_argument("--server-dir", type=Path, default=SHARED_MEMORY if SHARED_MEMORY.is_dir() else None,
                        help="where the server keeps its data (default: /dev/shm, as its disk is elsewhere in a "
                             "clinic; the recorder's disk should not carry the server's writes)")


def run(args) -> dict:
    if args.rounds < 1:
        raise BadInput("bench archive: --rounds must be at least 1")
    load_before = os.getloadavg()
    width, height = (int(part) for part in args.frame_size.lower().split("x"))
    workdir = Path(tempfile.mkdtemp(prefix="bench-archive-", dir=args.workdir))
    server_dir = Path(tempfile.mkdtemp(prefix="bench-archive-server-", dir=args.server_dir))
    server = _test_server_class()()
    try:
        server.start(server_dir)
        bucket = server.create_bucket(f"bench-{uuid.uuid4().hex[:12]}")
        common = {"endpoint": server.endpoint, "bucket": bucket, "credentials": str(_credentials(workdir, server)),
                  "file": str(_synthetic_vault(workdir / "synthetic.mp4.vault", args.mib * MIB)),
                  "state_dir": str(workdir / "upload-state"), "cpu_percent": args.cpu_percent}
        rounds = [{name: _spawn({**common, "uploader": name, "key": f"bench/{name}-{round_}.mp4.vault"})
                   for name in ("ours", "boto3")} for round_ in range(args.rounds)]
        ours, boto3 = (_medians([one[name] for one in rounds]) for name in ("ours", "boto3"))
        _lowest_priority(server.pid)   # from now on it stands for a server on another machine
        concurrent = _record_while_uploading({**common, "max_mbps": args.upload_mbps}, width, height,
                                             args.record_seconds, workdir)
    finally:
        server.kill()   # its data is deleted next: no orderly stop (it idles ~7 s)
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(server_dir, ignore_errors=True)
    ratio = round(ours["mib_per_s"] / boto3["mib_per_s"], 3)
    return {
        "settings": {"mib": args.mib, "part_mib": 8, "rounds": args.rounds, "record_seconds": args.record_seconds,
                     "upload_mbps_while_recording": args.upload_mbps, "cpu_percent": args.cpu_percent,
                     "frame_size": f"{width}x{height}",
                     "server": f"SeaweedFS on 127.0.0.1, data in {args.server_dir or 'temp'} "
                               "(every thread at the lowest priority while recording)"},
        "machine": {"cores": os.cpu_count(), "load_average_before": [round(x, 2) for x in load_before],
                    "load_average_after": [round(x, 2) for x in os.getloadavg()]},
        "note": "shared cores, loopback server: figures are noisy; medians of interleaved rounds; "
                "rerun with the same flags to compare",
        "upload": {"ours": ours, "boto3_upload_file": boto3,
                   "all_rounds_mib_per_s": {name: [one[name]["mib_per_s"] for one in rounds]
                                            for name in ("ours", "boto3")},
                   "ratios": {"ours_mib_per_s_vs_boto3": ratio}},
        "recording_while_uploading": concurrent,
        "targets": {
            "at_least_0_9_of_boto3": ratio >= 0.9,
            "uploader_peak_rss_at_most_100_mb": ours["peak_rss_mb"] <= 100,
            "no_drops_at_30_fps_while_uploading": concurrent["recording"]["dropped"] == 0,
        },
    }


def _medians(rounds: list[dict]) -> dict:
    """One uploader's figures over its rounds: the median of each, the peak of peak RSS."""
    figures = {name: round(statistics.median(one[name] for one in rounds), 3)
               for name in ("wall_s", "mib_per_s", "cpu_s_per_gib")}
    return {"bytes": rounds[0]["bytes"], **figures, "peak_rss_mb": max(one["peak_rss_mb"] for one in rounds)}


def _test_server_class():
    """The test suite's SeaweedFS fixture class (a checkout's tests/ is not an installed package)."""
    root = str(Path(__file__).resolve().parents[1])
    if root not in sys.path:
        sys.path.insert(0, root)
    from tests.servers.seaweedfs import SeaweedFS
    return SeaweedFS


def _lowest_priority(pid: int) -> None:
    """Every thread of process `pid` in the idle CPU scheduling class, at nice 19, in the idle I/O
    class. Linux keeps all three per thread (a call naming the pid reaches its main thread only),
    and threads started later inherit them from their (by then idle) creators."""
    for thread in (int(tid) for tid in os.listdir(f"/proc/{pid}/task")):
        try:
            os.sched_setscheduler(thread, os.SCHED_IDLE, os.sched_param(0))
            os.setpriority(os.PRIO_PROCESS, thread, SERVER_NICENESS)
        except ProcessLookupError:   # the thread ended meanwhile
            continue
        if shutil.which("ionice"):
            subprocess.run(["ionice", "-c", "3", "-p", str(thread)], check=False, capture_output=True)


def _credentials(workdir: Path, server) -> Path:
    return server.write_credentials(workdir / "s3-credentials")


def _synthetic_vault(path: Path, size: int) -> Path:
    with open(path, "wb") as out:
        for offset in range(0, size, MIB):
            out.write(os.urandom(min(MIB, size - offset)))
    return path


def _spawn(spec: dict) -> dict:
    if sys.stderr.isatty():
        print(f"bench archive: {spec['uploader']} ...", file=sys.stderr, flush=True)
    result = subprocess.run([sys.executable, "-m", "bench.archive", json.dumps(spec)], capture_output=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{spec['uploader']} upload failed: {result.stderr.decode()[-2000:]}")
    return json.loads(result.stdout)


def _record_while_uploading(common: dict, width: int, height: int, seconds: float, workdir: Path) -> dict:
    """A paced recording alone, then in one process while another uploads at full speed."""
    from appliance.recording.settings import RecordingSettings

    recording_spec = {"pipeline": "ours", "mode": "paced", "seconds": seconds, "width": width, "height": height,
                      "fps": 30.0, "preset": RecordingSettings.preset, "crf": RecordingSettings.crf,
                      "workdir": str(workdir)}
    alone = _record(recording_spec)
    spec = {**common, "uploader": "ours", "key": "bench/loop", "loop": True, "lower_priority": True}
    uploader = subprocess.Popen([sys.executable, "-m", "bench.archive", json.dumps(spec)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        first = uploader.stdout.readline()   # the uploader is under way before the camera starts
        if not first:
            raise RuntimeError(f"the looping uploader failed: {uploader.stderr.read().decode()[-2000:]}")
        recording = _record(recording_spec)
    finally:
        uploader.send_signal(signal.SIGTERM)
        rest, _ = uploader.communicate(timeout=120)
    uploads = [json.loads(line) for line in (first + rest).decode().splitlines() if line.strip()]
    return {"recording": recording, "recording_alone": alone, "uploads_during": len(uploads),
            "upload_mib_per_s": round(sum(u["bytes"] for u in uploads) / MIB / sum(u["wall_s"] for u in uploads), 1)}


def _record(spec: dict) -> dict:
    recorded = subprocess.run([sys.executable, "-m", "bench.record", json.dumps(spec)],
                              capture_output=True, check=False)
    if recorded.returncode != 0:
        raise RuntimeError(f"the recording failed: {recorded.stderr.decode()[-2000:]}")
    figures = json.loads(recorded.stdout)
    return {name: figures[name] for name in ("frames", "dropped", "fps", "cpu_percent")}


# --- measurement worker (one per process) --------------------------------------------------------

def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _upload_ours(spec: dict, key: str) -> None:
    from appliance.archive.s3 import connect
    from appliance.archive.uploader import Uploader

    settings = ArchiveSettings(endpoint=spec["endpoint"], bucket=spec["bucket"], credentials=Path(spec["credentials"]),
                               retention_days=RETENTION_DAYS, max_mbps=spec.get("max_mbps", 0.0),
                               cpu_percent=spec["cpu_percent"])
    Uploader(connect(settings), settings, Path(spec["state_dir"])).upload_file(
        Path(spec["file"]), key, {"recording-state": "sealed"})


def _upload_boto3(spec: dict, key: str) -> None:
    import datetime

    import boto3

    from appliance.archive.s3 import read_credentials

    access_key, secret_key = read_credentials(ArchiveSettings(credentials=Path(spec["credentials"])))
    client = boto3.client("s3", endpoint_url=spec["endpoint"], region_name="us-east-1",
                          aws_access_key_id=access_key, aws_secret_access_key=secret_key)
    until = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=RETENTION_DAYS)
    client.upload_file(spec["file"], spec["bucket"], key, ExtraArgs={
        "ObjectLockMode": "COMPLIANCE", "ObjectLockRetainUntilDate": until, "ChecksumAlgorithm": "SHA256",
        "Metadata": {"recording-state": "sealed"}})


def _worker(spec: dict) -> None:
    upload = {"ours": _upload_ours, "boto3": _upload_boto3}[spec["uploader"]]
    if spec.get("lower_priority"):
        from appliance.archive.service import lower_priority
        lower_priority()
    size = Path(spec["file"]).stat().st_size
    for round_ in range(1_000_000 if spec.get("loop") else 1):
        key = f"{spec['key']}-{round_}.mp4.vault" if spec.get("loop") else spec["key"]
        cpu_before, started = _cpu_s(), time.perf_counter()
        upload(spec, key)
        wall_s, cpu_s = time.perf_counter() - started, _cpu_s() - cpu_before
        print(json.dumps({"bytes": size, "wall_s": round(wall_s, 3), "mib_per_s": round(size / MIB / wall_s, 1),
                          "cpu_s_per_gib": round(cpu_s * GIB / size, 2), "peak_rss_mb": peak_rss_mb()}), flush=True)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    _worker(json.loads(sys.argv[1]))
