"""Run by tests/test_demo_window.py in a child pytest on Xvfb with QT_QPA_PLATFORM=xcb (Qt picks
its platform once per process). Each test starts a real command (`appliance demo`, the kiosk) in
this process and drives its window from inside Qt's event loop; pointer and key events enter
through the window system (QTest on the QWindow), not by calling widgets."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QLabel

from appliance import cli
from appliance.storage.reader import StoreReader
from appliance.ui.app import run_kiosk
from appliance.ui.presentation import Screen
from appliance.ui.simulator_panel import SimulatorPanel
from appliance.ui.window import KioskWindow
from firmware_bridge.simulator import Simulator
from tests.taps import start_session_by_taps, tap

DEADLINE_MS = 15000


def run_and_drive(qtbot, command, drive):
    """Runs `command()`, which blocks in Qt's event loop, while `drive(window)` works its kiosk
    window from inside that loop; quits the loop when `drive` ends, however it ends."""
    failures = []

    def step():
        try:
            window = next(widget for widget in QApplication.topLevelWidgets() if isinstance(widget, KioskWindow))
            qtbot.waitExposed(window.windowHandle(), timeout=DEADLINE_MS)
            drive(window)
        except BaseException as failure:  # noqa: BLE001 (re-raised below, after the loop ends)
            failures.append(failure)
        finally:
            QApplication.instance().quit()

    QTimer.singleShot(0, step)
    code = command()
    if failures:
        raise failures[0]
    return code


def pointer(action, widget):
    """A press or release of the left button at the centre of `widget`, given to its window."""
    window = widget.window()
    action(window.windowHandle(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
           widget.mapTo(window, widget.rect().center()))


def test_the_demo_window_records_from_its_simulator_panel(qtbot, qapp, tmp_path):
    assert qapp.platformName() == "xcb"
    data = tmp_path / "data"

    def drive(window):
        [panel] = window.findChildren(SimulatorPanel)
        live, banner = window.live_screen, window.banner
        footswitch_lamp = live.lamps[0].text
        assert panel.isVisible() and "SIMULATOR" in [label.text() for label in panel.findChildren(QLabel)]
        qtbot.waitUntil(lambda: window.status.link.up, timeout=DEADLINE_MS)
        start_session_by_taps(qtbot, window, "PT-0042", "OP7")
        qtbot.waitUntil(lambda: banner.title.text() == "ARMED", timeout=DEADLINE_MS)

        pointer(QTest.mousePress, panel.footswitch)         # held by the pointer...
        qtbot.waitUntil(lambda: banner.title.text().startswith("● RECORDING"), timeout=DEADLINE_MS)
        qtbot.waitUntil(lambda: footswitch_lamp.text() == "Footswitch pressed", timeout=DEADLINE_MS)
        pointer(QTest.mouseRelease, panel.footswitch)
        qtbot.waitUntil(lambda: footswitch_lamp.text() == "Footswitch up", timeout=DEADLINE_MS)
        QTest.keyPress(window.windowHandle(), Qt.Key.Key_Space)     # ...then by the space bar
        qtbot.waitUntil(lambda: footswitch_lamp.text() == "Footswitch pressed", timeout=DEADLINE_MS)
        QTest.keyRelease(window.windowHandle(), Qt.Key.Key_Space)
        qtbot.waitUntil(lambda: footswitch_lamp.text() == "Footswitch up", timeout=DEADLINE_MS)

        tap(qtbot, live.end_button)
        tap(qtbot, live.end_button)
        qtbot.waitUntil(lambda: banner.title.text() == "IDLE" and window.current_screen is Screen.START,
                        timeout=DEADLINE_MS)

    code = run_and_drive(qtbot, lambda: cli.main(["demo", "--data", str(data), "--frame-size", "512x288"]), drive)
    assert code == 0
    records = StoreReader(data)
    try:
        [listing] = records.sessions()
        [recording] = records.recordings(listing.session.uid)
    finally:
        records.close()
    assert recording.state == "sealed" and recording.frames > 0


def test_a_kiosk_on_a_real_board_has_no_simulator_panel(qtbot, qapp, tmp_path):
    board_path = tmp_path / "treatment-controller"       # a board on a pty, opened by its path as over USB
    settings = tmp_path / "appliance.toml"
    settings.write_text(f'[data]\ndir = "data"\n[camera]\nwidth = 320\nheight = 240\n'
                        f'[controller]\nport = "{board_path}"\n')
    panels = []

    def drive(window):
        qtbot.waitUntil(lambda: window.status.link.up, timeout=DEADLINE_MS)
        panels.extend(window.findChildren(SimulatorPanel))

    with Simulator(str(board_path)):
        assert run_and_drive(qtbot, lambda: run_kiosk(settings, fullscreen=False, hide_cursor=False), drive) == 0
    assert panels == []
