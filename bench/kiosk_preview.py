"""Kiosk preview cost: recording fps and dropped frames with and without the kiosk attached.

The same recording (synthetic camera, real encoder, vault and simulator footswitch) runs twice
in one process: first with no UI (the baseline; the old design had no live preview at all), then
with the kiosk window attached offscreen, pulling the preview at up to 15 fps and rendering every
status snapshot. The kiosk must not lower the recorded frame rate or add dropped frames.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from appliance import vault
from appliance.config import CameraSettings, DataSettings, KeySettings, RecordingSettings, Settings, StorageSettings

WAIT_S = 60.0


def add_arguments(parser) -> None:
    parser.add_argument("--seconds", type=float, default=20.0, help="footswitch held this long per run (default 20)")
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1200)
    parser.add_argument("--fps", type=float, default=30.0)


def run(args) -> dict:
    without = _one_run(args, attached=False)
    with_ui = _one_run(args, attached=True)
    return {
        "benchmark": "kiosk-preview",
        "note": "shared machine: figures are noisy; rerun with `appliance bench kiosk-preview`",
        "baseline": "the same recording without any UI (the old design had no live preview)",
        "frame_size": f"{args.width}x{args.height} @ {args.fps:g} fps",
        "without_ui": without,
        "with_ui": with_ui,
        "ratio_recorded_fps_with_to_without": round(with_ui["recorded_fps"] / max(without["recorded_fps"], 1e-9), 3),
        "extra_dropped_frames_with_ui": with_ui["dropped_frames"] - without["dropped_frames"],
    }


def _one_run(args, *, attached: bool) -> dict:
    from appliance.controller import Controller   # the CLI's start-up stays free of PyAV

    with tempfile.TemporaryDirectory(prefix="bench-kiosk-") as scratch:
        root = Path(scratch)
        vault.keys.generate_recipient(root / "keys", b"bench passphrase")
        vault.keys.generate_device(root / "keys")
        settings = Settings(
            data=DataSettings(root / "data"),
            camera=CameraSettings(width=args.width, height=args.height, fps=args.fps),
            recording=RecordingSettings(pre_roll_s=1.0, post_roll_s=0.5),
            storage=StorageSettings(max_session_minutes=1, reserve_mb=1),
            keys=KeySettings(recipients=(root / "keys" / vault.keys.RECIPIENT_PUB,),
                             device_key=root / "keys" / vault.keys.DEVICE_KEY),
        )
        controller = Controller(settings)
        controller.start()
        kiosk = None
        try:
            controller.wait_for(lambda status: status.link.up, WAIT_S)
            if attached:
                from appliance.ui.attached import AttachedKiosk
                kiosk = AttachedKiosk(controller, settings)
            session = controller.begin_session("BENCH-1", "BENCH")
            controller.wait_for(lambda status: status.state == "Armed", WAIT_S)
            controller.simulator.press()
            started = time.monotonic()
            shown_at_press = kiosk.preview_frames_shown if kiosk else 0
            if kiosk:
                kiosk.spin(args.seconds)
            else:
                time.sleep(args.seconds)
            held = time.monotonic() - started
            shown_while_held = (kiosk.preview_frames_shown if kiosk else 0) - shown_at_press
            controller.simulator.release()
            if kiosk:
                kiosk.spin_until(lambda status: status.state == "Armed" and status.session.clip_count == 1, WAIT_S)
            controller.wait_for(lambda status: status.state == "Armed" and status.session.clip_count == 1, WAIT_S)
            [recording] = controller.reader.recordings(session.session_uid)
            figures = {
                "recorded_frames": recording.frames,
                "recorded_duration_s": round(recording.duration_s, 3),
                "recorded_fps": round(recording.frames / recording.duration_s, 2),
                "dropped_frames": recording.dropped,
                "camera_fps_last_status": controller.status.camera_fps,
            }
            if kiosk:
                figures["preview_frames_shown_while_held"] = shown_while_held
                figures["preview_fps_while_held"] = round(shown_while_held / held, 2)
                figures["status_snapshots_rendered"] = kiosk.renders
            controller.end_session()
            return figures
        finally:
            if kiosk:
                kiosk.close()
            controller.stop()
