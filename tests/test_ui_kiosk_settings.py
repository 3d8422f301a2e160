"""The [kiosk] settings reach the kiosk: window and cursor (command-line flags override them), the
review auto-lock time, and the review key's path."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from appliance import config, vault
from appliance.cli import build_parser
from appliance.storage.reader import StoreReader
from appliance.storage.writer import DatabaseWriter
from appliance.ui.app import build_window, kiosk_options
from appliance.ui.presentation import Screen
from appliance.ui.service_checks import RecentLogs
from tools.scenes import SceneController

PASSPHRASE = "clinic42"


class RecordsOnly(SceneController):
    """What build_window reads from the controller, without an appliance behind it."""

    def __init__(self, data_dir) -> None:
        super().__init__(None)
        self.database = DatabaseWriter(data_dir).start()
        self.reader = StoreReader(data_dir)

    def stop(self) -> None:
        self.reader.close()
        self.database.close()


@pytest.fixture
def clinic(tmp_path):
    """Recipient public key installed under /etc-like recipients/, its private key on a 'USB stick'."""
    vault.keys.generate_recipient(tmp_path / "usb", PASSPHRASE.encode())
    (tmp_path / "recipients").mkdir()
    (tmp_path / "recipients" / "clinic.pub").write_bytes((tmp_path / "usb" / "recipient.pub").read_bytes())
    return tmp_path


def settings_file(directory, kiosk: str):
    path = directory / "appliance.toml"
    path.write_text(f'[data]\ndir = "data"\n[keys]\nrecipients = ["recipients/clinic.pub"]\n[kiosk]\n{kiosk}')
    return path


def kiosk_flags(*flags: str) -> dict:
    args = build_parser().parse_args(["kiosk", *flags])
    return {"fullscreen": args.fullscreen, "hide_cursor": args.hide_cursor}


def test_the_kiosk_section_sets_window_and_cursor_and_flags_override_it(clinic):
    windowed = config.load(settings_file(clinic, "fullscreen = false\nhide_cursor = false\n"))
    assert kiosk_options(windowed, **kiosk_flags()) == kiosk_options(windowed, fullscreen=False, hide_cursor=False)
    overridden = kiosk_options(windowed, **kiosk_flags("--fullscreen", "--hide-cursor"))
    assert (overridden.fullscreen, overridden.hide_cursor) == (True, True)
    defaults = config.load(settings_file(clinic, ""))
    assert (kiosk_options(defaults, **kiosk_flags()).fullscreen, kiosk_options(defaults).hide_cursor) == (True, True)
    service_laptop = kiosk_options(defaults, **kiosk_flags("--windowed", "--show-cursor"))
    assert (service_laptop.fullscreen, service_laptop.hide_cursor) == (False, False)


def test_contradicting_flags_are_a_usage_error():
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["kiosk", "--windowed", "--fullscreen"])
    assert exited.value.code == 2


def test_the_configured_kiosk_window_review_key_and_auto_lock_time_are_used(qtbot, qapp, clinic):
    settings = config.load(settings_file(clinic, "fullscreen = false\nhide_cursor = false\n"
                                                 'review_autolock_s = 0.5\nidentity = "usb/recipient.key"\n'))
    controller = RecordsOnly(settings.data.dir)
    window = build_window(controller, settings, RecentLogs(), kiosk_options(settings))
    qtbot.addWidget(window)
    window.resize(1280, 800)
    window.present()
    assert not window.isFullScreen() and window.cursor().shape() != Qt.CursorShape.BlankCursor
    review = window.screens[Screen.REVIEW]
    window.open_screen(Screen.REVIEW)
    for key in PASSPHRASE:
        review.keypad.press(key)
    qtbot.mouseClick(review.unlock_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: review.unlocked, timeout=15000)   # the key beside clinic.pub does not exist
    assert review.auto_lock.interval() == 500
    qtbot.waitUntil(lambda: not review.unlocked, timeout=5000)
    review.lock()
    qtbot.waitUntil(lambda: review.background.pending == 0)
    controller.stop()
