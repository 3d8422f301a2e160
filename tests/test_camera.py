"""Camera sources: the index stamp, the synthetic camera's behaviour, OpenCV and real vmbpy."""

from __future__ import annotations


import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from appliance.camera import CameraUnavailable, open_camera
from appliance.camera.source import MAX_QUEUE_FRAMES, QUEUE_BYTES, queue_frames_within
from appliance.camera.stamp import BLOCK, STAMP_WIDTH, read_index, stamp_index
from appliance.camera.synthetic import SyntheticPattern, spot_visible
from appliance.errors import BadInput
from tests.waiting import wait_for


@settings(deadline=None, max_examples=50)
@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_stamp_round_trips_every_32_bit_index(index):
    image = np.full((BLOCK * 2, STAMP_WIDTH + 8, 3), 90, np.uint8)
    stamp_index(image, index)
    assert read_index(image) == index


def test_stamp_layout_is_msb_first_white_for_one_from_the_top_left_corner():
    image = np.zeros((BLOCK, STAMP_WIDTH, 3), np.uint8)
    stamp_index(image, 0x80000001)
    assert image[:, :BLOCK].min() == 255                      # bit 31, leftmost block
    assert image[:, BLOCK:31 * BLOCK].max() == 0              # bits 30..1
    assert image[:, 31 * BLOCK:].min() == 255                 # bit 0, rightmost block


def test_stamp_refuses_what_it_cannot_represent():
    with pytest.raises(ValueError):
        stamp_index(np.zeros((BLOCK, STAMP_WIDTH, 3), np.uint8), 2**32)
    with pytest.raises(ValueError):
        stamp_index(np.zeros((BLOCK, STAMP_WIDTH - 2, 3), np.uint8), 1)


def test_synthetic_frames_are_a_pure_function_of_the_index_and_they_move():
    pattern, again = SyntheticPattern(512, 288), SyntheticPattern(512, 288)
    assert np.array_equal(pattern.render(41), again.render(41))
    below_stamp = (slice(BLOCK, None), slice(None))
    difference = np.abs(pattern.render(41)[below_stamp].astype(int) - pattern.render(42)[below_stamp].astype(int))
    assert difference.mean() > 2          # content moves and the noise changes
    assert read_index(pattern.render(42)) == 42


def test_synthetic_camera_never_blocks_a_full_queue_drops_and_counts():
    camera = open_camera("synthetic", width=512, height=288, fps=200, queue_frames=4)
    camera.start()
    try:
        wait_for(lambda: camera.counters_snapshot().dropped >= 5, what="drops with nobody consuming")
    finally:
        camera.stop()
    counters = camera.counters_snapshot()
    assert counters.delivered == 4 == camera.frames.qsize()
    frames = [camera.frames.get_nowait() for _ in range(4)]
    assert [frame.index for frame in frames] == [0, 1, 2, 3]
    assert all(a.capture_ns < b.capture_ns for a, b in zip(frames, frames[1:]))
    assert [read_index(frame.image) for frame in frames] == [0, 1, 2, 3]


def test_the_camera_queue_is_bounded_by_bytes_so_full_size_frames_cannot_exhaust_memory():
    full_size = 1920 * 1200 * 3
    camera = open_camera("synthetic", width=1920, height=1200, fps=500)
    assert camera.frames.maxsize == queue_frames_within(QUEUE_BYTES, 1920, 1200) == 9
    camera.start()
    try:
        wait_for(lambda: camera.counters_snapshot().dropped >= 1, what="drops with nobody consuming")
    finally:
        camera.stop()
    waiting = [camera.frames.get_nowait() for _ in range(camera.frames.qsize())]
    assert sum(frame.image.nbytes for frame in waiting) == 9 * full_size <= QUEUE_BYTES
    # Small frames are not starved of queue: they get the most frames the budget would allow.
    assert open_camera("synthetic", width=512, height=288).frames.maxsize == MAX_QUEUE_FRAMES
    assert open_camera("synthetic", width=512, height=288, queue_frames=3).frames.maxsize == 3


def test_unpaced_synthetic_camera_waits_for_the_consumer_instead_of_dropping():
    camera = open_camera("synthetic", width=512, height=288, paced=False, queue_frames=2)
    camera.start()
    try:
        indices = [camera.frames.get(timeout=5).index for _ in range(20)]
    finally:
        camera.stop()
    assert indices == list(range(20))
    assert camera.counters_snapshot().dropped == 0


@pytest.mark.parametrize("spec", ["webcam", "opencv:", "synthetic:7", ""])
def test_unknown_camera_specs_are_bad_input(spec):
    with pytest.raises(BadInput, match="unknown camera"):
        open_camera(spec)


def test_synthetic_camera_refuses_frames_too_small_for_the_stamp():
    with pytest.raises(BadInput, match="at least 512x16"):
        open_camera("synthetic", width=320, height=192)


def test_opencv_source_that_does_not_exist_is_unavailable(tmp_path):
    with pytest.raises(CameraUnavailable, match="cannot open"):
        open_camera(f"opencv:{tmp_path / 'missing.avi'}")


def test_real_vmbpy_without_a_transport_layer_names_genicam_gentl64_path():
    with pytest.raises(CameraUnavailable, match="GENICAM_GENTL64_PATH"):
        open_camera("vimba")
    with pytest.raises(CameraUnavailable, match="GENICAM_GENTL64_PATH"):
        open_camera("vimba:DEV_000F31000001")


def test_vmbpy_debug_chatter_stays_out_of_the_journal():
    """vmbpy sets DEBUG on its own logger and logs every library load and call; the appliance's
    log (journal.send_logs_to, as `run` and `kiosk` use it) keeps INFO and above. A fresh
    interpreter: the chatter starts at import."""
    import subprocess
    import sys
    script = ("import logging, sys\n"
              "from appliance.journal import send_logs_to\n"
              "send_logs_to(logging.StreamHandler(sys.stderr))\n"
              "from appliance.camera import CameraUnavailable, open_camera\n"
              "try:\n    open_camera('vimba')\nexcept CameraUnavailable:\n    pass\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    vmbpy_lines = [line for line in result.stderr.splitlines() if " vmbpyLog: " in line]
    assert any(" ERROR vmbpyLog: " in line for line in vmbpy_lines), result.stderr   # its errors still pass
    assert not [line for line in vmbpy_lines if " DEBUG vmbpyLog: " in line], vmbpy_lines


def test_record_command_reports_a_missing_transport_layer_in_one_line(appliance_cli, tmp_path):
    from appliance import vault

    _, public = vault.keys.generate_recipient(tmp_path / "keys", b"test passphrase")
    result = appliance_cli("record", "--camera", "vimba", "--seconds", "1", "--out", str(tmp_path / "out"),
                           "--recipient", str(public))
    assert result.returncode == 2
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "GENICAM_GENTL64_PATH" in lines[0]
    assert not (tmp_path / "out").exists()


def test_opencv_file_source_can_be_started_again_after_a_stop(tmp_path):
    import cv2

    source = tmp_path / "synthetic-test-content.avi"     # synthetic frames, generated here
    writer = cv2.VideoWriter(str(source), cv2.VideoWriter_fourcc(*"MJPG"), 100, (512, 288))
    for index in range(5):
        writer.write(SyntheticPattern(512, 288).render(index))
    writer.release()
    camera = open_camera(f"opencv:{source}")
    lost: list[str] = []
    camera.on_lost = lost.append
    try:
        for _ in range(2):
            camera.start()
            assert [read_index(camera.frames.get(timeout=5).image) for _ in range(5)] == [0, 1, 2, 3, 4]
            wait_for(lambda: lost, what="the end of the file")
            camera.stop()
            lost.clear()
    finally:
        camera.stop()
        source.unlink()


def test_a_recording_is_complete_only_with_every_claimed_frame_once_in_order():
    from appliance.camera.stamp import complete_in_order
    assert complete_in_order([5, 6, 7, 8], frames=4, dropped=0)
    assert complete_in_order([5, 6, 8, 9], frames=4, dropped=1)       # the gap is the counted drop
    assert not complete_in_order([5, 6, 8, 9], frames=4, dropped=0)   # a frame lost silently
    assert not complete_in_order([5, 6, 6, 7], frames=4, dropped=0)   # a frame twice
    assert not complete_in_order([5, 7, 6, 8], frames=4, dropped=0)   # out of order
    assert not complete_in_order([], frames=0, dropped=0)             # nothing recorded


@pytest.mark.parametrize("size", [(512, 288), (1920, 1200)])
def test_the_synthetic_laser_spot_shows_only_while_the_laser_is_on_and_keeps_the_stamp(size):
    pattern = SyntheticPattern(*size)
    for index in range(0, 1000, 37):   # the moving disc passes everywhere; the texture scrolls
        assert not spot_visible(pattern.render(index))
        lit = pattern.render(index, laser_on=True)
        assert spot_visible(lit) and read_index(lit) == index


def test_the_synthetic_camera_draws_the_spot_while_its_wired_laser_is_on():
    laser = {"on": False}
    camera = open_camera("synthetic", width=512, height=288, paced=False, queue_frames=2)
    camera.laser = lambda: laser["on"]
    camera.start()
    try:
        assert not spot_visible(camera.frames.get(timeout=5).image)
        laser["on"] = True
        wait_for(lambda: spot_visible(camera.frames.get(timeout=5).image), 5, "a frame with the spot")
    finally:
        camera.stop()
