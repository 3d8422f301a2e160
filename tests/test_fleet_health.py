"""Fleet health, the pure judgement: when a room is ok, silent, needs attention, or shows only
that its status is forged, unknown or missing; and the page order (worst first)."""

from __future__ import annotations

import pytest

from appliance.archive.status_object import FORGED, GENUINE, NOT_REPORTING, UNKNOWN_DEVICE, FleetStatus, OpenedStatus
from appliance.portal.fleet_health import (ATTENTION, BACKLOG_BYTES_LIMIT, BACKLOG_COUNT_LIMIT, FUTURE_LIMIT_S,
                                           NO_STATUS, OK, STALE, STALE_AFTER_S, board, in_words, judge)

DEVICE = "00112233aabbccdd"
NOW = 1_764_581_400.0


def genuine(**changes) -> OpenedStatus:
    fields = dict(device_key_id=DEVICE, posted_at=NOW - 30, state="Idle", camera_up=True, link_up=True,
                  disk_seconds_left=40_000.0, backlog_count=0, backlog_bytes=0, backlog_oldest_age_s=None,
                  last_recording_at=NOW - 3600, software_version="0.1.0", clock_offset_s=0.2, fault=None)
    return OpenedStatus(DEVICE, GENUINE, FleetStatus(**fields | changes))


def test_a_fresh_status_within_every_threshold_is_ok_with_its_values():
    room = judge(DEVICE, genuine(), NOW)
    assert (room.health, room.problems, room.highlighted, room.age_s) == (OK, (), False, 30.0)
    assert room.status["disk_seconds_left"] == 40_000.0


def test_silent_for_more_than_five_minutes_is_stale_and_says_so():
    assert judge(DEVICE, genuine(posted_at=NOW - STALE_AFTER_S), NOW).health == OK
    room = judge(DEVICE, genuine(posted_at=NOW - 360), NOW)
    assert room.health == STALE and room.highlighted
    assert room.problems == ("silent for 6 min: these values are from then",)


def test_a_fast_clock_cannot_hide_silence_the_archive_s_storing_time_ages_it_too():
    # A clock 10 min fast posted "now" 6 minutes ago by the archive's time, then the appliance died.
    room = judge(DEVICE, genuine(posted_at=NOW), NOW, stored_at=NOW - 360)
    assert (room.health, room.age_s) == (STALE, 360.0)
    assert room.problems == ("silent for 6 min: these values are from then",)
    # A slow clock's (or a replayed) old posted_at stays old, however recently it was stored.
    assert judge(DEVICE, genuine(posted_at=NOW - 400), NOW, stored_at=NOW - 5).age_s == 400.0
    assert judge(DEVICE, genuine(), NOW, stored_at=NOW - 1).health == OK


def test_a_status_posted_in_the_future_is_flagged_beyond_a_small_tolerance():
    assert judge(DEVICE, genuine(posted_at=NOW + FUTURE_LIMIT_S), NOW, stored_at=NOW).health == OK
    room = judge(DEVICE, genuine(posted_at=NOW + 600), NOW, stored_at=NOW - 20)
    assert (room.health, room.age_s) == (ATTENTION, 20.0)
    assert room.problems == ("posted 10 min in the future by the portal's clock: a clock is wrong",)


@pytest.mark.parametrize("changes, problem", [
    ({"backlog_count": 5, "backlog_bytes": 2_500_000_000, "backlog_oldest_age_s": 3 * 3600.0},
     "archive backlog: 5 recordings (2.50 GB), the oldest waiting 3 h"),
    ({"disk_seconds_left": 5400.0}, "disk: 90 min of recording left"),
    ({"state": "Error", "fault": "storage_error"}, "in Error: storage_error"),
    ({"state": NOT_REPORTING, "camera_up": None, "link_up": None, "disk_seconds_left": None},
     "the recording software is not running (the uplink is)"),
    ({"camera_up": False}, "camera down"),
    ({"link_up": False}, "treatment controller link down"),
    ({"clock_offset_s": -7300.0}, "clock 2 h behind the archive's"),
])
def test_a_crossed_threshold_or_a_fault_needs_attention(changes, problem):
    room = judge(DEVICE, genuine(**changes), NOW)
    assert (room.health, room.problems) == (ATTENTION, (problem,))


def test_a_young_backlog_growing_past_the_count_or_the_bytes_limit_needs_attention():
    def health(count, size):
        return judge(DEVICE, genuine(backlog_count=count, backlog_bytes=size, backlog_oldest_age_s=900.0), NOW)

    small = 100_000_000
    grown = [health(count, count * small).health for count in (1, BACKLOG_COUNT_LIMIT, BACKLOG_COUNT_LIMIT + 1)]
    assert grown == [OK, OK, ATTENTION]
    assert health(11, 11 * small).problems == (
        "archive backlog: 11 recordings (1.10 GB), the oldest waiting 15 min: more than 10 recordings waiting",)
    big = BACKLOG_BYTES_LIMIT // 3
    assert [health(count, count * big).health for count in (1, 3, 4)] == [OK, OK, ATTENTION]
    assert health(4, 4 * big).problems == (
        "archive backlog: 4 recordings (13.33 GB), the oldest waiting 15 min: more than 10 GB waiting",)
    assert health(12, 12 * big).problems[0].endswith("more than 10 recordings and 10 GB waiting")


def test_a_young_backlog_and_a_small_clock_offset_are_normal():
    room = judge(DEVICE, genuine(backlog_count=2, backlog_bytes=10, backlog_oldest_age_s=600.0, clock_offset_s=40.0),
                 NOW)
    assert room.health == OK


@pytest.mark.parametrize("verdict", [FORGED, UNKNOWN_DEVICE])
def test_a_forged_or_unknown_status_shows_no_values_and_is_never_ok(verdict):
    room = judge(DEVICE, OpenedStatus(DEVICE, verdict, None, "why"), NOW, "room-3")
    assert (room.health, room.status, room.age_s, room.highlighted) == (verdict, None, None, True)
    assert (room.problems, room.name) == (("why",), "room-3")


def test_an_enrolled_device_without_a_status_is_shown_missing():
    room = judge(DEVICE, None, NOW)
    assert room.health == NO_STATUS and room.highlighted and room.status is None


def test_the_board_puts_the_worst_first():
    rooms = [judge("a" * 16, genuine(), NOW), judge("b" * 16, genuine(posted_at=NOW - 900), NOW),
             judge("c" * 16, OpenedStatus("c" * 16, FORGED, None, "x"), NOW),
             judge("d" * 16, genuine(camera_up=False), NOW), judge("e" * 16, None, NOW)]
    assert [room.health for room in board(rooms)] == [FORGED, NO_STATUS, STALE, ATTENTION, OK]


def test_durations_read_as_a_person_says_them():
    assert [in_words(s) for s in (0, 59, 60, 7199, 7200, 172_799, 172_800)] == \
        ["0 s", "59 s", "1 min", "119 min", "2 h", "47 h", "2 days"]
