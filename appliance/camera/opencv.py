"""A camera read through OpenCV's VideoCapture: a device index, a video file or a stream URL.

Devices and streams deliver at their own rate; a file is paced at its recorded frame rate so
it behaves like a camera (and its frames are not dropped merely for being read too fast).
The end of a file or a failed read reports the camera as lost.
"""

from __future__ import annotations

import threading
import time

import cv2

from appliance.camera.source import CameraSource, CameraUnavailable, CaptureThread, sleep_until


def _capture_target(source: str) -> int | str:
    return int(source) if source.isdigit() else source


class OpenCVCamera(CameraSource):
    def __init__(self, source: str, *, queue_frames: int | None = None):
        super().__init__(queue_frames=queue_frames)
        self.source = source
        self._capture = cv2.VideoCapture(_capture_target(source))
        if not self._capture.isOpened():
            self._capture.release()
            raise CameraUnavailable(f"OpenCV cannot open the video source {source!r}")
        self.set_frame_size(int(self._capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
                            int(self._capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        reported_fps = self._capture.get(cv2.CAP_PROP_FPS)
        self.nominal_fps = reported_fps if 0 < reported_fps < 1000 else 30.0
        # A file reports a frame count; live devices and streams report none.
        self._paced = self._capture.get(cv2.CAP_PROP_FRAME_COUNT) > 0
        self._thread: CaptureThread | None = None

    def start(self) -> None:
        if self._thread is None:
            if not self._capture.isOpened():   # restarted after stop(): open the source again
                self._capture.open(_capture_target(self.source))
                self.lost_reason = None
            self._thread = CaptureThread("camera-opencv", self._run)
            self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._thread.stop()
            self._thread = None
        self._capture.release()

    def _run(self, stop: threading.Event) -> None:
        period_ns = int(1e9 / self.nominal_fps)
        start_ns = time.monotonic_ns()
        index = 0
        while not stop.is_set():
            if self._paced and not sleep_until(start_ns + index * period_ns, stop):
                return
            ok, image = self._capture.read()
            if not ok:
                self.lost("the video source ended" if self._paced else "the video source stopped delivering")
                return
            self.offer(index, time.monotonic_ns(), image)
            index += 1
