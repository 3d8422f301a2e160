"""The recorder thread: camera frames -> encoder -> pre-roll ring and, during a clip, the clip.

Callers talk to the thread through a command queue, so the encoder, the ring and the muxer are
only ever touched by the thread itself. The camera's bounded queue is the only buffer for raw
frames: when encoding falls behind, the camera drops and counts, it never waits.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from appliance import vault
from appliance.camera import CameraSource
from appliance.errors import ApplianceError, BadInput
from appliance.recording.clip import ClipMuxer, SealingSink
from appliance.recording.encoder import Encoder
from appliance.recording.preroll import Entry, PreRoll
from appliance.recording.settings import RecordingSettings

FRAME_WAIT_S = 0.05      # how long the thread waits for a frame before looking at commands again
RATE_WINDOW_NS = 2_000_000_000
WRITER_QUEUE_CHUNKS = 64  # muxed chunks waiting for encryption before the recorder thread waits


@dataclass(frozen=True)
class ClipFault:
    reason: str


@dataclass(frozen=True)
class CameraLost:
    reason: str


@dataclass(frozen=True)
class EncodedFrame:
    packet: object
    pts: int
    dts: int
    index: int            # the camera's frame index
    size: int
    dropped_before: int   # camera drops counted before this frame was queued


@dataclass(frozen=True)
class ClipResult:
    path: Path
    frames: int
    dropped: int
    triggers: int
    duration_s: float
    first_frame_at: float | None      # wall clock, seconds since the epoch
    last_frame_at: float | None
    first_frame_ns: int | None        # monotonic capture time
    last_frame_ns: int | None
    bytes: int                        # ciphertext on disk
    plaintext_bytes: int
    bitrate_bps: float
    file_digest: str                  # appliance/vault/digest.py: what the database and export check
    recording_id: str
    seal_s: float                     # stop_clip called -> sealed (and signed, with a device key)
    manifest: Path | None
    fault: str | None                 # set when the clip ended early on an encoder/writer failure


class _Clip:
    def __init__(self, path: Path, sink: SealingSink, destination):
        self.path = path
        self.sink = sink
        self.destination = destination   # the vault file, closed by stop_clip once sealed
        self.muxer: ClipMuxer | None = None
        self.frames = 0
        self.triggers = 1
        self.first: EncodedFrame | None = None
        self.first_ns: int | None = None
        self.last: EncodedFrame | None = None
        self.last_ns: int | None = None
        self.payload_bytes = 0
        self.fault: str | None = None


class Recorder:
    def __init__(self, camera: CameraSource, settings: RecordingSettings | None = None,
                 on_event: Callable[[object], None] | None = None):
        self.camera = camera
        self.settings = settings or RecordingSettings()
        self.on_event = on_event or (lambda event: None)
        self._commands: queue.Queue = queue.Queue()
        self._preroll = PreRoll(self.settings.pre_roll_s)
        self._encoder: Encoder | None = None
        self._clip: _Clip | None = None
        self._thread: threading.Thread | None = None
        self._running = threading.Event()
        self._epoch_ns = time.monotonic_ns()
        self._wall_offset_ns = time.time_ns() - self._epoch_ns
        self._recent: deque[tuple[int, int]] = deque()   # (capture_ns, packet bytes), for stats()
        self._recent_lock = threading.Lock()
        self._encoded = 0
        self._fault: str | None = None
        self._clip_open = threading.Event()   # set from start_clip until stop_clip returns
        self._clip_path: Path | None = None

    # --- caller side -------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self.camera.on_lost = lambda reason: self.on_event(CameraLost(reason))
        self.camera.start()
        if self.camera.width and self.camera.height:
            # Open the encoder here, so a bad codec or size is reported to the caller now.
            try:
                self._encoder = Encoder(self.settings, self.camera.width, self.camera.height,
                                        self.camera.nominal_fps)
            except BaseException:
                self.camera.stop()
                raise
        self._running.set()
        self._thread = threading.Thread(target=self._run, name="recorder", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stops the thread and the camera; a clip still open is sealed first."""
        if self._thread is None:
            return
        try:
            if self._clip_open.is_set():
                self.stop_clip()
        finally:
            self._running.clear()
            self._thread.join(10)
            self._thread = None
            self.camera.stop()

    def start_clip(self, path, recipients, *, recording_id: bytes | None = None) -> Path:
        """Starts a recording from the oldest pre-roll keyframe; returns at once.

        A trigger while a clip is open continues that clip (a footswitch pressed again during
        post-roll): the same file, the same stream, `triggers` counts the presses.
        """
        path = Path(path)
        if self._clip_open.is_set():
            self._commands.put(("continue", None))
            return self._clip_path
        if self._thread is None:
            raise ApplianceError("the recorder is not running")
        if not recipients:
            raise BadInput("a recording needs at least one recipient public key")
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise BadInput(f"{path} already exists; recordings are never overwritten") from None
        except OSError as error:
            raise BadInput(f"cannot create recording {path}: {error.strerror}") from None
        # Unbuffered: every sealed segment goes straight to the kernel (survives a killed process).
        destination = os.fdopen(descriptor, "wb", buffering=0)
        try:
            writer = vault.encrypt(destination, list(recipients), recording_id=recording_id)
        except BaseException:
            destination.close()
            path.unlink()   # nothing was recorded into it: no half-made file is left behind
            raise
        sink = SealingSink(writer, WRITER_QUEUE_CHUNKS)
        self._clip_open.set()
        self._clip_path = path
        self._commands.put(("start", (path, sink, destination)))
        return path

    def stop_clip(self, device_key=None,
                  metadata: dict | Callable[[int | None, float], dict] | None = None) -> ClipResult:
        """Ends the clip with every frame captured before this call; blocks until sealed.
        `metadata` may be a function of the clip's first frame's capture ns and its duration
        (the treatment timeline is relative to the first frame)."""
        if not self._clip_open.is_set():
            raise ApplianceError("no recording is in progress")
        requested_ns = time.monotonic_ns()
        done: Future = Future()
        self._commands.put(("stop", (requested_ns, done)))
        clip = done.result()
        clip.sink.done.wait()
        clip.destination.close()
        self._clip_open.clear()
        if clip.sink.error is not None:
            raise ApplianceError(f"the recording could not be written ({clip.sink.error}); "
                                 "what reached the disk stays readable as an interrupted recording")
        sealed = clip.sink.sealed
        frames_meta = self._clip_facts(clip)
        manifest = None
        if callable(metadata):
            metadata = metadata(clip.first_ns, frames_meta["duration_s"])
        if device_key is not None:
            manifest = vault.write_manifest(clip.path, device_key, metadata={**frames_meta, **(metadata or {})},
                                            sealed=sealed)
        seal_s = (time.monotonic_ns() - requested_ns) / 1e9
        return ClipResult(
            path=clip.path, frames=clip.frames, dropped=frames_meta["dropped"], triggers=clip.triggers,
            duration_s=frames_meta["duration_s"],
            first_frame_at=self._wall(clip.first_ns), last_frame_at=self._wall(clip.last_ns),
            first_frame_ns=clip.first_ns, last_frame_ns=clip.last_ns,
            bytes=sealed.ciphertext_length, plaintext_bytes=sealed.plaintext_length,
            bitrate_bps=(clip.payload_bytes * 8 / frames_meta["duration_s"]) if frames_meta["duration_s"] else 0.0,
            file_digest=sealed.file_digest, recording_id=sealed.recording_id,
            seal_s=seal_s, manifest=manifest, fault=clip.fault,
        )

    def stats(self) -> dict:
        counters = self.camera.counters_snapshot()
        with self._recent_lock:
            recent = list(self._recent)
        span_s = (recent[-1][0] - recent[0][0]) / 1e9 if len(recent) > 1 else 0.0
        return {
            "fps": (len(recent) - 1) / span_s if span_s else 0.0,
            "delivered": counters.delivered,
            "dropped": counters.dropped,
            "incomplete": counters.incomplete,
            "encoded": self._encoded,
            "encoder_queue": self.camera.frames.qsize(),
            "bitrate_bps": sum(size for _, size in recent[1:]) * 8 / span_s if span_s else 0.0,
            "recording": self._clip_open.is_set(),
            "fault": self._fault,
        }

    # --- recorder thread ------------------------------------------------------------------

    def _run(self) -> None:
        while self._running.is_set():
            try:
                self._handle_commands()
                try:
                    frame = self.camera.frames.get(timeout=FRAME_WAIT_S)
                except queue.Empty:
                    continue
                self._encode(frame)
            except Exception as error:  # noqa: BLE001 - the thread must keep serving stop_clip
                self._encoder_failed(error)
        self._handle_commands()

    def _handle_commands(self) -> None:
        while True:
            try:
                command, argument = self._commands.get_nowait()
            except queue.Empty:
                return
            if command == "start":
                self._begin_clip(*argument)
            elif command == "continue":
                if self._clip is not None:
                    self._clip.triggers += 1
            elif command == "stop":
                self._end_clip(*argument)

    def _begin_clip(self, path: Path, sink: SealingSink, destination) -> None:
        clip = _Clip(path, sink, destination)
        self._clip = clip
        if self._fault is not None:
            self._clip_failed(ApplianceError(self._fault))
            return
        try:
            clip.muxer = self._clip_muxer(sink)
            for entry in self._preroll:
                self._write_to_clip(entry.payload, entry.capture_ns)
        except Exception as error:  # noqa: BLE001 - becomes a ClipFault; the clip is kept
            self._clip_failed(error)

    def _clip_muxer(self, sink: SealingSink) -> ClipMuxer:
        if self._encoder is None:
            self._encoder = Encoder(self.settings, self.camera.width, self.camera.height, self.camera.nominal_fps)
        return ClipMuxer(sink, self._encoder)

    def _end_clip(self, requested_ns: int, done: Future) -> None:
        # Frames captured before the stop request may still wait in the camera queue.
        while True:
            try:
                frame = self.camera.frames.get_nowait()
            except queue.Empty:
                break
            if frame.capture_ns > requested_ns:
                self._finish_clip(done)
                self._encode(frame)
                return
            self._encode(frame)
        self._finish_clip(done)

    def _finish_clip(self, done: Future) -> None:
        clip, self._clip = self._clip, None
        if clip is None:
            done.set_exception(ApplianceError("no recording is in progress"))
            return
        try:
            if clip.muxer is not None:
                clip.muxer.close()
        except Exception as error:  # noqa: BLE001
            clip.fault = clip.fault or f"closing the video failed: {error}"
            self.on_event(ClipFault(clip.fault))
        clip.sink.finish()
        done.set_result(clip)

    def _encode(self, frame) -> None:
        if self._fault is not None:
            return   # a failed encoder is not retried: the fault goes to the controller once
        try:
            encoder = self._encoder
            if encoder is None:
                encoder = self._encoder = Encoder(self.settings, frame.image.shape[1], frame.image.shape[0],
                                                  self.camera.nominal_fps)
            pts = encoder.pts_for(frame.capture_ns, self._epoch_ns)
            packets = encoder.encode(frame.image, pts)
        except Exception as error:  # noqa: BLE001 - an encoder failure is a fault, not a crash
            self._encoder_failed(error)
            return
        for packet in packets:
            encoded = EncodedFrame(packet, packet.pts, packet.dts, frame.index, packet.size, frame.dropped_before)
            with self._recent_lock:
                self._encoded += 1
                self._recent.append((frame.capture_ns, packet.size))
                while frame.capture_ns - self._recent[0][0] > RATE_WINDOW_NS:
                    self._recent.popleft()
            self._preroll.push(Entry(frame.capture_ns, packet.is_keyframe, encoded))
            if self._clip is not None and self._clip.muxer is not None:
                try:
                    self._write_to_clip(encoded, frame.capture_ns)
                except Exception as error:  # noqa: BLE001
                    self._clip_failed(error)

    def _write_to_clip(self, encoded: EncodedFrame, capture_ns: int) -> None:
        clip = self._clip
        clip.muxer.write(encoded.packet, encoded.pts, encoded.dts)
        clip.frames += 1
        clip.payload_bytes += encoded.size
        if clip.first is None:
            clip.first, clip.first_ns = encoded, capture_ns
        clip.last, clip.last_ns = encoded, capture_ns

    def _clip_failed(self, error: Exception) -> None:
        """Keeps what the clip has (stop_clip seals it) and stops feeding it."""
        clip = self._clip
        clip.fault = clip.fault or f"recording failed: {type(error).__name__}: {error}"
        if clip.muxer is not None:
            try:
                clip.muxer.close()
            except Exception:  # noqa: BLE001 - the first failure is the one reported
                pass
        clip.muxer = None
        self.on_event(ClipFault(clip.fault))

    def _encoder_failed(self, error: Exception) -> None:
        self._fault = f"encoder failed: {type(error).__name__}: {error}"
        if self._clip is not None:
            self._clip_failed(error)
        else:
            self.on_event(ClipFault(self._fault))

    def _clip_facts(self, clip: _Clip) -> dict:
        if clip.first is None:
            return {"frames": 0, "dropped": 0, "duration_s": 0.0}
        duration_s = (clip.last_ns - clip.first_ns) / 1e9 + 1 / self.camera.nominal_fps
        return {"frames": clip.frames, "dropped": clip.last.dropped_before - clip.first.dropped_before,
                "duration_s": round(duration_s, 3)}

    def _wall(self, monotonic_ns: int | None) -> float | None:
        return None if monotonic_ns is None else (monotonic_ns + self._wall_offset_ns) / 1e9
