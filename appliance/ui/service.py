"""Service diagnostics behind a PIN (five wrong PINs lock it for five minutes; every attempt is
audited): camera and controller link figures, raw inputs and a footswitch trigger test, disk
free and write speed, an encryption self-test, recent log lines, the state diagram, and export
of the logs and the audit trail to a directory or USB stick, verified after writing."""

from __future__ import annotations

import collections
import hashlib
import io
import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from cryptography.hazmat.primitives.asymmetric import ec
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QGridLayout, QHBoxLayout, QPushButton, QStackedWidget, QVBoxLayout, QWidget

from appliance import vault
from appliance.atomic import write_atomically
from appliance.errors import ApplianceError, IntegrityError
from appliance.machine import mermaid_diagram
from appliance.status import ApplianceStatus
from appliance.storage.disk_guard import free_bytes
from appliance.ui import theme
from appliance.ui.bridge import LatestOnly
from appliance.ui.keypad import PIN_ROWS, Keypad, KeypadField
from appliance.ui.presentation import format_time_left
from appliance.ui.service_access import SERVICE_ROLE, lockout_from, pin_matches, read_pin

TRIGGER_TEST_S = 30
WRITE_TEST_BYTES = 64 * 1024 * 1024
SELF_TEST_BYTES = 300 * 1024
RECENT_LOG_LINES = 500


class RecentLogs(logging.Handler):
    """The last log lines in memory, for the service screen and its export (no PHI is logged)."""

    def __init__(self, capacity: int = RECENT_LOG_LINES) -> None:
        super().__init__()
        self.lines: collections.deque[str] = collections.deque(maxlen=capacity)
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@dataclass(frozen=True)
class ServiceContext:
    store: object                         # appliance.storage.database.Store
    data_dir: Path
    pin_path: Path
    describe_camera: Callable[[], str]    # model, resolution and driver counters, read when shown
    logs: RecentLogs
    export_targets: Callable[[], list[Path]]
    measure_free: Callable[[Path], int] = free_bytes   # free bytes under a directory


def encryption_self_test(clock: Callable[[], float] = time.perf_counter) -> str:
    """Encrypts random bytes to an ephemeral key in memory, decrypts them back and checks that a
    flipped bit is caught. Raises IntegrityError on any mismatch."""
    started = clock()
    identity = ec.generate_private_key(ec.SECP256R1())
    plaintext = os.urandom(SELF_TEST_BYTES)
    sealed_bytes = io.BytesIO()
    writer = vault.encrypt(sealed_bytes, [identity.public_key()])
    writer.write(plaintext)
    writer.close()
    if vault.open_reader(io.BytesIO(sealed_bytes.getvalue()), identity).read() != plaintext:
        raise IntegrityError("encryption self-test: decrypted bytes differ")
    tampered = bytearray(sealed_bytes.getvalue())
    tampered[len(tampered) // 2] ^= 0x01
    try:
        vault.open_reader(io.BytesIO(bytes(tampered)), identity).read()
    except IntegrityError:
        elapsed_ms = (clock() - started) * 1000
        return f"Encryption self-test passed: round trip and tamper detection ({elapsed_ms:.0f} ms)"
    raise IntegrityError("encryption self-test: a modified vault was not detected")


def write_speed(directory: Path, size: int = WRITE_TEST_BYTES) -> str:
    """Sequential write with fsync, like a recording; the test file is removed afterwards."""
    block = os.urandom(1024 * 1024)
    path = directory / f".write-test-{os.getpid()}"
    started = time.perf_counter()
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        written = 0
        while written < size:
            written += os.write(descriptor, block[: min(len(block), size - written)])
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
        path.unlink(missing_ok=True)
    seconds = time.perf_counter() - started
    return f"Disk write speed: {written / seconds / 1e6:.0f} MB/s ({written // (1024 * 1024)} MiB with fsync)"


def export_diagnostics(store, logs: RecentLogs, destination: Path, actor: str = SERVICE_ROLE) -> str:
    """Writes the audit trail (JSON lines) and the recent log lines to `destination`, each
    atomically (appliance/atomic.py), then reads them back and compares SHA-256 before saying so."""
    chain = store.verify_audit()
    entries = store.audit_entries()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    audit_text = "".join(json.dumps({"seq": e.seq, "at": e.at, "event": e.event, "actor": e.actor,
                                     "details": e.details, "prev_hash": e.prev_hash, "hash": e.hash},
                                    sort_keys=True) + "\n" for e in entries)
    files = {f"audit-{stamp}.jsonl": audit_text.encode(), f"kiosk-log-{stamp}.txt": ("\n".join(logs.lines) + "\n").encode()}
    destination.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        target = destination / name
        write_atomically(target, content, overwrite=True)
        if hashlib.sha256(target.read_bytes()).digest() != hashlib.sha256(content).digest():
            raise IntegrityError(f"export of {name} to {destination} did not verify")
    store.audit("export", actor, what="audit trail and logs", entries=len(entries), audit_chain_ok=chain.ok)
    verdict = "audit chain intact" if chain.ok else "AUDIT CHAIN BROKEN — report this"
    return f"Exported and verified {len(files)} files to {destination} ({len(entries)} audit entries, {verdict})"




class ServiceScreen(QWidget):
    closed = Signal()

    def __init__(self, context: ServiceContext) -> None:
        super().__init__()
        self.context = context
        self._results = LatestOnly(self)
        self._results.delivered.connect(self._show_result)
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
        pin_column = QVBoxLayout()
        pin_column.addWidget(theme.label("Service mode — enter the service PIN", "title"))
        pin_column.addWidget(self.pin)
        pin_column.addWidget(self.message)
        pin_column.addStretch(1)
        pin_buttons = QHBoxLayout()
        pin_buttons.addWidget(self.back_button)
        pin_buttons.addWidget(self.enter_button)
        pin_column.addLayout(pin_buttons)
        pin_row = QHBoxLayout(pin_page)
        pin_row.setContentsMargins(0, 0, 0, 0)
        pin_row.addLayout(pin_column, 1)
        pin_row.addWidget(self.keypad, 1)

        # Diagnostics page: a column of sections, the chosen one beside it
        self.camera = theme.label()
        self.link = theme.label()
        self.inputs = theme.label()
        self.disk = theme.label()
        status_panel = QWidget()
        grid = QGridLayout(status_panel)
        for row, (name, value) in enumerate((("Camera", self.camera), ("Controller link", self.link),
                                             ("Raw inputs", self.inputs), ("Disk", self.disk))):
            grid.addWidget(theme.label(name, "muted"), row, 0, Qt.AlignmentFlag.AlignTop)
            grid.addWidget(value, row, 1)
        grid.setRowStretch(4, 1)
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

        self.pages = QStackedWidget()
        self.pages.addWidget(pin_page)
        self.pages.addWidget(diagnostics)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.pages)

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

    def _lockout(self):
        return lockout_from(self.context.store.audit_entries(), self.context.store.clock())

    def _show_lockout(self) -> bool:
        lockout = self._lockout()
        now = self.context.store.clock()         # the clock the audit entries were stamped with
        locked = lockout.locked(now)
        self.enter_button.setEnabled(not locked)
        if locked:
            minutes = max(1, round((lockout.locked_until - now) / 60))
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
        record = read_pin(self.context.pin_path)
        if record is None:
            self.message.setText("No service PIN is set on this appliance (appliance kiosk --set-service-pin).")
            return
        if not pin_matches(pin, record):
            self.context.store.audit("login_failed", SERVICE_ROLE, role=SERVICE_ROLE)
            if not self._show_lockout():
                self.message.setText(f"Wrong PIN. {self._lockout().tries_left()} tries left.")
            return
        self.context.store.audit("login", SERVICE_ROLE, role=SERVICE_ROLE)
        self.message.setText("")
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
            self.diagram.setText(_diagram_text(self.status.state))
        if name == "Status":
            self.show_status(self.status)
        self.panels.setCurrentWidget(panel)

    def show_status(self, status: ApplianceStatus) -> None:
        """Called by the window with every snapshot; cheap enough for the GUI thread."""
        self.status = status
        if not self.unlocked:           # nothing is shown before the PIN: keep only the snapshot
            return
        fps = f"{status.camera_fps:.1f} fps" if status.camera_fps is not None else "no frames"
        self.camera.setText(f"{self.context.describe_camera()}\nlive {fps}, {status.dropped_frames} dropped")
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
        self._run_off_thread(export_diagnostics, self.context.store, self.context.logs, targets[0])

    def _run_off_thread(self, work, *args) -> None:
        self.result.setText("Working…")
        for button in (self.self_test_button, self.write_test_button, self.export_button):
            button.setEnabled(False)

        def run():
            try:
                self._results.publish(work(*args))
            except (ApplianceError, OSError) as error:
                self._results.publish(f"FAILED: {error}")
        threading.Thread(target=run, name="service-test", daemon=True).start()

    def _show_result(self, text: str) -> None:
        for button in (self.self_test_button, self.write_test_button, self.export_button):
            button.setEnabled(True)
        if self.unlocked:
            self.result.setText(text)


def _diagram_text(current: str) -> str:
    """The machine's own transitions, one per line, the current state marked."""
    lines = []
    for line in mermaid_diagram().splitlines():
        line = line.strip()
        if "-->" not in line or line.startswith("[*]"):
            continue
        source = line.split()[0]
        marker = "▶ " if source.lower() == current.lower() else "  "
        lines.append(marker + line.replace("-->", "→"))
    return "\n".join(lines)
