"""Camera sources: `open_camera(spec)` turns "synthetic", "opencv:SRC" or "vimba[:ID]" into a
CameraSource. Each source delivers Frame(index, capture_ns, image) through a bounded queue
and never blocks on a slow consumer."""

from __future__ import annotations

from appliance.camera.source import CameraSource, CameraUnavailable, Counters, Frame
from appliance.errors import BadInput

__all__ = ["CameraSource", "CameraUnavailable", "Counters", "Frame", "open_camera"]


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
