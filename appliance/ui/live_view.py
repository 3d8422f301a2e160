"""Live view while a session is open: camera preview, REC and elapsed time, clip count, input
lamps, controller link, the session's laser emission report, storage left as recording time,
end session.

The preview is pulled by a QTimer at most 15 times a second from `controller.latest_preview()`,
which hands over the newest downscaled frame only; the recorder never waits for the screen.
"""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QFrame, QGridLayout, QHBoxLayout, QLabel, QPushButton, QSizePolicy, QVBoxLayout, QWidget

from appliance.status import ApplianceStatus
from appliance.ui import theme
from appliance.ui.presentation import LampView, format_duration, format_time_left, lamps_for, session_emission_line

PREVIEW_MAX_FPS = 15
PREVIEW_INTERVAL_MS = math.ceil(1000 / PREVIEW_MAX_FPS)
END_CONFIRM_MS = 4000


def image_from_bgr(frame: np.ndarray) -> QImage:
    """A QImage that owns its pixels (the controller may reuse the array afterwards)."""
    frame = np.ascontiguousarray(frame)
    if frame.ndim == 2:
        height, width = frame.shape
        return QImage(frame.data, width, height, frame.strides[0], QImage.Format.Format_Grayscale8).copy()
    height, width, _ = frame.shape
    return QImage(frame.data, width, height, frame.strides[0], QImage.Format.Format_BGR888).copy()


class Lamp(QWidget):
    def __init__(self) -> None:
        super().__init__()
        self.dot = QFrame()
        self.dot.setFixedSize(30, 30)
        self.text = QLabel()
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.dot)
        row.addWidget(self.text, 1)
        self.view: LampView | None = None

    def show_view(self, view: LampView) -> None:
        if view == self.view:
            return
        self.view = view
        border = "#ffffff" if view.lit else "#6b7580"
        self.dot.setStyleSheet(f"background: {view.colour}; border: 3px solid {border}; border-radius: 15px;")
        self.text.setText(view.label)


class PreviewPump:
    """Pulls the newest preview frame on the GUI thread, only while the live view is shown."""

    def __init__(self, controller, target: QLabel) -> None:
        self._controller = controller
        self._target = target
        self._last_frame = None
        self.frames_shown = 0
        self.timer = QTimer()
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)   # a coarse timer may fire 5 % early: > 15 fps
        self.timer.setInterval(PREVIEW_INTERVAL_MS)
        self.timer.timeout.connect(self.pull)

    def pull(self) -> None:
        frame = self._controller.latest_preview()
        if frame is None:
            if self._last_frame is not None or self.frames_shown == 0:
                self._target.setPixmap(QPixmap())
                self._target.setText("No camera image")
            self._last_frame = None
            return
        if frame is self._last_frame:       # nothing new since the last tick: no work
            return
        self._last_frame = frame
        size = self._target.size()
        pixmap = QPixmap.fromImage(image_from_bgr(frame)).scaled(
            size, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.FastTransformation)
        self._target.setPixmap(pixmap)
        self.frames_shown += 1


class LiveViewScreen(QWidget):
    def __init__(self, controller, calls) -> None:
        super().__init__()
        self._controller = controller
        self._calls = calls
        self.preview = QLabel("No camera image")
        self.preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.preview.setStyleSheet("background: #000000; color: #c9d1d9; font-size: 26px;")
        self.preview.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        self.preview.setMinimumSize(320, 200)
        self.pump = PreviewPump(controller, self.preview)

        self.rec = QLabel("● REC")
        self.rec.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.elapsed = QLabel("")
        self.elapsed.setProperty("role", "value")
        self.clips = QLabel("")
        self.session = QLabel("")
        self.session.setWordWrap(True)
        self.session.setProperty("role", "muted")
        self.lamps = [Lamp() for _ in range(4)]
        self.storage = QLabel("")
        self.storage.setWordWrap(True)
        self.notice = QLabel("")
        self.notice.setWordWrap(True)
        self.notice.setProperty("role", "message")
        self.end_button = QPushButton("End session")
        self.end_button.setProperty("role", "danger")
        self.end_button.clicked.connect(self._end_tapped)
        self._end_armed = QTimer(self)
        self._end_armed.setSingleShot(True)
        self._end_armed.setInterval(END_CONFIRM_MS)
        self._end_armed.timeout.connect(self._disarm_end)

        side = QVBoxLayout()
        side.addWidget(self.rec)
        grid = QGridLayout()
        grid.addWidget(QLabel("Elapsed"), 0, 0)
        grid.addWidget(self.elapsed, 0, 1)
        grid.addWidget(QLabel("Clips"), 1, 0)
        grid.addWidget(self.clips, 1, 1)
        side.addLayout(grid)
        side.addWidget(self.session)
        for lamp in self.lamps:
            side.addWidget(lamp)
        side.addWidget(self.storage)
        side.addStretch(1)
        side.addWidget(self.notice)
        side.addWidget(self.end_button)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.preview, 3)
        layout.addLayout(side, 1)
        self._recording = None

    def showEvent(self, event) -> None:  # noqa: N802 (Qt name)
        self.pump.timer.start()
        super().showEvent(event)

    def hideEvent(self, event) -> None:  # noqa: N802 (Qt name)
        self.pump.timer.stop()
        self._disarm_end()
        super().hideEvent(event)

    def show_status(self, status: ApplianceStatus, elapsed_s: float | None) -> None:
        recording = status.state == "Recording"
        if recording != self._recording:
            self._recording = recording
            colour = "background: #c62828; color: #ffffff;" if recording else "background: #2b3038; color: #6b7580;"
            self.rec.setStyleSheet(f"{colour} font-size: 40px; font-weight: bold; border-radius: 10px; padding: 6px;")
        self.elapsed.setText(format_duration(elapsed_s) if elapsed_s is not None else "–")
        session = status.session
        self.clips.setText(str(session.clip_count) if session else "–")
        lines = [f"Subject {session.subject_id} · Operator {session.operator_id}", session_emission_line(session)] \
            if session else []
        self.session.setText("\n".join(line for line in lines if line))
        for lamp, view in zip(self.lamps, lamps_for(status), strict=True):
            lamp.show_view(view)
        self.storage.setText(format_time_left(status.storage_seconds_left))
        self.storage.setProperty("role", "message" if status.storage_warning else None)
        theme.restyle(self.storage)

    def _end_tapped(self) -> None:
        # Two taps: a glove brushing the screen must not end a treatment session.
        if not self._end_armed.isActive():
            self.end_button.setText("Tap again to end")
            self._end_armed.start()
            return
        self._disarm_end()
        self.end_button.setEnabled(False)
        self.notice.setText("")
        self._calls.run(self._controller.end_session, done=self._ended)

    def _ended(self, refusal: str | None) -> None:
        self.end_button.setEnabled(True)
        self.notice.setText(refusal or "")

    def _disarm_end(self) -> None:
        self._end_armed.stop()
        self.end_button.setText("End session")
