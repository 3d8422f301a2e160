"""Runs the Vimba camera on Viky (the genicam wheel's GenTL producer) through the real vmbpy and
VmbC and prints what happened as JSON. A script of its own: VmbSystem is a process singleton.
Usage: python -m tests.vimba_on_viky GENTL_DIR EMPTY_DIR"""

from __future__ import annotations

import json
import sys

from appliance.camera import CameraUnavailable, open_camera

FRAMES = 30
QUEUE = 64   # more than any take(): a slow reader here must not turn into drops


def take(camera, count: int) -> list:
    return [camera.frames.get(timeout=10) for _ in range(count)]


def drain(camera) -> None:
    while not camera.frames.empty():
        camera.frames.get_nowait()


def unavailable(spec: str, directory: str) -> str | None:
    try:
        open_camera(spec, transport_layer_dirs=[directory])
    except CameraUnavailable as error:
        return str(error)
    return None


def main(producers: str, empty: str) -> dict:
    report = {}
    camera = open_camera("vimba", fps=25.0, transport_layer_dirs=[producers], queue_frames=QUEUE)
    report["camera_id"] = camera.camera_id
    camera.start()
    frames = take(camera, FRAMES)
    camera.stop()
    span_s = (frames[-1].capture_ns - frames[0].capture_ns) / 1e9
    report["stream"] = {"nominal_fps": camera.nominal_fps, "measured_fps": (FRAMES - 1) / span_s,
                        "shape": list(frames[0].image.shape), "indices": [frame.index for frame in frames]}
    report["cycles"] = []
    for _ in range(3):
        drain(camera)
        camera.start()
        report["cycles"].append([frame.index for frame in take(camera, 5)])
        camera.stop()
    # A second owner of the same camera cannot start while the first streams; once it stops, it can.
    first, second = (open_camera(f"vimba:{camera.camera_id}", transport_layer_dirs=[producers],
                                 queue_frames=QUEUE) for _ in range(2))
    first.start()
    try:
        second.start()
        report["failed_start"] = None
    except CameraUnavailable as error:
        report["failed_start"] = str(error)
    first.stop()
    second.start()
    report["start_after_failed_start"] = [frame.index for frame in take(second, 5)]
    second.stop()
    report["unknown_id"] = unavailable("vimba:NO_SUCH_CAMERA", producers)
    report["no_producer"] = unavailable("vimba", empty)
    return report


if __name__ == "__main__":
    json.dump(main(*sys.argv[1:3]), sys.stdout)
