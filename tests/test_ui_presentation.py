"""The kiosk's pure projections: banner, clock, storage wording, lamps, which screen shows."""

from dataclasses import replace

import pytest
from hypothesis import given, settings, strategies as st

from appliance.status import ApplianceStatus, Fault, Inputs, LinkView, SessionView
from appliance.ui.identifiers import ID_CHARACTERS, MAX_ID_LENGTH, id_problem
from appliance.ui.keypad import ID_ROWS
from appliance.ui.presentation import (AMBER, BLUE, ERROR_RED, GREY, RED, USER_SCREENS, Screen, banner_for,
                                       format_duration, format_time_left, lamps_for, recording_elapsed, screen_for,
                                       last_session_line, session_emission_line, unrecorded_warning)

SESSION = SessionView("uid1", "PT-1", "OP-1", opened_at=0.0, clip_count=2)
STATES = ("Idle", "Armed", "Recording", "Finalizing", "Encrypting", "Error")


@pytest.mark.parametrize("state, colours, title", [
    ("Idle", GREY, "IDLE"), ("Armed", AMBER, "ARMED"), ("Recording", RED, "RECORDING"),
    ("Finalizing", BLUE, "FINALIZING"), ("Encrypting", BLUE, "ENCRYPTING"), ("Error", ERROR_RED, "ERROR"),
])
def test_each_state_has_its_colour_and_name(state, colours, title):
    view = banner_for(ApplianceStatus(state=state, session=SESSION))
    assert (view.background, view.foreground) == colours
    assert title in view.title


def test_armed_says_it_waits_for_the_footswitch():
    assert "footswitch" in banner_for(ApplianceStatus(state="Armed", session=SESSION)).detail.lower()


def test_recording_shows_elapsed_time_and_post_roll():
    status = ApplianceStatus(state="Recording", session=SESSION, recording_elapsed_s=65.4)
    assert "1:05" in banner_for(status).title
    assert "1:09" in banner_for(status, elapsed_s=69.0).title
    released = replace(status, post_roll_remaining_s=6.6)
    assert "stopping in 7 s" in banner_for(released).detail


@pytest.mark.parametrize("state", ["Finalizing", "Encrypting"])
def test_sealing_states_show_progress_clamped(state):
    assert banner_for(ApplianceStatus(state=state, seal_progress=0.42)).progress == 0.42
    assert "42 %" in banner_for(ApplianceStatus(state=state, seal_progress=0.42)).title
    assert banner_for(ApplianceStatus(state=state, seal_progress=1.7)).progress == 1.0
    assert banner_for(ApplianceStatus(state=state)).progress == 0.0
    assert banner_for(ApplianceStatus(state="Armed")).progress is None


def test_error_banner_says_what_happened_and_what_to_do():
    fault = Fault("camera_lost", "The camera stopped.", "Check the cable.")
    view = banner_for(ApplianceStatus(state="Error", fault=fault))
    assert "The camera stopped." in view.detail and "Check the cable." in view.detail
    assert "service" in banner_for(ApplianceStatus(state="Error")).detail.lower()


@pytest.mark.parametrize("seconds, text", [(0, "0:00"), (59.9, "0:59"), (61, "1:01"), (3600, "1:00:00"),
                                           (3725, "1:02:05"), (-3, "0:00")])
def test_durations_read_like_a_clock(seconds, text):
    assert format_duration(seconds) == text


@pytest.mark.parametrize("seconds, text", [
    (None, "measuring"), (30, "less than 1 min"), (119, "1 min of"), (3599, "59 min"), (3600, "1 h 00 min"),
    (6 * 3600 + 20 * 60 + 59, "6 h 20 min"),
])
def test_storage_is_recording_time_rounded_down(seconds, text):
    assert text in format_time_left(seconds)


def test_the_recording_clock_runs_between_snapshots():
    status = ApplianceStatus(state="Recording", recording_elapsed_s=10.0)
    assert recording_elapsed(status, received_at=100.0, now=102.5) == 12.5
    assert recording_elapsed(status, received_at=100.0, now=99.0) == 10.0
    assert recording_elapsed(ApplianceStatus(state="Armed", recording_elapsed_s=10.0), 0, 5) is None


@settings(deadline=None, max_examples=60)
@given(state=st.sampled_from(STATES), has_session=st.booleans(), requested=st.sampled_from(list(Screen)))
def test_the_screen_follows_the_state(state, has_session, requested):
    status = ApplianceStatus(state=state, session=SESSION if has_session else None)
    screen = screen_for(status, requested)
    if state == "Error":
        assert screen is Screen.ERROR
    elif has_session or state != "Idle":
        assert screen is Screen.LIVE
    else:
        assert screen is (requested if requested in USER_SCREENS else Screen.START)


def test_lamps_show_inputs_and_link():
    up = LinkView(up=True, firmware_version="1.2")
    lamps = lamps_for(ApplianceStatus(link=up, inputs=Inputs(footswitch_pressed=True, interlock_closed=False,
                                                             laser_on=True)))
    labels = [lamp.label for lamp in lamps]
    assert labels == ["Footswitch pressed", "Interlock open", "Laser ON", "Controller connected (fw 1.2)"]
    assert all(lamp.lit for lamp in lamps)


def test_inputs_are_unknown_when_the_link_is_down():
    lamps = lamps_for(ApplianceStatus(link=LinkView(up=False), inputs=Inputs(interlock_closed=True)))
    assert [lamp.label for lamp in lamps[:3]] == ["Footswitch ?", "Interlock ?", "Laser ?"]
    assert lamps[3].label == "Controller link lost" and lamps[3].lit


@pytest.mark.parametrize("value, problem", [
    ("PT-0042", None), ("A", None), ("9", None), ("A" * MAX_ID_LENGTH, None),
    ("", "Enter"), ("A" * (MAX_ID_LENGTH + 1), "longer"), ("-A", "dashes"), ("A-", "dashes"),
    ("pt1", "letters"), ("A B", "letters"), ("Ä1", "letters"), ("A/B", "path separator"),
])
def test_id_rule(value, problem):
    message = id_problem("subject ID", value)
    if problem is None:
        assert message is None
    else:
        assert problem in message and (not value or value not in message)


def test_the_id_keypad_offers_exactly_the_accepted_characters():
    offered = "".join(ID_ROWS)
    assert sorted(offered) == sorted(ID_CHARACTERS)
    assert all(id_problem("subject ID", f"A{character}1") is None for character in offered)


def test_the_idle_banner_names_what_keeps_a_session_from_starting():
    from appliance.status import ApplianceStatus
    from appliance.ui.presentation import banner_for
    ready = banner_for(ApplianceStatus(state="Idle"))
    assert ready.detail == "Open a session to start"
    blocked = banner_for(ApplianceStatus(state="Idle", not_ready=("the treatment controller is not connected",
                                                                   "the recipient key is missing")))
    assert blocked.detail == "Not ready: the treatment controller is not connected; the recipient key is missing"


def test_an_unrecorded_emission_is_warned_about_with_its_board_time():
    assert unrecorded_warning(ApplianceStatus()) is None
    one = ApplianceStatus(unrecorded_emissions=1, last_unrecorded_emission_board_ms=81234)
    assert unrecorded_warning(one) == "⚠ 1 laser emission was NOT recorded (board time 81234 ms): see the audit trail"
    three = replace(one, unrecorded_emissions=3)
    assert unrecorded_warning(three).startswith("⚠ 3 laser emissions were NOT recorded (the last at board time 81234 ms)")


def test_the_live_view_reports_a_sessions_emissions_once_the_laser_fired():
    assert session_emission_line(None) == "" and session_emission_line(SESSION) == ""
    assert session_emission_line(replace(SESSION, emissions_recorded=3)) == "Laser: all 3 emissions recorded"
    missed = replace(SESSION, emissions_recorded=3, emissions_unrecorded_board_ms=(500, 900))
    assert session_emission_line(missed) == "Laser: 3 emissions recorded, 2 NOT recorded: board 500 ms, board 900 ms"


def test_the_start_screen_reports_the_closed_sessions_emissions_and_warns_when_one_went_unrecorded():
    assert last_session_line(ApplianceStatus()) == ("", False)
    assert last_session_line(ApplianceStatus(last_session_emission_report="all 2 emissions recorded")) == \
        ("Last session, laser: all 2 emissions recorded", False)
    missed = ApplianceStatus(last_session_emission_report="2 emissions recorded, 1 NOT recorded: board 9 ms")
    assert last_session_line(missed) == ("Last session, laser: 2 emissions recorded, 1 NOT recorded: board 9 ms", True)
