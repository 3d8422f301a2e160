"""The kiosk shell under pytest-qt (offscreen): banner, thread hand-over, touch targets, session
entry by taps, live view, systemd watchdog over a real unix datagram socket."""

from __future__ import annotations

import socket
import threading
from dataclasses import replace

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QAbstractButton

from appliance.errors import BadInput
from appliance.ui import theme
from appliance.ui.keypad import KeypadField
from appliance.ui.live_view import PREVIEW_MAX_FPS
from appliance.ui.presentation import Screen
from appliance.ui.watchdog import SystemdNotifier, Watchdog
from appliance.ui.window import KioskOptions, KioskWindow
from tests.taps import start_session_by_taps, tap, type_on_keypad
from tools.scenes import (AFTER_UNRECORDED, ARMED, EXAMPLE_FAULTS, IDLE, RECORDING, UNRECORDED, SceneController,
                          example_preview)


class SessionVerbs(SceneController):
    """Takes the verbs a technician's taps send, as the controller would receive them."""

    def __init__(self, refusal: str | None = None) -> None:
        super().__init__(example_preview())
        self.calls: list[tuple] = []
        self.refusal = refusal

    def begin_session(self, subject_id, operator_id):
        if self.refusal:
            raise BadInput(self.refusal)
        self.calls.append(("begin_session", subject_id, operator_id))

    def end_session(self):
        self.calls.append(("end_session",))

    def acknowledge(self):
        self.calls.append(("acknowledge",))


@pytest.fixture
def kiosk(qtbot, qapp):
    theme.apply(qapp)

    def make(controller=None, size=(1280, 800)):
        window = KioskWindow(controller or SessionVerbs(), KioskOptions(fullscreen=False, hide_cursor=False))
        qtbot.addWidget(window)
        window.resize(*size)
        window.show()
        qtbot.waitExposed(window)
        return window
    return make


def test_status_from_the_controller_thread_is_painted_on_the_gui_thread(kiosk, qtbot):
    window = kiosk()
    painted_on = []
    show_view = window.banner.show_view
    window.banner.show_view = lambda view: (painted_on.append(threading.get_ident()), show_view(view))
    publisher = threading.Thread(target=lambda: [window.bridge.publish(replace(RECORDING, recording_elapsed_s=s))
                                                 for s in range(50)])
    publisher.start()
    publisher.join()
    qtbot.waitUntil(lambda: "0:49" in window.banner.title.text(), timeout=3000)
    assert "RECORDING" in window.banner.title.text()
    assert set(painted_on) == {threading.get_ident()}
    assert window.current_screen is Screen.LIVE


def test_the_recording_clock_runs_without_new_snapshots(kiosk, qtbot):
    window = kiosk()
    window.show_status(replace(RECORDING, recording_elapsed_s=5.0))
    qtbot.waitUntil(lambda: "0:06" in window.banner.title.text(), timeout=3000)
    assert "0:06" in window.live_screen.elapsed.text() or "0:07" in window.live_screen.elapsed.text()


@pytest.mark.parametrize("fault", EXAMPLE_FAULTS, ids=lambda fault: fault.kind)
def test_each_fault_shows_the_error_banner_and_screen(kiosk, qtbot, fault):
    controller = SessionVerbs()
    window = kiosk(controller)
    window.show_status(AFTER_UNRECORDED)
    assert window.current_screen is Screen.START and window.start_screen.last_session.isVisible()
    assert window.start_screen.last_session.text() == \
        "Last session, laser: 4 emissions recorded, 1 NOT recorded: board 5012345 ms"
    window.show_status(replace(ARMED, state="Error", fault=fault))
    assert window.banner.title.text() == "ERROR"
    assert fault.what_happened in window.banner.detail.text()
    assert window.current_screen is Screen.ERROR
    assert window.error_screen.what_to_do.text() == fault.what_to_do
    tap(qtbot, window.error_screen.acknowledge)
    qtbot.waitUntil(lambda: controller.calls == [("acknowledge",)], timeout=3000)


def test_an_acknowledge_refused_while_the_fault_persists_says_why(kiosk, qtbot):
    class StillFaulty(SessionVerbs):
        def acknowledge(self):
            raise BadInput("the camera is still not sending images")
    window = kiosk(StillFaulty())
    window.show_status(replace(ARMED, state="Error", fault=EXAMPLE_FAULTS[0]))
    tap(qtbot, window.error_screen.acknowledge)
    qtbot.waitUntil(lambda: "still not sending" in window.error_screen.message.text(), timeout=3000)
    assert window.error_screen.acknowledge.isEnabled()


def _screens_to_check(window):
    yield "start", lambda: window.show_status(IDLE)
    yield "entry", lambda: window.open_screen(Screen.SESSION_ENTRY)
    yield "confirm", lambda: (window.entry_screen.subject.setText("PT-1"), window.entry_screen.operator.setText("OP"),
                              window.entry_screen.continue_button.click())
    yield "live", lambda: window.show_status(RECORDING)
    yield "error", lambda: window.show_status(replace(ARMED, state="Error", fault=EXAMPLE_FAULTS[2]))


@pytest.mark.parametrize("size", [(1280, 800), (1920, 1080)], ids=["1280x800", "1920x1080"])
def test_every_control_is_a_touch_target_inside_the_screen(kiosk, qtbot, qapp, size):
    window = kiosk(size=size)
    frame = window.rect()
    for name, show in _screens_to_check(window):
        show()
        qapp.processEvents()
        assert (window.width(), window.height()) == size, f"{name} does not fit {size}"
        assert window.minimumSizeHint().width() <= size[0] and window.minimumSizeHint().height() <= size[1], name
        controls = [w for w in window.findChildren(QAbstractButton) + window.findChildren(KeypadField)
                    if w.isVisible()]
        assert controls, name
        for control in controls:
            where = control.rect().translated(control.mapTo(window, QPoint(0, 0)))
            label = f"{name}: {control.__class__.__name__} {getattr(control, 'text', lambda: '')()!r}"
            assert control.height() >= 48 and control.width() >= 48, label
            assert frame.contains(where), f"{label} is cut off at {size}"


def test_session_entry_by_taps_validates_and_confirms(kiosk, qtbot):
    controller = SessionVerbs()
    window = kiosk(controller)
    entry = window.entry_screen
    tap(qtbot, window.start_screen.new_session)
    assert window.current_screen is Screen.SESSION_ENTRY
    tap(qtbot, entry.subject)
    type_on_keypad(qtbot, window.entry_screen.keypad, "PT-42-")
    tap(qtbot, entry.operator)
    type_on_keypad(qtbot, window.entry_screen.keypad, "OP7")
    tap(qtbot, entry.continue_button)
    assert "dashes" in entry.message.text() and not entry.confirming
    assert "PT-42-" not in entry.message.text()      # PHI is never echoed
    tap(qtbot, entry.subject)
    type_on_keypad(qtbot, window.entry_screen.keypad, "⌫")
    tap(qtbot, entry.continue_button)
    assert entry.confirming
    assert "PT-42" in entry.confirm_text.text() and "OP7" in entry.confirm_text.text()
    assert controller.calls == []                    # nothing opens before the confirmation
    tap(qtbot, entry.confirm_button)
    qtbot.waitUntil(lambda: entry.subject.text() == "", timeout=3000)
    assert controller.calls == [("begin_session", "PT-42", "OP7")]
    assert not entry.confirming


def test_an_empty_operator_is_asked_for(kiosk, qtbot):
    window = kiosk()
    tap(qtbot, window.start_screen.new_session)
    type_on_keypad(qtbot, window.entry_screen.keypad, "PT1")
    tap(qtbot, window.entry_screen.continue_button)
    assert window.entry_screen.message.text() == "Enter the operator ID."
    assert window.entry_screen.keypad.target is window.entry_screen.operator


def test_a_refused_session_keeps_the_ids_and_says_why(kiosk, qtbot):
    window = kiosk(SessionVerbs(refusal="the controller link is down"))
    entry = window.entry_screen
    start_session_by_taps(qtbot, window, "PT1", "OP1")
    qtbot.waitUntil(lambda: "link is down" in entry.message_on_confirm.text(), timeout=3000)
    assert entry.subject.text() == "PT1" and entry.confirming


class BrokenController(SessionVerbs):
    """A controller with a bug: opening a session raises something no guard anticipated."""

    def begin_session(self, subject_id, operator_id):
        raise RuntimeError("database cursor closed")


def test_an_unexpected_controller_error_is_said_on_screen_and_the_buttons_come_back(kiosk, qtbot, caplog):
    window = kiosk(BrokenController())
    entry = window.entry_screen
    start_session_by_taps(qtbot, window, "PT1", "OP1")
    qtbot.waitUntil(lambda: "internal error" in entry.message_on_confirm.text(), timeout=3000)
    assert "Call service" in entry.message_on_confirm.text()
    assert entry.confirm_button.isEnabled() and entry.back_button.isEnabled()
    assert entry.subject.text() == "PT1" and entry.confirming
    assert any("database cursor closed" in (record.exc_text or "") for record in caplog.records)


def test_cancel_returns_home_and_forgets_the_ids(kiosk, qtbot):
    window = kiosk()
    tap(qtbot, window.start_screen.new_session)
    type_on_keypad(qtbot, window.entry_screen.keypad, "PT1")
    tap(qtbot, window.entry_screen.cancel_button)
    assert window.current_screen is Screen.START
    tap(qtbot, window.start_screen.new_session)
    assert window.entry_screen.subject.text() == ""


def test_an_open_session_shows_the_live_view_with_lamps_and_storage(kiosk, qtbot):
    window = kiosk()
    window.show_status(RECORDING)
    live = window.live_screen
    assert window.current_screen is Screen.LIVE
    assert live.clips.text() == "3"
    assert [lamp.text.text() for lamp in live.lamps][:3] == ["Footswitch pressed", "Interlock closed", "Laser ON"]
    assert "6 h 20 min" in live.storage.text()
    qtbot.waitUntil(lambda: live.pump.frames_shown > 0, timeout=2000)
    assert not live.preview.pixmap().isNull()
    assert live.preview.pixmap().width() <= live.preview.width()


def test_an_unrecorded_emission_is_warned_about_over_every_screen_and_in_the_sessions_report(kiosk, qtbot):
    window = kiosk()
    assert not window.unrecorded.isVisible() and not window.start_screen.last_session.isVisible()
    window.show_status(replace(IDLE, unrecorded_emissions=2, last_unrecorded_emission_board_ms=700))
    assert window.current_screen is Screen.START and window.unrecorded.isVisible()
    assert "2 laser emissions were NOT recorded" in window.unrecorded.text()
    window.show_status(UNRECORDED)
    assert window.current_screen is Screen.LIVE and window.unrecorded.isVisible()
    assert window.live_screen.session.text().endswith("Laser: 4 emissions recorded, 1 NOT recorded: board 5012345 ms")
    window.show_status(replace(ARMED, state="Error", fault=EXAMPLE_FAULTS[0], unrecorded_emissions=3))
    assert window.current_screen is Screen.ERROR and "3 laser emissions" in window.unrecorded.text()


def test_the_preview_is_paced_and_skips_unchanged_frames(kiosk, qtbot):
    window = kiosk()
    window.show_status(ARMED)
    pump = window.live_screen.pump
    assert pump.timer.interval() >= 1000 / PREVIEW_MAX_FPS
    qtbot.waitUntil(lambda: pump.frames_shown == 1, timeout=2000)
    pump.pull()
    pump.pull()
    assert pump.frames_shown == 1                      # same frame object: not redrawn
    window.controller.preview = np.zeros((120, 200, 3), np.uint8)
    pump.pull()
    assert pump.frames_shown == 2
    window.show_status(IDLE)                                # session closed: the pump stops
    assert not pump.timer.isActive()


def test_no_camera_image_is_said_in_words(kiosk, qtbot):
    controller = SessionVerbs()
    controller.preview = None
    window = kiosk(controller)
    window.show_status(ARMED)
    window.live_screen.pump.pull()
    assert window.live_screen.preview.text() == "No camera image"


def test_ending_a_session_takes_two_taps(kiosk, qtbot):
    controller = SessionVerbs()
    window = kiosk(controller)
    window.show_status(RECORDING)
    tap(qtbot, window.live_screen.end_button)
    assert controller.calls == [] and "again" in window.live_screen.end_button.text()
    tap(qtbot, window.live_screen.end_button)
    qtbot.waitUntil(lambda: controller.calls == [("end_session",)], timeout=3000)


def test_presented_as_a_kiosk_fullscreen_frameless_without_cursor(qtbot, qapp):
    window = KioskWindow(SessionVerbs())
    qtbot.addWidget(window)
    window.present()
    assert window.isFullScreen()
    assert window.windowFlags() & Qt.WindowType.FramelessWindowHint
    assert window.cursor().shape() == Qt.CursorShape.BlankCursor


@pytest.fixture
def notify_socket(tmp_path):
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(5)
    yield str(path), sock
    sock.close()


def test_watchdog_says_ready_then_pings_from_the_gui_thread(qtbot, notify_socket):
    path, sock = notify_socket
    watchdog = Watchdog(SystemdNotifier.from_environment({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000"}))
    watchdog.start()
    assert sock.recv(256) == b"READY=1\nSTATUS=Kiosk up"
    assert watchdog.timer.interval() == 100
    sock.setblocking(False)
    pings = []

    def received_ping():
        try:
            pings.append(sock.recv(256))
        except BlockingIOError:
            pass
        return b"WATCHDOG=1" in pings
    qtbot.waitUntil(received_ping, timeout=3000)
    watchdog.stop()
    sock.setblocking(True)
    while (message := sock.recv(256)) == b"WATCHDOG=1":
        pass
    assert message == b"STOPPING=1"


def test_watchdog_uses_the_abstract_namespace(tmp_path):
    name = f"@appliance-test-{id(tmp_path)}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name[1:])
        sock.settimeout(5)
        assert SystemdNotifier(name, None).notify("READY=1")
        assert sock.recv(64) == b"READY=1"


def test_watchdog_is_a_no_op_outside_systemd(qtbot):
    notifier = SystemdNotifier.from_environment({})
    assert not notifier.enabled and not notifier.notify("READY=1")
    watchdog = Watchdog(notifier)
    watchdog.start()
    assert not watchdog.timer.isActive()


def test_without_watchdog_usec_only_ready_is_sent(qtbot, notify_socket):
    path, sock = notify_socket
    watchdog = Watchdog(SystemdNotifier.from_environment({"NOTIFY_SOCKET": path}))
    watchdog.start()
    assert sock.recv(64).startswith(b"READY=1")
    assert not watchdog.timer.isActive()


def test_a_vanished_notify_socket_does_not_stop_the_kiosk(tmp_path):
    assert SystemdNotifier(str(tmp_path / "gone"), 1_000_000).notify("WATCHDOG=1") is False


def test_the_service_pin_is_set_from_standard_input(appliance_cli, tmp_path):
    from appliance.ui.service_access import pin_matches, read_pin
    config = tmp_path / "kiosk.toml"
    config.write_text(f'[data]\ndir = "{tmp_path / "data"}"\n')
    stored = appliance_cli("kiosk", "--config", str(config), "--set-service-pin", input=b"135790\n")
    assert stored.returncode == 0, stored.stderr.decode()
    pin_file = tmp_path / "data" / "service-pin"
    assert pin_file.stat().st_mode & 0o777 == 0o600 and pin_matches("135790", read_pin(pin_file))
    refused = appliance_cli("kiosk", "--config", str(config), "--set-service-pin", input=b"12\n")
    assert refused.returncode == 2
    assert refused.stderr.decode().strip() == "appliance: the service PIN must be at least 6 digits"


def test_the_production_kiosk_notifies_systemd_and_stops_cleanly_on_sigterm(tmp_path, notify_socket):
    import os
    import signal
    import subprocess
    import sys
    path, sock = notify_socket
    config = tmp_path / "kiosk.toml"
    config.write_text(f'[data]\ndir = "{tmp_path / "data"}"\n[camera]\nwidth = 512\nheight = 288\n')
    kiosk = subprocess.Popen(
        [sys.executable, "-m", "appliance.cli", "kiosk", "--config", str(config), "--windowed"],
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen", "NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        sock.settimeout(60)
        assert sock.recv(256).startswith(b"READY=1")
        assert sock.recv(256) == b"WATCHDOG=1"
        kiosk.send_signal(signal.SIGTERM)
        while (message := sock.recv(256)) == b"WATCHDOG=1":
            pass
        assert message == b"STOPPING=1"
        assert kiosk.wait(timeout=60) == 0, kiosk.stderr.read().decode()
    finally:
        if kiosk.poll() is None:
            kiosk.kill()
            kiosk.wait()
