"""The GUI thread never waits on the database. The kiosk, on the real controller (firmware
simulator, synthetic camera, real SQLite), is driven through review and service while a sealing
commit holds the database's write transaction open; a QTimer heartbeat on the GUI thread records
the longest gap between its ticks, which is how long the screen would have been frozen."""

from __future__ import annotations

import threading
import time

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from appliance import vault
from appliance.ui.app import service_pin_path
from appliance.ui.presentation import Screen
from appliance.ui.service_access import hash_pin
from tests.taps import DEADLINE_MS, kiosk_on_controller, small_appliance, start_button, tap, type_on_keypad

PASSPHRASE = "clinic-Key9"
PIN = "246813"
HEARTBEAT_MS = 5
LONGEST_STALL_MS = 50          # the bound: a frozen frame or two, never a stuck screen


class Heartbeat:
    """A QTimer on the GUI thread; the longest gap between two ticks is the longest stall."""

    def __init__(self) -> None:
        self.timer = QTimer()
        self.timer.setInterval(HEARTBEAT_MS)
        self.timer.timeout.connect(self._tick)
        self.longest_gap_ms = 0.0
        self._last = None

    def _tick(self) -> None:
        now = time.perf_counter()
        if self._last is not None:
            self.longest_gap_ms = max(self.longest_gap_ms, (now - self._last) * 1000)
        self._last = now

    def start(self) -> None:
        self._last = time.perf_counter()
        self.timer.start()

    def stop(self) -> None:
        self.timer.stop()
        self._tick()


def tap_and_run(qtbot, widget):
    """A tap, then the event loop runs (the heartbeat ticks when it is due), as between a user's taps."""
    tap(qtbot, widget)
    QApplication.processEvents()


def hold_the_database(database):
    """Work on the database writer's thread that keeps a write transaction open until released:
    what a sealing commit does to every other write, stretched out. Returns (release, future)."""
    holding, release = threading.Event(), threading.Event()

    def seal(store):
        with store.transaction():
            holding.set()
            release.wait(DEADLINE_MS / 1000 * 4)
    future = database.submit(seal)
    assert holding.wait(DEADLINE_MS / 1000), "the writer did not start the held transaction"
    return release, future


@pytest.fixture
def appliance(tmp_path, qtbot, qapp):
    # The review key with few PBKDF2 rounds: unlocking it is not what this test measures.
    key_dir = tmp_path / "keys"
    key_dir.mkdir()
    key = ec.generate_private_key(ec.SECP256R1())
    (key_dir / vault.keys.RECIPIENT_KEY).write_bytes(vault.pkcs8.encrypt_private_key_pem(key, PASSPHRASE.encode(),
                                                                                        rounds=1000))
    (key_dir / vault.keys.RECIPIENT_PUB).write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    vault.keys.generate_device(key_dir)
    settings = small_appliance(tmp_path / "data", key_dir)
    with kiosk_on_controller(qtbot, qapp, settings) as (window, controller):
        service_pin_path(settings).write_text(hash_pin(PIN, rounds=1000) + "\n")   # read when a PIN is entered
        controller.begin_session("PT-0042", "OP-7")      # a session for review to list
        controller.end_session()
        qtbot.waitUntil(lambda: window.current_screen is Screen.START, timeout=DEADLINE_MS)
        yield window, controller


def idle(screen):
    return screen.background.pending == 0


def test_review_and_service_never_wait_on_a_held_database(appliance, qtbot):
    window, controller = appliance
    review, service = window.screens[Screen.REVIEW], window.screens[Screen.SERVICE]
    qtbot.waitUntil(lambda: idle(service), timeout=DEADLINE_MS)        # the lockout count, read at start
    release, sealing = hold_the_database(controller.database)
    heartbeat = Heartbeat()
    heartbeat.start()
    try:
        tap_and_run(qtbot, start_button(window, "Review recordings"))
        type_on_keypad(qtbot, review.keypad, PASSPHRASE, tap=tap_and_run)
        tap_and_run(qtbot, review.unlock_button)                      # audits the login
        qtbot.waitUntil(lambda: review.unlocked and idle(review), timeout=DEADLINE_MS)
        listed = [review.recordings.item(i).text() for i in range(review.recordings.count())]
        assert any("Subject PT-0042" in text for text in listed), listed
        tap_and_run(qtbot, review.lock_button)
        tap_and_run(qtbot, review.back_button)

        tap_and_run(qtbot, start_button(window, "Service"))
        keys = {button.text(): button for button in service.keypad.keys()}
        for digit in "111111":
            tap_and_run(qtbot, keys[digit])
        tap_and_run(qtbot, service.enter_button)                      # a wrong PIN: audited, counted
        qtbot.waitUntil(lambda: service.message.text() == "Wrong PIN. 4 tries left.", timeout=DEADLINE_MS)
        for digit in PIN:
            tap_and_run(qtbot, keys[digit])
        tap_and_run(qtbot, service.enter_button)
        qtbot.waitUntil(lambda: service.unlocked, timeout=DEADLINE_MS)
        tap_and_run(qtbot, service.section_buttons["Tests and export"])
        tap_and_run(qtbot, service.export_button)                     # reads the trail, waits for its audit entry
        assert service.result.text() == "Working…"                  # off the GUI thread, behind the seal
        assert not sealing.done(), "the database was released before the kiosk was driven"
        heartbeat.stop()
    finally:
        release.set()
    assert heartbeat.longest_gap_ms < LONGEST_STALL_MS, f"the GUI thread stalled {heartbeat.longest_gap_ms:.0f} ms"
    qtbot.waitUntil(lambda: service.result.text().startswith("Exported and verified"), timeout=DEADLINE_MS)
    sealing.result(DEADLINE_MS / 1000)
    controller.database.call(lambda store: None)                        # what the kiosk queued is written
    events = [(entry.event, entry.details.get("role")) for entry in controller.reader.audit_entries()]
    assert events[-4:] == [("login", "review"), ("login_failed", "service"), ("login", "service"), ("export", None)]
