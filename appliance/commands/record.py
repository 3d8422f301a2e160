"""`appliance record`: one sealed recording from a camera, then a JSON summary on stdout.

The file name is an opaque uid (never anything about the subject). Ctrl-C or SIGTERM ends the
recording early and still seals it: captured frames are never thrown away.
"""

from __future__ import annotations

import dataclasses
import json
import signal
import sys
import threading
import time
import uuid
from pathlib import Path

from appliance.storage.layout import RECORDING_SUFFIX


def register(subparsers) -> None:
    parser = subparsers.add_parser("record", help="record one sealed recording and print a JSON summary")
    parser.add_argument("--camera", required=True, metavar="SPEC",
                        help="synthetic | opencv:SOURCE (device index, file or URL) | vimba[:CAMERA_ID]")
    parser.add_argument("--seconds", type=float, required=True, help="length of the recording")
    parser.add_argument("--out", type=Path, required=True, help="directory for the recording")
    parser.add_argument("--recipient", type=Path, action="append", required=True,
                        help="recipient public key (repeat for escrow)")
    parser.add_argument("--device-key", type=Path, help="sign a sealed manifest with this device key")
    parser.add_argument("--width", type=int, default=1920, help="synthetic camera width")
    parser.add_argument("--height", type=int, default=1200, help="synthetic camera height")
    parser.add_argument("--fps", type=float,
                        help="frame rate: the synthetic camera's (default 30), a vimba camera's (default its own)")
    parser.add_argument("--transport-layer", type=Path, action="append", default=[], metavar="DIR",
                        help="vimba: load GenTL producers from this directory instead of GENICAM_GENTL64_PATH "
                             "(repeatable)")
    parser.add_argument("--codec", default="libx264")
    parser.add_argument("--preset", help="x264 preset (default: the appliance's, see appliance/recording/settings.py)")
    parser.add_argument("--crf", type=int, help="x264 constant quality (default: the appliance's)")
    parser.set_defaults(func=_record)


def _record(args) -> int:
    from appliance import vault
    from appliance.camera import open_camera
    from appliance.errors import BadInput
    from appliance.recording.recorder import CameraLost, Recorder
    from appliance.recording.settings import RecordingSettings

    if not args.seconds > 0:
        raise BadInput("--seconds must be positive")
    camera_options = _camera_options(args)
    recipients = [vault.keys.load_recipient_public(path) for path in args.recipient]
    device_key = vault.keys.load_device_key(args.device_key) if args.device_key else None
    try:
        chosen = {name: value for name, value in (("preset", args.preset), ("crf", args.crf)) if value is not None}
        settings = RecordingSettings(codec=args.codec, pre_roll_s=0, **chosen)
    except ValueError as error:
        raise BadInput(f"--{error}") from None
    camera = open_camera(args.camera, **camera_options)

    ended = threading.Event()
    lost: list[str] = []

    def on_event(event) -> None:
        if isinstance(event, CameraLost):
            lost.append(event.reason)
            ended.set()

    recorder = Recorder(camera, settings, on_event=on_event)
    recorder.start()
    interrupted = threading.Event()

    def stop_early(signum, frame) -> None:
        interrupted.set()
        ended.set()

    # SIGTERM (systemd, timeout) ends the recording early like Ctrl-C: sealed, not torn.
    previous = signal.signal(signal.SIGTERM, stop_early)
    try:
        path = recorder.start_clip(args.out / f"{uuid.uuid4().hex}{RECORDING_SUFFIX}", recipients)
        try:
            _wait(ended, args.seconds)
        except KeyboardInterrupt:
            interrupted.set()
        result = recorder.stop_clip(device_key, metadata={"camera": args.camera.partition(":")[0]})
    finally:
        recorder.stop()
        signal.signal(signal.SIGTERM, previous)
    summary = {
        "path": str(path),
        "manifest": str(result.manifest) if result.manifest else None,
        "frames": result.frames,
        "dropped": result.dropped,
        "duration_s": result.duration_s,
        "bytes": result.bytes,
        "bitrate_bps": round(result.bitrate_bps),
        "file_digest": result.file_digest,
        "recording_id": result.recording_id,
        "first_frame_at": result.first_frame_at,
        "last_frame_at": result.last_frame_at,
        "seal_s": round(result.seal_s, 3),
        "camera": {"nominal_fps": camera.nominal_fps, **dataclasses.asdict(camera.counters_snapshot())},
        "camera_lost": lost[0] if lost else None,
        "stopped_early": interrupted.is_set(),
        "fault": result.fault,
    }
    json.dump(summary, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def _camera_options(args) -> dict:
    from appliance.errors import BadInput

    kind = args.camera.partition(":")[0]
    if args.transport_layer and kind != "vimba":
        raise BadInput("--transport-layer is for --camera vimba")
    for directory in args.transport_layer:
        if not directory.is_dir():
            raise BadInput(f"--transport-layer: not a directory: {directory}")
    if args.fps is not None and not args.fps > 0:
        raise BadInput("--fps must be positive")
    if kind == "synthetic":
        return {"width": args.width, "height": args.height, "fps": args.fps or 30.0}
    if kind == "vimba":
        return {"fps": args.fps, "transport_layer_dirs": args.transport_layer}
    return {}


def _wait(ended: threading.Event, seconds: float) -> None:
    """Waits out the recording (or a lost camera), showing progress on a terminal."""
    deadline = time.monotonic() + seconds
    while (remaining := deadline - time.monotonic()) > 0:
        if ended.wait(min(1.0, remaining)):
            return
        if sys.stderr.isatty():
            print(f"\rrecording {seconds - max(0.0, remaining - 1):.0f}/{seconds:.0f} s", end="",
                  file=sys.stderr, flush=True)
