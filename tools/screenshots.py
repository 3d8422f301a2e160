"""`appliance kiosk --screenshots DIR`: every screen and state rendered offscreen to PNG, from
status snapshots, for the docs and for review. The same widgets as the kiosk draw them."""

from __future__ import annotations

import itertools
import os
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from appliance.controller import FAULTS, make_fault
from appliance.errors import BadInput
from appliance.status import ApplianceStatus, Inputs, LinkView, SessionView
from appliance.ui.presentation import Screen

SIZES = {"1280x800": (1280, 800), "1920x1080": (1920, 1080)}

# What the scenes show must not depend on when or where they are rendered, so the PNGs in docs/
# change only when the screens do: a fixed wall clock (08:14 local time, whatever the time zone)
# for the example records and the service lockout, a fixed free space and self-test duration.
EXAMPLE_NOW = time.mktime((2026, 11, 24, 8, 14, 40, 0, 0, -1))
EXAMPLE_FREE_BYTES = 412_300_000_000
EXAMPLE_SELF_TEST_STEP_S = 0.018      # each reading of the self-test's clock advances this much

# One example per fault kind the controller reports, in the controller's own words.
EXAMPLE_REASONS = {
    "camera_lost": "no frame for 2 s",
    "link_lost": "no heartbeat for 500 ms",
    "controller_fault": "edge queue overflow",
    "storage_critical": "4 min of recording time left",
    "storage_error": "No space left on device",
    "encoder_failure": "libx264 refused a frame",
    "key_missing": "recipient.pub not found",
}
EXAMPLE_FAULTS = tuple(make_fault(kind, EXAMPLE_REASONS.get(kind, "example")) for kind in FAULTS)


def example_preview(width: int = 640, height: int = 400) -> np.ndarray:
    """A recognisable test picture (BGR): gradient, a grid and a bright target."""
    y, x = np.mgrid[0:height, 0:width]
    image = np.zeros((height, width, 3), np.uint8)
    image[..., 0] = (x * 200 // width).astype(np.uint8) + 30
    image[..., 1] = (y * 120 // height).astype(np.uint8) + 40
    image[..., 2] = 60
    image[(x % 80 < 2) | (y % 80 < 2)] = (90, 90, 90)
    ring = np.hypot(x - width / 2, y - height / 2)
    image[(ring > 60) & (ring < 70)] = (40, 220, 255)
    image[ring < 12] = (255, 255, 255)
    return image


class SceneController:
    """Stands in for the appliance while screenshots are drawn: it serves one preview picture
    and refuses the verbs, since nothing is recorded when rendering documentation."""

    def __init__(self, preview: np.ndarray | None) -> None:
        self.preview = preview

    def latest_preview(self) -> np.ndarray | None:
        return self.preview

    def subscribe(self, callback) -> None:
        raise BadInput("the screenshot renderer has no appliance to subscribe to")

    def begin_session(self, subject_id: str, operator_id: str) -> None:
        raise BadInput("screenshots cannot open a session")

    def end_session(self) -> None:
        raise BadInput("screenshots cannot end a session")

    def acknowledge(self) -> None:
        raise BadInput("screenshots cannot acknowledge a fault")


SESSION = SessionView("5f1c2a", "PT-0042", "OP-7", opened_at=EXAMPLE_NOW, clip_count=3)
LINK_UP = LinkView(up=True, firmware_version="1.0.0", frames=1840, round_trip_ms=2.1)
IDLE = ApplianceStatus(state="Idle", link=LINK_UP, inputs=Inputs(interlock_closed=True),
                       storage_seconds_left=6 * 3600 + 20 * 60, camera_fps=30.0)
ARMED = replace(IDLE, state="Armed", session=SESSION)
RECORDING = replace(ARMED, state="Recording", recording_elapsed_s=83.0,
                    inputs=Inputs(footswitch_pressed=True, interlock_closed=True, laser_on=True))
SERVICE_STATUS = replace(IDLE, camera_fps=29.97, dropped_frames=0,
                         link=replace(LINK_UP, frames=48_211, crc_errors=2, resyncs=1, round_trip_ms=1.8))
EXAMPLE_CAMERA = ("vimba (VimbaCamera) 1920x1200 @ 30 fps\n"
                  "driver: 48211 delivered, 0 incomplete, 0 dropped at the queue")
EXAMPLE_LOG_LINES = (
    "2026-11-24 08:00:02 INFO appliance.controller: appliance started, version 0.1.0",
    "2026-11-24 08:00:02 INFO appliance.controller: controller link up, firmware 1.0.0",
    "2026-11-24 08:14:40 INFO appliance.controller: session 5f1c2a armed",
    "2026-11-24 08:15:02 INFO appliance.controller: recording 9b3e sealed: 1050 frames, 0 dropped",
    "2026-11-24 08:31:17 WARNING firmware_bridge.link: 2 CRC errors in the last minute",
)


@dataclass(frozen=True)
class Scene:
    name: str
    status: ApplianceStatus
    prepare: Callable | None = None   # prepare(window): taps that lead to the screen
    size: str = "1280x800"


def _type_into(window, subject: str, operator: str) -> None:
    entry = window.entry_screen
    window.open_screen(Screen.SESSION_ENTRY)
    entry.keypad.attach(entry.subject)
    for key in subject:
        entry.keypad.press(key)
    entry.keypad.attach(entry.operator)
    for key in operator:
        entry.keypad.press(key)


def _entry_typing(window) -> None:
    _type_into(window, "PT-0042", "OP")


def _entry_invalid(window) -> None:
    _type_into(window, "PT-0042-", "OP-7")
    window.entry_screen.continue_button.click()


def _entry_confirm(window) -> None:
    _type_into(window, "PT-0042", "OP-7")
    window.entry_screen.continue_button.click()


def _review_locked(window) -> None:
    window.open_screen(Screen.REVIEW)
    review = window.screens[Screen.REVIEW]
    for key in "clinic":
        review.keypad.press(key)


def _review_wrong_passphrase(window) -> None:
    window.open_screen(Screen.REVIEW)
    window.screens[Screen.REVIEW]._unlock_finished(("refused", "wrong passphrase for recipient.key"))


def _review_playing(window) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    from appliance.ui.live_view import image_from_bgr
    from appliance.ui.player import Opened, Shown

    window.open_screen(Screen.REVIEW)
    review = window.screens[Screen.REVIEW]
    review._unlock_finished(("ok", ec.generate_private_key(ec.SECP256R1())))   # a throwaway key
    review._opened(Opened(duration_s=42.0, finalized=True))
    review._show_frame(Shown(image_from_bgr(example_preview(480, 300)), 17.0))
    review.recordings.setCurrentRow(1)


def _service_pin(window) -> None:
    window.open_screen(Screen.SERVICE)
    for key in "1234":
        window.screens[Screen.SERVICE].keypad.press(key)


def _service_locked_out(window) -> None:
    service = window.screens[Screen.SERVICE]
    for _ in range(5):
        service.context.store.audit("login_failed", "service", role="service")
    window.open_screen(Screen.SERVICE)


def _service_section(name: str, result: Callable[[], str] | None = None):
    def prepare(window) -> None:
        service = window.screens[Screen.SERVICE]
        window.open_screen(Screen.SERVICE)
        service.pages.setCurrentIndex(1)           # as after a correct PIN
        service.section_buttons[name].click()
        if result:
            service.result.setText(result())
    return prepare


def _self_test_with_example_timing() -> str:
    """The real encryption self-test, timed by a clock that reads the same on every render."""
    from appliance.ui.service import encryption_self_test

    return encryption_self_test(clock=itertools.count(0.0, EXAMPLE_SELF_TEST_STEP_S).__next__)


def scenes() -> list[Scene]:
    listing = [
        Scene("start-idle", IDLE),
        Scene("start-not-ready", replace(IDLE, link=LinkView(up=False),
                                         not_ready=("the treatment controller is not connected",))),
        Scene("session-entry", IDLE, _entry_typing),
        Scene("session-entry-invalid", IDLE, _entry_invalid),
        Scene("session-entry-confirm", IDLE, _entry_confirm),
        Scene("live-armed", ARMED),
        Scene("live-recording", RECORDING),
        Scene("live-recording-post-roll", replace(RECORDING, recording_elapsed_s=131.0, post_roll_remaining_s=7.0,
                                                  inputs=Inputs(interlock_closed=True))),
        Scene("live-finalizing", replace(ARMED, state="Finalizing", seal_progress=0.35)),
        Scene("live-encrypting", replace(ARMED, state="Encrypting", seal_progress=0.8)),
        Scene("live-link-lost", replace(ARMED, link=LinkView(up=False))),
        Scene("live-storage-warning", replace(ARMED, storage_seconds_left=25 * 60, storage_warning=True)),
        Scene("review-locked", IDLE, _review_locked),
        Scene("review-wrong-passphrase", IDLE, _review_wrong_passphrase),
        Scene("review-playing", IDLE, _review_playing),
        Scene("service-pin", IDLE, _service_pin),
        Scene("service-locked-out", IDLE, _service_locked_out),
        Scene("service-status", SERVICE_STATUS, _service_section("Status")),
        Scene("service-tests", IDLE, _service_section("Tests and export", _self_test_with_example_timing)),
        Scene("service-logs", IDLE, _service_section("Recent logs")),
        Scene("service-state-diagram", IDLE, _service_section("State diagram")),
        Scene("start-idle", IDLE, size="1920x1080"),
        Scene("live-recording", RECORDING, size="1920x1080"),
        Scene("review-playing", IDLE, _review_playing, size="1920x1080"),
    ]
    listing += [Scene(f"error-{fault.kind.replace('_', '-')}", replace(ARMED, state="Error", fault=fault))
                for fault in EXAMPLE_FAULTS]
    return listing


def _example_records(data_dir: Path):
    """A throwaway store with one session, a sealed and an interrupted recording (rows only)."""
    from appliance.storage.database import Store

    store = Store(data_dir, clock=lambda: EXAMPLE_NOW)
    session = store.open_session(SESSION.subject_id, SESSION.operator_id)
    for number, interrupted in enumerate((False, False, True), start=1):
        recording = store.start_recording(session.uid)
        figures = dict(bytes=4_000_000 * number, duration_s=35.0 * number, frames=1050 * number, dropped=0,
                       sha256="0" * 64, manifest={"state": "interrupted" if interrupted else "sealed"})
        if interrupted:
            store.interrupt_recording(recording.uid, reason="power loss", **figures)
        else:
            store.seal_recording(recording.uid, **figures)
    store.close_session(session.uid)
    return store


def _window(data_dir: Path, size: str):
    from appliance.ui.review import ReviewScreen
    from appliance.ui.service import RecentLogs, ServiceContext, ServiceScreen
    from appliance.ui.window import KioskOptions, KioskWindow

    store = _example_records(data_dir)
    logs = RecentLogs()
    logs.lines.extend(EXAMPLE_LOG_LINES)
    window = KioskWindow(SceneController(example_preview()), KioskOptions(fullscreen=False, hide_cursor=False))
    window.add_screen(Screen.REVIEW, ReviewScreen(store, data_dir / "recipient.key"), "Review recordings")
    context = ServiceContext(store, data_dir, data_dir / "service-pin", lambda: EXAMPLE_CAMERA,
                             logs, lambda: [data_dir / "exports"], measure_free=lambda _: EXAMPLE_FREE_BYTES)
    window.add_screen(Screen.SERVICE, ServiceScreen(context), "Service")
    window.resize(*SIZES[size])
    return window, store


def render_all(directory: Path) -> list[Path]:
    """Renders every scene to DIR/<name>-<size>.png; returns the paths written. Review and
    service screens show a throwaway store in a temporary directory, removed afterwards."""
    from PySide6.QtWidgets import QApplication

    from appliance.ui import theme

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    app = QApplication.instance() or QApplication([])
    theme.apply(app)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for scene in scenes():
        path = directory / f"{scene.name}-{scene.size}.png"
        render(scene, path)
        written.append(path)
    return written


def render(scene: Scene, path: Path) -> None:
    """One scene to one PNG (a QApplication must exist)."""
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    with tempfile.TemporaryDirectory(prefix="kiosk-screens-") as scratch:
        window, store = _window(Path(scratch), scene.size)
        window.show()
        window.show_status(scene.status)
        if scene.prepare:
            scene.prepare(window)
        app.processEvents()
        window.live_screen.pump.pull()
        saved = window.grab().save(str(path))
        window.screens[Screen.REVIEW].lock()
        window.close()
        window.deleteLater()
        app.processEvents()
        store.close()
    if not saved:
        raise BadInput(f"cannot write {path}")
