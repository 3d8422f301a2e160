"""The controller's modules on their own, without its threads: sealing's failure path, the
translation of part events by type, the effects table, readiness, start-up recovery."""

from __future__ import annotations

import dataclasses
import sys

import pytest

from appliance import machine as m
from appliance.camera.synthetic import SyntheticCamera
from appliance.control import commands
from appliance.control.health import Health, disk_projection
from appliance.control.keys import KeyRing
from appliance.control.parts import Parts
from appliance.control.recovery import recover
from appliance.control.sealing import ClipSealer, OpenClip
from appliance.control.commands import check_tables, machine_effects
from appliance.controller import Controller
from appliance.errors import BadInput
from appliance.faults import FAULT_TEXT, FaultKind, make_fault
from appliance.recording.recorder import Recorder
from appliance.storage.database import Store
from firmware_bridge import link
from tests.test_controller_e2e import key_dir, small_settings  # noqa: F401


def run_here(body, name):
    body()


@pytest.fixture
def settings(tmp_path, key_dir):
    return small_settings(tmp_path / "data", key_dir)


@pytest.fixture
def store(settings):
    opened = Store(settings.data.dir)
    yield opened
    opened.close()


def open_clip(store, settings) -> OpenClip:
    session = store.open_session("PAT-1", "TECH-1")
    return OpenClip(store.start_recording(session.uid), KeyRing(settings).load(), 0, None)


# -- sealing ----------------------------------------------------------------------------------

def test_a_finalize_that_fails_reports_seal_failed_as_an_encoder_failure(store, settings):
    reported = []
    sealer = ClipSealer(None, reported.append, run_here)
    sealer.finalize(open_clip(store, settings), Recorder(SyntheticCamera(width=512, height=288)), lambda first_ns, duration_s: {})
    (failure,) = reported
    assert failure == commands.SealFailed(FaultKind.ENCODER_FAILURE, "no recording is in progress")


def test_a_clip_that_never_started_reports_seal_failed_at_once(settings):
    reported = []
    ClipSealer(None, reported.append, run_here).finalize(None, recorder=None, timeline=lambda first_ns, duration_s: {})
    assert reported == [commands.SealFailed(FaultKind.ENCODER_FAILURE, "the recording could not be started")]


def test_a_seal_that_cannot_verify_the_file_reports_a_storage_error_and_commits_nothing(store, settings):
    reported = []
    clip = open_clip(store, settings)
    ClipSealer(None, reported.append, run_here).seal(clip, result=None)   # the file was never written
    (failure,) = reported
    assert isinstance(failure, commands.SealFailed) and failure.kind == FaultKind.STORAGE_ERROR
    assert store.recording(clip.recording.uid).state == "recording"


# -- events by type ---------------------------------------------------------------------------

def link_event_classes() -> set[type]:
    """Every event the controller link can deliver: the dataclasses with a time of decoding."""
    module = sys.modules[link.LinkUp.__module__]
    return {value for value in vars(module).values()
            if isinstance(value, type) and dataclasses.is_dataclass(value) and value is not link.InputEdge
            and "at_ns" in {field.name for field in dataclasses.fields(value)}}


def test_every_link_event_becomes_a_command_the_controller_handles():
    events = link_event_classes()
    assert {link.FootswitchPressed, link.LinkDown, link.ControllerFault} <= events
    assert events == set(commands.LINK_EVENTS)
    assert commands.translate(link.FootswitchPressed(at_ns=5, edge_number=1, board_ms=0),
                              commands.LINK_EVENTS) == commands.Footswitch(
        pressed=True, at_ns=5, edge=commands.Edge("footswitch", 1, 1, 0, host_ns=5, uncertainty_ms=None))
    mapped = link.LaserOn(at_ns=9, edge_number=2, board_ms=7, host_ns=7_000_000, uncertainty_ms=1.5)
    assert commands.translate(mapped, commands.LINK_EVENTS).edge == commands.Edge("laser", 1, 2, 7, 7_000_000, 1.5)
    assert commands.translate(link.LinkDown(at_ns=1, reason="unplugged"),
                              commands.LINK_EVENTS) == commands.LinkDown("unplugged")
    assert set(commands.LINK_EVENTS.values()) and all(
        type(commands.LINK_EVENTS[cls](cls(**{f.name: 0 for f in dataclasses.fields(cls)}))) in commands.ALL
        for cls in events)


def test_an_event_is_translated_by_its_type_never_by_its_name():
    @dataclasses.dataclass(frozen=True)
    class LinkUp:   # same name, other class
        at_ns: int
        firmware_version: str

    with pytest.raises(KeyError):
        commands.translate(LinkUp(0, "1.0"), commands.LINK_EVENTS)


# -- the controller's tables ------------------------------------------------------------------

def test_every_effect_the_machine_names_has_a_handler(settings):
    Controller(settings)   # check_tables runs here: a new effect constant without a handler fails
    assert {m.START_POST_ROLL, m.CANCEL_POST_ROLL, m.FINALIZE, m.SEAL, m.SALVAGE_CLIP} <= machine_effects()


def test_a_missing_effect_or_command_handler_refuses_to_start():
    handlers = {command: print for command in commands.ALL}
    effects = {effect: print for effect in machine_effects()}
    check_tables(handlers, effects)
    with pytest.raises(RuntimeError, match="seal"):
        check_tables(handlers, {name: print for name in effects if name != m.SEAL})
    with pytest.raises(RuntimeError, match="Footswitch"):
        check_tables({c: print for c in handlers if c is not commands.Footswitch}, effects)


def test_the_board_fault_is_no_fault_kind():
    assert set(FAULT_TEXT) == set(FaultKind) and "controller_fault" not in {kind.value for kind in FaultKind}
    fault = make_fault(FaultKind.LINK_LOST, "no heartbeat")
    assert fault.kind == "link_lost" and "(no heartbeat)" in fault.what_happened


# -- health -----------------------------------------------------------------------------------

def test_not_ready_names_every_blocking_problem_with_its_detail(settings, tmp_path):
    settings = dataclasses.replace(settings, keys=dataclasses.replace(settings.keys, recipients=(tmp_path / "gone",)))
    settings.data.dir.mkdir()
    health = Health(settings, Parts(settings, post=print), KeyRing(settings), free_bytes=lambda path: 3_000_000)
    readiness = health.readiness()
    reasons = health.not_ready_reasons(readiness)
    assert "the treatment controller is not connected" in reasons
    assert "the recipient key is missing" in reasons
    assert "start-up recovery has not finished" in reasons
    assert "the camera could not be opened" in reasons
    # 2 MB above the 1 MB reserve at 1 Mbit/s is 16 s: a 1-minute session does not fit.
    assert "0 min of recording time left above the reserve, 1 min needed" in reasons


def test_a_ready_appliance_has_no_reason_and_a_link_fault_clears_when_the_link_is_back(settings):
    settings.data.dir.mkdir()
    parts = Parts(settings, post=print)
    assert parts.open_camera() is None
    health = Health(settings, parts, KeyRing(settings), free_bytes=lambda path: 10**12)
    health.link_up = health.recovery_done = True
    assert health.readiness().ok and health.not_ready_reasons(health.readiness()) == []
    health.link_up = False
    assert health.still_wrong(make_fault(FaultKind.LINK_LOST, "x")) == "the treatment controller is not connected"
    health.link_up = True
    assert health.still_wrong(make_fault(FaultKind.LINK_LOST, "x")) is None


def test_doctor_and_controller_share_one_disk_projection(settings):
    # Before the first start the data directory does not exist: its parent's disk counts.
    projection = disk_projection(settings, free_bytes=lambda path: 1_000_000 + 7_500_000)
    assert projection.seconds_left == pytest.approx(60.0) and projection.can_arm


# -- recovery ---------------------------------------------------------------------------------

def test_recovery_marks_what_was_left_open_interrupted_and_closes_the_session(store, settings):
    clip = open_clip(store, settings)
    clip.recording.path.write_bytes(b"")   # the crash came before the first segment was written
    assert recover(store, lambda: KeyRing(settings).load().device_key)
    recording = store.recording(clip.recording.uid)
    assert recording.state == "interrupted" and store.open_sessions() == []
    assert [e.event for e in store.audit_entries()][-2:] == ["recording_interrupted", "session_closed"]


def test_recovery_without_the_device_key_changes_nothing_and_is_not_done(store, settings):
    clip = open_clip(store, settings)

    def no_key():
        raise BadInput("the device key is missing")

    assert not recover(store, no_key)
    assert store.recording(clip.recording.uid).state == "recording" and store.open_sessions() != []


# -- start-up ---------------------------------------------------------------------------------

def test_a_micropython_engine_that_is_not_installed_is_one_clear_refusal_with_nothing_left_running(
        tmp_path, key_dir, monkeypatch):
    import threading

    from firmware_bridge import micropython_board

    def not_installed():
        raise micropython_board.MicroPythonMissing("MicroPython's unix port is not installed")
    monkeypatch.setattr(micropython_board, "micropython_executable", not_installed)
    before = set(threading.enumerate())
    controller = Controller(small_settings(tmp_path / "data", key_dir, "micropython"))
    with pytest.raises(BadInput, match=r"^\[controller\] simulator_engine = micropython: MicroPython's unix port"):
        controller.start()
    assert {thread.name for thread in set(threading.enumerate()) - before if thread.is_alive()} == set()
