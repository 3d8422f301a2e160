"""A whole treatment session on the kiosk, driven by taps, against the real controller: firmware
simulator on a pty (the footswitch), synthetic camera, real encoder, vault and SQLite. Then the
clinician reviews the recording just made."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from appliance import vault
from appliance.ui.bridge import LatestOnly
from appliance.ui.presentation import Screen, describe_camera
from tests.taps import (DEADLINE_MS, kiosk_on_controller, small_appliance, start_button, start_session_by_taps, tap,
                         type_on_keypad)

PASSPHRASE = "clinic-Key9"


@pytest.fixture
def appliance(tmp_path, qtbot, qapp):
    key_dir = tmp_path / "keys"
    vault.keys.generate_recipient(key_dir, PASSPHRASE.encode())
    vault.keys.generate_device(key_dir)
    with kiosk_on_controller(qtbot, qapp, small_appliance(tmp_path / "data", key_dir)) as running:
        yield running


def test_a_session_by_taps_records_on_the_footswitch_and_plays_back(appliance, qtbot):
    window, controller = appliance
    live, banner = window.live_screen, window.banner

    start_session_by_taps(qtbot, window, "PT-0042", "OP7")
    qtbot.waitUntil(lambda: banner.title.text() == "ARMED", timeout=DEADLINE_MS)
    assert window.current_screen is Screen.LIVE
    assert "waiting for footswitch" in banner.detail.text().lower()
    qtbot.waitUntil(lambda: live.pump.frames_shown > 0, timeout=DEADLINE_MS)     # the camera preview
    assert "Subject PT-0042" in live.session.text()

    controller.simulator.press()
    qtbot.waitUntil(lambda: banner.title.text().startswith("● RECORDING"), timeout=DEADLINE_MS)
    qtbot.waitUntil(lambda: live.lamps[0].text.text() == "Footswitch pressed", timeout=DEADLINE_MS)
    qtbot.waitUntil(lambda: banner.title.text().endswith("0:01"), timeout=DEADLINE_MS)   # the clock runs
    controller.simulator.release()
    qtbot.waitUntil(lambda: banner.title.text() == "ARMED" and live.clips.text() == "1", timeout=DEADLINE_MS)

    tap(qtbot, live.end_button)
    tap(qtbot, live.end_button)
    qtbot.waitUntil(lambda: window.current_screen is Screen.START, timeout=DEADLINE_MS)
    assert banner.title.text() == "IDLE"

    camera = describe_camera(window.status.camera)                      # what service mode shows
    assert "(SyntheticCamera) 512x288 @ 15 fps" in camera and " delivered" in camera

    review = window.screens[Screen.REVIEW]
    tap(qtbot, start_button(window, "Review recordings"))
    type_on_keypad(qtbot, review.keypad, PASSPHRASE)
    tap(qtbot, review.unlock_button)
    qtbot.waitUntil(lambda: review.unlocked and review.background.pending == 0, timeout=DEADLINE_MS)   # listed
    items = [review.recordings.item(i) for i in range(review.recordings.count())]
    [clip] = [item for item in items if "sealed" in item.text()]
    qtbot.mouseClick(review.recordings.viewport(), Qt.MouseButton.LeftButton,
                     pos=review.recordings.visualItemRect(clip).center())
    qtbot.waitUntil(lambda: not review.video.pixmap().isNull() and review.seek_bar.maximum() > 1000,
                    timeout=DEADLINE_MS)


def test_a_lost_controller_link_shows_the_error_until_acknowledged_after_it_returns(appliance, qtbot):
    window, controller = appliance
    banner, error = window.banner, window.error_screen
    start_session_by_taps(qtbot, window, "PT-7", "OP7")
    qtbot.waitUntil(lambda: banner.title.text() == "ARMED", timeout=DEADLINE_MS)

    controller.simulator.unplug()
    qtbot.waitUntil(lambda: banner.title.text() == "ERROR", timeout=DEADLINE_MS)
    assert window.current_screen is Screen.ERROR
    assert "treatment controller stopped answering" in error.what_happened.text()
    assert "USB cable" in error.what_to_do.text()
    assert window.live_screen.lamps[3].text.text() == "Controller link lost"
    tap(qtbot, error.acknowledge)                        # still unplugged: refused, and it says why
    qtbot.waitUntil(lambda: "not connected" in error.message.text(), timeout=DEADLINE_MS)
    assert window.current_screen is Screen.ERROR

    controller.simulator.replug()
    qtbot.waitUntil(lambda: window.status.link.up, timeout=DEADLINE_MS)
    tap(qtbot, error.acknowledge)
    qtbot.waitUntil(lambda: window.current_screen is Screen.START, timeout=DEADLINE_MS)
    assert banner.title.text() == "IDLE"


def test_a_closed_window_no_longer_receives_snapshots(appliance, qtbot):
    window, controller = appliance
    received = []
    window.bridge.delivered.connect(received.append)
    window.close()
    probe = LatestOnly()                                # subscribed after the window: delivered after it
    probe_seen = []
    probe.delivered.connect(probe_seen.append)
    unsubscribe = controller.subscribe(probe.publish)
    controller.simulator.interlock(False)               # a change the controller publishes
    qtbot.waitUntil(lambda: any(not status.inputs.interlock_closed for status in probe_seen), timeout=DEADLINE_MS)
    unsubscribe()
    assert received == []
