"""Allied Vision cameras through vmbpy (Vimba X), streaming asynchronously.

vmbpy's rules shape this module: the frame handler runs in a VmbC thread and must not block
or raise (an exception there loses the buffer), `as_numpy_ndarray()` is a view into a buffer
the driver reuses, so the handler copies, hands the copy on without blocking and requeues the
buffer in `finally`. The VmbSystem and camera contexts are entered and left on one thread
that lives as long as the stream.
"""

from __future__ import annotations

import threading
import time

import cv2

from appliance.camera.source import CameraSource, CameraUnavailable

STREAM_BUFFERS = 10
NO_TRANSPORT_LAYER = (
    "no Vimba X transport layer (GenTL producer) found: install Allied Vision's transport layer "
    "and point GENICAM_GENTL64_PATH at its directory"
)

# OpenCV names Bayer layouts by the second row's pattern, so the sensor's RGGB is BayerBG
# in the old names; the explicit 4-letter names avoid that trap.
_BAYER_TO_BGR = {
    "BayerRG8": cv2.COLOR_BayerRGGB2BGR,
    "BayerBG8": cv2.COLOR_BayerBGGR2BGR,
    "BayerGR8": cv2.COLOR_BayerGRBG2BGR,
    "BayerGB8": cv2.COLOR_BayerGBRG2BGR,
}


def _driver_errors(vmbpy) -> tuple[type[Exception], ...]:
    return (vmbpy.VmbSystemError, vmbpy.VmbCameraError, vmbpy.VmbFeatureError, vmbpy.VmbFrameError,
            vmbpy.VmbInterfaceError, vmbpy.VmbTimeout)


def _transport_layer_error(error: Exception) -> CameraUnavailable:
    return CameraUnavailable(f"{NO_TRANSPORT_LAYER} ({type(error).__name__})")


class VimbaCamera(CameraSource):
    def __init__(self, camera_id: str | None = None, *, queue_frames: int | None = None):
        super().__init__(queue_frames=queue_frames)
        import vmbpy

        self._vmbpy = vmbpy
        self.camera_id = camera_id
        # Probe now, so a missing transport layer or camera is reported when the camera is
        # opened, not later from the streaming thread.
        try:
            with vmbpy.VmbSystem.get_instance() as system:
                self.camera_id = self._find_camera(system).get_id()
        except vmbpy.VmbTransportLayerError as error:
            raise _transport_layer_error(error) from None
        except vmbpy.VmbSystemError as error:
            raise CameraUnavailable(f"Vimba X could not start: {error}") from None
        self._stop = threading.Event()
        self._started = threading.Event()
        self._start_error: Exception | None = None
        self._thread: threading.Thread | None = None
        self._index = 0

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
        self._stop.clear()
        self._started.clear()
        self._thread = threading.Thread(target=self._stream, name="camera-vimba", daemon=True)
        self._thread.start()
        self._started.wait(10)
        if self._start_error is not None:
            self._thread.join(5)
            self._thread = None
            raise self._start_error

    def stop(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join(10)
            self._thread = None

    def _stream(self) -> None:
        vmbpy = self._vmbpy
        try:
            with vmbpy.VmbSystem.get_instance() as system:
                system.register_camera_change_handler(self._on_camera_change)
                with self._find_camera(system) as camera:
                    self._configure(camera)
                    camera.start_streaming(handler=self._on_frame, buffer_count=STREAM_BUFFERS)
                    self._started.set()
                    try:
                        self._stop.wait()
                    finally:
                        camera.stop_streaming()
                system.unregister_camera_change_handler(self._on_camera_change)
        except vmbpy.VmbTransportLayerError as error:
            self._fail(_transport_layer_error(error))
        except CameraUnavailable as error:
            self._fail(error)
        except _driver_errors(vmbpy) as error:
            if self._started.is_set():
                self.lost(f"camera stream failed: {error}")
            else:
                self._fail(CameraUnavailable(f"camera could not start streaming: {error}"))

    def _fail(self, error: Exception) -> None:
        self._start_error = error
        self._started.set()

    def _configure(self, camera) -> None:
        vmbpy = self._vmbpy
        formats = camera.get_pixel_formats()
        for preferred in (vmbpy.PixelFormat.Bgr8, *[getattr(vmbpy.PixelFormat, n) for n in _BAYER_TO_BGR],
                          vmbpy.PixelFormat.Mono8):
            if preferred in formats:
                camera.set_pixel_format(preferred)
                break
        else:
            raise CameraUnavailable("the camera offers none of Bgr8, Bayer 8 bit or Mono8")
        self.set_frame_size(int(camera.get_feature_by_name("Width").get()),
                            int(camera.get_feature_by_name("Height").get()))
        try:
            self.nominal_fps = float(camera.get_feature_by_name("AcquisitionFrameRate").get())
        except vmbpy.VmbFeatureError:
            self.nominal_fps = 30.0

    def _on_frame(self, camera, stream, frame) -> None:
        try:
            if frame.get_status() != self._vmbpy.FrameStatus.Complete:
                self.count_incomplete()
                return
            # Host monotonic time at hand-over: the camera's tick counter is not on this clock.
            capture_ns = time.monotonic_ns()
            self.offer(self._index, capture_ns, self._to_bgr(frame))
            self._index += 1
        except Exception as error:  # noqa: BLE001 - an exception here would lose the buffer
            self.lost(f"frame handling failed: {type(error).__name__}")
        finally:
            camera.queue_frame(frame)

    def _to_bgr(self, frame):
        name = str(frame.get_pixel_format()).rsplit(".", 1)[-1]
        view = frame.as_numpy_ndarray()
        if name in _BAYER_TO_BGR:
            return cv2.cvtColor(view, _BAYER_TO_BGR[name])
        if name == "Mono8":
            return cv2.cvtColor(view, cv2.COLOR_GRAY2BGR)
        return view.copy()

    def _on_camera_change(self, camera, event) -> None:
        if event == self._vmbpy.CameraEvent.Missing and camera.get_id() == self.camera_id:
            self.lost("the camera disconnected")

