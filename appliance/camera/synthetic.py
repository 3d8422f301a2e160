"""The synthetic camera: a product feature for demos, tests and benchmarks, not a mock.

Each frame is a pure function of its index (a scrolling texture, a moving disc and
sensor-like noise, all from a fixed seed), with the index stamped along the top edge; so a
decoded recording can be compared with its exact source frames. Capture timestamps follow the
sensor's clock (start + index / fps). When a laser is wired in (`laser`: the simulated
controller's emission line, appliance/control/parts.py), a frame captured while it is on shows a
white spot in a fixed place, so tests measure the treatment timeline against pixels. Paced mode
delivers frames in real time and never blocks (a full queue drops and counts); unpaced mode,
for benchmarks, produces the next frame as soon as the consumer has taken the last.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Callable

import cv2
import numpy as np

from appliance.camera.source import CameraSource, CaptureThread, Frame, sleep_until
from appliance.camera.stamp import BLOCK, STAMP_WIDTH, stamp_index
from appliance.errors import BadInput

SCROLL_PERIOD = 256     # px; the texture repeats horizontally after this many pixels
NOISE_ROWS = 61         # extra noise rows; a shifted window gives each frame its own noise
NOISE_AMPLITUDE = 4     # +-4 grey levels, 2 RMS: shot noise of a ~10 ke- full-well sensor at mid-grey
SPOT_CENTRE = (0.8, 0.75)   # of the width and height: clear of the stamp along the top edge
SPOT_WHITE = 235            # the texture and the moving disc never reach this in every channel


def _spot(width: int, height: int) -> tuple[tuple[int, int], int]:
    return (int(SPOT_CENTRE[0] * width), int(SPOT_CENTRE[1] * height)), max(6, height // 16)


def spot_visible(image: np.ndarray) -> bool:
    """Whether a (decoded) synthetic frame shows the laser spot: its centre is white in every channel."""
    height, width = image.shape[:2]
    (x, y), radius = _spot(width, height)
    half = max(2, radius // 3)
    return bool(image[y - half:y + half, x - half:x + half].min(axis=2).mean() > SPOT_WHITE)


class SyntheticPattern:
    """Renders frame `index` deterministically; shared by the camera and by benchmarks."""

    def __init__(self, width: int, height: int, *, seed: int = 7):
        # Built plane by plane in float32 and uint8: a full-resolution float64 build would
        # briefly take ~200 MB, which would dominate the appliance's peak memory.
        rng = np.random.default_rng(seed)
        columns = np.arange(width + SCROLL_PERIOD, dtype=np.float32)
        rows = np.arange(height, dtype=np.float32)[:, None]
        base = 127 + 70 * np.sin(2 * np.pi * columns / SCROLL_PERIOD)[None, :] * np.cos(2 * np.pi * rows / 97)
        self._texture = np.empty((height, width + SCROLL_PERIOD, 3), np.uint8)
        for channel, plane in enumerate((base, np.roll(base, 40, axis=1), 255 - base)):
            # Headroom so that adding 0..2*amplitude of noise centres it without clipping.
            self._texture[..., channel] = np.clip(plane, NOISE_AMPLITUDE, 255 - NOISE_AMPLITUDE) - NOISE_AMPLITUDE
        shape = (height + NOISE_ROWS, width, 3)
        # The sum of two uniform draws: triangular around +amplitude, like shot noise.
        self._noise = rng.integers(0, NOISE_AMPLITUDE + 1, shape, dtype=np.uint8)
        self._noise += rng.integers(0, NOISE_AMPLITUDE + 1, shape, dtype=np.uint8)
        self.width, self.height = width, height

    def render(self, index: int, laser_on: bool = False) -> np.ndarray:
        offset = (index * 3) % SCROLL_PERIOD
        noise_row = (index * 7) % NOISE_ROWS
        image = cv2.add(self._texture[:, offset:offset + self.width],
                        self._noise[noise_row:noise_row + self.height])
        centre_x = int((0.5 + 0.4 * np.sin(index / 45)) * self.width)
        centre_y = int((0.5 + 0.3 * np.cos(index / 60)) * self.height)
        cv2.circle(image, (centre_x, centre_y), max(8, self.height // 10), (40, 200, 250), -1)
        if laser_on:
            centre, radius = _spot(self.width, self.height)
            cv2.circle(image, centre, radius, (255, 255, 255), -1)
        stamp_index(image, index)
        return image


class SyntheticCamera(CameraSource):
    def __init__(self, *, width: int = 1920, height: int = 1200, fps: float = 30.0,
                 paced: bool = True, queue_frames: int | None = None):
        super().__init__(queue_frames=queue_frames)
        if width < STAMP_WIDTH or height < BLOCK or width % 2 or height % 2 or fps <= 0:
            raise BadInput(f"synthetic camera: the size must be even and at least {STAMP_WIDTH}x{BLOCK} "
                           "(the frame-index stamp) and the frame rate positive")
        self.set_frame_size(width, height)
        self.nominal_fps = fps
        self.paced = paced
        self.pattern = SyntheticPattern(width, height)
        self.laser: Callable[[], bool] | None = None   # the simulated emission line, read per frame
        self._thread: CaptureThread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = CaptureThread("camera-synthetic", self._run_paced if self.paced else self._run_unpaced)
            self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._thread.stop()
            self._thread = None

    def _run_paced(self, stop: threading.Event) -> None:
        # Like a free-running sensor: frame i is exposed at start + i periods whatever the host
        # is doing; a late capture thread delivers the backlog at once (the queue absorbs it
        # or drops and counts), it never skips frames silently.
        start_ns = time.monotonic_ns()
        index = 0
        while sleep_until(self._capture_ns(start_ns, index), stop):
            self.offer(index, self._capture_ns(start_ns, index), self.pattern.render(index, self._laser_on()))
            index += 1

    def _run_unpaced(self, stop: threading.Event) -> None:
        # Timestamps keep the nominal spacing, as in a 30 fps recording replayed at full speed,
        # so the encoded video (and its bitrate) is the same as a paced one's.
        start_ns = time.monotonic_ns()
        index = 0
        while not stop.is_set():
            with self._counter_lock:
                dropped = self.counters.dropped
            image = self.pattern.render(index, self._laser_on())
            frame = Frame(index, self._capture_ns(start_ns, index), image, dropped)
            while not stop.is_set():
                try:
                    self.frames.put(frame, timeout=0.1)
                except queue.Full:
                    continue
                with self._counter_lock:
                    self.counters.delivered += 1
                index += 1
                break

    def _laser_on(self) -> bool:
        return self.laser is not None and self.laser()

    def _capture_ns(self, start_ns: int, index: int) -> int:
        return start_ns + round(index * 1e9 / self.nominal_fps)
