"""Review under pytest-qt: unlock on the keypad, list sealed and interrupted recordings, play one
decrypted in memory (real H.264 fMP4 in a real vault), seek, auto-lock, audit trail."""

from __future__ import annotations

import sys

import pytest
from PySide6.QtCore import Qt

from appliance import vault
from appliance.storage.database import Store
from appliance.storage.reader import StoreReader
from appliance.ui.presentation import Screen
from appliance.ui.review_listing import recording_rows
from tests import clips, reviewing
from tests.clips import FPS
from tests.reviewing import assert_fits_with_touch_targets, play, review_kiosk, wait_listed
from tests.taps import tap

PASSPHRASE = "clinic-Key9"


def write_clip(destination, frames: int, **options):
    return clips.write_clip(destination, KEYS["public"], frames, **options)


KEYS: dict = {}


@pytest.fixture(scope="module")
def clinic(tmp_path_factory):
    """A data directory with one session: a sealed 4 s clip and an interrupted one."""
    root = tmp_path_factory.mktemp("clinic")
    vault.keys.generate_recipient(root / "keys", PASSPHRASE.encode())
    vault.keys.generate_device(root / "device")
    recipient_key = root / "keys" / "recipient.key"
    KEYS["public"] = vault.keys.load_recipient_public(root / "keys" / "recipient.pub")
    device_key = vault.keys.load_device_key(root / "device" / "device.key")
    store = Store(root / "data")
    session = store.open_session("PT-0042", "OP-7")
    sealed_row = store.start_recording(session.uid)
    with open(sealed_row.path, "wb") as destination:
        sealed = write_clip(destination, 4 * FPS)
    store.seal_recording(sealed_row.uid, bytes=sealed.ciphertext_length, duration_s=4.0, frames=4 * FPS,
                         dropped=0, sha256=sealed.file_digest, manifest={"state": "sealed"})
    torn_row = store.start_recording(session.uid)
    with open(torn_row.path, "wb") as destination:
        # Three GOPs: the muxer still holds the third, the power cut tears the second, the first plays.
        write_clip(destination, 3 * FPS, noisy=True, seal=False)
    vault.mark_interrupted(torn_row.path, device_key)
    store.interrupt_recording(torn_row.uid, reason="power loss", bytes=torn_row.path.stat().st_size,
                              sha256=vault.file_digest(torn_row.path).file_digest)
    tampered_row = store.start_recording(session.uid)
    with open(tampered_row.path, "wb") as destination:
        tampered = write_clip(destination, FPS)
    store.seal_recording(tampered_row.uid, bytes=tampered.ciphertext_length, duration_s=1.0, frames=FPS,
                         dropped=0, sha256=tampered.file_digest, manifest={"state": "sealed"})
    body = bytearray(tampered_row.path.read_bytes())
    body[len(body) // 2] ^= 0x20                        # someone edits the file on disk
    tampered_row.path.write_bytes(bytes(body))
    (store.sessions_dir / "0123456789abcdef").mkdir()   # a session directory whose row never committed
    store.close_session(session.uid)
    store.close()
    yield root / "data", recipient_key


@pytest.fixture
def review(qtbot, qapp, clinic):
    yield from review_kiosk(qtbot, qapp, *clinic)


def unlock(qtbot, window, screen, passphrase=PASSPHRASE):
    reviewing.unlock(qtbot, window, screen, passphrase)


def test_listing_marks_interrupted_recordings(clinic):
    reader = StoreReader(clinic[0])
    [(heading, rows)] = recording_rows(reader)
    reader.close()
    assert "PT-0042" in heading and "OP-7" in heading and heading.endswith("3 clips, 1 interrupted")
    assert [row.interrupted for row in rows] == [False, True, False]
    assert "0:04 · sealed" in rows[0].label and "INTERRUPTED" in rows[1].label


def test_a_wrong_passphrase_is_refused_and_audited(qtbot, review):
    window, screen, store = review
    before = len(store.audit_events())
    unlock(qtbot, window, screen, "not-the-key")
    qtbot.waitUntil(lambda: screen.message.text() == "Wrong passphrase. Try again.", timeout=10000)
    assert not screen.unlocked and screen.pages.currentIndex() == 0
    assert screen.passphrase.text() == ""
    assert_fits_with_touch_targets(window)
    assert store.audit_events()[before:] == ["login_failed"]


def test_unlock_play_seek_and_lock(qtbot, review):
    window, screen, store = review
    unlock(qtbot, window, screen)
    wait_listed(qtbot, screen)
    items = [screen.recordings.item(i) for i in range(screen.recordings.count())]
    texts = [item.text() for item in items]
    assert any("INTERRUPTED" in text for text in texts)
    sealed_item = next(item for item in items if "0:04 · sealed" in item.text())
    screen.recordings.scrollToItem(sealed_item)
    rect = screen.recordings.visualItemRect(sealed_item)
    qtbot.mouseClick(screen.recordings.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    qtbot.waitUntil(lambda: screen.seek_bar.isEnabled() and not screen.video.pixmap().isNull(), timeout=10000)
    assert screen.seek_bar.maximum() == 4000
    assert_fits_with_touch_targets(window)
    tap(qtbot, screen.play_button)                      # pause, then seek to 3 s with the bar
    assert screen.play_button.text() == "Play"
    screen.seek_bar.setSliderDown(True)
    screen.seek_bar.setValue(3000)
    screen.seek_bar.setSliderDown(False)               # released: the player seeks
    qtbot.waitUntil(lambda: screen.position.text().startswith("0:03"), timeout=10000)
    assert abs(screen.seek_bar.value() - 3000) <= 1000 / FPS + 1
    assert store.audit_events()[-2:] == ["login", "key_used"]
    tap(qtbot, screen.lock_button)
    assert not screen.unlocked and screen.pages.currentIndex() == 0 and screen.recordings.count() == 0
    assert not screen.player.active


def test_an_interrupted_recording_plays_to_where_it_stopped(qtbot, review):
    window, screen, _ = review
    unlock(qtbot, window, screen)
    wait_listed(qtbot, screen)
    items = [screen.recordings.item(i) for i in range(screen.recordings.count())]
    torn = next(item for item in items if "INTERRUPTED" in item.text())
    rect = screen.recordings.visualItemRect(torn)
    qtbot.mouseClick(screen.recordings.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert "INTERRUPTED" in screen.notice.text()
    qtbot.waitUntil(lambda: screen.play_button.text() == "Play", timeout=10000)   # played to its end
    assert not screen.video.pixmap().isNull()
    assert "Cannot play" not in screen.video.text()


def test_inactivity_locks_and_forgets_the_key(qtbot, review):
    window, screen, _ = review
    screen.auto_lock.setInterval(300)
    unlock(qtbot, window, screen)
    qtbot.waitUntil(lambda: screen.unlocked, timeout=10000)
    qtbot.waitUntil(lambda: not screen.unlocked, timeout=5000)
    assert screen.pages.currentIndex() == 0 and screen.recordings.count() == 0


def test_leaving_the_screen_locks_it(qtbot, review):
    window, screen, _ = review
    unlock(qtbot, window, screen)
    wait_listed(qtbot, screen)
    window.open_screen(Screen.START)
    assert not screen.unlocked


def test_a_modified_recording_is_refused_with_the_reason(qtbot, review):
    window, screen, _ = review
    unlock(qtbot, window, screen)
    wait_listed(qtbot, screen)
    items = [screen.recordings.item(i) for i in range(screen.recordings.count())]
    modified = next(item for item in items if "0:01 · sealed" in item.text())
    qtbot.mouseClick(screen.recordings.viewport(), Qt.MouseButton.LeftButton,
                     pos=screen.recordings.visualItemRect(modified).center())
    qtbot.waitUntil(lambda: screen.video.text().startswith("Cannot play this recording"), timeout=10000)
    assert "modified" in screen.video.text()
    assert not screen.seek_bar.isEnabled() and not screen.play_button.isEnabled()


def test_sessions_are_listed_from_the_database_newest_first_not_from_folders(tmp_path):
    store = Store(tmp_path / "data")
    older = store.open_session("PT-0001", "OP-1")
    store.close_session(older.uid)
    newer = store.open_session("PT-0002", "OP-2")
    store.close_session(newer.uid)
    newer.dir.rmdir()                                   # its folder is gone: the session still happened
    (store.sessions_dir / "0123456789abcdef").mkdir()   # a folder without a session row: not a session
    store.close()
    reader = StoreReader(tmp_path / "data")
    headings = [heading for heading, _ in recording_rows(reader)]
    reader.close()
    assert len(headings) == 2
    assert "PT-0002" in headings[0] and headings[0].endswith("no clips") and "PT-0001" in headings[1]


def test_watching_a_recording_is_activity_and_inactivity_after_it_locks_and_drops_the_key(qtbot, review):
    window, screen, _ = review
    screen.auto_lock.setInterval(300)                   # far shorter than the 4 s recording
    unlock(qtbot, window, screen)
    wait_listed(qtbot, screen)
    identity = screen._identity
    unlocked_at_the_end = []
    screen.player.stopped.connect(lambda stopped: unlocked_at_the_end.append((stopped.reason, screen.unlocked)))
    play(qtbot, screen, "0:04 · sealed")                # then no tap at all
    qtbot.waitUntil(lambda: len(unlocked_at_the_end) > 0, timeout=15000)
    assert unlocked_at_the_end == [("end", True)]
    assert screen.position.text().startswith("0:03") or screen.position.text().startswith("0:04")
    qtbot.waitUntil(lambda: not screen.unlocked, timeout=5000)   # idle after the end: locked
    assert screen.pages.currentIndex() == 0 and not screen.player.active
    assert sys.getrefcount(identity) == 2               # only this test still holds the key


def test_pausing_playback_lets_the_inactivity_lock_run(qtbot, review):
    window, screen, _ = review
    screen.auto_lock.setInterval(300)
    unlock(qtbot, window, screen)
    wait_listed(qtbot, screen)
    play(qtbot, screen, "0:04 · sealed")
    qtbot.waitUntil(lambda: screen.play_button.isEnabled(), timeout=10000)
    tap(qtbot, screen.play_button)                      # pause
    assert screen.play_button.text() == "Play"
    qtbot.waitUntil(lambda: not screen.unlocked, timeout=5000)
    assert screen.pages.currentIndex() == 0 and not screen.player.active
