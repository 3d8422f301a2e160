"""Gateway: minutes of video delivered per minute of wall time, peak RSS, and where the time goes.

A 1920x1200 30 fps recording (synthetic camera frames through the appliance's encoder settings,
in a vault with a signed manifest and a sealed identity card) goes the gateway's way: decrypt ->
transcode to H.264 High 4.1 at 1728x1080 -> Video Photographic Image instance -> C-STORE (the
pipeline's pacs.deliver) to dcmtk's storescp, which receives and discards (--ignore). Shares:
decrypt (a decrypt-only pass), transcode and build (time spent producing the next instance, less
decrypt), send (writing the instance and C-STORE, reading it back from the encrypted scratch).
Side by side, the old design's way of converting: the ffmpeg CLI transcoding the same plaintext
with the same encoder settings (the plaintext piped in, the output piped out as fragmented MP4,
since ffmpeg's faststart needs a named file). Each measurement runs in its own process.
Quick run: --minutes 0.5; the full run is the default 10 minutes. On a shared machine the wall
time says as much about the neighbours as about us: the JSON carries the core count and the
1-minute load average sampled during each measurement (CPU time per frame does not depend on them).
Making 10 minutes of synthetic camera frames takes about as long as transcoding them:
--recording DIR keeps the recording for the next run with the same size, rate and length.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from bench.rss import peak_rss_mb

STORESCP = "/usr/bin/storescp"
PASSPHRASE = b"bench passphrase"


def add_arguments(parser) -> None:
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the recording")
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1200)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--transfer", choices=("h264", "hevc"), default="h264")
    parser.add_argument("--no-send", action="store_true", help="write instances to a byte counter instead of storescp")
    parser.add_argument("--workdir", type=Path, default=None, help="where scratch files go (default: a temp dir)")
    parser.add_argument("--recording", type=Path, default=None,
                        help="keep the recording in this directory and reuse it (default: made anew, then removed)")
    parser.add_argument("--no-compare", action="store_true",
                        help="skip the ffmpeg CLI run (it takes about as long again)")


def run(args) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="bench-gateway-", dir=args.workdir))
    started_load = os.getloadavg()
    try:
        frames = max(1, round(args.minutes * 60 * args.fps))
        spec = {"workdir": str(workdir), "frames": frames, "fps": args.fps, "transfer": args.transfer,
                **_recording(args.recording or workdir, frames, args.width, args.height, args.fps)}
        decrypt = _spawn({**spec, "pipeline": "decrypt"})
        ours = _spawn({**spec, "pipeline": "ours", "send": not args.no_send})
        ffmpeg = None if args.no_compare else _spawn({**spec, "pipeline": "ffmpeg"})
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    video_minutes = frames / args.fps / 60
    compared = {} if ffmpeg is None else {
        "ffmpeg_cli": {**ffmpeg, "video_minutes_per_wall_minute": round(video_minutes / (ffmpeg["wall_s"] / 60), 2)},
        "ratios": {"ours_speed_vs_ffmpeg_cli": round(ffmpeg["wall_s"] / ours["wall_s"], 3),
                   "ours_cpu_vs_ffmpeg_cli": round(ours["cpu_s"] / ffmpeg["cpu_s"], 3)}}
    transcode_s = max(0.0, ours["producing_s"] - decrypt["wall_s"])
    send_s = ours["wall_s"] - ours["producing_s"]
    return {
        "settings": {"minutes": args.minutes, "size": f"{args.width}x{args.height}", "fps": args.fps,
                     "transfer": args.transfer, "send": "storescp --ignore" if not args.no_send else "none (byte counter)"},
        "note": "shared cores: wall figures depend on the load average; CPU per frame does not",
        "machine": {"cores": os.cpu_count(), "load_average_1_5_15_at_start": [round(x, 2) for x in started_load],
                    "load_average_1_5_15_at_end": [round(x, 2) for x in os.getloadavg()]},
        "recording_bytes": spec["recording_bytes"],
        "ours": {**ours, "video_minutes_per_wall_minute": round(video_minutes / (ours["wall_s"] / 60), 2),
                 "cpu_ms_per_frame": round(1000 * ours["cpu_s"] / frames, 2),
                 # CPU time says what the pipeline costs whatever else runs on the machine:
                 "cores_busy_for_2x_real_time": round(ours["cpu_s"] / (video_minutes * 30), 2),
                 "share": {"decrypt": _share(decrypt["wall_s"], ours["wall_s"]),
                           "transcode_and_build": _share(transcode_s, ours["wall_s"]),
                           "send": _share(send_s, ours["wall_s"])}},
        "decrypt_only": decrypt,
        **compared,
        "targets": {"at_least_2x_real_time": video_minutes / (ours["wall_s"] / 60) >= 2,
                    "peak_rss_at_most_400_mb": ours["peak_rss_mb"] <= 400},
    }


def _share(part: float, whole: float) -> float:
    return round(part / whole, 3) if whole else 0.0


def _progress(line: str) -> None:
    if sys.stderr.isatty():
        print(f"bench gateway: {line}", file=sys.stderr, flush=True)


def _recording(directory: Path, frames: int, width: int, height: int, fps: int) -> dict:
    """The recording for these settings in `directory`: the one an earlier run left there, or a new one."""
    home = directory / f"recording-{width}x{height}-{fps}fps-{frames}"
    made = home / "recording.json"
    if made.exists():
        _progress(f"reusing the recording in {home}")
        return json.loads(made.read_text())
    _progress(f"recording {frames} frames at {width}x{height} ...")
    mask = os.umask(0o077)
    try:
        home.mkdir(parents=True, exist_ok=True)
        recording = _make_recording(home, frames, width, height, fps)
        made.write_text(json.dumps(recording))     # last: a run cut short leaves no half recording to reuse
    finally:
        os.umask(mask)
    return recording


def _make_recording(workdir: Path, frames: int, width: int, height: int, fps: int) -> dict:
    """The recording as the appliance leaves it: fragmented MP4 straight into the vault writer."""
    import av

    from appliance import vault
    from appliance.camera.synthetic import SyntheticPattern
    from appliance.recording.settings import RecordingSettings
    from appliance.vault.identity_card import seal_card

    key_path, public_path = vault.keys.generate_recipient(workdir / "recipient", PASSPHRASE)
    device_path, _ = vault.keys.generate_device(workdir / "device")
    recipient = vault.keys.load_recipient_public(public_path)
    path = workdir / f"{uuid.uuid4().hex}.mp4.vault"
    pattern, settings = SyntheticPattern(width, height), RecordingSettings()
    with open(path, "wb") as out:
        writer = vault.encrypt(out, [recipient])
        muxer = av.open(writer, "w", format="mp4", options={"movflags": "frag_keyframe+empty_moov+default_base_moof"})
        stream = muxer.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.gop_size = fps
        stream.codec_context.options = {"preset": settings.preset, "crf": str(settings.crf), "tune": "zerolatency"}
        for index in range(frames):
            picture = av.VideoFrame.from_ndarray(pattern.render(index), format="bgr24")
            picture.pts = index
            muxer.mux(stream.encode(picture))
        muxer.mux(stream.encode())
        muxer.close()
        sealed = writer.close()
    card = {"source": "worklist", "patient_name": "Bench^Patient", "patient_id": "BENCH-1", "birth_date": "19700101",
            "sex": "O", "accession_number": "BENCH-ACC", "study_instance_uid": "", "requested_procedure": "Bench",
            "scheduled_step_id": "", "scheduled_start": "", "operator_id": "bench"}
    recording_id = vault.manifest.read_vault_header(path).recording_id
    vault.write_manifest(path, vault.keys.load_device_key(device_path), sealed=sealed, metadata={
        "session": uuid.uuid4().hex, "recording": uuid.uuid4().hex, "frames": frames, "duration_s": frames / fps,
        "identity_card": seal_card(card, [recipient], recording_id)})
    return {"vault": str(path), "identity": str(key_path), "recording_bytes": path.stat().st_size}


def _spawn(spec: dict) -> dict:
    """Runs one measurement in a process of its own, sampling the machine's load meanwhile."""
    _progress(f"{spec['pipeline']} ...")
    done, loads = threading.Event(), [os.getloadavg()[0]]

    def sample() -> None:
        while not done.wait(5.0):
            loads.append(os.getloadavg()[0])

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        result = subprocess.run([sys.executable, "-m", "bench.gateway", json.dumps(spec)], capture_output=True,
                                check=False)
    finally:
        done.set()
        sampler.join()
    loads.append(os.getloadavg()[0])
    if result.returncode != 0:
        raise RuntimeError(f"{spec['pipeline']} failed: {result.stderr.decode()[-2000:]}")
    return {**json.loads(result.stdout), "load_average_1min": {"min": round(min(loads), 2), "max": round(max(loads), 2),
                                                              "mean": round(sum(loads) / len(loads), 2)}}


# --- measurement workers (one per process) ----------------------------------------------------

def _cpu_s(children: bool = False) -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _open(spec: dict):
    from appliance import vault
    return vault.open_reader(Path(spec["vault"]), vault.keys.load_identity(Path(spec["identity"]), PASSPHRASE))


def _decrypt(spec: dict) -> dict:
    with _open(spec) as reader:
        cpu, started = _cpu_s(), time.perf_counter()
        total = 0
        while chunk := reader.read(1 << 20):
            total += len(chunk)
        return {"wall_s": round(time.perf_counter() - started, 3), "cpu_s": round(_cpu_s() - cpu, 3),
                "plaintext_bytes": total, "peak_rss_mb": peak_rss_mb()}


class _Timed:
    """Counts the time spent producing each instance (decrypt, transcode, build) and their size."""

    def __init__(self, instances):
        self._instances = instances
        self.seconds = 0.0
        self.count = 0
        self.largest_bytes = 0

    def __iter__(self):
        return self

    def __next__(self):
        started = time.perf_counter()
        try:
            dataset = next(self._instances)
        finally:
            self.seconds += time.perf_counter() - started
        self.count += 1
        self.largest_bytes = max(self.largest_bytes, dataset.PixelData.encapsulated_length)
        return dataset


def _ours(spec: dict) -> dict:
    from appliance import vault
    from appliance.gateway.dicom_object import build_instances

    path = Path(spec["vault"])
    signed, _ = vault.manifest.read_signed(path)
    identity = vault.keys.load_identity(Path(spec["identity"]), PASSPHRASE)
    cpu, started = _cpu_s(), time.perf_counter()
    instances = _Timed(build_instances(path, signed, identity, spec["transfer"], scratch_dir=spec["workdir"]))
    if spec["send"]:
        _send(instances, spec["transfer"], spec["workdir"])
    else:
        _count(instances)
    return {"wall_s": round(time.perf_counter() - started, 3), "cpu_s": round(_cpu_s() - cpu, 3),
            "producing_s": round(instances.seconds, 3), "instances": instances.count,
            "largest_instance_mb": round(instances.largest_bytes / 2**20, 1), "peak_rss_mb": peak_rss_mb()}


def _count(instances) -> None:
    import io

    import pydicom

    class Counter(io.RawIOBase):
        written = 0

        def writable(self) -> bool:
            return True

        def write(self, data) -> int:
            self.written += len(memoryview(data))
            return len(memoryview(data))

        def tell(self) -> int:
            return self.written

    for dataset in instances:
        pydicom.dcmwrite(Counter(), dataset, enforce_file_format=True)


def _send(instances, transfer: str, workdir: str) -> None:
    from appliance.gateway import pacs
    from appliance.gateway.settings import PacsSettings

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = open(Path(workdir) / "storescp.log", "wb")
    process = subprocess.Popen([STORESCP, "--single-process", "+xa", "--ignore", "-aet", "BENCH", str(port)],
                               stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("storescp did not start") from None
                threading.Event().wait(0.05)
        pacs.deliver(instances, PacsSettings(host="127.0.0.1", port=port, called_ae="BENCH", calling_ae="BENCHGW",
                                             transfer=transfer, confirm="store-status", timeout_s=600))
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def _ffmpeg(spec: dict) -> dict:
    from appliance.gateway.media import H264, HEVC

    transfer = {"h264": H264, "hevc": HEVC}[spec["transfer"]]
    codec_options = [item for name, value in transfer.options.items() for item in (f"-{name}", value)]
    scale = ["-vf", "scale=1728:1080:flags=area"] if spec["transfer"] == "h264" else []
    command = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-i", "pipe:0", *scale, "-c:v", transfer.codec,
               *codec_options, "-g", str(spec["fps"]), "-pix_fmt", "yuv420p",
               "-movflags", "frag_keyframe+empty_moov", "-f", "mp4", "pipe:1"]
    size = 0

    def count_output(stream) -> None:
        nonlocal size
        while chunk := stream.read(1 << 16):
            size += len(chunk)

    with _open(spec) as reader:
        cpu, started = _cpu_s() + _cpu_s(children=True), time.perf_counter()
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        counter = threading.Thread(target=count_output, args=(process.stdout,))
        counter.start()
        while chunk := reader.read(1 << 20):
            process.stdin.write(chunk)
        process.stdin.close()
        process.wait()
        counter.join()
    if process.returncode != 0:
        raise RuntimeError(f"ffmpeg exited with {process.returncode}")
    return {"wall_s": round(time.perf_counter() - started, 3),
            "cpu_s": round(_cpu_s() + _cpu_s(children=True) - cpu, 3), "output_bytes": size}


def _worker(spec: dict) -> dict:
    return {"decrypt": _decrypt, "ours": _ours, "ffmpeg": _ffmpeg}[spec["pipeline"]](spec)


if __name__ == "__main__":
    json.dump(_worker(json.loads(sys.argv[1])), sys.stdout)
