"""The archive backlog on the kiosk (real Qt, offscreen; real SQLite): the start screen warns
once the oldest unarchived recording is older than [archive] warn_after_hours, the service
screen shows the backlog, and both clear when the archive confirmed the copy."""

from __future__ import annotations

import time

import pytest

from appliance import config
from appliance.storage.database import ArchivedRecording, Store
from appliance.ui import theme
from appliance.ui.app import build_window
from appliance.ui.archive_watch import ArchiveWatch
from appliance.ui.presentation import Screen
from appliance.ui.service import ARCHIVE_NOT_CONFIGURED
from appliance.ui.service_access import write_pin
from appliance.ui.service_checks import RecentLogs
from appliance.ui.window import KioskOptions
from tests.test_ui_service import PIN, Records, enter_pin
from tools.scenes import SceneController, settle

HOUR = 3600.0


def sealed_hours_ago(data_dir, hours: float) -> str:
    store = Store(data_dir, clock=lambda: time.time() - hours * HOUR)
    try:
        session = store.open_session("PAT-0042", "TECH-1")
        recording = store.start_recording(session.uid)
        recording.path.write_bytes(b"v" * 2_000_000)
        return store.seal_recording(recording.uid, bytes=2_000_000, duration_s=1.0, frames=30, dropped=0,
                                    sha256="ab" * 32, manifest=None).uid
    finally:
        store.close()


def mark_archived(data_dir, uid: str) -> None:
    store = Store(data_dir)     # the archive process's own connection
    try:
        recording = store.recording(uid)
        store.mark_archived(ArchivedRecording(uid, f"d/{recording.session_uid}/{uid}.mp4.vault", "1",
                                              f"d/{recording.session_uid}/{uid}.mp4.vault.manifest", "2",
                                              2_000_000, "cd" * 32, time.time() + 10 * 86_400, time.time()))
    finally:
        store.close()


@pytest.fixture
def kiosk(qtbot, qapp, tmp_path):
    """Builds the kiosk window as `appliance kiosk` does, with the given [archive] lines."""
    theme.apply(qapp)
    opened = []

    def make(archive_lines: str):
        path = tmp_path / "appliance.toml"
        path.write_text(f'[data]\ndir = "data"\n{archive_lines}')
        settings = config.load(path)
        records = Records(settings.data.dir)
        opened.append(records)
        write_pin(settings.data.dir / "service-pin", PIN)
        controller = SceneController(None)
        controller.reader, controller.database = records.reader, records.database
        window = build_window(controller, settings, RecentLogs(), KioskOptions(fullscreen=False, hide_cursor=False))
        qtbot.addWidget(window)
        window.resize(1280, 800)
        window.show()
        qtbot.waitExposed(window)
        settle(window)
        return window, window.findChild(ArchiveWatch)
    Store(tmp_path / "data").close()
    yield make, tmp_path / "data"
    for records in opened:
        records.close()


ARCHIVE = '[archive]\nendpoint = "https://s3.clinic.example"\nbucket = "rec"\nwarn_after_hours = 24\n'


def test_an_overdue_recording_warns_on_the_start_screen_until_it_is_archived(qtbot, kiosk):
    make, data_dir = kiosk
    uid = sealed_hours_ago(data_dir, 30)
    window, watch = make(ARCHIVE)
    warning = window.start_screen.archive_warning
    qtbot.waitUntil(warning.isVisible, timeout=20_000)
    assert window.current_screen is Screen.START
    assert warning.text().startswith("⚠ Archive: 1 recording (0.00 GB) not archived yet, the oldest for 30 h")
    assert "PAT-0042" not in warning.text()
    enter_pin(qtbot, window, window.screens[Screen.SERVICE], PIN)
    service = window.screens[Screen.SERVICE]
    assert service.archive.text() == "1 recording (0.00 GB) not archived yet, the oldest for 30 h"
    assert service.archive.property("role") == "message"
    mark_archived(data_dir, uid)
    watch.refresh()
    qtbot.waitUntil(lambda: not warning.isVisibleTo(window.start_screen), timeout=20_000)
    qtbot.waitUntil(lambda: service.archive.text() == "every finished recording is archived", timeout=20_000)


def test_a_recent_recording_is_shown_on_the_service_screen_without_a_start_screen_warning(qtbot, kiosk):
    make, data_dir = kiosk
    sealed_hours_ago(data_dir, 2)
    window, watch = make(ARCHIVE)
    service = window.screens[Screen.SERVICE]
    qtbot.waitUntil(lambda: "1 recording" in service.archive.text(), timeout=20_000)
    assert not window.start_screen.archive_warning.isVisibleTo(window.start_screen)
    assert service.archive.property("role") == "value"


def test_without_an_archive_the_service_screen_says_the_only_copy_is_here(qtbot, kiosk):
    make, data_dir = kiosk
    sealed_hours_ago(data_dir, 300)
    window, watch = make("")
    assert watch is None
    assert not window.start_screen.archive_warning.isVisibleTo(window.start_screen)
    assert window.screens[Screen.SERVICE].archive.text() == ARCHIVE_NOT_CONFIGURED


def test_review_lists_a_reclaimed_recording_as_in_the_archive_and_does_not_offer_to_play_it(tmp_path):
    from appliance.storage.reader import StoreReader
    from appliance.ui.review_listing import recording_rows

    data_dir = tmp_path / "data"
    kept, freed = sealed_hours_ago(data_dir, 1000), sealed_hours_ago(data_dir, 900)
    for uid in (kept, freed):
        mark_archived(data_dir, uid)
    store = Store(data_dir)
    try:
        store.recording(freed).path.unlink()
        store.mark_reclaimed(freed, 2_000_000)
    finally:
        store.close()
    reader = StoreReader(data_dir)
    try:
        rows = {row.uid: row for _, session_rows in recording_rows(reader) for row in session_rows}
    finally:
        reader.close()
    assert rows[kept].playable and "sealed" in rows[kept].label
    assert not rows[freed].playable and "in the clinic archive only" in rows[freed].label
