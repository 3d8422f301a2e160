"""What the worklist screen shows for an entry and for the service's answer: the pure rules."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import datetime, timezone

import pytest

from appliance.ui.worklist_listing import (answer_line, day_order, display_birth_date, display_name, display_sex,
                                           display_time, list_row)
from appliance.worklist.entries import WorklistEntry
from appliance.worklist.protocol import WorklistAnswer

ZOE = WorklistEntry(patient_name="Müller^Zoë", patient_id="PID-0042", birth_date="19840307", sex="F",
                    accession_number="ACC-1", study_instance_uid="1.2.3.4", requested_procedure="Laser, left arm",
                    scheduled_step_id="SPS-1", scheduled_start="20261124083000")


@pytest.mark.parametrize("person_name, shown", [
    ("Müller^Zoë", "Müller, Zoë"),
    ("Smith^John^Quincy^Dr.^Jr.", "Smith, Dr. John Quincy Jr."),
    ("Nakamura", "Nakamura"),
    ("^Madonna", "Madonna"),
    ("Yamada^Tarou=山田^太郎=やまだ^たろう", "Yamada, Tarou (山田 太郎)"),
    ("=山田^太郎", "山田 太郎"),
    ("==やまだ^たろう", "やまだ たろう"),       # only the phonetic form: better than no name
    ("Wang^Xiaodong=王^小东", "Wang, Xiaodong (王 小东)"),
    ("", "(no name)"),
    ("^^^^", "(no name)"),
])
def test_a_dicom_person_name_reads_family_name_first_with_the_ideographic_form_beside_it(person_name, shown):
    assert display_name(person_name) == shown


@pytest.mark.parametrize("birth_date, shown", [
    ("19840307", "7 Mar 1984"),      # the month in letters: 3 July and 7 March cannot be confused
    ("20001231", "31 Dec 2000"),
    ("", "not given"),
    ("19841307", "19841307"),        # not a date: shown as it came, for the technician to compare
    ("1984", "1984"),
])
def test_a_birth_date_reads_unambiguously_or_exactly_as_the_ris_sent_it(birth_date, shown):
    assert display_birth_date(birth_date) == shown


def test_the_list_row_has_time_name_id_and_procedure():
    assert list_row(ZOE) == "08:30   Müller, Zoë\n        ID PID-0042  ·  Laser, left arm"
    assert list_row(replace(ZOE, scheduled_start="", requested_procedure="", patient_id="")) == (
        "--:--   Müller, Zoë\n        ID not given  ·  procedure not given")
    assert display_time("20261124143000") == "14:30"
    assert [display_sex(sex) for sex in ("M", "F", "O", "")] == ["male", "female", "other", "not given"]


def test_the_day_is_listed_by_scheduled_time_with_untimed_steps_last_in_the_order_received():
    late, early = replace(ZOE, scheduled_start="20261124150000"), replace(ZOE, scheduled_start="20261124071500")
    untimed_a, untimed_b = replace(ZOE, scheduled_start="", patient_id="A"), replace(ZOE, scheduled_start="", patient_id="B")
    assert day_order([untimed_a, late, untimed_b, early]) == [early, late, untimed_a, untimed_b]


def test_a_failed_query_with_todays_last_list_says_how_it_failed_and_how_old_the_list_is():
    at_0814 = datetime.fromtimestamp(time.mktime((2026, 11, 24, 8, 14, 40, 0, 0, -1)), timezone.utc).isoformat()
    for status, words in (("unreachable", "is unreachable"), ("error", "answered with an error")):
        line, problem = answer_line(WorklistAnswer(status, "cannot reach the RIS at 127.0.0.1:104", (ZOE,), at_0814))
        assert problem and line == (f"The worklist {words}: cannot reach the RIS at 127.0.0.1:104. "
                                    f"Showing the list from 08:14: tap the patient or use Manual entry.")


def test_each_answer_is_one_line_and_only_a_list_with_entries_is_not_a_problem():
    at_0814 = datetime.fromtimestamp(time.mktime((2026, 11, 24, 8, 14, 40, 0, 0, -1)), timezone.utc).isoformat()
    assert answer_line(WorklistAnswer("ok", "2 steps", (ZOE, ZOE), at_0814)) == (
        "2 procedures scheduled today (updated 08:14). Tap the patient.", False)
    assert answer_line(WorklistAnswer("ok", "1 step", (ZOE,))) == ("1 procedure scheduled today. Tap the patient.", False)
    for answer, words in ((WorklistAnswer("empty", "no steps"), "has no procedure for this room today"),
                          (WorklistAnswer("unreachable", "connection refused by 127.0.0.1:104."),
                           "is unreachable: connection refused by 127.0.0.1:104"),
                          (WorklistAnswer("error", "C-FIND failed with status 0xC000"),
                           "answered with an error: C-FIND failed with status 0xC000"),
                          (WorklistAnswer("error", ""), "answered with an error: no reason given"),
                          (RuntimeError("a bug"), "internal error")):
        line, problem = answer_line(answer)
        assert problem and words in line and line.endswith(". Use Manual entry.") and "\n" not in line
        assert ".." not in line
