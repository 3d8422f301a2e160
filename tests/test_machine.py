"""The state machine against its table: every event in every state, what happens, what is refused."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from appliance import machine as m
from appliance.machine import Readiness, RecorderMachine
from appliance.status import Fault

READY = Readiness(camera_ok=True, link_up=True, disk_ok=True, key_present=True, recovery_done=True)
CAMERA_LOST = Fault("camera_lost", "The camera stopped delivering frames.", "Check the camera cable.")
LINK_LOST = Fault("link_lost", "The treatment controller stopped answering.", "Check the USB cable.")

# Each situation: the events that lead to it from a fresh machine.
SITUATIONS: dict[str, list[tuple[str, dict]]] = {
    "Idle": [],
    "Armed": [("begin_session", {"readiness": READY})],
    "Recording": [("begin_session", {"readiness": READY}), ("trigger_on", {})],
    "Recording+post_roll": [("begin_session", {"readiness": READY}), ("trigger_on", {}), ("trigger_off", {})],
    "Finalizing": [("begin_session", {"readiness": READY}), ("trigger_on", {}), ("trigger_off", {}),
                   ("post_roll_elapsed", {})],
    "Encrypting": [("begin_session", {"readiness": READY}), ("trigger_on", {}), ("trigger_off", {}),
                   ("post_roll_elapsed", {}), ("finalized", {})],
    "Encrypting+ending": [("begin_session", {"readiness": READY}), ("trigger_on", {}), ("end_session", {}),
                          ("finalized", {})],
    "Encrypting+fault": [("begin_session", {"readiness": READY}), ("trigger_on", {}),
                         ("fault", {"reason": CAMERA_LOST}), ("finalized", {})],
    "Error": [("fault", {"reason": CAMERA_LOST})],
    "Error+session": [("begin_session", {"readiness": READY}), ("fault", {"reason": CAMERA_LOST})],
}

# Every event the controller can send, with the arguments it sends.
EVENTS: dict[str, dict] = {
    "begin_session": {"readiness": READY},
    "begin_session(not ready)": {"readiness": Readiness(True, False, True, True, True)},
    "end_session": {},
    "trigger_on": {},
    "trigger_off": {},
    "post_roll_elapsed": {},
    "finalized": {},
    "sealed": {},
    "seal_failed": {"reason": Fault("encoder_failure", "The encoder stopped.", "Restart.")},
    "fault": {"reason": LINK_LOST},
    "acknowledge": {"cleared": True},
    "acknowledge(not cleared)": {"cleared": False},
}

REFUSED = None
# (situation, event) -> (state after, effects) or REFUSED. Anything not listed is refused.
TABLE: dict[tuple[str, str], tuple[str, tuple[str, ...]] | None] = {
    ("Idle", "begin_session"): ("Armed", (m.OPEN_SESSION, m.START_PREROLL)),
    ("Idle", "fault"): ("Error", (m.SHOW_FAULT,)),
    ("Armed", "end_session"): ("Idle", (m.STOP_PREROLL, m.CLOSE_SESSION)),
    ("Armed", "trigger_on"): ("Recording", (m.START_CLIP,)),
    ("Armed", "fault"): ("Error", (m.STOP_PREROLL, m.SHOW_FAULT)),
    ("Recording", "end_session"): ("Finalizing", (m.FINALIZE,)),
    ("Recording", "trigger_off"): ("Recording", (m.START_POST_ROLL,)),
    ("Recording", "fault"): ("Finalizing", (m.FINALIZE,)),
    ("Recording+post_roll", "end_session"): ("Finalizing", (m.CANCEL_POST_ROLL, m.FINALIZE)),
    ("Recording+post_roll", "trigger_on"): ("Recording", (m.CANCEL_POST_ROLL,)),
    ("Recording+post_roll", "post_roll_elapsed"): ("Finalizing", (m.CANCEL_POST_ROLL, m.FINALIZE)),
    ("Recording+post_roll", "fault"): ("Finalizing", (m.CANCEL_POST_ROLL, m.FINALIZE)),
    ("Finalizing", "end_session"): ("Finalizing", ()),
    ("Finalizing", "finalized"): ("Encrypting", (m.SEAL,)),
    ("Finalizing", "seal_failed"): ("Error", (m.SALVAGE_CLIP, m.STOP_PREROLL, m.SHOW_FAULT)),
    ("Finalizing", "fault"): ("Finalizing", ()),
    ("Encrypting", "end_session"): ("Encrypting", ()),
    ("Encrypting", "sealed"): ("Armed", ()),
    ("Encrypting", "seal_failed"): ("Error", (m.SALVAGE_CLIP, m.STOP_PREROLL, m.SHOW_FAULT)),
    ("Encrypting", "fault"): ("Encrypting", ()),
    ("Encrypting+ending", "end_session"): ("Encrypting", ()),
    ("Encrypting+ending", "sealed"): ("Idle", (m.STOP_PREROLL, m.CLOSE_SESSION)),
    ("Encrypting+ending", "seal_failed"): ("Error", (m.SALVAGE_CLIP, m.STOP_PREROLL, m.SHOW_FAULT)),
    ("Encrypting+ending", "fault"): ("Encrypting", ()),
    ("Encrypting+fault", "end_session"): ("Encrypting", ()),
    ("Encrypting+fault", "sealed"): ("Error", (m.STOP_PREROLL, m.SHOW_FAULT)),
    ("Encrypting+fault", "seal_failed"): ("Error", (m.SALVAGE_CLIP, m.STOP_PREROLL, m.SHOW_FAULT)),
    ("Encrypting+fault", "fault"): ("Encrypting", ()),
    ("Error", "fault"): ("Error", ()),
    ("Error", "acknowledge"): ("Idle", (m.CLEAR_FAULT,)),
    ("Error+session", "fault"): ("Error", ()),
    ("Error+session", "acknowledge"): ("Idle", (m.CLOSE_SESSION, m.CLEAR_FAULT)),
}


def machine_in(situation: str) -> RecorderMachine:
    machine = RecorderMachine()
    for event, arguments in SITUATIONS[situation]:
        assert machine.handle(event, **arguments).accepted, (situation, event)
    return machine


@pytest.mark.parametrize("situation", SITUATIONS)
@pytest.mark.parametrize("event", EVENTS)
def test_every_event_in_every_state_follows_the_table(situation, event):
    machine = machine_in(situation)
    before = machine.state_name
    outcome = machine.handle(event.split("(")[0], **EVENTS[event])
    expected = TABLE.get((situation, event), REFUSED)
    if expected is REFUSED:
        assert not outcome.accepted and outcome.effects == () and outcome.state == before
    else:
        assert outcome.accepted and (outcome.state, outcome.effects) == expected


def test_effects_lists_exactly_the_effects_the_transitions_request():
    requested = {effect for expected in TABLE.values() if expected for effect in expected[1]}
    assert requested == set(m.EFFECTS) and len(m.EFFECTS) == len(set(m.EFFECTS))


def test_table_names_only_real_situations_and_events():
    assert {s for s, _ in TABLE} <= set(SITUATIONS) and {e for _, e in TABLE} <= set(EVENTS)


def test_states_are_exactly_the_six_of_the_design_with_the_post_roll_inside_recording():
    assert [s.name for s in RecorderMachine.states] == [
        "Idle", "Armed", "Recording", "Finalizing", "Encrypting", "Error"]
    assert [s.name for s in RecorderMachine.recording.states] == ["Capturing", "PostRoll"]


def test_the_post_roll_is_a_state_the_machine_reports_not_a_flag():
    machine = machine_in("Recording")
    assert not machine.in_post_roll
    machine.handle("trigger_off")
    assert machine.in_post_roll and machine.state_name == "Recording"
    machine.handle("trigger_on")
    assert not machine.in_post_roll
    machine.handle("trigger_off")
    machine.handle("post_roll_elapsed")
    assert not machine.in_post_roll and machine.state_name == "Finalizing"


def test_the_diagram_draws_the_post_roll_inside_recording_with_its_timer():
    diagram = m.mermaid_diagram()
    block = re.search(r"state recording \{\n(.*?)\n    \}", diagram, re.S).group(1)
    assert "capturing --> post_roll : trigger_off" in block
    assert "post_roll --> capturing : trigger_on" in block
    assert "post_roll : entry / begin_post_roll" in block and "post_roll : exit / end_post_roll" in block
    assert "    post_roll --> finalizing : post_roll_elapsed / finish_clip\n" in diagram


def test_a_fault_during_recording_is_shown_only_after_the_clip_is_sealed():
    machine = machine_in("Recording")
    machine.handle("fault", reason=CAMERA_LOST)
    machine.handle("fault", reason=LINK_LOST)  # a second fault while sealing does not replace the cause
    assert machine.active_fault is None
    machine.handle("finalized")
    outcome = machine.handle("sealed")
    assert outcome.state == "Error" and machine.active_fault == CAMERA_LOST


def test_acknowledged_error_can_arm_a_new_session_and_record_again():
    machine = machine_in("Error+session")
    machine.handle("acknowledge", cleared=True)
    assert machine.handle("begin_session", readiness=READY).state == "Armed"
    assert machine.handle("trigger_on").effects == (m.START_CLIP,)


def test_post_roll_that_was_cancelled_cannot_end_the_recording():
    machine = machine_in("Recording+post_roll")
    machine.handle("trigger_on")
    assert not machine.handle("post_roll_elapsed").accepted
    assert machine.state_name == "Recording"


def test_readiness_names_each_blocking_problem():
    assert Readiness(False, True, False, True, True).problems() == [
        "the camera is not delivering frames", "the disk cannot hold a full-length session"]
    assert READY.problems() == [] and READY.ok


def test_committed_diagram_matches_the_machine():
    doc = (Path(__file__).parents[1] / "docs" / "state-machine.md").read_text()
    committed = re.search(r"```mermaid\n(.*?)```", doc, re.S).group(1)
    assert committed == m.mermaid_diagram(), (
        "docs/state-machine.md is stale; replace its mermaid block with:\n" + m.mermaid_diagram())


from hypothesis import given, settings, strategies as st  # noqa: E402

ANY_EVENT = st.sampled_from(sorted(EVENTS))


@settings(deadline=None, max_examples=300)
@given(st.lists(ANY_EVENT, max_size=40))
def test_any_event_sequence_keeps_clips_and_sessions_balanced(events):
    """Whatever arrives in whatever order: every clip started is finalized once before the next
    starts, a clip is never finalized twice, sessions open and close alternately, and Error is
    only entered with a fault to show."""
    machine = RecorderMachine()
    clip_open = session_open = False
    for event in events:
        outcome = machine.handle(event.split("(")[0], **EVENTS[event])
        for effect in outcome.effects:
            if effect == m.START_CLIP:
                assert not clip_open and session_open
                clip_open = True
            elif effect == m.FINALIZE:
                assert clip_open
                clip_open = False
            elif effect == m.OPEN_SESSION:
                assert not session_open
                session_open = True
            elif effect == m.CLOSE_SESSION:
                assert session_open and not clip_open
                session_open = False
        assert (machine.state_name == "Recording") == clip_open
        assert (machine.state_name == "Error") == (machine.active_fault is not None)
        assert machine.state_name != "Armed" or session_open
        assert machine.state_name != "Idle" or not session_open
