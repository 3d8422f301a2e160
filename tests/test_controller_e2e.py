"""The appliance end to end, in process: real firmware simulator on a pty, real synthetic camera
(small frames), real encoder, vault and SQLite. Footswitch presses become sealed recordings;
link and camera loss seal what was recorded and show the fault until it clears.

Every test runs on both simulator engines: the firmware's logic in Python, and the real main.py
under MicroPython's unix port (ON_BOTH_ENGINES, or the `engine` parameter where a test builds its
own appliance).
"""

from __future__ import annotations

import dataclasses
import stat
import time

import pytest

from appliance import vault
from appliance.camera.stamp import complete_in_order, decoded_stamps, read_index
from appliance.config import (CameraSettings, ControllerSettings, DataSettings, RecordingSettings,
                              Settings, StorageSettings)
from appliance.controller import Controller, NotReady
from appliance.errors import BadInput
from tests.waiting import wait_for

PASSPHRASE = b"test passphrase"
ENGINES = ["python", "micropython"]
ON_BOTH_ENGINES = pytest.mark.parametrize("controller", ENGINES, indirect=True)


@pytest.fixture(scope="module")
def key_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("keys")
    vault.keys.generate_recipient(directory, PASSPHRASE)
    vault.keys.generate_device(directory)
    return directory


@pytest.fixture(scope="module")
def identity(key_dir):
    return vault.keys.load_identity(key_dir / vault.keys.RECIPIENT_KEY, PASSPHRASE)


def small_settings(data_dir, key_dir, engine="python", **storage) -> Settings:
    from appliance.config import KeySettings
    return Settings(
        data=DataSettings(data_dir),
        camera=CameraSettings(width=512, height=288, fps=30),
        recording=RecordingSettings(pre_roll_s=1.0, post_roll_s=0.5, bitrate_estimate_bps=1_000_000),
        controller=ControllerSettings(simulator_engine=engine),
        storage=StorageSettings(**{"max_session_minutes": 1, "reserve_mb": 1, **storage}),
        keys=KeySettings(recipients=(key_dir / vault.keys.RECIPIENT_PUB,),
                         device_key=key_dir / vault.keys.DEVICE_KEY),
    )


@pytest.fixture
def controller(tmp_path, key_dir, request):
    running = Controller(small_settings(tmp_path / "data", key_dir, getattr(request, "param", "python")))
    running.start()
    running.wait_for(lambda status: status.link.up, 10)
    yield running
    running.stop()


def stamps_of(path, identity, *, torn_ok=False) -> list[int]:
    with vault.open_reader(path, identity) as reader:
        return decoded_stamps(reader, torn_tail_ok=torn_ok)


def assert_complete(recording, indices):
    """Every frame the recording claims is there once, in order; drops show as counted gaps."""
    assert complete_in_order(indices, recording.frames, recording.dropped), \
        (indices[:3], indices[-3:], len(indices), recording.frames, recording.dropped)


def release(controller):
    """Lets go of the footswitch and waits until the controller has the edge."""
    delivered = controller.parts.link.stats().edges_delivered
    controller.simulator.release()
    wait_for(lambda: controller.parts.link.stats().edges_delivered > delivered)


def press_and_record(controller, hold=lambda: None):
    controller.simulator.press()
    controller.wait_for(lambda status: status.state == "Recording", 5)
    controller.wait_for(lambda status: (status.recording_elapsed_s or 0) >= 0.6, 5)
    hold()


@ON_BOTH_ENGINES
def test_presses_become_sealed_recordings_with_every_frame_and_audit_in_order(controller, identity):
    session = controller.begin_session("PAT-0001", "TECH-1")
    assert controller.status.state == "Armed"
    wait_for(lambda: controller.simulator.permissive)
    for clip in (1, 2):
        press_and_record(controller)
        wait_for(lambda: controller.simulator.led)
        controller.simulator.release()
        controller.wait_for(lambda status: status.state == "Armed" and status.session.clip_count == clip, 20)
    controller.end_session()
    controller.wait_for(lambda status: status.state == "Idle", 10)
    wait_for(lambda: not controller.simulator.permissive)

    recordings = controller.reader.recordings(session.session_uid)
    assert [r.state for r in recordings] == ["sealed", "sealed"]
    for recording in recordings:
        assert vault.verify(recording.path, controller.keys.load().device_key.public_key()).ok
        assert_complete(recording, stamps_of(recording.path, identity))
    events = [(e.event, e.details.get("recording")) for e in controller.reader.audit_entries()
              if e.event != "appliance_started"]
    first, second = (r.uid for r in recordings)
    assert events == [("session_opened", None), ("recording_started", first), ("recording_sealed", first),
                      ("recording_started", second), ("recording_sealed", second), ("session_closed", None)]
    assert controller.reader.verify_audit().ok
    for path in controller.settings.data.dir.rglob("*"):
        try:
            mode = path.stat().st_mode
        except FileNotFoundError:    # a temp file renamed into place since the listing (the live status)
            continue
        assert stat.S_IMODE(mode) == (0o700 if stat.S_ISDIR(mode) else 0o600), path
        assert "PAT-0001" not in path.name


@ON_BOTH_ENGINES
def test_a_press_during_post_roll_continues_the_same_recording(controller, identity):
    session = controller.begin_session("PAT-0002", "TECH-1")
    press_and_record(controller)
    controller.simulator.release()
    controller.wait_for(lambda status: status.post_roll_remaining_s is not None, 5)
    controller.simulator.press()
    controller.wait_for(lambda status: status.state == "Recording" and status.post_roll_remaining_s is None, 5)
    controller.simulator.release()
    controller.wait_for(lambda status: status.state == "Armed" and status.session.clip_count == 1, 20)
    (recording,) = controller.reader.recordings(session.session_uid)
    assert_complete(recording, stamps_of(recording.path, identity))


@ON_BOTH_ENGINES
def test_link_loss_while_recording_seals_shows_the_fault_and_recovers(controller, identity):
    session = controller.begin_session("PAT-0003", "TECH-1")
    press_and_record(controller, hold=controller.simulator.unplug)
    status = controller.wait_for(lambda status: status.state == "Error", 10)
    assert status.fault.kind == "link_lost" and "USB cable" in status.fault.what_to_do
    (recording,) = controller.reader.recordings(session.session_uid)
    assert recording.state == "sealed"
    assert_complete(recording, stamps_of(recording.path, identity))
    with pytest.raises(BadInput, match="not connected"):
        controller.acknowledge()
    controller.simulator.release()   # the technician lets go while the cable is out
    controller.simulator.replug()
    controller.wait_for(lambda status: status.link.up, 10)
    controller.acknowledge()
    assert controller.status.state == "Idle" and controller.status.session is None
    controller.begin_session("PAT-0003", "TECH-1")
    assert controller.status.state == "Armed"
    assert [e.event for e in controller.reader.audit_entries()][-4:] == [
        "fault", "session_closed", "fault_acknowledged", "session_opened"]


@ON_BOTH_ENGINES
def test_camera_loss_while_recording_seals_shows_the_fault_and_recovers(controller, identity):
    session = controller.begin_session("PAT-0004", "TECH-1")

    def pull_camera_cable():
        controller.parts.camera.stop()
        controller.parts.camera.lost("test: camera cable pulled")

    press_and_record(controller, hold=pull_camera_cable)
    status = controller.wait_for(lambda status: status.state == "Error", 10)
    assert status.fault.kind == "camera_lost" and "cable pulled" in status.fault.what_happened
    (recording,) = controller.reader.recordings(session.session_uid)
    assert recording.state == "sealed"
    assert_complete(recording, stamps_of(recording.path, identity))
    release(controller)
    controller.acknowledge()   # the synthetic camera opens again
    controller.begin_session("PAT-0004", "TECH-1")
    press_and_record(controller)
    controller.simulator.release()
    controller.wait_for(lambda status: status.state == "Armed" and status.session.clip_count == 1, 20)


@ON_BOTH_ENGINES
@pytest.mark.parametrize("subject", ["", "PAT\\1", "PAT\n1", "P" * 65, " PAT"])
def test_bad_ids_are_refused_and_nothing_is_stored(controller, subject):
    with pytest.raises(BadInput, match="subject ID"):
        controller.begin_session(subject, "TECH-1")
    assert controller.status.state == "Idle" and controller.reader.open_sessions() == []


@ON_BOTH_ENGINES
def test_a_session_cannot_arm_without_the_treatment_controller(controller):
    controller.simulator.unplug()
    controller.wait_for(lambda status: not status.link.up, 5)
    with pytest.raises(NotReady, match="treatment controller is not connected"):
        controller.begin_session("PAT-0005", "TECH-1")
    assert controller.status.state == "Idle" and controller.reader.open_sessions() == []
    controller.simulator.replug()
    controller.wait_for(lambda status: status.link.up, 10)
    controller.begin_session("PAT-0005", "TECH-1")


@ON_BOTH_ENGINES
def test_subscribers_see_every_state_of_a_recording(controller):
    seen = []
    controller.subscribe(lambda status: seen.append((status.state, status.seal_progress)))
    controller.begin_session("PAT-0006", "TECH-1")
    press_and_record(controller)
    controller.simulator.release()
    controller.wait_for(lambda status: status.state == "Armed" and status.session.clip_count == 1, 20)
    compressed = [state for i, state in enumerate(seen) if i == 0 or seen[i - 1] != state]
    assert compressed == [("Idle", None), ("Armed", None), ("Recording", None), ("Finalizing", 0.0),
                          ("Encrypting", 0.5), ("Armed", None)]


@ON_BOTH_ENGINES
def test_the_preview_is_the_latest_frame_while_a_session_runs(controller):
    assert controller.latest_preview() is None
    controller.begin_session("PAT-0007", "TECH-1")
    controller.wait_for(lambda status: (status.camera_fps or 0) > 0, 5)
    first = read_index(controller.latest_preview())
    wait_for(lambda: read_index(controller.latest_preview()) > first)
    assert controller.latest_preview().shape == (288, 512, 3)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_key_removed_before_a_press_shows_key_missing_and_clears_when_it_is_back(tmp_path, key_dir, engine):
    import shutil
    keys = tmp_path / "keys"
    shutil.copytree(key_dir, keys)
    running = Controller(small_settings(tmp_path / "data", keys, engine))
    running.start()
    try:
        running.wait_for(lambda status: status.link.up, 10)
        running.begin_session("PAT-0008", "TECH-1")
        recipient = keys / vault.keys.RECIPIENT_PUB
        kept = recipient.read_bytes()
        recipient.unlink()
        running.simulator.press()
        status = running.wait_for(lambda status: status.state == "Error", 10)
        assert status.fault.kind == "key_missing" and "clinic IT" in status.fault.what_to_do
        assert running.reader.recordings(status.session.session_uid) == []
        release(running)
        with pytest.raises(BadInput, match="recipient public key"):
            running.acknowledge()
        recipient.write_bytes(kept)
        running.acknowledge()
        running.begin_session("PAT-0008", "TECH-1")
        assert running.status.state == "Armed"
    finally:
        running.stop()


@ON_BOTH_ENGINES
def test_a_press_while_the_last_clip_is_sealing_starts_the_next_recording(controller, identity):
    session = controller.begin_session("PAT-0009", "TECH-1")
    press_and_record(controller)
    delivered = controller.parts.link.stats().edges_delivered

    def press_while_finalizing(status):
        # Runs on the controller thread: the edge is decoded before this clip can be sealed.
        if status.state == "Finalizing" and not controller.simulator.pins["footswitch"].value() == 0:
            controller.simulator.press()
            wait_for(lambda: controller.parts.link.stats().edges_delivered > delivered + 1)

    unsubscribe = controller.subscribe(press_while_finalizing)
    controller.simulator.release()
    controller.wait_for(lambda status: status.state == "Recording" and status.session.clip_count == 1, 20)
    unsubscribe()
    controller.simulator.release()
    controller.wait_for(lambda status: status.state == "Armed" and status.session.clip_count == 2, 20)
    for recording in controller.reader.recordings(session.session_uid):
        assert_complete(recording, stamps_of(recording.path, identity))


@pytest.mark.parametrize("engine", ENGINES)
def test_an_encoder_that_cannot_open_is_an_encoder_fault_not_a_camera_fault(tmp_path, key_dir, engine):
    settings = small_settings(tmp_path / "data", key_dir, engine)
    settings = dataclasses.replace(settings, recording=dataclasses.replace(settings.recording, codec="no_such_codec"))
    running = Controller(settings)
    running.start()
    try:
        running.wait_for(lambda status: status.link.up, 10)
        running.begin_session("PAT-0010", "TECH-1")
        status = running.wait_for(lambda status: status.state == "Error", 10)
        assert status.fault.kind == "encoder_failure" and "no_such_codec" in status.fault.what_happened
        wait_for(lambda: not running.simulator.permissive)
        running.acknowledge()
        assert running.status.state == "Idle" and running.reader.open_sessions() == []
    finally:
        running.stop()


@ON_BOTH_ENGINES
def test_a_footswitch_held_when_the_session_arms_starts_recording_at_once(controller):
    delivered = controller.parts.link.stats().edges_delivered
    controller.simulator.press()
    wait_for(lambda: controller.parts.link.stats().edges_delivered > delivered)
    # The link counts the edge before the controller has taken it; a STATE showing the pedal
    # down comes after the EDGE frame, by which time the edge is in the controller's queue.
    controller.wait_for(lambda status: status.inputs.footswitch_pressed, 5)
    assert controller.status.state == "Idle"
    controller.begin_session("PAT-0011", "TECH-1")
    assert controller.status.state == "Recording"
    controller.simulator.release()
    controller.wait_for(lambda status: status.state == "Armed" and status.session.clip_count == 1, 20)


@ON_BOTH_ENGINES
def test_a_recording_file_that_cannot_be_created_is_a_storage_fault_and_recorded_as_such(controller):
    session = controller.begin_session("PAT-0012", "TECH-1")
    directory = controller.reader.session(session.session_uid).dir
    directory.rmdir()
    directory.write_bytes(b"")    # the session's directory is gone and a file stands in its way
    controller.simulator.press()
    status = controller.wait_for(lambda status: status.state == "Error", 10)
    assert status.fault.kind == "storage_error" and "Call service" in status.fault.what_to_do
    (recording,) = controller.reader.recordings(session.session_uid)
    assert recording.state == "interrupted"
    assert controller.reader.verify_audit().ok
    release(controller)
    controller.acknowledge()
    assert controller.status.state == "Idle"


@ON_BOTH_ENGINES
def test_an_encoder_failure_mid_recording_keeps_what_was_captured_sealed(controller, identity):
    import numpy as np

    session = controller.begin_session("PAT-0013", "TECH-1")

    def camera_changes_resolution():
        # A misconfigured camera switching format mid-stream: the encoder cannot take the frame.
        controller.parts.camera.offer(10**6, time.monotonic_ns(), np.zeros((144, 256, 3), np.uint8))

    press_and_record(controller, hold=camera_changes_resolution)
    status = controller.wait_for(lambda status: status.state == "Error", 10)
    assert status.fault.kind == "encoder_failure" and "everything captured" in status.fault.what_happened
    (recording,) = controller.reader.recordings(session.session_uid)
    assert recording.state == "sealed" and recording.frames > 0
    assert_complete(recording, stamps_of(recording.path, identity))
    release(controller)
    controller.acknowledge()
    controller.begin_session("PAT-0013", "TECH-1")
    press_and_record(controller)
    release(controller)
    controller.wait_for(lambda status: status.state == "Armed" and status.session.clip_count == 1, 20)


@ON_BOTH_ENGINES
def test_idle_says_what_would_refuse_a_session_before_any_id_is_typed(controller):
    ready = controller.wait_for(lambda status: status.state == "Idle" and status.link.up and not status.not_ready, 5)
    assert ready.session is None
    controller.simulator.unplug()
    unready = controller.wait_for(lambda status: not status.link.up and status.not_ready, 5)
    assert unready.state == "Idle" and "the treatment controller is not connected" in unready.not_ready
    controller.simulator.replug()
    controller.wait_for(lambda status: status.link.up and not status.not_ready, 10)
