"""The Vimba camera's behaviour where the real GenTL producer (Viky, tests/test_camera_vimba.py)
cannot act: failed, slow and crashing starts, Bayer sensors, exposure features, unplugging,
incomplete frames. vmbpy is replaced by tests/fake_vmbpy.py, which has vmbpy's shapes."""

from __future__ import annotations

import dataclasses
import sys
import threading

import numpy as np
import pytest

from appliance.camera import CameraUnavailable
from tests import fake_vmbpy
from tests.waiting import wait_for


def vimba_camera(monkeypatch, fake_camera, **options):
    fake = fake_vmbpy.module(fake_camera)
    monkeypatch.setitem(sys.modules, "vmbpy", fake)
    from appliance.camera.vimba import VimbaCamera
    return VimbaCamera(**options), fake


def test_a_failed_start_does_not_poison_the_next_one_and_stop_still_stops(monkeypatch):
    fake_camera = fake_vmbpy.Camera()
    fake_camera.failing_starts = 1
    camera, _ = vimba_camera(monkeypatch, fake_camera)
    with pytest.raises(CameraUnavailable, match="access denied"):
        camera.start()
    assert not fake_camera.is_open                 # the failed start closed the camera again
    camera.start()
    fake_camera.deliver(1)
    assert camera.frames.get(timeout=5).image.shape == (480, 640, 3)
    camera.stop()
    assert not fake_camera.is_open and fake_camera.handler is None


def test_a_start_slower_than_its_deadline_fails_and_the_camera_is_closed_once_the_open_returns(monkeypatch):
    import appliance.camera.vimba as vimba
    fake_camera = fake_vmbpy.Camera()
    camera, _ = vimba_camera(monkeypatch, fake_camera)
    monkeypatch.setattr(vimba, "START_TIMEOUT_S", 0.2, raising=False)   # the old code had no deadline
    fake_camera.open_gate = gate = threading.Event()
    with pytest.raises(CameraUnavailable, match="did not start streaming within"):
        camera.start()
    gate.set()
    wait_for(lambda: fake_camera.opens == 1 and not fake_camera.is_open, timeout=10,
             what="the late open to be closed again")
    assert fake_camera.streams_started == 0         # it never started streaming behind our back
    fake_camera.open_gate = None
    camera.start()                                  # and the camera can be started again
    camera.stop()
    assert fake_camera.streams_started == 1


def test_an_unexpected_error_in_the_stream_thread_fails_the_start_with_its_name(monkeypatch):
    fake_camera = fake_vmbpy.Camera()
    camera, _ = vimba_camera(monkeypatch, fake_camera)
    fake_camera.get_pixel_formats = lambda: (_ for _ in ()).throw(RuntimeError("driver bug"))
    with pytest.raises(CameraUnavailable, match="RuntimeError: driver bug"):
        camera.start()


def test_bayer_is_preferred_over_bgr8_and_converted_to_bgr_on_the_host(monkeypatch):
    fake_camera = fake_vmbpy.Camera(formats=("Bgr8", "Mono8", "BayerRG8"), width=8, height=8)
    camera, _ = vimba_camera(monkeypatch, fake_camera)
    camera.start()
    try:
        assert fake_camera.pixel_format == "BayerRG8"
        mosaic = np.zeros((8, 8, 1), np.uint8)
        mosaic[0::2, 0::2] = 200                    # RGGB: only the red sites are lit
        fake_camera.deliver(1, mosaic)
        image = camera.frames.get(timeout=5).image
    finally:
        camera.stop()
    blue, green, red = (image[2:6, 2:6, channel].mean() for channel in range(3))
    assert red > 150 and green < 60 and blue < 60


def test_frame_rate_capped_auto_exposure_white_balance_and_gige_packet_size_are_set(monkeypatch):
    features = {"AcquisitionFrameRateEnable": fake_vmbpy.Feature(False),
                "AcquisitionFrameRate": fake_vmbpy.Feature(12.0, 1.0, 60.0),
                "ExposureAuto": fake_vmbpy.Feature("Off"),
                "ExposureAutoMax": fake_vmbpy.Feature(500_000.0, 10.0, 10_000_000.0),
                "BalanceWhiteAuto": fake_vmbpy.Feature("Off")}
    packet_size = fake_vmbpy.Feature()
    fake_camera = fake_vmbpy.Camera(formats=("BayerRG8",), features=features,
                                    stream_features={"GVSPAdjustPacketSize": packet_size})
    camera, _ = vimba_camera(monkeypatch, fake_camera, fps=30.0)
    camera.start()
    camera.stop()
    assert features["AcquisitionFrameRateEnable"].value is True
    assert features["AcquisitionFrameRate"].value == 30.0 == camera.nominal_fps
    assert features["ExposureAuto"].value == "Continuous"
    assert 0 < features["ExposureAutoMax"].value < 1e6 / 30       # exposure cannot slow the frame rate
    assert features["BalanceWhiteAuto"].value == "Continuous"
    assert packet_size.runs == 1


def test_a_camera_without_those_features_keeps_its_own_rate(monkeypatch):
    fake_camera = fake_vmbpy.Camera(features={"AcquisitionFrameRate": fake_vmbpy.Feature(20.0, 1.0, 200.0)})
    camera, _ = vimba_camera(monkeypatch, fake_camera)
    camera.start()
    camera.stop()
    assert camera.nominal_fps == 20.0 and fake_camera.pixel_format == "Mono8"


@pytest.mark.parametrize("event, listed, expected", [
    ("Missing", False, "the camera disconnected"),
    ("Unreachable", True, "the camera became unreachable"),
])
def test_losing_the_camera_is_reported_also_when_vmbpy_passes_no_camera_object(monkeypatch, event, listed, expected):
    fake_camera = fake_vmbpy.Camera()
    camera, fake = vimba_camera(monkeypatch, fake_camera)
    lost: list[str] = []
    camera.on_lost = lost.append
    camera.start()
    try:
        other = fake_vmbpy.Camera("DEV_OTHER")
        fake.system.announce(other, fake_vmbpy.CameraEvent.Missing)
        fake.system.announce(fake_camera, fake_vmbpy.CameraEvent.Detected)
        assert lost == []                          # another camera, or nothing lost
        if not listed:
            fake.system.cameras.remove(fake_camera)
        fake.system.announce(None if not listed else fake_camera, getattr(fake_vmbpy.CameraEvent, event))
        assert lost == [expected]
    finally:
        camera.stop()


def test_incomplete_frames_are_counted_and_leave_a_gap_in_the_frame_index(monkeypatch):
    fake_camera = fake_vmbpy.Camera()
    camera, _ = vimba_camera(monkeypatch, fake_camera)
    camera.start()
    try:
        for frame_id in (1, 2, 3, 4, 6):          # 5 never arrived at all
            fake_camera.deliver(frame_id, complete=frame_id != 3)
        indices = [camera.frames.get(timeout=5).index for _ in range(4)]
    finally:
        camera.stop()
    assert indices == [0, 1, 3, 5]
    assert camera.counters_snapshot().incomplete == 1 and fake_camera.requeued == 5


def test_a_camera_sending_only_incomplete_frames_goes_stale(tmp_path):
    from appliance.camera.synthetic import SyntheticCamera
    from appliance.config import Settings
    from appliance.control.health import CAMERA_STALE_S, Health
    from appliance.control.keys import KeyRing
    from appliance.control.parts import Parts

    settings = dataclasses.replace(Settings(), data=dataclasses.replace(Settings().data, dir=tmp_path))
    parts = Parts(settings, post=print)
    parts.camera, parts.recorder = SyntheticCamera(width=512, height=288), object()   # a session runs
    now = [0.0]
    health = Health(settings, parts, KeyRing(settings), clock=lambda: now[0])
    health.camera_started()
    for _ in range(5):
        parts.camera.count_incomplete()
        now[0] += CAMERA_STALE_S
        problem = health.camera_problem()
    assert problem is not None and "delivered no frame" in problem


def test_transport_layer_dirs_are_a_list_of_existing_directories_relative_to_the_settings_file(tmp_path):
    from appliance import config
    from appliance.errors import BadInput

    (tmp_path / "gentl").mkdir()
    settings_file = tmp_path / "appliance.toml"
    settings_file.write_text('[camera]\nsource = "vimba"\ntransport_layer_dirs = ["gentl"]\n')
    assert config.load(settings_file).camera.transport_layer_dirs == (tmp_path / "gentl",)
    assert config.load().camera.transport_layer_dirs == ()
    for value, message in (('["missing"]', r"transport_layer_dirs\[0\] is not a directory"),
                           ('"gentl"', "transport_layer_dirs must be a list")):
        settings_file.write_text(f"[camera]\ntransport_layer_dirs = {value}\n")
        with pytest.raises(BadInput, match=message):
            config.load(settings_file)


@pytest.mark.parametrize("arguments, message", [
    (["--camera", "synthetic", "--transport-layer", "."], "--transport-layer is for --camera vimba"),
    (["--camera", "vimba", "--transport-layer", "/nonexistent-gentl"], "--transport-layer: not a directory"),
    (["--camera", "vimba", "--fps", "0"], "--fps must be positive"),
])
def test_record_refuses_bad_camera_options_in_one_line(tmp_path, appliance_cli, arguments, message):
    result = appliance_cli("record", *arguments, "--seconds", "1", "--out", str(tmp_path / "out"),
                           "--recipient", str(tmp_path / "unused.pub"))
    assert result.returncode == 2
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines
