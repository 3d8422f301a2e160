"""Driving the kiosk the way a gloved hand does: taps at the centre of visible controls, on the
kiosk window attached to a real controller (synthetic camera, firmware simulator, SQLite)."""

from contextlib import contextmanager

from PySide6.QtCore import Qt

from appliance import vault
from appliance.config import CameraSettings, DataSettings, KeySettings, RecordingSettings, Settings, StorageSettings

DEADLINE_MS = 15000


def tap(qtbot, widget):
    assert widget.isVisible() and widget.isEnabled(), f"{widget!r} cannot be tapped"
    qtbot.mouseClick(widget, Qt.MouseButton.LeftButton, pos=widget.rect().center())


def type_on_keypad(qtbot, keypad, text, tap=tap):
    """Types `text` on the in-app keypad, switching to letters, capitals or symbols as a user would
    (`tap` may be one that also lets the event loop run between taps)."""
    def keys():
        return {button.text(): button for button in keypad.keys()}
    for character in text:
        if character not in keys() and "abc" in keys():
            tap(qtbot, keys()["abc"])
        if character not in keys():
            tap(qtbot, keys()["Shift" if character.isalpha() else "#+="])
        tap(qtbot, keys()[character])


def start_session_by_taps(qtbot, window, subject, operator):
    """New session, both IDs on the keypad, Continue, then Start session on the confirmation."""
    entry = window.entry_screen
    tap(qtbot, window.start_screen.new_session)
    type_on_keypad(qtbot, entry.keypad, subject)
    tap(qtbot, entry.operator)
    type_on_keypad(qtbot, entry.keypad, operator)
    tap(qtbot, entry.continue_button)
    tap(qtbot, entry.confirm_button)


def start_button(window, label):
    """The start screen's secondary button with this label (Review recordings, Service)."""
    layout = window.start_screen.secondary
    return next(button for button in (layout.itemAt(i).widget() for i in range(layout.count()))
                if button.text() == label)


def small_appliance(data_dir, key_dir) -> Settings:
    """Settings for a quick appliance on the synthetic camera and the simulated controller, with
    the recipient and device keys in `key_dir`."""
    return Settings(
        data=DataSettings(data_dir),
        camera=CameraSettings(width=512, height=288, fps=15),
        recording=RecordingSettings(pre_roll_s=1.0, post_roll_s=0.5, bitrate_estimate_bps=1_000_000),
        storage=StorageSettings(max_session_minutes=1, reserve_mb=1),
        keys=KeySettings(recipients=(key_dir / vault.keys.RECIPIENT_PUB,), device_key=key_dir / vault.keys.DEVICE_KEY),
    )


@contextmanager
def kiosk_on_controller(qtbot, qapp, settings):
    """The production kiosk window (build_window) on a started controller, shown at 1280x800
    once the controller link is up; yields (window, controller), stops both afterwards."""
    from appliance.controller import Controller
    from appliance.ui import theme
    from appliance.ui.app import build_window
    from appliance.ui.service_checks import RecentLogs
    from appliance.ui.window import KioskOptions

    controller = Controller(settings)
    controller.start()
    window = None
    try:
        theme.apply(qapp)
        window = build_window(controller, settings, RecentLogs(), KioskOptions(fullscreen=False, hide_cursor=False))
        qtbot.addWidget(window)
        window.resize(1280, 800)
        window.connect_controller()
        window.show()
        qtbot.waitExposed(window)
        qtbot.waitUntil(lambda: window.status.link.up, timeout=DEADLINE_MS)
        yield window, controller
    finally:
        if window is not None:
            window.close()
        controller.stop()
