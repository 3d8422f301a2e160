"""Service diagnostics under pytest-qt: PIN with lockout derived from the audit trail, status
figures, trigger test, encryption self-test, write speed, verified export, state diagram."""

from __future__ import annotations

import json
import logging
import sqlite3
from dataclasses import replace

import pytest
from PySide6.QtWidgets import QAbstractButton

from appliance.status import CameraView, Inputs, LinkView
from appliance.storage.audit import AuditEntry
from appliance.storage.database import Store
from appliance.storage.reader import StoreReader
from appliance.storage.writer import DatabaseWriter
from appliance.ui import theme
from appliance.ui.presentation import Screen
from appliance.ui.service import ServiceContext, ServiceScreen
from appliance.ui.service_checks import RecentLogs, encryption_self_test, export_diagnostics, write_speed
from appliance.ui.service_access import (LOCKOUT_S, MAX_WRONG_PINS, hash_pin, lockout_from, pin_matches, read_pin,
                                         write_pin)
from appliance.ui.window import KioskOptions, KioskWindow
from tests.taps import start_button, tap
from tools.scenes import ARMED, IDLE, SceneController, settle

PIN = "246813"


def entry(event, at, role="service"):
    return AuditEntry(0, at, event, "service", {"role": role}, "", "")


def test_pin_hash_round_trip_and_refusals(tmp_path):
    record = hash_pin(PIN, rounds=1000)
    assert pin_matches(PIN, record) and not pin_matches("246814", record)
    assert PIN not in record
    assert not pin_matches(PIN, "garbage") and not pin_matches(PIN, "md5$1$00$00")
    with pytest.raises(Exception, match="at least 6 digits"):
        hash_pin("12a456")
    write_pin(tmp_path / "pin", PIN)
    assert (tmp_path / "pin").stat().st_mode & 0o777 == 0o600
    assert pin_matches(PIN, read_pin(tmp_path / "pin"))
    assert read_pin(tmp_path / "absent") is None


def test_five_wrong_pins_lock_for_a_while_then_count_afresh():
    wrong = [entry("login_failed", 100.0 + i) for i in range(MAX_WRONG_PINS - 1)]
    assert not lockout_from(wrong, 110).locked(110) and lockout_from(wrong, 110).tries_left() == 1
    wrong.append(entry("login_failed", 110.0))
    assert lockout_from(wrong, 111).locked(111)
    assert lockout_from(wrong, 110 + LOCKOUT_S - 1).locked(110 + LOCKOUT_S - 1)
    after = 110 + LOCKOUT_S
    assert not lockout_from(wrong, after).locked(after) and lockout_from(wrong, after).tries_left() == MAX_WRONG_PINS
    again = wrong + [entry("login_failed", after + 1)]
    assert lockout_from(again, after + 2).tries_left() == MAX_WRONG_PINS - 1
    assert lockout_from(wrong[:3] + [entry("login", 105)], 106).tries_left() == MAX_WRONG_PINS
    assert lockout_from([entry("login_failed", 100 + i, role="review") for i in range(9)], 110).tries_left() == 5


class Records:
    """The records as the kiosk has them: a reader, and the one writer for audit entries."""

    def __init__(self, data_dir):
        self.database = DatabaseWriter(data_dir).start()
        self.reader = StoreReader(data_dir)

    def audit_entries(self):
        self.database.call(lambda store: None)         # every audit entry submitted so far is written
        return self.reader.audit_entries()

    def close(self):
        self.reader.close()
        self.database.close()


@pytest.fixture
def service(qtbot, qapp, tmp_path):
    theme.apply(qapp)
    store = Records(tmp_path / "data")
    write_pin(tmp_path / "data" / "service-pin", PIN)
    logs = RecentLogs()
    logs.lines.append("2026-01-01 kiosk INFO appliance: started")
    context = ServiceContext(store.reader, store.database, tmp_path / "data", tmp_path / "data" / "service-pin",
                             logs, lambda: [tmp_path / "usb"])

    def make():
        window = KioskWindow(SceneController(None), KioskOptions(fullscreen=False, hide_cursor=False))
        screen = ServiceScreen(context)
        window.add_screen(Screen.SERVICE, screen, "Service")
        qtbot.addWidget(window)
        window.resize(1280, 800)
        window.show()
        qtbot.waitExposed(window)
        settle(window)                  # the count of wrong PINs is read off the GUI thread
        return window, screen
    yield make, store, tmp_path
    store.close()


def enter_pin(qtbot, window, screen, pin):
    if window.current_screen is not Screen.SERVICE:
        tap(qtbot, start_button(window, "Service"))
    keys = {button.text(): button for button in screen.keypad.keys()}
    for digit in pin:
        tap(qtbot, keys[digit])
    tap(qtbot, screen.enter_button)
    settle(window)                      # the PIN is checked off the GUI thread


def test_the_pin_locks_out_after_five_wrong_tries_even_across_restarts(qtbot, service):
    make, store, _ = service
    window, screen = make()
    for attempt in range(1, MAX_WRONG_PINS):
        enter_pin(qtbot, window, screen, "111111")
        assert screen.message.text() == f"Wrong PIN. {MAX_WRONG_PINS - attempt} tries left."
    enter_pin(qtbot, window, screen, "111111")
    assert "locked for 5 min" in screen.message.text()
    assert window.minimumSizeHint().width() <= 1280 and window.minimumSizeHint().height() <= 800
    assert not screen.enter_button.isEnabled() and not screen.unlocked
    failures = [e for e in store.audit_entries() if e.event == "login_failed"]
    assert len(failures) == MAX_WRONG_PINS and all(e.details == {"role": "service"} for e in failures)
    restarted, screen_after = make()                    # a restart does not reset the count
    tap(qtbot, start_button(restarted, "Service"))
    assert not screen_after.enter_button.isEnabled() and "locked" in screen_after.message.text()


def test_an_empty_pin_is_not_counted_as_a_wrong_one(qtbot, service):
    make, store, _ = service
    window, screen = make()
    enter_pin(qtbot, window, screen, "")
    assert screen.message.text() == "Enter the service PIN."
    assert not [e for e in store.audit_entries() if e.event == "login_failed"]


def test_without_a_pin_file_service_mode_says_how_to_set_one(qtbot, service):
    make, _, tmp_path = service
    (tmp_path / "data" / "service-pin").unlink()
    window, screen = make()
    enter_pin(qtbot, window, screen, PIN)
    assert "--set-service-pin" in screen.message.text() and not screen.unlocked


def test_diagnostics_show_figures_run_tests_and_export(qtbot, service):
    make, store, tmp_path = service
    window, screen = make()
    enter_pin(qtbot, window, screen, PIN)
    assert screen.unlocked
    assert store.audit_entries()[-1].event == "login"
    assert window.minimumSizeHint().width() <= 1280 and window.minimumSizeHint().height() <= 800
    assert all(b.height() >= 48 and b.width() >= 48 for b in window.findChildren(QAbstractButton) if b.isVisible())
    window.show_status(replace(IDLE, camera_fps=29.9, dropped_frames=2,
                          link=LinkView(up=True, firmware_version="1.0.3", frames=812, crc_errors=1, resyncs=0,
                                        round_trip_ms=1.4),
                          camera=CameraView("synthetic", "SyntheticCamera", 1920, 1200, 30.0, delivered=812)))
    assert "29.9 fps, 2 dropped" in screen.camera.text() and "1920x1200" in screen.camera.text()
    assert "firmware 1.0.3" in screen.link.text() and "1 CRC errors" in screen.link.text()
    assert "GB free" in screen.disk.text()

    tap(qtbot, screen.section_buttons["Tests and export"])
    tap(qtbot, screen.trigger_button)
    assert "press the footswitch" in screen.result.text()
    window.show_status(replace(IDLE, inputs=Inputs(footswitch_pressed=True)))
    assert "release" in screen.result.text()
    window.show_status(IDLE)
    assert screen.result.text().startswith("Trigger test passed")

    tap(qtbot, screen.self_test_button)
    qtbot.waitUntil(lambda: screen.result.text().startswith("Encryption self-test passed"), timeout=10000)

    tap(qtbot, screen.export_button)
    qtbot.waitUntil(lambda: screen.result.text().startswith("Exported and verified"), timeout=10000)
    exported = sorted(p.name for p in (tmp_path / "usb").iterdir())
    assert [name.split("-")[0] for name in exported] == ["audit", "kiosk"]
    audit_lines = (tmp_path / "usb" / exported[0]).read_text().splitlines()
    assert [json.loads(line)["event"] for line in audit_lines][-1] == "login"
    assert store.audit_entries()[-1].event == "export"

    tap(qtbot, screen.section_buttons["Recent logs"])
    assert "appliance: started" in screen.log_view.text()
    window.show_status(replace(IDLE))
    tap(qtbot, screen.section_buttons["State diagram"])
    assert "▶ idle → armed : begin_session" in screen.diagram.text()
    tap(qtbot, screen.exit_button)
    assert window.current_screen is Screen.START and not screen.unlocked


def test_a_session_starting_takes_the_screen_and_locks_service(qtbot, service):
    make, _, _ = service
    window, screen = make()
    enter_pin(qtbot, window, screen, PIN)
    window.show_status(ARMED)
    assert window.current_screen is Screen.LIVE and not screen.unlocked


def test_write_speed_reports_and_cleans_up(tmp_path):
    assert "MB/s" in write_speed(tmp_path, size=2 * 1024 * 1024)
    assert list(tmp_path.iterdir()) == []


def test_self_test_passes_on_this_vault():
    assert "tamper detection" in encryption_self_test()


def test_export_carries_the_logs_and_reports_a_broken_audit_chain(tmp_path):
    store = Store(tmp_path / "data")
    store.audit("login", "service", role="service")
    store.audit("login_failed", "service", role="service")
    store.close()
    records = Records(tmp_path / "data")
    logs = RecentLogs()
    logger = logging.getLogger("test-ui-service")
    logger.addHandler(logs)
    logger.warning("disk slow")
    logger.removeHandler(logs)
    assert "audit chain intact" in export_diagnostics(records.reader, records.database, logs, tmp_path / "out")
    assert "disk slow" in next((tmp_path / "out").glob("kiosk-log-*.txt")).read_text()
    assert records.audit_entries()[-1].event == "export"
    with sqlite3.connect(store.path) as db:              # someone edits the trail behind the app's back
        db.execute("DROP TRIGGER audit_is_append_only_update")
        db.execute("UPDATE audit SET actor = 'nobody' WHERE seq = 1")
    assert "AUDIT CHAIN BROKEN" in export_diagnostics(records.reader, records.database, logs, tmp_path / "out2")
    records.close()
