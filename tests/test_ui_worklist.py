"""Session entry from the worklist on the kiosk, driven by taps, against the real worklist service
(`appliance worklist run`, its own process) in front of a real RIS (dcmtk's wlmscpfs, Orthanc):
the patient tapped is the identity sealed into the recording; an unreachable, empty or failing
worklist is one line and manual entry works; a stalled service never stalls the GUI thread."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import replace

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from appliance import vault
from appliance.errors import BadInput
from appliance.ui import theme
from appliance.ui.presentation import Screen
from appliance.ui.window import KioskOptions, KioskWindow
from appliance.ui.worklist_screen import WorklistScreen
from appliance.vault.identity_card import open_card
from appliance.vault.manifest import read_signed
from appliance.worklist.client import WorklistClient
from appliance.worklist.entries import entry_to_json
from appliance.worklist.settings import WorklistSettings
from tests.servers import end_process
from tests.servers.dcmtk import Wlmscpfs
from tests.servers.orthanc import Orthanc
from tests.servers.worklist_files import JAPANESE, STEADY_DAY_ENV, write_worklist_file
from tests.taps import DEADLINE_MS, kiosk_on_controller, small_appliance, tap, type_on_keypad
from tests.test_ui_responsive import Heartbeat
from tests.test_worklist_query import MUELLER, ROOM, YAMADA
from tests.waiting import wait_for
from tools.scenes import IDLE, SceneController

PASSPHRASE = "clinic-Key9"
# How long the client waits for a stalled service in these tests: long enough that a busy CI
# machine finishes the taps well within it (they take ~0.03 s on a loaded 2-core machine); a wait
# on the socket would freeze the GUI for all of it.
STALLED_ANSWER_S = 5.0
LONGEST_STALL_MS = 2000     # slack for a busy machine, less than half the freeze of a blocked GUI


@contextmanager
def worklist_service(directory, ris, **worklist):
    """`appliance worklist run` asking `ris`, with its own settings file and data dir under
    `directory`; yields the socket the kiosk reads; stopped by its PID."""
    directory.mkdir()
    values = {"host": "127.0.0.1", "port": ris.dicom_port, "called_ae": ris.aet, "calling_ae": "TREATMENT1",
              "station_ae": ROOM, "refresh_s": 3600.0, "timeout_s": 10.0, **worklist}
    config = directory / "appliance.toml"
    config.write_text('[data]\ndir = "data"\n[worklist]\n'
                      + "".join(f"{key} = {json.dumps(value)}\n" for key, value in values.items()))
    log = directory / "service.log"         # the test's capture of its stderr
    with open(log, "wb") as output:
        process = subprocess.Popen([sys.executable, "-m", "appliance.cli", "worklist", "run", "--config", str(config)],
                                   stdout=output, stderr=subprocess.STDOUT, env={**os.environ, **STEADY_DAY_ENV})
    try:
        wait_for(lambda: b"worklist: serving" in log.read_bytes() or process.poll() is not None, 60, "the service")
        assert process.poll() is None, log.read_text()
        yield directory / "data" / "run" / "worklist.sock"
    finally:
        end_process(process)


def patient_names(entry) -> list[str]:
    """Every name part of a DICOM PN (family, given, in each of its groups)."""
    return [part for group in entry.patient_name.split("=") for part in group.split("^") if part]


def start_ris(kind: str, tmp_path):
    if kind == "wlmscpfs":
        return Wlmscpfs().start(tmp_path / "ris")
    (tmp_path / "worklists").mkdir()
    return Orthanc().start(tmp_path / "ris", worklists_dir=tmp_path / "worklists")


def tap_row(qtbot, entry_list, row: int) -> None:
    item = entry_list.item(row)
    qtbot.mouseClick(entry_list.viewport(), Qt.MouseButton.LeftButton, pos=entry_list.visualItemRect(item).center())


@pytest.mark.parametrize("ris_kind, picked, character_set, shown_name", [
    ("wlmscpfs", MUELLER, "ISO_IR 192", "Müller, Zoë"),
    ("orthanc", YAMADA, JAPANESE, "Yamada, Tarou (山田 太郎)"),
], ids=["wlmscpfs-utf8", "orthanc-iso2022"])
def test_the_patient_tapped_is_the_identity_sealed_into_the_recording(tmp_path, qtbot, qapp, caplog, ris_kind,
                                                                       picked, character_set, shown_name):
    caplog.set_level(logging.DEBUG)
    ris = start_ris(ris_kind, tmp_path)
    key_dir = tmp_path / "keys"
    vault.keys.generate_recipient(key_dir, PASSPHRASE.encode())
    vault.keys.generate_device(key_dir)
    other = MUELLER if picked is YAMADA else YAMADA
    try:
        write_worklist_file(ris.worklists_dir, other, station_ae=ROOM,
                            character_set=JAPANESE if other is YAMADA else "ISO_IR 192")
        with worklist_service(tmp_path / "uplink", ris) as socket_path:
            settings = replace(small_appliance(tmp_path / "data", key_dir),
                               worklist=WorklistSettings(host="127.0.0.1", port=ris.dicom_port, socket=socket_path))
            with kiosk_on_controller(qtbot, qapp, settings) as (window, controller):
                screen = window.worklist_screen
                tap(qtbot, window.start_screen.new_session)
                assert window.current_screen is Screen.WORKLIST
                qtbot.waitUntil(lambda: screen.entry_list.count() == 1, timeout=DEADLINE_MS)
                assert screen.status_line.text().startswith("1 procedure scheduled today")

                write_worklist_file(ris.worklists_dir, picked, station_ae=ROOM, character_set=character_set)
                tap(qtbot, screen.refresh_button)               # the RIS is asked anew
                qtbot.waitUntil(lambda: screen.entry_list.count() == 2, timeout=DEADLINE_MS)
                row = screen.entries.index(picked)
                assert shown_name in screen.entry_list.item(row).text()
                tap_row(qtbot, screen.entry_list, row)

                assert screen.confirming                        # checked against the wristband first
                assert screen.name.text() == shown_name
                assert screen.birth_date.text().startswith({"19800102": "2 Jan 1980", "19700101": "1 Jan 1970"}[
                    picked.birth_date])
                assert screen.patient_id.text() == picked.patient_id
                type_on_keypad(qtbot, screen.keypad, "OP7")
                tap(qtbot, screen.confirm_button)
                qtbot.waitUntil(lambda: window.banner.title.text() == "ARMED", timeout=DEADLINE_MS)
                session = window.status.session
                assert window.current_screen is Screen.LIVE and session.subject_id == picked.patient_id
                assert screen.name.text() == "" and screen.entry_list.count() == 0   # no name kept on screen

                controller.simulator.press()
                qtbot.waitUntil(lambda: (window.status.recording_elapsed_s or 0) >= 0.5, timeout=DEADLINE_MS)
                controller.simulator.release()
                qtbot.waitUntil(lambda: window.status.session is not None and window.status.session.clip_count == 1
                                and window.status.state == "Armed", timeout=DEADLINE_MS)
                [recording] = controller.reader.recordings(session.session_uid)
                signed, problem = read_signed(recording.path)
                assert signed is not None, problem
        identity = vault.keys.load_identity(key_dir / vault.keys.RECIPIENT_KEY, PASSPHRASE.encode())
        card = open_card(signed, identity)
        assert {key: value for key, value in card.items() if key not in ("format", "recording_id")} == \
            {**entry_to_json(picked), "source": "worklist", "operator_id": "OP7"}
        logged = caplog.text
        assert [secret for secret in (*patient_names(picked), picked.birth_date) if secret in logged] == []
    finally:
        ris.stop()


class SessionVerbs(SceneController):
    """Records the sessions the kiosk asks for: these tests are about what the worklist screen
    says and offers, not about recording."""

    def __init__(self) -> None:
        super().__init__(None)
        self.begun: list[tuple] = []
        self.refusal: str | None = None

    def begin_session(self, subject_id, operator_id, entry=None):
        if self.refusal:
            raise BadInput(self.refusal)
        self.begun.append((subject_id, operator_id, entry))


@pytest.fixture
def kiosk(qtbot, qapp):
    """The kiosk window with a worklist screen reading `socket_path`; yields a function making it."""
    theme.apply(qapp)

    def make(socket_path, answer_timeout_s=STALLED_ANSWER_S):
        controller = SessionVerbs()
        window = KioskWindow(controller, KioskOptions(fullscreen=False, hide_cursor=False))
        qtbot.addWidget(window)
        client = WorklistClient(socket_path, query_timeout_s=5.0, answer_timeout_s=answer_timeout_s)
        window.use_worklist(WorklistScreen(controller, window.calls, client.fetch))
        window.resize(1280, 800)
        window.show()
        window.show_status(IDLE)
        qtbot.waitExposed(window)
        return window, controller
    return make


def open_manually(qtbot, window, subject: str, operator: str) -> None:
    """From the worklist screen: Manual entry, both IDs typed, Continue, Start session."""
    entry = window.entry_screen
    tap(qtbot, window.worklist_screen.manual_button)
    assert window.current_screen is Screen.SESSION_ENTRY
    type_on_keypad(qtbot, entry.keypad, subject)
    tap(qtbot, entry.operator)
    type_on_keypad(qtbot, entry.keypad, operator)
    tap(qtbot, entry.continue_button)
    tap(qtbot, entry.confirm_button)


@contextmanager
def situation(kind: str, tmp_path):
    """A worklist service socket in the situation `kind`."""
    if kind == "no service":
        yield tmp_path / "nobody" / "worklist.sock"
        return
    ris = Wlmscpfs().start(tmp_path / "ris")
    try:
        if kind == "ris down":
            ris.stop()
        with worklist_service(tmp_path / "uplink", ris,
                              **({"called_ae": "NOT-THE-RIS"} if kind == "ris refuses" else {})) as socket_path:
            yield socket_path
    finally:
        ris.stop()


@pytest.mark.parametrize("kind, line", [
    ("no service", "The worklist is unreachable: the worklist service is not running. Use Manual entry."),
    ("ris down", "The worklist is unreachable: cannot reach the RIS WLMSCP at 127.0.0.1:"),
    ("empty", "The worklist has no procedure for this room today. Use Manual entry."),
    ("ris refuses", "The worklist answered with an error: RIS NOT-THE-RIS at 127.0.0.1:"),
], ids=["no-service", "ris-down", "empty", "ris-refuses"])
def test_no_worklist_is_one_line_and_manual_entry_opens_the_session(tmp_path, qtbot, kiosk, kind, line):
    with situation(kind, tmp_path) as socket_path:
        window, controller = kiosk(socket_path)
        screen = window.worklist_screen
        tap(qtbot, window.start_screen.new_session)
        qtbot.waitUntil(lambda: screen.refresh_button.isEnabled(), timeout=DEADLINE_MS)   # answered
    text = screen.status_line.text()
    assert text.startswith(line) and text.endswith("Use Manual entry.") and "\n" not in text
    assert "Traceback" not in text and screen.entry_list.count() == 0
    assert screen.manual_button.property("role") == "primary"    # the way on stands out

    open_manually(qtbot, window, "PT-42", "OP7")
    qtbot.waitUntil(lambda: controller.begun == [("PT-42", "OP7", None)], timeout=DEADLINE_MS)


@pytest.fixture
def stalled_service(tmp_path):
    """A peer on the worklist socket that accepts and never answers (not a server product: a
    stalled service, as a hung process would be)."""
    path = tmp_path / "run" / "worklist.sock"
    path.parent.mkdir(mode=0o700)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(8)
    yield path
    listener.close()


def test_a_stalled_service_never_stalls_the_screen_and_manual_entry_works_meanwhile(stalled_service, qtbot, kiosk):
    window, controller = kiosk(stalled_service)
    screen = window.worklist_screen
    heartbeat = Heartbeat()
    heartbeat.start()

    def tap_and_run(qtbot, widget):
        tap(qtbot, widget)
        QApplication.processEvents()
    tap_and_run(qtbot, window.start_screen.new_session)
    assert screen.status_line.text() == "Asking the worklist service…"
    assert not screen.refresh_button.isEnabled()
    tap_and_run(qtbot, screen.manual_button)
    tap_and_run(qtbot, window.entry_screen.cancel_button)      # back to the list, still waiting
    assert window.current_screen is Screen.WORKLIST
    tap_and_run(qtbot, screen.manual_button)
    type_on_keypad(qtbot, window.entry_screen.keypad, "PT-43", tap=tap_and_run)
    tap_and_run(qtbot, window.entry_screen.operator)
    type_on_keypad(qtbot, window.entry_screen.keypad, "OP7", tap=tap_and_run)
    tap_and_run(qtbot, window.entry_screen.continue_button)
    tap_and_run(qtbot, window.entry_screen.confirm_button)
    qtbot.waitUntil(lambda: controller.begun == [("PT-43", "OP7", None)], timeout=DEADLINE_MS)
    # The session began while the question was still unanswered: the taps did not wait for it.
    assert screen.status_line.text() == "Asking the worklist service…" and not screen.refresh_button.isEnabled()

    qtbot.waitUntil(lambda: screen.refresh_button.isEnabled(),                          # the client gave up
                    timeout=int(STALLED_ANSWER_S * 1000) + DEADLINE_MS)
    heartbeat.stop()
    assert screen.status_line.text() == (f"The worklist is unreachable: the worklist service did not answer within "
                                         f"{STALLED_ANSWER_S:g} s. Use Manual entry.")
    assert heartbeat.longest_gap_ms < LONGEST_STALL_MS


def test_a_refusal_keeps_the_check_and_back_and_cancel_take_the_patient_off_the_screen(tmp_path, qtbot, kiosk):
    ris = Wlmscpfs().start(tmp_path / "ris")
    try:
        write_worklist_file(ris.worklists_dir, MUELLER, station_ae=ROOM)
        with worklist_service(tmp_path / "uplink", ris) as socket_path:
            window, controller = kiosk(socket_path)
            screen = window.worklist_screen
            tap(qtbot, window.start_screen.new_session)
            qtbot.waitUntil(lambda: screen.entry_list.count() == 1, timeout=DEADLINE_MS)
    finally:
        ris.stop()
    tap_row(qtbot, screen.entry_list, 0)
    assert screen.name.text() == "Müller, Zoë"
    tap(qtbot, screen.confirm_button)                  # no operator ID yet: asked for, nothing opens
    assert screen.message.text() == "Enter the operator ID." and screen.confirming

    controller.refusal = "Not ready: the treatment controller is not connected"
    type_on_keypad(qtbot, screen.keypad, "OP7")
    tap(qtbot, screen.confirm_button)
    qtbot.waitUntil(lambda: screen.message.text() == controller.refusal, timeout=DEADLINE_MS)
    assert screen.confirming and screen.name.text() == "Müller, Zoë" and screen.operator.text() == "OP7"
    assert screen.confirm_button.isEnabled() and screen.back_button.isEnabled()

    tap(qtbot, screen.back_button)
    assert not screen.confirming and screen.name.text() == screen.birth_date.text() == ""
    tap(qtbot, screen.cancel_button)
    assert window.current_screen is Screen.START and screen.entry_list.count() == 0
    assert controller.begun == []
