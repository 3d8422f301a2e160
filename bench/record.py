"""Recording pipeline: ours vs the old design vs native ffmpeg, on the same synthetic frames.

Ours: synthetic camera -> recorder thread (PyAV libx264, fragmented MP4) -> vault writer
(streaming AES-256-GCM) -> disk. The old design (bench/baseline.py): cv2.VideoWriter mp4v to a
plaintext file, then whole-file AES-256-GCM in memory. Native ffmpeg (libx264, same preset, CRF
and fragmented MP4, raw BGR frames on stdin) is the practical limit for our encoder settings.
Each measurement runs in its own process, so CPU time and peak RSS belong to one pipeline.
Quick run: --frames 90 --paced-seconds 5 --minutes 0.1 0.2; the full run uses the defaults.
"""

from __future__ import annotations

import fcntl
import io
import json
import math
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from bench.rss import peak_rss_mb

FRAGMENTED_MP4 = "frag_keyframe+empty_moov+default_base_moof"


def add_arguments(parser) -> None:
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1200)
    parser.add_argument("--fps", type=float, default=30.0, help="camera rate for paced runs and video minutes")
    parser.add_argument("--preset", help="x264 preset (default: the appliance's, see appliance/recording/settings.py)")
    parser.add_argument("--crf", type=int, help="x264 constant quality (default: the appliance's)")
    parser.add_argument("--frames", type=int, default=600, help="frames for the unpaced fps/PSNR/bytes run")
    parser.add_argument("--paced-seconds", type=float, default=60.0, help="length of the 30 fps CPU/drop run")
    parser.add_argument("--minutes", type=float, nargs="*", default=[1.0, 10.0],
                        help="video lengths for peak RSS and stop-to-sealed")
    parser.add_argument("--workdir", type=Path, default=None, help="where the recordings go (default: a temp dir)")


def run(args) -> dict:
    from appliance.recording.settings import RecordingSettings

    workdir = Path(tempfile.mkdtemp(prefix="bench-record-", dir=args.workdir))
    common = {"width": args.width, "height": args.height, "fps": args.fps, "workdir": str(workdir),
              "preset": args.preset or RecordingSettings.preset,
              "crf": RecordingSettings.crf if args.crf is None else args.crf}
    try:
        unpaced = {name: _spawn({**common, "pipeline": name, "mode": "unpaced", "frames": args.frames, "psnr": True})
                   for name in ("ours", "baseline", "ffmpeg")}
        paced = {name: _spawn({**common, "pipeline": name, "mode": "paced", "seconds": args.paced_seconds})
                 for name in ("ours", "baseline")}
        lengths = []
        for minutes in args.minutes:
            frames = max(1, round(minutes * 60 * args.fps))
            lengths.append({"video_minutes": minutes, **{
                name: _spawn({**common, "pipeline": name, "mode": "unpaced", "frames": frames, "psnr": False})
                for name in ("ours", "baseline")}})
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    ours, baseline, native = unpaced["ours"], unpaced["baseline"], unpaced["ffmpeg"]
    all_ours = [ours, paced["ours"], *[length["ours"] for length in lengths]]
    return {
        "settings": {key: value for key, value in common.items() if key != "workdir"},
        "note": "2 shared cores: figures are noisy; rerun with the same flags to compare",
        "unpaced": {**unpaced, "ratios": {
            "ours_fps_vs_native_ffmpeg": _ratio(ours["fps"], native["fps"]),
            "ours_fps_vs_baseline": _ratio(ours["fps"], baseline["fps"]),
            "ours_bytes_vs_baseline": _ratio(ours["bytes_per_minute"], baseline["bytes_per_minute"]),
            "ours_cpu_per_frame_vs_native_ffmpeg": _ratio(ours["cpu_s_per_frame"], native["cpu_s_per_frame"]),
        }},
        "paced": {"seconds": paced["ours"]["wall_s"], **paced},
        "lengths": lengths,
        "targets": {
            "no_drops_at_camera_rate": paced["ours"]["dropped"] == 0,
            "sustained_fps_at_least_45": ours["fps"] >= 45,
            "at_least_0_9_of_native_ffmpeg": ours["fps"] >= 0.9 * native["fps"],
            "stop_to_sealed_at_most_1_s": max(run["stop_to_sealed_s"] for run in all_ours) <= 1.0,
            "peak_rss_at_most_300_mb": max(run["peak_rss_mb"] for run in all_ours) <= 300,
            "half_the_bytes_at_equal_or_better_psnr": ours["bytes_per_minute"] <= baseline["bytes_per_minute"] / 2
                                                      and ours["psnr_db"] >= baseline["psnr_db"],
        },
    }


def _ratio(numerator: float, denominator: float) -> float | None:
    return round(numerator / denominator, 3) if denominator else None


def _spawn(spec: dict) -> dict:
    if sys.stderr.isatty():
        print(f"bench record: {spec['pipeline']} {spec['mode']} ...", file=sys.stderr, flush=True)
    result = subprocess.run([sys.executable, "-m", "bench.record", json.dumps(spec)],
                            capture_output=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{spec['pipeline']} {spec['mode']} failed: {result.stderr.decode()[-2000:]}")
    return json.loads(result.stdout)


# --- measurement workers (one per process) ----------------------------------------------------

def _cpu_s(children: bool = False) -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _figures(spec: dict, *, frames: int, wall_s: float, cpu_s: float, size: int, **extra) -> dict:
    video_minutes = frames / spec["fps"] / 60
    return {
        "frames": frames, "wall_s": round(wall_s, 3), "fps": round(frames / wall_s, 2),
        "cpu_s_per_frame": round(cpu_s / frames, 5), "cpu_percent": round(100 * cpu_s / wall_s, 1),
        "bytes": size, "bytes_per_minute": round(size / video_minutes), **extra,
    }


def _psnr_db(container_source, pattern) -> float:
    """Global PSNR (mean squared error over all decoded frames) against the exact source frames."""
    import av
    import cv2

    from appliance.camera.stamp import read_index

    squared_error, samples = 0.0, 0
    with av.open(container_source) as container:
        for frame in container.decode(video=0):
            image = frame.to_ndarray(format="bgr24")
            squared_error += cv2.norm(image, pattern.render(read_index(image)), cv2.NORM_L2SQR)
            samples += image.size
    return round(10 * math.log10(255 ** 2 / (squared_error / samples)), 2)


def _ours(spec: dict) -> dict:
    from cryptography.hazmat.primitives.asymmetric import ec

    from appliance import vault
    from appliance.camera.synthetic import SyntheticCamera
    from appliance.recording.recorder import Recorder
    from appliance.recording.settings import RecordingSettings

    paced = spec["mode"] == "paced"
    camera = SyntheticCamera(width=spec["width"], height=spec["height"], fps=spec["fps"], paced=paced)
    recorder = Recorder(camera, RecordingSettings(preset=spec["preset"], crf=spec["crf"], pre_roll_s=0))
    identity = ec.generate_private_key(ec.SECP256R1())
    recorder.start()
    try:
        cpu_before, started = _cpu_s(), time.perf_counter()
        path = recorder.start_clip(Path(spec["workdir"]) / f"{uuid.uuid4().hex}.mp4.vault", [identity.public_key()])
        if paced:
            threading.Event().wait(spec["seconds"])
        else:
            while recorder.stats()["encoded"] < spec["frames"]:
                time.sleep(0.02)
        encoded, wall_s, cpu_s = recorder.stats()["encoded"], time.perf_counter() - started, _cpu_s() - cpu_before
        result = recorder.stop_clip()
        peak_rss = peak_rss_mb()
    finally:
        recorder.stop()
    figures = _figures(spec, frames=encoded, wall_s=wall_s, cpu_s=cpu_s, size=result.bytes,
                       dropped=result.dropped, stop_to_sealed_s=round(result.seal_s, 3), peak_rss_mb=peak_rss)
    if spec.get("psnr"):
        with vault.open_reader(path, identity) as reader:
            figures["psnr_db"] = _psnr_db(reader, camera.pattern)
    path.unlink()
    return figures


def _baseline(spec: dict) -> dict:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from appliance.camera.synthetic import SyntheticPattern
    from bench import baseline

    pattern = SyntheticPattern(spec["width"], spec["height"])
    key = AESGCM.generate_key(bit_length=256)
    plaintext = Path(spec["workdir"]) / f"{uuid.uuid4().hex}.mp4"   # synthetic frames only
    cpu_before, started = _cpu_s(), time.perf_counter()
    writer = baseline.start_recording(plaintext, spec["fps"], (spec["width"], spec["height"]))
    written = dropped = 0
    if spec["mode"] == "paced":
        # The old frame callback wrote synchronously: a frame that arrives while the previous
        # write still runs finds the camera thread busy and is lost.
        period = 1 / spec["fps"]
        slots = round(spec["seconds"] * spec["fps"])
        for slot in range(slots):
            delay = started + slot * period - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            elif -delay > period:
                dropped += 1
                continue
            writer.write(pattern.render(slot))
            written += 1
    else:
        for index in range(spec["frames"]):
            writer.write(pattern.render(index))
        written = spec["frames"]
    wall_s, cpu_s = time.perf_counter() - started, _cpu_s() - cpu_before
    sealed, seal_s = baseline.stop_and_seal(writer, plaintext, key)
    peak_rss = peak_rss_mb()
    figures = _figures(spec, frames=written, wall_s=wall_s, cpu_s=cpu_s, size=sealed.stat().st_size,
                       dropped=dropped, stop_to_sealed_s=round(seal_s, 3), peak_rss_mb=peak_rss)
    if spec.get("psnr"):
        figures["psnr_db"] = _psnr_db(io.BytesIO(baseline.decrypt_video_file(sealed, key)), pattern)
    sealed.unlink()
    return figures


def _ffmpeg(spec: dict) -> dict:
    from appliance.camera.synthetic import SyntheticPattern

    pattern = SyntheticPattern(spec["width"], spec["height"])
    command = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "bgr24",
               "-s", f"{spec['width']}x{spec['height']}", "-framerate", str(spec["fps"]), "-i", "-",
               "-c:v", "libx264", "-preset", spec["preset"], "-crf", str(spec["crf"]), "-tune", "zerolatency",
               "-g", str(round(spec["fps"])), "-pix_fmt", "yuv420p", "-movflags", FRAGMENTED_MP4, "-f", "mp4", "pipe:1"]
    size = 0

    def count_output(stream) -> None:
        nonlocal size
        while chunk := stream.read(1 << 16):
            size += len(chunk)

    cpu_before, started = _cpu_s() + _cpu_s(children=True), time.perf_counter()
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    # A 64 KiB pipe would cost ~100 context switches per frame; give ffmpeg a fair feed.
    fcntl.fcntl(process.stdin.fileno(), fcntl.F_SETPIPE_SZ, 1 << 20)
    counter = threading.Thread(target=count_output, args=(process.stdout,))
    counter.start()
    for index in range(spec["frames"]):
        process.stdin.write(pattern.render(index).data)
    process.stdin.close()
    process.wait()
    counter.join()
    wall_s = time.perf_counter() - started
    cpu_s = _cpu_s() + _cpu_s(children=True) - cpu_before
    if process.returncode != 0:
        raise RuntimeError(f"ffmpeg exited with {process.returncode}")
    return _figures(spec, frames=spec["frames"], wall_s=wall_s, cpu_s=cpu_s, size=size)


def _worker(spec: dict) -> dict:
    return {"ours": _ours, "baseline": _baseline, "ffmpeg": _ffmpeg}[spec["pipeline"]](spec)


if __name__ == "__main__":
    json.dump(_worker(json.loads(sys.argv[1])), sys.stdout)
