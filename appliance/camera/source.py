"""The camera interface every source implements, and the pieces they share.

A source runs its own capture thread (or the driver's) and hands frames on through a bounded
queue without ever blocking: when the consumer falls behind, the newest frame is dropped and
counted, so the camera keeps its timing and the recording shows a gap, never a stall.
"""

from __future__ import annotations

import queue
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable

import numpy as np

from appliance.errors import ApplianceError

# Raw frames waiting for the encoder are the largest item in the appliance's memory (a
# 1920x1200 BGR frame is 6.9 MB), so the queue is bounded by bytes: 64 MiB is 9 such frames,
# 300 ms at 30 fps, enough to ride out encoder jitter (it runs at ~110 fps on the target)
# while peak RSS stays under the 300 MB budget. Small frames get at most MAX_QUEUE_FRAMES.
QUEUE_BYTES = 64 << 20
MAX_QUEUE_FRAMES = 16
MIN_QUEUE_FRAMES = 2


class CameraUnavailable(ApplianceError):
    """The camera cannot be opened: missing transport layer, no device, unreadable source."""

    exit_code = 2


@dataclass(frozen=True)
class Frame:
    index: int          # source-assigned sequence number (the synthetic camera stamps it)
    capture_ns: int     # time.monotonic_ns() at capture; presentation times derive from it
    image: np.ndarray   # BGR, height x width x 3, owned by the consumer (a copy, never a view)
    dropped_before: int = 0   # the source's drop counter when this frame was queued: the drops
                              # between two delivered frames are the difference of theirs


@dataclass
class Counters:
    delivered: int = 0    # frames put into the queue
    incomplete: int = 0   # frames the driver reported as incomplete (not delivered)
    dropped: int = 0      # frames lost because the queue was full


def queue_frames_within(budget_bytes: int, width: int, height: int) -> int:
    """How many BGR frames of this size the camera queue holds within its byte budget (a
    source that does not report its size gets the most frames)."""
    return max(MIN_QUEUE_FRAMES, min(MAX_QUEUE_FRAMES, budget_bytes // max(1, width * height * 3)))


class CameraSource(ABC):
    """Base class: owns the frame queue, the counters and the lost-camera callback.

    `queue_frames` fixes the queue's length; by default it follows from QUEUE_BYTES once the
    source knows its frame size (`set_frame_size`).
    """

    def __init__(self, *, queue_frames: int | None = None):
        self.frames: queue.Queue[Frame] = queue.Queue(maxsize=queue_frames or MIN_QUEUE_FRAMES)
        self._queue_frames_fixed = queue_frames is not None
        self.counters = Counters()
        self.on_lost: Callable[[str], None] | None = None
        self.lost_reason: str | None = None
        self.width = 0
        self.height = 0
        self.nominal_fps = 30.0
        self._counter_lock = threading.Lock()

    def set_frame_size(self, width: int, height: int) -> None:
        """Records the frame size and bounds the queue to QUEUE_BYTES of such frames. Called
        before capturing starts, so the queue is empty; it is resized in place because its
        owner may have replaced it by a subclass (the controller's preview tap)."""
        self.width, self.height = width, height
        if not self._queue_frames_fixed:
            self.frames.maxsize = queue_frames_within(QUEUE_BYTES, width, height)

    @abstractmethod
    def start(self) -> None:
        """Begins capturing; frames appear in `self.frames`."""

    @abstractmethod
    def stop(self) -> None:
        """Stops capturing and releases the device; idempotent."""

    def offer(self, index: int, capture_ns: int, image: np.ndarray) -> bool:
        """Hands a frame on without blocking; a full queue drops it and counts the drop."""
        with self._counter_lock:
            try:
                self.frames.put_nowait(Frame(index, capture_ns, image, self.counters.dropped))
            except queue.Full:
                self.counters.dropped += 1
                return False
            self.counters.delivered += 1
        return True

    def count_incomplete(self) -> None:
        with self._counter_lock:
            self.counters.incomplete += 1

    def lost(self, reason: str) -> None:
        """Reports the camera as gone, once."""
        if self.lost_reason is not None:
            return
        self.lost_reason = reason
        if self.on_lost is not None:
            self.on_lost(reason)

    def counters_snapshot(self) -> Counters:
        with self._counter_lock:
            return Counters(self.counters.delivered, self.counters.incomplete, self.counters.dropped)


class CaptureThread:
    """A daemon thread running `body(stop_event)`, stopped by setting the event and joining."""

    def __init__(self, name: str, body: Callable[[threading.Event], None]):
        self._stop = threading.Event()
        self._thread = threading.Thread(target=body, args=(self._stop,), name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)


def sleep_until(deadline_ns: int, stop: threading.Event) -> bool:
    """Waits until a monotonic deadline; returns False if asked to stop first."""
    remaining = (deadline_ns - time.monotonic_ns()) / 1e9
    if remaining > 0:
        return not stop.wait(remaining)
    return not stop.is_set()
