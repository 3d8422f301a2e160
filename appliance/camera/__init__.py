"""Camera sources: `open_camera(spec)` turns "synthetic", "opencv:SRC" or "vimba[:ID]" into a
CameraSource. Each source delivers Frame(index, capture_ns, image) through a bounded queue
and never blocks on a slow consumer."""

from __future__ import annotations

from appliance.camera.source import CameraSource, CameraUnavailable, Counters, Frame
from appliance.errors import BadInput

__all__ = ["CameraSource", "CameraUnavailable", "Counters", "Frame", "open_camera", "open_configured_camera"]


def open_camera(spec: str, **options) -> CameraSource:
    """Opens a camera by its specification; options go to the source's constructor."""
    kind, _, argument = spec.partition(":")
    if kind == "synthetic" and not argument:
        from appliance.camera.synthetic import SyntheticCamera

        return SyntheticCamera(**options)
    if kind == "opencv" and argument:
        from appliance.camera.opencv import OpenCVCamera

        return OpenCVCamera(argument, **options)
    if kind == "vimba":
        from appliance.camera.vimba import VimbaCamera

        return VimbaCamera(argument or None, **options)
    raise BadInput(f"unknown camera {spec!r}: use synthetic, opencv:SOURCE or vimba[:CAMERA_ID]")


def open_configured_camera(settings) -> CameraSource:
    """The [camera] settings' camera: the synthetic one at the configured size and rate, an
    Allied Vision camera at the configured rate through the configured transport layers;
    OpenCV sources deliver at their own size and rate."""
    kind = settings.source.partition(":")[0]
    if kind == "synthetic":
        return open_camera(settings.source, width=settings.width, height=settings.height, fps=settings.fps)
    if kind == "vimba":
        return open_camera(settings.source, fps=settings.fps, transport_layer_dirs=settings.transport_layer_dirs)
    return open_camera(settings.source)
