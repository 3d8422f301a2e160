"""Service diagnostics behind a PIN (five wrong PINs lock it for five minutes; every attempt is
audited): camera and controller link figures, raw inputs and a footswitch trigger test, disk
free and write speed, an encryption self-test, recent log lines, the state diagram, and export
of the logs and the audit trail to a directory or USB stick, verified after writing."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QGridLayout, QHBoxLayout, QPushButton, QStackedWidget, QVBoxLayout, QWidget

from appliance.archive.backlog import backlog_line, overdue
from appliance.errors import ApplianceError
from appliance.status import ApplianceStatus
from appliance.storage.disk_guard import free_bytes
from appliance.storage.reader import StoreReader
from appliance.storage.writer import DatabaseWriter
from appliance.ui import theme
from appliance.ui.calls import OffThread, failure_message
from appliance.ui.keypad import PIN_ROWS, Keypad, KeypadField
from appliance.ui.presentation import describe_camera, format_time_left
from appliance.ui.service_access import SERVICE_ROLE, Lockout, check_pin, lockout_from
from appliance.ui.service_checks import (RecentLogs, diagram_text, encryption_self_test, export_diagnostics,
                                         write_speed)

TRIGGER_TEST_S = 30
ARCHIVE_NOT_CONFIGURED = "not configured: every recording exists only on this appliance"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServiceContext:
    reader: StoreReader                   # read off the GUI thread only
    database: DatabaseWriter              # audit entries; never waited for on the GUI thread
    data_dir: Path
    pin_path: Path
    logs: RecentLogs
    export_targets: Callable[[], list[Path]]
    measure_free: Callable[[Path], int] = free_bytes   # free bytes under a directory


class ServiceScreen(QWidget):
    closed = Signal()

    def __init__(self, context: ServiceContext) -> None:
        super().__init__()
        self.context = context
        self.background = OffThread(self)
        # The count of wrong PINs: read once from the audit trail here, then kept in memory.
        self._lockout: Lockout | None = None
        self.background.run(context.reader.recent_logins, SERVICE_ROLE, done=self._lockout_read,
                            failed=self._lockout_unreadable)
        self._trigger_stage: str | None = None
        self._trigger_deadline = QTimer(self)
        self._trigger_deadline.setSingleShot(True)
        self._trigger_deadline.setInterval(TRIGGER_TEST_S * 1000)
        self._trigger_deadline.timeout.connect(lambda: self._finish_trigger("No footswitch press seen within "
                                                                            f"{TRIGGER_TEST_S} s: check the wiring."))
        self.status = ApplianceStatus()

        # PIN page
        self.pin = KeypadField(secret=True, max_length=12)
        self.keypad = Keypad(PIN_ROWS)
        self.keypad.attach(self.pin)
        self.enter_button = theme.button("Enter", "primary")
        self.enter_button.clicked.connect(self._enter)
        self.back_button = theme.button("Back")
        self.back_button.clicked.connect(self.closed)
        self.message = theme.label("", "message")
        pin_page = QWidget()
        pin_column = theme.form_column(theme.label("Service mode — enter the service PIN", "title"), self.pin,
                                       self.message, buttons=(self.back_button, self.enter_button))
        pin_row = QHBoxLayout(pin_page)
        pin_row.setContentsMargins(0, 0, 0, 0)
        pin_row.addLayout(pin_column, 1)
        pin_row.addWidget(self.keypad, 1)

        # Diagnostics page: a column of sections, the chosen one beside it
        self.camera = theme.label()
        self.link = theme.label()
        self.inputs = theme.label()
        self.disk = theme.label()
        self.archive = theme.label(ARCHIVE_NOT_CONFIGURED)
        status_panel = QWidget()
        grid = QGridLayout(status_panel)
        for row, (name, value) in enumerate((("Camera", self.camera), ("Controller link", self.link),
                                             ("Raw inputs", self.inputs), ("Disk", self.disk),
                                             ("Archive", self.archive))):
            grid.addWidget(theme.label(name, "muted"), row, 0, Qt.AlignmentFlag.AlignTop)
            grid.addWidget(value, row, 1)
        grid.setRowStretch(5, 1)
        grid.setColumnStretch(1, 1)

        self.trigger_button = theme.button("Trigger test")
        self.trigger_button.clicked.connect(self._start_trigger_test)
        self.self_test_button = theme.button("Encryption self-test")
        self.self_test_button.clicked.connect(lambda: self._run_off_thread(encryption_self_test))
        self.write_test_button = theme.button("Disk write speed")
        self.write_test_button.clicked.connect(lambda: self._run_off_thread(write_speed, self.context.data_dir))
        self.export_button = theme.button("Export logs and audit trail")
        self.export_button.clicked.connect(self._export)
        self.result = theme.label("", "value")
        tests_panel = QWidget()
        tests = QVBoxLayout(tests_panel)
        for button in (self.trigger_button, self.self_test_button, self.write_test_button, self.export_button):
            tests.addWidget(button)
        tests.addWidget(self.result)
        tests.addStretch(1)

        self.log_view = theme.label()
        self.log_view.setStyleSheet("font-family: 'DejaVu Sans Mono'; font-size: 16px;")
        self.log_view.setAlignment(Qt.AlignmentFlag.AlignBottom | Qt.AlignmentFlag.AlignLeft)
        self.diagram = theme.label()
        self.diagram.setStyleSheet("font-family: 'DejaVu Sans Mono'; font-size: 15px;")
        self.diagram.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)

        self.panels = QStackedWidget()
        self.section_buttons: dict[str, QPushButton] = {}
        sections = QVBoxLayout()
        for name, panel in (("Status", status_panel), ("Tests and export", tests_panel), ("Recent logs", self.log_view),
                            ("State diagram", self.diagram)):
            self.panels.addWidget(panel)
            button = theme.button(name)
            button.clicked.connect(lambda _=False, p=panel, n=name: self._open_section(n, p))
            self.section_buttons[name] = button
            sections.addWidget(button)
        sections.addStretch(1)
        self.exit_button = theme.button("Exit service", "danger")
        self.exit_button.clicked.connect(self._exit)
        sections.addWidget(self.exit_button)
        diagnostics = QWidget()
        diagnostics_row = QHBoxLayout(diagnostics)
        diagnostics_row.setContentsMargins(0, 0, 0, 0)
        diagnostics_row.addLayout(sections)
        diagnostics_row.addWidget(self.panels, 1)

        self.pages = theme.stacked_pages(self, pin_page, diagnostics)

    @property
    def unlocked(self) -> bool:
        return self.pages.currentIndex() == 1

    # -- PIN ----------------------------------------------------------------------------------

    def showEvent(self, event) -> None:  # noqa: N802 (Qt name)
        self._show_lockout()
        super().showEvent(event)

    def hideEvent(self, event) -> None:  # noqa: N802 (Qt name)
        self._lock()
        super().hideEvent(event)

    def _now(self) -> float:
        return self.context.database.clock()     # the clock the audit entries are stamped with

    def _lockout_read(self, entries) -> None:
        self._lockout = lockout_from(entries, self._now())
        self._show_lockout()

    def _lockout_unreadable(self, error: Exception) -> None:
        log.warning("service lockout: cannot read the audit trail (%s); counting wrong PINs from now", error)
        self._lockout = Lockout()
        self._show_lockout()

    def _show_lockout(self) -> bool:
        """Enables Enter unless locked out (or the count is not read yet); True when locked."""
        if self._lockout is None:
            self.enter_button.setEnabled(False)
            return True
        now = self._now()
        self._lockout = self._lockout.as_of(now)
        locked = self._lockout.locked(now)
        self.enter_button.setEnabled(not locked)
        if locked:
            minutes = max(1, round((self._lockout.locked_until - now) / 60))
            self.message.setText(f"Too many wrong PINs. Service mode is locked for {minutes} min.")
        return locked

    def _enter(self) -> None:
        pin = self.pin.text()
        self.pin.clear()
        if self._show_lockout():
            return
        if not pin:                     # a stray tap on Enter is not a wrong PIN
            self.message.setText("Enter the service PIN.")
            return
        self.enter_button.setEnabled(False)
        self.message.setText("Checking…")
        # PBKDF2 with 200,000 rounds takes a noticeable moment: never on the GUI thread.
        self.background.run(check_pin, pin, self.context.pin_path, done=self._pin_checked,
                            failed=lambda error: self._pin_checked(f"Cannot read the service PIN: {error}"))

    def _pin_checked(self, verdict: bool | str) -> None:
        self._show_lockout()
        if isinstance(verdict, str):
            self.message.setText(verdict)
            return
        if not verdict:
            self.context.database.audit("login_failed", SERVICE_ROLE, role=SERVICE_ROLE)
            self._lockout = self._lockout.after_wrong_pin(self._now())
            if not self._show_lockout():
                self.message.setText(f"Wrong PIN. {self._lockout.tries_left()} tries left.")
            return
        self.context.database.audit("login", SERVICE_ROLE, role=SERVICE_ROLE)
        self._lockout = Lockout()
        self.message.setText("")
        self.open_diagnostics()

    def open_diagnostics(self) -> None:
        """The diagnostics as after a correct PIN, at the status section."""
        self.pages.setCurrentIndex(1)
        self._open_section("Status", self.panels.widget(0))

    def _exit(self) -> None:
        self._lock()
        self.closed.emit()

    def _lock(self) -> None:
        self.pages.setCurrentIndex(0)
        self.pin.clear()
        self.result.setText("")
        self._trigger_stage = None
        self._trigger_deadline.stop()

    # -- diagnostics --------------------------------------------------------------------------

    def _open_section(self, name: str, panel: QWidget) -> None:
        if name == "Recent logs":
            self.log_view.setText("\n".join(list(self.context.logs.lines)[-30:]) or "No log lines yet.")
        if name == "State diagram":
            self.diagram.setText(diagram_text(self.status.state))
        if name == "Status":
            self.show_status(self.status)
        self.panels.setCurrentWidget(panel)

    def show_status(self, status: ApplianceStatus) -> None:
        """Called by the window with every snapshot; cheap enough for the GUI thread."""
        self.status = status
        if not self.unlocked:           # nothing is shown before the PIN: keep only the snapshot
            return
        fps = f"{status.camera_fps:.1f} fps" if status.camera_fps is not None else "no frames"
        self.camera.setText(f"{describe_camera(status.camera)}\nlive {fps}, {status.dropped_frames} dropped")
        link = status.link
        rtt = f"{link.round_trip_ms:.1f} ms" if link.round_trip_ms is not None else "–"
        self.link.setText(f"{'up' if link.up else 'DOWN'} · firmware {link.firmware_version or 'unknown'}\n"
                          f"{link.frames} frames, {link.crc_errors} CRC errors, {link.resyncs} resyncs, "
                          f"round trip {rtt}")
        inputs = status.inputs
        self.inputs.setText(f"footswitch {'PRESSED' if inputs.footswitch_pressed else 'up'} · "
                            f"interlock {'closed' if inputs.interlock_closed else 'OPEN'} · "
                            f"laser {'ON' if inputs.laser_on else 'off'}")
        try:
            free = f"{self.context.measure_free(self.context.data_dir) / 1e9:.1f} GB free"
        except OSError as error:
            free = f"cannot read free space: {error.strerror}"
        self.disk.setText(f"{free} · {format_time_left(status.storage_seconds_left)}")
        self._follow_trigger(status)

    def show_archive_backlog(self, backlog, now: float, warn_after_hours: float) -> None:
        """The backlog line from the ArchiveWatch; a warning colour once the oldest is overdue."""
        self.archive.setText(backlog_line(backlog, now))
        self.archive.setProperty("role", "message" if overdue(backlog, now, warn_after_hours) else "value")
        theme.restyle(self.archive)

    def _start_trigger_test(self) -> None:
        self._trigger_stage = "press"
        self._trigger_deadline.start()
        self.result.setText("Trigger test: press the footswitch now (nothing is recorded in service mode).")
        self._follow_trigger(self.status)

    def _follow_trigger(self, status: ApplianceStatus) -> None:
        if self._trigger_stage == "press" and status.inputs.footswitch_pressed:
            self._trigger_stage = "release"
            self.result.setText("Footswitch pressed — now release it.")
        elif self._trigger_stage == "release" and not status.inputs.footswitch_pressed:
            self._finish_trigger("Trigger test passed: footswitch press and release both seen.")

    def _finish_trigger(self, text: str) -> None:
        self._trigger_stage = None
        self._trigger_deadline.stop()
        self.result.setText(text)

    def _export(self) -> None:
        targets = self.context.export_targets()
        if not targets:
            self.result.setText("No export destination: insert a USB stick.")
            return
        self._run_off_thread(export_diagnostics, self.context.reader, self.context.database, self.context.logs,
                             targets[0])

    def _run_off_thread(self, work, *args) -> None:
        self.result.setText("Working…")
        for button in (self.self_test_button, self.write_test_button, self.export_button):
            button.setEnabled(False)
        self.background.run(work, *args, done=self._show_result,
                            failed=lambda error: self._show_result(_failed(work.__name__, error)))

    def _show_result(self, text: str) -> None:
        for button in (self.self_test_button, self.write_test_button, self.export_button):
            button.setEnabled(True)
        if self.unlocked:
            self.result.setText(text)


def _failed(test: str, error: Exception) -> str:
    """A test that failed says why; a bug in it is said as one (and logged)."""
    if isinstance(error, (ApplianceError, OSError)):
        return f"FAILED: {error}"
    return failure_message(test, error)
