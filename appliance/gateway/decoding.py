"""Decoded, scaled frames from a thread of their own, so decoding and scaling overlap encoding.

PyAV releases the GIL inside FFmpeg's decode, scale and encode calls, so on two cores the
decoder thread and the encoder (with its own frame threads) run side by side instead of taking
turns. At most `depth` frames wait between them, which bounds the memory it costs. One scaler
serves every frame: `VideoFrame.reformat` builds a new swscale context for each frame, which
cost a 1920x1200 -> 1728x1080 area scale about 1.3 ms of CPU per frame (profiled, 2026-12-01).
"""

from __future__ import annotations

import queue
import threading

from av.video.reformatter import VideoReformatter

_END = object()


class ScaledFrames:
    """Iterates the frames of `stream` scaled to `size` (yuv420p), decoded ahead on a thread.
    Decoding errors are raised by the iteration; `close` (always) stops the thread."""

    def __init__(self, container, stream, size: tuple[int, int], depth: int = 4):
        self._frames: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._ended = False
        self._thread = threading.Thread(target=self._produce, args=(container, stream, size),
                                        name="gateway-decode", daemon=True)
        self._thread.start()

    def _produce(self, container, stream, size: tuple[int, int]) -> None:
        scaler = VideoReformatter()
        try:
            for frame in container.decode(stream):
                if self._stop.is_set():
                    return
                if frame.pts is None:
                    continue
                scaled = scaler.reformat(frame, width=size[0], height=size[1], format="yuv420p", interpolation="AREA")
                scaled.pts = frame.pts
                self._frames.put(scaled)
            self._frames.put(_END)
        except BaseException as error:  # noqa: BLE001 - handed to the consumer, raised there
            self._frames.put(error)

    def __iter__(self) -> "ScaledFrames":
        return self

    def __next__(self):
        if self._ended:
            raise StopIteration
        item = self._frames.get()
        if item is _END or isinstance(item, BaseException):
            self._ended = True
            if item is _END:
                raise StopIteration
            raise item
        return item

    def close(self) -> None:
        """Stops the decoder thread and waits for it: the container may be closed after this."""
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._frames.get(timeout=1)     # make room: a producer blocked on put sees the stop
            except queue.Empty:
                pass
        self._thread.join()
