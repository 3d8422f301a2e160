"""The kiosk window: the state banner on top of whichever screen the status calls for."""

from __future__ import annotations

import time
from dataclasses import dataclass

from PySide6.QtCore import Qt, QTimer, Slot
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QStackedWidget, QVBoxLayout, QWidget

from appliance.archive.backlog import start_screen_warning
from appliance.status import ApplianceStatus
from appliance.ui import theme
from appliance.ui.banner import StateBanner
from appliance.ui.bridge import LatestOnly
from appliance.ui.calls import ControllerCalls
from appliance.ui.live_view import LiveViewScreen
from appliance.ui.presentation import (LAMP_RED, Screen, banner_for, last_session_line, recording_elapsed, screen_for,
                                       unrecorded_warning)
from appliance.ui.session_entry import SessionEntryScreen

CLOCK_TICK_MS = 250


@dataclass(frozen=True)
class KioskOptions:
    fullscreen: bool = True
    hide_cursor: bool = True     # touch only; a service laptop may want it back


class StartScreen(QWidget):
    def __init__(self) -> None:
        super().__init__()
        self.new_session = QPushButton("New session")
        self.new_session.setProperty("role", "primary")
        self.new_session.setMinimumHeight(120)
        title = QLabel("Treatment recorder")
        title.setProperty("role", "title")
        title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        hint = QLabel("Open a session, then press the footswitch to record.")
        hint.setProperty("role", "muted")
        hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.secondary = QHBoxLayout()
        self.last_session = QLabel()      # the closed session's emission report
        self.last_session.setWordWrap(True)
        self.last_session.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.last_session.setContentsMargins(0, 24, 0, 0)
        self.last_session.hide()
        self.archive_warning = QLabel()   # a recording still without its archive copy for too long
        self.archive_warning.setWordWrap(True)
        self.archive_warning.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.archive_warning.setProperty("role", "message")
        self.archive_warning.hide()
        layout = QVBoxLayout(self)
        layout.addStretch(1)
        layout.addWidget(title)
        layout.addWidget(hint)
        layout.addSpacing(24)
        layout.addWidget(self.new_session)
        layout.addSpacing(24)
        layout.addLayout(self.secondary)
        layout.addWidget(self.last_session)
        layout.addWidget(self.archive_warning)
        layout.addStretch(1)

    def show_archive_warning(self, text: str | None) -> None:
        self.archive_warning.setText(text or "")
        self.archive_warning.setVisible(text is not None)

    def show_status(self, status: ApplianceStatus) -> None:
        text, warning = last_session_line(status)
        self.last_session.setText(text)
        self.last_session.setVisible(bool(text))
        self.last_session.setProperty("role", "message" if warning else "muted")
        theme.restyle(self.last_session)


class ErrorScreen(QWidget):
    def __init__(self, controller, calls: ControllerCalls) -> None:
        super().__init__()
        self._controller = controller
        self._calls = calls
        self.what_happened = QLabel()
        self.what_happened.setProperty("role", "title")
        self.what_happened.setWordWrap(True)
        self.what_to_do = QLabel()
        self.what_to_do.setProperty("role", "value")
        self.what_to_do.setWordWrap(True)
        self.message = QLabel()
        self.message.setProperty("role", "message")
        self.message.setWordWrap(True)
        self.acknowledge = QPushButton("Acknowledge")
        self.acknowledge.setProperty("role", "primary")
        self.acknowledge.clicked.connect(self._acknowledge)
        heading = QLabel("What happened")
        heading.setProperty("role", "muted")
        todo = QLabel("What to do")
        todo.setProperty("role", "muted")
        layout = QVBoxLayout(self)
        layout.addWidget(heading)
        layout.addWidget(self.what_happened)
        layout.addSpacing(16)
        layout.addWidget(todo)
        layout.addWidget(self.what_to_do)
        layout.addWidget(self.message)
        layout.addStretch(1)
        layout.addWidget(self.acknowledge)

    def show_status(self, status: ApplianceStatus) -> None:
        banner = banner_for(status)
        fault = status.fault
        self.what_happened.setText(fault.what_happened if fault else banner.detail)
        self.what_to_do.setText(fault.what_to_do if fault else "Call service.")

    def _acknowledge(self) -> None:
        self.acknowledge.setEnabled(False)
        self.message.setText("")
        self._calls.run(self._controller.acknowledge, done=self._acknowledged)

    def _acknowledged(self, refusal: str | None) -> None:
        self.acknowledge.setEnabled(True)
        self.message.setText(refusal or "")     # the fault is still there: say what


class KioskWindow(QWidget):
    def __init__(self, controller, options: KioskOptions = KioskOptions()) -> None:
        super().__init__()
        self.setWindowTitle("Treatment recorder")
        self.controller = controller
        self.options = options
        self.bridge = LatestOnly(self)      # status snapshots from the controller thread
        self.bridge.delivered.connect(self.show_status)
        self.status = ApplianceStatus()
        self._received_at = time.monotonic()
        self.requested = Screen.START
        self._followers: list[QWidget] = []     # added screens that also render every snapshot
        self._unsubscribe = None

        self.calls = ControllerCalls(self)
        self.banner = StateBanner()
        # Over every screen: an emission nobody recorded is what a clinic must not miss.
        self.unrecorded = QLabel()
        self.unrecorded.setWordWrap(True)
        self.unrecorded.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.unrecorded.setStyleSheet(f"background: {LAMP_RED}; color: #ffffff; font-size: 24px; font-weight: bold; "
                                      "padding: 8px 24px;")
        self.unrecorded.hide()
        self.start_screen = StartScreen()
        self.entry_screen = SessionEntryScreen(controller, self.calls)
        self.live_screen = LiveViewScreen(controller, self.calls)
        self.error_screen = ErrorScreen(controller, self.calls)
        self.stack = QStackedWidget()
        self.screens: dict[Screen, QWidget] = {
            Screen.START: self.start_screen,
            Screen.SESSION_ENTRY: self.entry_screen,
            Screen.LIVE: self.live_screen,
            Screen.ERROR: self.error_screen,
        }
        for screen in self.screens.values():
            self.stack.addWidget(screen)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.banner)
        layout.addWidget(self.unrecorded)
        body = QVBoxLayout()
        body.setContentsMargins(20, 16, 20, 16)
        body.addWidget(self.stack, 1)
        layout.addLayout(body, 1)

        self.worklist_screen = None      # set by use_worklist; without it New session opens the keypad
        self.start_screen.new_session.clicked.connect(self._new_session)
        self.entry_screen.cancelled.connect(self._entry_cancelled)
        self.clock = QTimer(self)
        self.clock.setInterval(CLOCK_TICK_MS)
        self.clock.timeout.connect(self._tick)
        self.show_status(self.status)

    def add_screen(self, screen: Screen, widget: QWidget, start_label: str) -> None:
        """Adds a user-opened screen (with a `closed` signal) and its button on the start screen."""
        self.screens[screen] = widget
        self.stack.addWidget(widget)
        widget.closed.connect(lambda: self.open_screen(Screen.START))
        if hasattr(widget, "show_status"):
            self._followers.append(widget)
        button = QPushButton(start_label)
        button.clicked.connect(lambda: self.open_screen(screen))
        self.start_screen.secondary.addWidget(button)

    def watch_archive(self, watch, warn_after_hours: float, clock=time.time) -> None:
        """The start screen warns while the oldest unarchived recording is overdue (`watch`: an
        ArchiveWatch, which reads the backlog off the GUI thread)."""
        watch.changed.connect(lambda backlog: self.start_screen.show_archive_warning(
            start_screen_warning(backlog, clock(), warn_after_hours)))

    def use_worklist(self, worklist_screen) -> None:
        """New session opens the day's worklist first; manual entry is one button away on it,
        and cancelling manual entry goes back to the list."""
        self.worklist_screen = worklist_screen
        self.screens[Screen.WORKLIST] = worklist_screen
        self.stack.addWidget(worklist_screen)
        worklist_screen.cancelled.connect(lambda: self.open_screen(Screen.START))
        worklist_screen.manual_entry.connect(lambda: self.open_screen(Screen.SESSION_ENTRY))

    def _new_session(self) -> None:
        if self.worklist_screen is None:
            self.open_screen(Screen.SESSION_ENTRY)
            return
        self.worklist_screen.open()
        self.open_screen(Screen.WORKLIST)

    def _entry_cancelled(self) -> None:
        self.open_screen(Screen.START if self.worklist_screen is None else Screen.WORKLIST)

    def add_panel(self, widget: QWidget) -> None:
        """Docks a panel under the screens, shown whichever screen is (the demo's simulator panel)."""
        self.layout().addWidget(widget)

    def present(self) -> None:
        """Shows the window as the kiosk: fullscreen, frameless, cursor hidden if configured."""
        if self.options.hide_cursor:
            self.setCursor(Qt.CursorShape.BlankCursor)
        if self.options.fullscreen:
            self.setWindowFlag(Qt.WindowType.FramelessWindowHint, True)
            self.showFullScreen()
        else:
            self.show()

    def connect_controller(self) -> None:
        """Subscribes to the controller; its callbacks run on the controller's thread."""
        self._unsubscribe = self.controller.subscribe(self.bridge.publish)

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt name)
        if self._unsubscribe is not None:  # no snapshots for a window that is going away
            self._unsubscribe()
            self._unsubscribe = None
        super().closeEvent(event)

    def open_screen(self, screen: Screen) -> None:
        self.requested = screen
        self._show_screen()

    @property
    def current_screen(self) -> Screen:
        widget = self.stack.currentWidget()
        return next(key for key, value in self.screens.items() if value is widget)

    @Slot(object)
    def show_status(self, status: ApplianceStatus) -> None:
        self.status = status
        self._received_at = time.monotonic()
        if status.state == "Recording":
            if not self.clock.isActive():      # snapshots come every 250 ms: do not keep restarting it
                self.clock.start()
        else:
            self.clock.stop()
        self._tick()
        warning = unrecorded_warning(status)
        self.unrecorded.setText(warning or "")
        self.unrecorded.setVisible(warning is not None)
        self.error_screen.show_status(status)
        self.start_screen.show_status(status)
        for follower in self._followers:
            follower.show_status(status)
        self._show_screen()

    def _show_screen(self) -> None:
        screen = screen_for(self.status, self.requested)
        if screen not in self.screens:
            screen = Screen.START
        if screen in (Screen.LIVE, Screen.ERROR):
            self.requested = Screen.START      # when the session or fault ends, start again at home
            if self.worklist_screen is not None:
                self.worklist_screen.forget()
        self.stack.setCurrentWidget(self.screens[screen])

    def _tick(self) -> None:
        elapsed = recording_elapsed(self.status, self._received_at, time.monotonic())
        self.banner.show_view(banner_for(self.status, elapsed))
        self.live_screen.show_status(self.status, elapsed if elapsed is not None else self.status.recording_elapsed_s)
