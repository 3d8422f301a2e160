"""The scenes of the kiosk's screenshots (tools/screenshots.py renders them): a status snapshot
each, the taps that lead to the screen, and fixed example figures, so that what they show does
not depend on when or where they are rendered."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

from appliance.control.health import CAMERA_STALE_S
from appliance.errors import BadInput
from appliance.faults import FaultKind, make_fault
from appliance.status import ApplianceStatus, CameraView, Inputs, LinkView, SessionView
from appliance.storage.database import Store
from appliance.timeline import ClipEvent, emissions
from appliance.ui.presentation import Screen
from appliance.worklist.protocol import WorklistAnswer
from firmware_bridge.protocol import LINK_SILENCE_MS
from tools.worklist_scenes import confirm_first_patient, example_answers, open_worklist

SIZES = {"1280x800": (1280, 800), "1920x1080": (1920, 1080)}

# What the scenes show must not depend on when or where they are rendered, so the PNGs in docs/
# change only when the screens do: a fixed wall clock (08:14 local time, whatever the time zone)
# for the example records and the service lockout, a fixed free space and self-test duration.
EXAMPLE_NOW = time.mktime((2026, 11, 24, 8, 14, 40, 0, 0, -1))
EXAMPLE_FREE_BYTES = 412_300_000_000
EXAMPLE_SELF_TEST_STEP_S = 0.018      # each reading of the self-test's clock advances this much
SETTLE_S = 10.0                       # the longest a scene waits for its screens' background reads

# One example per fault kind (appliance/faults.py), with the reason as the code words it: the
# camera check, the link's silence detection, the disk guard (which stops 5 s before the reserve).
EXAMPLE_REASONS = {
    FaultKind.CAMERA_LOST: f"the camera has delivered no frame for {CAMERA_STALE_S:.0f} s",
    FaultKind.LINK_LOST: f"no frame from the controller for {LINK_SILENCE_MS} ms",
    FaultKind.STORAGE_CRITICAL: "4 s of recording time left",
    FaultKind.STORAGE_ERROR: "No space left on device",
    FaultKind.ENCODER_FAILURE: "libx264 refused a frame",
    FaultKind.KEY_MISSING: "recipient.pub not found",
}
EXAMPLE_FAULTS = tuple(make_fault(kind, EXAMPLE_REASONS[kind]) for kind in FaultKind)

# The example sealed clips' treatment: three emissions in a 35 s clip, the footswitch held around
# each, as the controller's edges on the video's clock.
EXAMPLE_CLIP_S = 35.0
EXAMPLE_EVENTS = [ClipEvent(t, name, level, edge) for edge, (t, name, level) in enumerate((
    (5.6, "footswitch", 1), (6.0, "laser", 1), (9.5, "laser", 0), (10.1, "footswitch", 0),
    (13.8, "footswitch", 1), (14.2, "laser", 1), (21.0, "laser", 0), (21.3, "footswitch", 0),
    (27.1, "footswitch", 1), (27.5, "laser", 1), (29.0, "laser", 0), (29.4, "footswitch", 0)), start=101)]


def example_preview(width: int = 640, height: int = 400, laser_spot: bool = False) -> np.ndarray:
    """A recognisable test picture (BGR): gradient, a grid and a bright target (and the laser's
    spot, as the synthetic camera draws it while the simulated laser is on)."""
    y, x = np.mgrid[0:height, 0:width]
    image = np.zeros((height, width, 3), np.uint8)
    image[..., 0] = (x * 200 // width).astype(np.uint8) + 30
    image[..., 1] = (y * 120 // height).astype(np.uint8) + 40
    image[..., 2] = 60
    image[(x % 80 < 2) | (y % 80 < 2)] = (90, 90, 90)
    ring = np.hypot(x - width / 2, y - height / 2)
    image[(ring > 60) & (ring < 70)] = (40, 220, 255)
    image[ring < 12] = (255, 255, 255)
    if laser_spot:
        image[np.hypot(x - width * 0.7, y - height * 0.6) < height / 20] = (255, 255, 255)
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

    def begin_session(self, subject_id: str, operator_id: str, entry=None) -> None:
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
# The laser fired while Armed without a footswitch press: audited, warned, in the session's report.
UNRECORDED_AT_BOARD_MS = 5_012_345
UNRECORDED = replace(ARMED, unrecorded_emissions=1, last_unrecorded_emission_board_ms=UNRECORDED_AT_BOARD_MS,
                     session=replace(SESSION, emissions_recorded=4,
                                     emissions_unrecorded_board_ms=(UNRECORDED_AT_BOARD_MS,)))
AFTER_UNRECORDED = replace(UNRECORDED, state="Idle", session=None,
                           last_session_emission_report=UNRECORDED.session.emission_report)
SERVICE_STATUS = replace(IDLE, camera_fps=29.97, dropped_frames=0,
                         link=replace(LINK_UP, frames=48_211, crc_errors=2, resyncs=1, round_trip_ms=1.8),
                         camera=CameraView("vimba", "VimbaCamera", 1920, 1200, 30.0, delivered=48_211))
WORKLIST = example_answers(EXAMPLE_NOW)
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
    records: Callable[[Store], None] | None = None   # what the trail holds before the kiosk starts
    worklist: WorklistAnswer | None = None   # the example worklist service's answer; None: no worklist


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
    window.screens[Screen.REVIEW].refuse_unlock("wrong passphrase for recipient.key")


def _review_playing(window) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    from appliance.ui.live_view import image_from_bgr
    from appliance.ui.player import Opened, Shown

    window.open_screen(Screen.REVIEW)
    review = window.screens[Screen.REVIEW]
    review.unlock_with(ec.generate_private_key(ec.SECP256R1()))   # a throwaway key
    settle(window)                                                  # the list is read off the GUI thread
    review.recordings.setCurrentRow(1)                              # clip 1, with the example emissions
    review.show_opened(Opened(duration_s=EXAMPLE_CLIP_S, finalized=True))
    intervals = emissions(EXAMPLE_EVENTS, EXAMPLE_CLIP_S)
    review.seek_bar.set_emissions(intervals)
    review.emission_controls.show_clip(intervals)
    review.show_frame(Shown(image_from_bgr(example_preview(480, 300)), 11.0))


def _review_next_emission(window) -> None:
    """Paused, then "Next emission": the frame where the laser spot appears."""
    from appliance.ui.live_view import image_from_bgr
    from appliance.ui.player import Shown

    _review_playing(window)
    review = window.screens[Screen.REVIEW]
    review.play_button.click()
    review.emission_controls.next_button.click()
    target = review.emission_controls.position_s
    review.show_frame(Shown(image_from_bgr(example_preview(480, 300, laser_spot=True)), target))


def _service_pin(window) -> None:
    window.open_screen(Screen.SERVICE)
    for key in "1234":
        window.screens[Screen.SERVICE].keypad.press(key)


def _five_wrong_pins(store: Store) -> None:
    for _ in range(5):
        store.audit("login_failed", "service", role="service")


def _service_locked_out(window) -> None:
    window.open_screen(Screen.SERVICE)


def _service_section(name: str, result: Callable[[], str] | None = None):
    def prepare(window) -> None:
        service = window.screens[Screen.SERVICE]
        window.open_screen(Screen.SERVICE)
        service.open_diagnostics()                 # as after a correct PIN
        service.section_buttons[name].click()
        if result:
            service.result.setText(result())
    return prepare


def _self_test_with_example_timing() -> str:
    """The real encryption self-test, timed by a clock that reads the same on every render."""
    from appliance.ui.service_checks import encryption_self_test

    return encryption_self_test(clock=itertools.count(0.0, EXAMPLE_SELF_TEST_STEP_S).__next__)


def scenes() -> list[Scene]:
    listing = [
        Scene("start-idle", IDLE),
        Scene("start-after-unrecorded-emission", AFTER_UNRECORDED),
        Scene("start-not-ready", replace(IDLE, link=LinkView(up=False),
                                         not_ready=("the treatment controller is not connected",))),
        Scene("session-entry", IDLE, _entry_typing),
        Scene("session-entry-invalid", IDLE, _entry_invalid),
        Scene("session-entry-confirm", IDLE, _entry_confirm),
        Scene("worklist", IDLE, open_worklist, worklist=WORKLIST["ok"]),
        Scene("worklist-confirm", IDLE, confirm_first_patient, worklist=WORKLIST["ok"]),
        Scene("worklist-unreachable", IDLE, open_worklist, worklist=WORKLIST["unreachable"]),
        Scene("live-armed", ARMED),
        Scene("live-recording", RECORDING),
        Scene("live-recording-post-roll", replace(RECORDING, recording_elapsed_s=131.0, post_roll_remaining_s=7.0,
                                                  inputs=Inputs(interlock_closed=True))),
        Scene("live-finalizing", replace(ARMED, state="Finalizing", seal_progress=0.35)),
        Scene("live-encrypting", replace(ARMED, state="Encrypting", seal_progress=0.8)),
        Scene("live-link-lost", replace(ARMED, link=LinkView(up=False))),
        Scene("live-unrecorded-emission", UNRECORDED),
        Scene("live-storage-warning", replace(ARMED, storage_seconds_left=25 * 60, storage_warning=True)),
        Scene("review-locked", IDLE, _review_locked),
        Scene("review-wrong-passphrase", IDLE, _review_wrong_passphrase),
        Scene("review-playing", IDLE, _review_playing),
        Scene("review-next-emission", IDLE, _review_next_emission),
        Scene("service-pin", IDLE, _service_pin),
        Scene("service-locked-out", IDLE, _service_locked_out, records=_five_wrong_pins),
        Scene("service-status", SERVICE_STATUS, _service_section("Status")),
        Scene("service-tests", IDLE, _service_section("Tests and export", _self_test_with_example_timing)),
        Scene("service-logs", IDLE, _service_section("Recent logs")),
        Scene("service-state-diagram", IDLE, _service_section("State diagram")),
        Scene("start-idle", IDLE, size="1920x1080"),
        Scene("live-recording", RECORDING, size="1920x1080"),
        Scene("review-playing", IDLE, _review_playing, size="1920x1080"),
        Scene("review-next-emission", IDLE, _review_next_emission, size="1920x1080"),
    ]
    listing += [Scene(f"error-{fault.kind.replace('_', '-')}", replace(ARMED, state="Error", fault=fault))
                for fault in EXAMPLE_FAULTS]
    return listing


def settle(window) -> None:
    """Runs the event loop until the screens' background work (review's recordings, service's
    lockout count and PIN check) is answered and painted."""
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    deadline = time.monotonic() + SETTLE_S
    busy = [screen.background for screen in window.screens.values() if hasattr(screen, "background")]
    app.processEvents()
    while any(worker.pending for worker in busy):
        if time.monotonic() > deadline:
            raise TimeoutError("a kiosk screen did not finish reading the example records")
        time.sleep(0.005)
        app.processEvents()
    app.processEvents()
