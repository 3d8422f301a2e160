"""Plays an encrypted recording decrypted in memory: vault reader -> PyAV demuxer/decoder, on a
worker thread, paced to real time, newest frame handed to the GUI. No plaintext file exists at
any point: PyAV reads the seekable VaultReader as its file object.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import av
from PySide6.QtCore import QObject, Signal

from appliance import vault
from appliance.recording.fmp4 import end_at_last_fragment
from appliance.ui.bridge import LatestOnly
from appliance.ui.live_view import image_from_bgr


@dataclass(frozen=True)
class Opened:
    duration_s: float
    finalized: bool         # False: the writer never closed (interrupted); the prefix plays


@dataclass(frozen=True)
class Shown:
    image: object           # QImage, already downscaled
    position_s: float


@dataclass(frozen=True)
class Stopped:
    reason: str             # "end", or one line saying what failed


def fit(width: int, height: int, box_width: int, box_height: int) -> tuple[int, int]:
    """The largest even size with the video's aspect ratio inside the box (never upscaled)."""
    scale = min(1.0, box_width / width, box_height / height)
    return max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2)


class Player(QObject):
    """One recording at a time. Signals arrive on the GUI thread."""

    opened = Signal(object)     # Opened
    stopped = Signal(object)    # Stopped

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.frames = LatestOnly(self)          # Shown, newest only
        self._commands: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None

    @property
    def active(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def open(self, path: Path, identity, box: tuple[int, int]) -> None:
        self.close()
        self._commands = queue.Queue()
        self._thread = threading.Thread(target=self._run, args=(path, identity, box, self._commands),
                                        name="playback", daemon=True)
        self._thread.start()

    def seek(self, seconds: float) -> None:
        self._commands.put(("seek", seconds))

    def set_paused(self, paused: bool) -> None:
        self._commands.put(("pause" if paused else "play", None))

    def close(self) -> None:
        if self._thread is not None:
            self._commands.put(("close", None))
            self._thread.join(timeout=5)
            self._thread = None

    # -- worker thread -----------------------------------------------------------------------

    def _run(self, path: Path, identity, box: tuple[int, int], commands: queue.Queue) -> None:
        try:
            with vault.open_reader(path, identity) as reader:
                end_at_last_fragment(reader)   # an interrupted recording plays to its last whole fragment
                with av.open(reader, "r") as container:
                    self._play(reader, container, box, commands)
        except Exception as error:   # tampering, a corrupt stream: say it, never crash the kiosk
            self.stopped.emit(Stopped(_one_line(error)))

    def _play(self, reader, container, box, commands: queue.Queue) -> None:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        duration = container.duration / av.time_base if container.duration else 0.0
        self.opened.emit(Opened(duration, reader.finalized))
        size = fit(stream.codec_context.width, stream.codec_context.height, *box)
        frames = container.decode(stream)
        pending = None                  # the next decoded frame, waiting for its time
        position, paused, ended = 0.0, False, False
        clock_origin = time.monotonic()  # wall time at which position 0 plays
        while True:
            if paused:
                timeout = None
            elif pending is not None:
                timeout = max(0.0, clock_origin + (pending.time or 0.0) - time.monotonic())
            else:
                timeout = 0.0
            try:
                command, value = commands.get(timeout=timeout) if timeout != 0.0 else commands.get_nowait()
            except queue.Empty:
                command, value = None, None
            if command == "close":
                return
            if command == "pause":
                paused = True
            elif command == "play" and paused:
                paused = False
                if ended:
                    command, value = "seek", 0.0
            if command == "seek":
                frames, pending, ended = self._seek(container, stream, value), None, False
                frame = next(frames, None)
                if frame is not None:
                    position = self._show(frame, size)
                clock_origin = time.monotonic() - position
            if command is not None or paused:
                continue
            if pending is None:
                pending = next(frames, None)
                if pending is None:
                    ended, paused = True, True
                    self.stopped.emit(Stopped("end"))
                continue
            if time.monotonic() - (clock_origin + (pending.time or 0.0)) < 0.5:
                position = self._show(pending, size)
            else:                        # far behind (a slow machine): skip the picture, keep time
                position = pending.time or 0.0
            pending = None

    @staticmethod
    def _seek(container, stream, seconds: float):
        """Frames from the first one at or after `seconds` (the demuxer lands on the keyframe before it)."""
        container.seek(int(max(0.0, seconds) / stream.time_base), stream=stream, backward=True)
        return (frame for frame in container.decode(stream) if (frame.time or 0.0) + 1e-6 >= seconds)

    def _show(self, frame, size: tuple[int, int]) -> float:
        position = frame.time or 0.0
        image = image_from_bgr(frame.to_ndarray(format="bgr24", width=size[0], height=size[1]))
        self.frames.publish(Shown(image, position))
        return position


def _one_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else error.__class__.__name__
