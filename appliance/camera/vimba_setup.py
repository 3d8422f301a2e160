"""Setting Vimba X up: which transport layers VmbC loads, and how the camera is configured.

Transport layers: VmbC loads GenTL producers (.cti) from GENICAM_GENTL64_PATH, then filters
them by its VmbC.xml rules, which allow only a few vendors (Allied Vision's own, and a handful
of others) and deny everything else. With `transport_layer_dirs` the appliance hands VmbC a
VmbC.xml of its own instead: the shipped file with CtiPaths listing exactly those directories
(each required, so a directory without a producer fails at open) and, before the shipped
catch-all rule, an allow rule for the vendor of each producer found there. VmbC's own rules
still decide everything else (an earlier deny, e.g. SVS on GigE, still wins). Finding the
vendors takes one VmbC start with only those directories and an allow-all rule.

Camera: Bayer 8 or Mono8 is preferred over Bgr8 and converted on the host (1920x1200 Bgr8 at
30 fps is 207 MB/s, over a USB Alvium's 200 MB/s link limit; GigE caps near 18 fps), and the
frame rate, auto exposure (capped below one frame period), white balance and GigE packet size
are set where the camera has those features.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import threading
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

from appliance.camera.source import CameraUnavailable

# OpenCV names Bayer layouts by the second row's pattern, so the sensor's RGGB is BayerBG
# in the old names; the explicit 4-letter names avoid that trap.
BAYER_TO_BGR_CODES = {"BayerRG8": "COLOR_BayerRGGB2BGR", "BayerBG8": "COLOR_BayerBGGR2BGR",
                      "BayerGR8": "COLOR_BayerGRBG2BGR", "BayerGB8": "COLOR_BayerGBRG2BGR"}
PREFERRED_FORMATS = (*BAYER_TO_BGR_CODES, "Mono8", "Bgr8")
EXPOSURE_SHARE_OF_PERIOD = 0.8   # auto exposure stays below this share of a frame period
GIGE_PACKET_SIZE_TIMEOUT_S = 2.0
_entering = threading.Lock()


def shipped_settings(vmbpy) -> ElementTree.ElementTree:
    """The VmbC.xml that ships beside vmbpy's libVmbC."""
    path = Path(vmbpy.__file__).parent / "c_binding" / "lib" / "VmbC.xml"
    try:
        return ElementTree.parse(path)
    except (OSError, ElementTree.ParseError) as error:
        raise CameraUnavailable(f"cannot read Vimba X's own settings {path}: {error}") from None


def settings_allowing(shipped: ElementTree.ElementTree, directories, vendors) -> bytes:
    """VmbC.xml: the shipped settings, loading producers from exactly `directories` and
    allowing `vendors` before the shipped catch-all rule (None: every vendor, no other rule,
    for finding out which vendors are there)."""
    root = ElementTree.fromstring(ElementTree.tostring(shipped.getroot()))
    loading = root.find("TlLoading")
    if loading is None:
        loading = ElementTree.SubElement(root, "TlLoading")
    for old in loading.findall("CtiPaths"):
        loading.remove(old)
    paths = ElementTree.Element("CtiPaths")
    loading.insert(0, paths)
    for directory in directories:
        ElementTree.SubElement(paths, "Path", required="true").text = str(directory)
    rules = loading.findall("TlRule")
    if vendors is None:
        for rule in rules:
            loading.remove(rule)
        loading.insert(1, ElementTree.Element("TlRule", rule="allow"))
    else:
        catch_all = [rule for rule in rules if rule.get("vendor-type", "*") == rule.get("interface-type", "*") == "*"]
        position = list(loading).index(catch_all[0]) if catch_all else len(loading)
        for offset, vendor in enumerate(sorted(vendors)):
            allow = {"vendor-type": vendor, "interface-type": "*", "rule": "allow"}
            loading.insert(position + offset, ElementTree.Element("TlRule", allow))
    return ElementTree.tostring(root, encoding="utf-8", xml_declaration=True)


@contextlib.contextmanager
def vmb_system(vmbpy, directories: tuple[Path, ...], vendors=None):
    """Enters the VmbSystem with VmbC loading producers from `directories` (or, when there are
    none, from GENICAM_GENTL64_PATH as VmbC does by default)."""
    system = vmbpy.VmbSystem.get_instance()
    with _entering:
        # VmbC starts once per process: a second camera (or the probe while one streams) joins
        # the running system, whose configuration can no longer change.
        if system._context_entered:
            entered = system.__enter__()
        elif not directories:
            entered = system.set_path_configuration().__enter__()
        else:
            scratch = Path(tempfile.mkdtemp(prefix="vmbc-"))   # 0700; VmbC reads the file at start only
            try:
                settings = scratch / "VmbC.xml"
                settings.write_bytes(settings_allowing(shipped_settings(vmbpy), directories, vendors))
                settings.chmod(0o600)
                entered = system.set_path_configuration(str(settings)).__enter__()
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
    try:
        yield entered
    finally:
        system.__exit__(None, None, None)


def producer_vendors(vmbpy, directories: tuple[Path, ...]) -> set[str]:
    """The vendors of the GenTL producers in `directories`."""
    with vmb_system(vmbpy, directories) as system:
        return {layer.get_vendor() for layer in system.get_all_transport_layers()}


def choose_pixel_format(vmbpy, camera) -> str:
    offered = {str(pixel_format).rsplit(".", 1)[-1] for pixel_format in camera.get_pixel_formats()}
    for name in PREFERRED_FORMATS:
        if name in offered:
            camera.set_pixel_format(getattr(vmbpy.PixelFormat, name))
            return name
    raise CameraUnavailable("the camera offers none of Bayer 8 bit, Mono8 or Bgr8")


def configure_acquisition(vmbpy, camera, fps: float | None, colour: bool) -> float:
    """Sets what the camera has of frame rate, auto exposure, white balance and GigE packet
    size; returns the frame rate the camera reports (its own when `fps` is None)."""
    if fps is not None:
        _set_if_present(vmbpy, camera, "AcquisitionFrameRateEnable", True)
        _set_within_range(vmbpy, camera, "AcquisitionFrameRate", fps)
    try:
        actual_fps = float(camera.get_feature_by_name("AcquisitionFrameRate").get())
    except vmbpy.VmbFeatureError:
        actual_fps = fps or 30.0
    if _set_if_present(vmbpy, camera, "ExposureAuto", "Continuous"):
        # Longer than a frame period would lower the frame rate in dim light.
        limit_us = EXPOSURE_SHARE_OF_PERIOD * 1e6 / actual_fps
        for name in ("ExposureAutoMax", "AutoModeExposureTimeMax"):   # Alvium; older models
            if _set_within_range(vmbpy, camera, name, limit_us):
                break
    if colour:
        _set_if_present(vmbpy, camera, "BalanceWhiteAuto", "Continuous")
    _adjust_gige_packet_size(vmbpy, camera)
    return actual_fps


def _set_if_present(vmbpy, camera, name: str, value) -> bool:
    try:
        camera.get_feature_by_name(name).set(value)
    except (vmbpy.VmbFeatureError, TypeError):
        return False
    return True


def _set_within_range(vmbpy, camera, name: str, value: float) -> bool:
    try:
        feature = camera.get_feature_by_name(name)
        low, high = feature.get_range()
        feature.set(min(max(value, low), high))
    except (vmbpy.VmbFeatureError, TypeError):
        return False
    return True


def _adjust_gige_packet_size(vmbpy, camera) -> None:
    """GigE: the largest packet the network path carries (jumbo frames where the NIC has them)."""
    try:
        command = camera.get_streams()[0].get_feature_by_name("GVSPAdjustPacketSize")
    except (vmbpy.VmbFeatureError, IndexError):
        return
    command.run()
    deadline = time.monotonic() + GIGE_PACKET_SIZE_TIMEOUT_S
    while not command.is_done() and time.monotonic() < deadline:
        time.sleep(0.01)
