"""The treatment timeline end to end, in process: the firmware simulator's laser over the pty,
the synthetic camera drawing it, the clock mapping, the signed manifest and the database; and
every laser emission no clip recorded, caught in Idle, Armed and Error."""

from __future__ import annotations

import json

import av
import pytest

from appliance import vault
from appliance.camera.stamp import read_index
from appliance.camera.synthetic import spot_visible
from appliance.timeline import events_from_manifest
from tests.test_controller_e2e import controller, identity, key_dir  # noqa: F401
from tests.waiting import wait_for

FPS = 30
# The spot is drawn from the pin, the edge is stamped when the 5 ms debounce settles, and a
# busy 2-core machine may render a frame late: bench/e2e.py measures the frame-exact figure;
# this bound only catches a timeline on the wrong clock (the 1 s pre-roll, an unmapped time).
ALIGNMENT_MARGIN_S = 0.3


def set_laser(controller, on: bool) -> None:
    """Switches the simulated laser and waits until the controller has the edge."""
    delivered = controller.parts.link.stats().edges_delivered
    controller.simulator.laser(on)
    wait_for(lambda: controller.parts.link.stats().edges_delivered > delivered, 5, "the edge")


def wait_frames(controller, count: int) -> None:
    """Waits until the camera has captured `count` more frames."""
    frames = controller.parts.camera.frames
    start = frames.latest.index
    wait_for(lambda: frames.latest.index >= start + count, 5, f"{count} frames")


def spot_frames(path, identity) -> list[int]:
    """The decoded frames that show the laser spot, counted from the clip's first frame."""
    shown, first = [], None
    with vault.open_reader(path, identity) as reader, av.open(reader) as container:
        for picture in container.decode(video=0):
            image = picture.to_ndarray(format="bgr24")
            first = read_index(image) if first is None else first
            if spot_visible(image):
                shown.append(read_index(image) - first)
    return shown


def test_a_clips_laser_emission_is_sealed_on_the_videos_clock_and_in_the_database(controller, identity,
                                                                                  appliance_cli):
    session = controller.begin_session("PAT-0100", "TECH-1")
    controller.simulator.press()
    controller.wait_for(lambda status: status.state == "Recording", 5)
    wait_frames(controller, 10)
    set_laser(controller, True)
    wait_frames(controller, 10)          # a pulse shorter than a frame period may show in none
    set_laser(controller, False)
    controller.simulator.release()
    controller.wait_for(lambda status: status.state == "Armed" and status.session.clip_count == 1, 20)
    assert controller.status.session.emission_report == "all 1 emissions recorded"

    (recording,) = controller.reader.recordings(session.session_uid)
    verification = vault.verify(recording.path, controller.keys.load().device_key.public_key())
    events = events_from_manifest(verification.metadata)
    laser = [(event.level, event.t) for event in events if event.input == "laser"]
    assert [level for level, _ in laser] == [1, 0]
    assert [event.input for event in events][0] == "footswitch"   # the press, inside the pre-roll's clip
    (on_s, off_s), = verification.metadata["timeline"]["emissions"]
    assert verification.metadata["timeline"]["laser_on_s"] == pytest.approx(off_s - on_s, abs=1e-5)
    assert 0 < verification.metadata["timeline"]["clock_uncertainty_ms"] < 10

    shown = spot_frames(recording.path, identity)
    assert shown, "the synthetic camera drew the laser"
    assert abs(shown[0] / FPS - on_s) < ALIGNMENT_MARGIN_S
    assert abs((shown[-1] + 1) / FPS - off_s) < ALIGNMENT_MARGIN_S

    assert (recording.emissions, recording.laser_on_s) == (1, pytest.approx(off_s - on_s, abs=1e-5))
    assert controller.reader.clip_events(recording.uid) == events
    assert [summary.emissions for summary in controller.reader.sessions()] == [1]

    info = appliance_cli("vault", "info", str(recording.path), "--json")
    assert info.returncode == 0, info.stderr
    printed = json.loads(info.stdout)
    assert printed["events"] == [event.as_dict() for event in events]
    assert printed["header"]["recording_id"] == verification.recording_id

    # A moved event breaks the manifest's signature: the timeline is as tamper-evident as the video.
    manifest_path = recording.path.with_name(recording.path.name + ".manifest")
    document = json.loads(manifest_path.read_text())
    document["signed"]["metadata"]["events"][1]["t"] += 0.5
    manifest_path.write_text(json.dumps(document))
    verify = appliance_cli("vault", "verify", str(recording.path))
    assert verify.returncode == 1 and b"modified" in verify.stdout + verify.stderr


def unrecorded_audit(controller) -> list[dict]:
    return [entry.details for entry in controller.reader.audit_entries() if entry.event == "emission_unrecorded"]


def test_an_emission_in_idle_is_unrecorded_at_once_audited_and_shown(controller):
    set_laser(controller, True)
    status = controller.wait_for(lambda status: status.unrecorded_emissions == 1, 5)
    set_laser(controller, False)
    (details,) = wait_for(lambda: unrecorded_audit(controller), 5, "the audit entry")
    assert details["state"] == "Idle" and "session" not in details
    assert status.last_unrecorded_emission_board_ms == details["board_ms"]


def test_an_emission_while_armed_without_a_press_is_unrecorded_and_the_session_report_lists_it(controller):
    controller.begin_session("PAT-0101", "TECH-1")
    set_laser(controller, True)
    set_laser(controller, False)
    # It could still be in a clip if a press followed within the pre-roll: decided after it.
    status = controller.wait_for(lambda status: status.unrecorded_emissions == 1, 10)
    (details,) = wait_for(lambda: unrecorded_audit(controller), 5, "the audit entry")
    assert details["state"] == "Armed" and details["session"] == status.session.session_uid
    assert status.session.emissions_unrecorded_board_ms == (details["board_ms"],)
    controller.end_session()
    status = controller.wait_for(lambda status: status.state == "Idle", 10)
    assert status.last_session_emission_report == (
        f"0 emissions recorded, 1 NOT recorded: board {details['board_ms']} ms")


def test_an_emission_in_error_is_unrecorded_even_when_it_arrives_after_the_link_returns(controller):
    controller.begin_session("PAT-0102", "TECH-1")
    controller.simulator.unplug()
    controller.wait_for(lambda status: status.state == "Error", 10)
    board = controller.simulator.board
    queued = board.pending_edges
    controller.simulator.laser(True)     # fired while the cable was out: the board queues the edges
    wait_for(lambda: board.pending_edges == queued + 1, 5, "the board's debounced edge")
    controller.simulator.laser(False)
    wait_for(lambda: board.pending_edges == queued + 2, 5, "the board's debounced edge")
    controller.simulator.replug()
    status = controller.wait_for(lambda status: status.unrecorded_emissions == 1, 10)
    assert status.state == "Error"
    (details,) = wait_for(lambda: unrecorded_audit(controller), 5, "the audit entry")
    assert details["state"] == "Error"
