"""Allied Vision cameras through vmbpy (Vimba X), streaming asynchronously.

vmbpy's rules shape this module: the frame handler runs in a VmbC thread and must not block
or raise (an exception there loses the buffer), `as_numpy_ndarray()` is a view into a buffer
the driver reuses, so the handler converts into a new array, hands it on without blocking and
requeues the buffer in `finally`. The VmbSystem and camera contexts are entered and left on one
thread that lives as long as the stream. Each start has its own stop/started/error: a thread
left over from a failed or timed-out start can never leak its outcome into the next one.

Frame indices follow the camera's frame ids, so frames the camera numbered but the host never
got complete (incomplete, or lost in transport) leave a gap in the index as drops do.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import cv2

from appliance.camera.source import CameraSource, CameraUnavailable
from appliance.camera.vimba_setup import (BAYER_TO_BGR_CODES, choose_pixel_format, configure_acquisition,
                                          producer_vendors, vmb_system)

log = logging.getLogger("appliance.camera")

STREAM_BUFFERS = 10
START_TIMEOUT_S = 10.0   # opening, configuring and starting a camera; GigE discovery is the slow part
STOP_TIMEOUT_S = 10.0
NO_TRANSPORT_LAYER = (
    "no Vimba X transport layer (GenTL producer) found: install Allied Vision's transport layer "
    "and point GENICAM_GENTL64_PATH at its directory"
)


class _Attempt:
    """One start's stream thread: asked to stop, started streaming, or failed before that."""

    def __init__(self):
        self.stop = threading.Event()
        self.started = threading.Event()
        self.error: CameraUnavailable | None = None


class VimbaCamera(CameraSource):
    def __init__(self, camera_id: str | None = None, *, fps: float | None = None,
                 transport_layer_dirs=(), queue_frames: int | None = None):
        """`fps` sets the camera's frame rate (None keeps the camera's own); with
        `transport_layer_dirs` VmbC loads producers from exactly those directories."""
        super().__init__(queue_frames=queue_frames)
        import vmbpy

        self._vmbpy = vmbpy
        self.camera_id = camera_id
        self.requested_fps = fps
        self._directories = tuple(Path(directory) for directory in transport_layer_dirs)
        self._vendors = None
        # Probe now, so a missing transport layer or camera is reported when the camera is
        # opened, not later from the streaming thread.
        try:
            if self._directories:
                self._vendors = producer_vendors(vmbpy, self._directories)
            with vmb_system(vmbpy, self._directories, self._vendors) as system:
                self.camera_id = self._find_camera(system).get_id()
        except vmbpy.VmbTransportLayerError as error:
            raise self._transport_layer_error(error) from None
        except vmbpy.VmbSystemError as error:
            raise CameraUnavailable(f"Vimba X could not start: {error}") from None
        self._attempt: _Attempt | None = None
        self._thread: threading.Thread | None = None
        self._index = -1
        self._last_frame_id: int | None = None
        self._pixel_format: str | None = None

    def _transport_layer_error(self, error: Exception) -> CameraUnavailable:
        if self._directories:
            listed = ", ".join(str(directory) for directory in self._directories)
            return CameraUnavailable(f"no usable GenTL producer (.cti) in {listed} ({type(error).__name__})")
        return CameraUnavailable(f"{NO_TRANSPORT_LAYER} ({type(error).__name__})")

    def _find_camera(self, system):
        if self.camera_id:
            try:
                return system.get_camera_by_id(self.camera_id)
            except self._vmbpy.VmbCameraError:
                raise CameraUnavailable(f"no Allied Vision camera with id {self.camera_id!r}") from None
        cameras = system.get_all_cameras()
        if not cameras:
            raise CameraUnavailable("no Allied Vision camera found (check the cable and power)")
        return cameras[0]

    def start(self) -> None:
        if self._thread is not None:
            return
        attempt = _Attempt()
        self._index, self._last_frame_id = -1, None
        thread = threading.Thread(target=self._stream, args=(attempt,), name="camera-vimba", daemon=True)
        thread.start()
        if not attempt.started.wait(START_TIMEOUT_S):
            attempt.stop.set()   # the thread closes the camera as soon as its open returns
            raise CameraUnavailable(f"the camera did not start streaming within {START_TIMEOUT_S:g} s")
        if attempt.error is not None:
            thread.join(STOP_TIMEOUT_S)
            raise attempt.error
        self._attempt, self._thread = attempt, thread

    def stop(self) -> None:
        if self._thread is not None:
            self._attempt.stop.set()
            self._thread.join(STOP_TIMEOUT_S)
            self._thread = self._attempt = None

    def _stream(self, attempt: _Attempt) -> None:
        try:
            with vmb_system(self._vmbpy, self._directories, self._vendors) as system:
                system.register_camera_change_handler(self._on_camera_change)
                try:
                    with self._find_camera(system) as camera:
                        self._configure(camera)
                        if attempt.stop.is_set():
                            return
                        camera.start_streaming(handler=self._on_frame, buffer_count=STREAM_BUFFERS)
                        try:
                            attempt.started.set()
                            attempt.stop.wait()
                        finally:
                            camera.stop_streaming()
                finally:
                    system.unregister_camera_change_handler(self._on_camera_change)
        except Exception as error:  # noqa: BLE001 - this thread's end must be reported, whatever it was
            if not attempt.started.is_set():
                attempt.error = self._start_failure(error)
                attempt.started.set()
            elif not attempt.stop.is_set():
                self.lost(f"camera stream failed: {type(error).__name__}: {error}")
            else:
                log.warning("stopping the camera stream failed: %s: %s", type(error).__name__, error)

    def _start_failure(self, error: Exception) -> CameraUnavailable:
        if isinstance(error, CameraUnavailable):
            return error
        if isinstance(error, self._vmbpy.VmbTransportLayerError):
            return self._transport_layer_error(error)
        return CameraUnavailable(f"camera could not start streaming: {type(error).__name__}: {error}")

    def _configure(self, camera) -> None:
        self._pixel_format = choose_pixel_format(self._vmbpy, camera)
        self.set_frame_size(int(camera.get_feature_by_name("Width").get()),
                            int(camera.get_feature_by_name("Height").get()))
        self.nominal_fps = configure_acquisition(self._vmbpy, camera, self.requested_fps,
                                                 colour=self._pixel_format != "Mono8")

    def _on_frame(self, camera, stream, frame) -> None:
        try:
            self._advance_index(frame.get_id())
            if frame.get_status() != self._vmbpy.FrameStatus.Complete:
                self.count_incomplete()
                return
            # Host monotonic time at hand-over: the camera's tick counter is not on this clock.
            capture_ns = time.monotonic_ns()
            self.offer(self._index, capture_ns, self._to_bgr(frame))
        except Exception as error:  # noqa: BLE001 - an exception here would lose the buffer
            self.lost(f"frame handling failed: {type(error).__name__}")
        finally:
            camera.queue_frame(frame)

    def _advance_index(self, frame_id: int | None) -> None:
        """Steps the index by the camera's frame-id step (1 when there is no id, or it wrapped
        or restarted: GigE block ids are 16 bits, 36 minutes at 30 fps)."""
        last, self._last_frame_id = self._last_frame_id, frame_id
        step = frame_id - last if frame_id is not None and last is not None and frame_id > last else 1
        self._index += step

    def _to_bgr(self, frame):
        view = frame.as_numpy_ndarray()
        if self._pixel_format in BAYER_TO_BGR_CODES:
            return cv2.cvtColor(view, getattr(cv2, BAYER_TO_BGR_CODES[self._pixel_format]))
        if self._pixel_format == "Mono8":
            return cv2.cvtColor(view, cv2.COLOR_GRAY2BGR)
        return view.copy()

    def _on_camera_change(self, camera, event) -> None:
        """Missing (unplugged) or Unreachable (access lost) for this camera is a loss. vmbpy
        passes camera=None when the event's id matched none it knew: then whether this camera
        is still listed decides."""
        vmbpy = self._vmbpy
        if event not in (vmbpy.CameraEvent.Missing, vmbpy.CameraEvent.Unreachable):
            return
        if camera is None:
            listed = {known.get_id() for known in vmbpy.VmbSystem.get_instance().get_all_cameras()}
            ours = self.camera_id not in listed
        else:
            ours = camera.get_id() == self.camera_id
        if ours:
            self.lost("the camera disconnected" if event == vmbpy.CameraEvent.Missing
                      else "the camera became unreachable")
