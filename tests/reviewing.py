"""Driving the review screen as a clinician does, for the review tests: the kiosk window with
the review screen on a data directory, unlocking on the keypad, tapping a recording."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractButton

from appliance.storage.reader import StoreReader
from appliance.storage.writer import DatabaseWriter
from appliance.ui import theme
from appliance.ui.presentation import Screen
from appliance.ui.review import ReviewScreen
from appliance.ui.window import KioskOptions, KioskWindow
from tests.taps import start_button, tap, type_on_keypad
from tools.scenes import SceneController


class Records:
    """The clinic's records as the kiosk has them: a reader, and the one writer for audit entries."""

    def __init__(self, data_dir):
        self.database = DatabaseWriter(data_dir).start()
        self.reader = StoreReader(data_dir)

    def audit_events(self) -> list[str]:
        self.database.call(lambda store: None)         # every audit entry submitted so far is written
        return [entry.event for entry in self.reader.audit_entries()]

    def close(self):
        self.reader.close()
        self.database.close()


def review_kiosk(qtbot, qapp, data_dir, identity_path):
    """Yields (window, review screen, Records); the body of a test's `review` fixture."""
    theme.apply(qapp)
    store = Records(data_dir)
    window = KioskWindow(SceneController(None), KioskOptions(fullscreen=False, hide_cursor=False))
    screen = ReviewScreen(store.reader, store.database, identity_path)
    window.add_screen(Screen.REVIEW, screen, "Review recordings")
    qtbot.addWidget(window)
    window.resize(1280, 800)
    window.show()
    qtbot.waitExposed(window)
    yield window, screen, store
    screen.lock()
    qtbot.waitUntil(lambda: screen.background.pending == 0)
    store.close()


def open_review(qtbot, window):
    tap(qtbot, start_button(window, "Review recordings"))
    assert window.current_screen is Screen.REVIEW


def unlock(qtbot, window, screen, passphrase):
    open_review(qtbot, window)
    type_on_keypad(qtbot, screen.keypad, passphrase)
    assert screen.passphrase.text() == passphrase
    tap(qtbot, screen.unlock_button)


def wait_listed(qtbot, screen):
    """Unlocked, and the recordings read (off the GUI thread) and listed."""
    qtbot.waitUntil(lambda: screen.unlocked and screen.background.pending == 0, timeout=10000)


def play(qtbot, screen, label):
    items = [screen.recordings.item(i) for i in range(screen.recordings.count())]
    item = next(item for item in items if label in item.text())
    screen.recordings.scrollToItem(item)
    qtbot.mouseClick(screen.recordings.viewport(), Qt.MouseButton.LeftButton,
                     pos=screen.recordings.visualItemRect(item).center())


def assert_fits_with_touch_targets(window):
    assert window.minimumSizeHint().width() <= 1280 and window.minimumSizeHint().height() <= 800
    assert (window.width(), window.height()) == (1280, 800)
    for button in window.findChildren(QAbstractButton):
        if button.isVisible():
            assert button.height() >= 48 and button.width() >= 48, button.text()
