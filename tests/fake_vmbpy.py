"""A small stand-in for vmbpy with its frame, feature and camera-event shapes, for what Viky
(the real GenTL producer the Vimba tests use) cannot do: be unplugged, send incomplete
frames, fail to start once, be slow to open, offer Bayer and Bgr8, have exposure features.
Tests install it as sys.modules["vmbpy"]; nothing in the appliance knows it exists."""

from __future__ import annotations

import enum
import threading
import types

import numpy as np


class _Error(Exception):
    pass


class VmbSystemError(_Error): pass           # noqa: E701
class VmbTransportLayerError(_Error): pass   # noqa: E701
class VmbCameraError(_Error): pass           # noqa: E701
class VmbInterfaceError(_Error): pass        # noqa: E701
class VmbFeatureError(_Error): pass          # noqa: E701
class VmbFrameError(_Error): pass            # noqa: E701
class VmbTimeout(_Error): pass               # noqa: E701


PixelFormat = enum.Enum("PixelFormat", "Mono8 Bgr8 BayerRG8 BayerBG8 BayerGR8 BayerGB8 Rgba8")


class FrameStatus(enum.IntEnum):
    Complete = 0
    Incomplete = -1


class CameraEvent(enum.IntEnum):
    Missing = 0
    Detected = 1
    Reachable = 2
    Unreachable = 3
    Unknown = 4


class Feature:
    def __init__(self, value=None, low=None, high=None):
        self.value, self.range, self.runs = value, (low, high) if low is not None else None, 0

    def get(self):
        return self.value

    def set(self, value):
        self.value = value

    def get_range(self):
        if self.range is None:
            raise VmbFeatureError("no range")
        return self.range

    def run(self):
        self.runs += 1

    def is_done(self):
        return True


class Frame:
    def __init__(self, frame_id, image, *, complete=True):
        self.frame_id, self.image, self.complete = frame_id, image, complete

    def get_id(self):
        return self.frame_id

    def get_status(self):
        return FrameStatus.Complete if self.complete else FrameStatus.Incomplete

    def as_numpy_ndarray(self):
        return self.image


class Stream:
    def __init__(self, features):
        self.features = features

    def get_feature_by_name(self, name):
        try:
            return self.features[name]
        except KeyError:
            raise VmbFeatureError(name) from None


class Camera:
    def __init__(self, camera_id="DEV_FAKE", formats=("Mono8",), features=None, stream_features=None,
                 width=640, height=480):
        self.camera_id, self.formats = camera_id, [PixelFormat[name] for name in formats]
        self.features = {"Width": Feature(width), "Height": Feature(height), **(features or {})}
        self.streams = [Stream(stream_features or {})]
        self.pixel_format = None
        self.handler = None
        self.is_open = False
        self.failing_starts = 0
        self.open_gate: threading.Event | None = None   # when set, opening waits for it
        self.requeued = 0
        self.opens = self.streams_started = 0

    def get_id(self):
        return self.camera_id

    def get_pixel_formats(self):
        return self.formats

    def set_pixel_format(self, pixel_format):
        self.pixel_format = pixel_format.name

    def get_feature_by_name(self, name):
        return Stream.get_feature_by_name(self, name)

    def get_streams(self):
        return self.streams

    def __enter__(self):
        if self.open_gate is not None:
            self.open_gate.wait(30)
        self.is_open = True
        self.opens += 1
        return self

    def __exit__(self, *exc):
        self.is_open = False

    def start_streaming(self, handler, buffer_count):
        if self.failing_starts:
            self.failing_starts -= 1
            raise VmbCameraError("access denied")
        self.handler = handler
        self.streams_started += 1

    def stop_streaming(self):
        self.handler = None

    def queue_frame(self, frame):
        self.requeued += 1

    def deliver(self, frame_id, image=None, *, complete=True):
        image = np.full((self.features["Height"].value, self.features["Width"].value, 1), 100, np.uint8) \
            if image is None else image
        self.handler(self, self.streams[0], Frame(frame_id, image, complete=complete))


class _System:
    def __init__(self):
        self.cameras: list[Camera] = []
        self.handlers = []
        self._context_entered = False

    def set_path_configuration(self, *paths):
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def get_all_cameras(self):
        return list(self.cameras)

    def get_camera_by_id(self, camera_id):
        for camera in self.cameras:
            if camera.camera_id == camera_id:
                return camera
        raise VmbCameraError(camera_id)

    def register_camera_change_handler(self, handler):
        self.handlers.append(handler)

    def unregister_camera_change_handler(self, handler):
        self.handlers.remove(handler)

    def announce(self, camera, event):
        """As vmbpy's discovery callback: every handler, an exception logged and swallowed."""
        for handler in list(self.handlers):
            try:
                handler(camera, event)
            except Exception:   # noqa: BLE001 - vmbpy swallows it too, which is the point
                pass


def module(*cameras: Camera) -> types.ModuleType:
    """A fresh `vmbpy` whose system lists `cameras`."""
    fake = types.ModuleType("vmbpy")
    system = _System()
    system.cameras = list(cameras)
    fake.VmbSystem = types.SimpleNamespace(get_instance=lambda: system)
    for name, value in dict(globals()).items():
        if name.startswith("Vmb") or name in ("PixelFormat", "FrameStatus", "CameraEvent"):
            setattr(fake, name, value)
    fake.system = system
    return fake
