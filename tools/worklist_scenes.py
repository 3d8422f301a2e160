"""The worklist screen's scenes (tools/scenes.py lists them): an example day's worklist as the
worklist service would answer it, and the taps that lead to each page. The patients are
invented; their names use the letters a clinic's RIS sends (diacritics, Polish, Nordic, Irish).
The ideographic names the screen also handles are left out of the pictures: the development
machine, unlike the kiosk image, has no CJK font (tests/test_ui_worklist*.py cover them)."""

from __future__ import annotations

from datetime import datetime, timezone

from appliance.worklist.entries import WorklistEntry
from appliance.worklist.protocol import WorklistAnswer


def _step(time_of_day: str, name: str, patient_id: str, birth_date: str, sex: str, procedure: str,
          number: int) -> WorklistEntry:
    return WorklistEntry(patient_name=name, patient_id=patient_id, birth_date=birth_date, sex=sex,
                         accession_number=f"ACC-2611-{number:04d}", study_instance_uid=f"1.2.826.0.1.3680043.10.1184.{number}",
                         requested_procedure=procedure, scheduled_step_id=f"SPS-{number}",
                         scheduled_start=f"20261124{time_of_day}00")


EXAMPLE_STEPS = (
    _step("0830", "Müller^Zoë", "PID-0042", "19840307", "F", "Laser, port-wine stain, left cheek", 1),
    _step("0915", "Nowak^Zdzisław", "PID-7781", "19520611", "M", "Laser, spider veins, legs", 2),
    _step("1000", "Østergaard^Åsa", "PID-1201", "19991230", "F", "Laser, tattoo removal, right forearm", 3),
    _step("1045", "O'Neill^Siobhán", "PID-0099", "20120422", "F", "Laser, haemangioma, neck", 4),
    _step("1130", "Dubois^Jean-François", "PID-5510", "19700101", "M", "Laser, scar revision, chin", 5),
)


def example_answers(now: float) -> dict[str, WorklistAnswer]:
    """What the example worklist service answers in each scene; `now` is the scenes' wall clock."""
    queried_at = datetime.fromtimestamp(now, timezone.utc).isoformat()
    return {
        "ok": WorklistAnswer("ok", f"{len(EXAMPLE_STEPS)} steps", EXAMPLE_STEPS, queried_at),
        "unreachable": WorklistAnswer("unreachable", "no answer from the RIS at 10.20.0.15:104 within 10 s",
                                      queried_at=queried_at),
    }


def open_worklist(window) -> None:
    """New session, as tapped: the worklist screen asks the (example) service."""
    window.start_screen.new_session.click()


def confirm_first_patient(window) -> None:
    """The first patient tapped, the operator ID typed: the check against the wristband."""
    from tools.scenes import settle

    open_worklist(window)
    settle(window)
    screen = window.worklist_screen
    screen.select(screen.entries[0])
    for key in "OP-7":
        screen.keypad.press(key)
