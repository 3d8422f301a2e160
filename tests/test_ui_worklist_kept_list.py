"""A RIS that goes down after answering today's list does not take the list from the kiosk: the
real worklist service keeps it, the screen says the RIS is unreachable and how old the list is,
and a tapped patient still opens the session with that identity."""

from __future__ import annotations

from tests.servers.dcmtk import Wlmscpfs
from tests.servers.worklist_files import write_worklist_file
from tests.taps import DEADLINE_MS, tap, type_on_keypad
from tests.test_ui_worklist import kiosk, tap_row, worklist_service  # noqa: F401  (kiosk: a fixture)
from tests.test_worklist_query import MUELLER, ROOM


def test_the_list_answered_today_stays_tappable_when_the_ris_goes_down(tmp_path, qtbot, kiosk):  # noqa: F811
    ris = Wlmscpfs().start(tmp_path / "ris")
    try:
        write_worklist_file(ris.worklists_dir, MUELLER, station_ae=ROOM)
        with worklist_service(tmp_path / "uplink", ris) as socket_path:
            window, controller = kiosk(socket_path, answer_timeout_s=60)
            screen = window.worklist_screen
            tap(qtbot, window.start_screen.new_session)
            qtbot.waitUntil(lambda: screen.entry_list.count() == 1, timeout=DEADLINE_MS)

            ris.stop()
            tap(qtbot, screen.refresh_button)                # the RIS is asked anew, and is gone
            qtbot.waitUntil(lambda: screen.refresh_button.isEnabled()
                            and screen.status_line.text().startswith("The worklist is unreachable"),
                            timeout=DEADLINE_MS)
            text = screen.status_line.text()
            assert "Showing the list from " in text and text.endswith("tap the patient or use Manual entry.")
            assert screen.entry_list.count() == 1 and screen.entries == [MUELLER]

            tap_row(qtbot, screen.entry_list, 0)
            assert screen.confirming and screen.patient_id.text() == MUELLER.patient_id
            type_on_keypad(qtbot, screen.keypad, "OP7")
            tap(qtbot, screen.confirm_button)
            qtbot.waitUntil(lambda: controller.begun == [(MUELLER.patient_id, "OP7", MUELLER)], timeout=DEADLINE_MS)
    finally:
        ris.stop()
