"""The production kiosk: settings -> controller -> window, systemd notified, clean shutdown.

SIGTERM (systemd stopping the unit) and SIGINT quit the Qt loop; the controller then seals any
recording in progress before the process exits.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from pathlib import Path

import shiboken6
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from appliance import config
from appliance.journal import send_logs_to
from appliance.ui import theme
from appliance.ui.archive_watch import ArchiveWatch
from appliance.ui.presentation import Screen
from appliance.ui.review import ReviewScreen
from appliance.ui.service import ServiceContext, ServiceScreen
from appliance.ui.service_checks import RecentLogs
from appliance.ui.simulator_panel import SimulatorPanel
from appliance.ui.watchdog import SystemdNotifier, Watchdog
from appliance.ui.window import KioskOptions, KioskWindow
from appliance.ui.worklist_screen import WorklistScreen
from appliance.worklist.client import WorklistClient

SIGNAL_POLL_MS = 200        # lets Python run its signal handlers while Qt's loop waits
USB_MOUNT_ROOTS = (Path("/media"), Path("/run/media"))
PIN_FILE = "service-pin"


def service_pin_path(settings) -> Path:
    return settings.data.dir / PIN_FILE


def usb_export_targets(data_dir: Path) -> list[Path]:
    """Writable mounted removable media first (/media/<user>/<label>), else <data>/exports."""
    found = []
    for root in USB_MOUNT_ROOTS:
        if root.is_dir():
            for mount in sorted(root.glob("*/*")) + sorted(root.glob("*")):
                if mount.is_dir() and os.path.ismount(mount) and os.access(mount, os.W_OK):
                    found.append(mount)
    return found + [data_dir / "exports"]


def kiosk_options(settings, *, fullscreen: bool | None = None, hide_cursor: bool | None = None) -> KioskOptions:
    """The [kiosk] settings; a command-line flag (not None) overrides its setting."""
    return KioskOptions(fullscreen=settings.kiosk.fullscreen if fullscreen is None else fullscreen,
                        hide_cursor=settings.kiosk.hide_cursor if hide_cursor is None else hide_cursor)


def build_window(controller, settings, logs: RecentLogs, options: KioskOptions) -> KioskWindow:
    window = KioskWindow(controller, options)
    # Review and service read the records through the controller's read-only connection, off the
    # GUI thread, and write audit entries through its database writer without waiting.
    review = ReviewScreen(controller.reader, controller.database, settings.identity_path,
                          auto_lock_s=settings.kiosk.review_autolock_s)
    window.add_screen(Screen.REVIEW, review, "Review recordings")
    context = ServiceContext(controller.reader, controller.database, settings.data.dir, service_pin_path(settings),
                             logs, lambda: usb_export_targets(settings.data.dir))
    service = ServiceScreen(context)
    window.add_screen(Screen.SERVICE, service, "Service")
    if settings.archive.configured:
        archive = settings.archive
        watch = ArchiveWatch(controller.reader, parent=window)
        window.watch_archive(watch, archive.warn_after_hours)
        watch.changed.connect(lambda backlog: service.show_archive_backlog(backlog, time.time(),
                                                                           archive.warn_after_hours))
        watch.start()
    if settings.worklist.host:      # a RIS is configured: the worklist service serves its list
        client = WorklistClient.from_settings(settings)
        window.use_worklist(WorklistScreen(controller, window.calls, client.fetch))
    return window


def run_kiosk(config_path: Path | None, *, fullscreen: bool | None = None, hide_cursor: bool | None = None) -> int:
    """`fullscreen` / `hide_cursor`: None keeps the [kiosk] setting, a bool overrides it."""
    from appliance.controller import Controller

    os.umask(0o077)             # everything the appliance creates is private to its user
    settings = config.load(config_path)
    logs = RecentLogs()
    send_logs_to(logging.StreamHandler(sys.stderr), logs)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    theme.apply(app)
    controller = Controller(settings)
    controller.start()
    watchdog = Watchdog(SystemdNotifier.from_environment())
    window = None
    try:
        options = kiosk_options(settings, fullscreen=fullscreen, hide_cursor=hide_cursor)
        window = build_window(controller, settings, logs, options)
        if controller.simulator is not None:    # no board (the demo): its inputs on screen
            window.add_panel(SimulatorPanel(controller.simulator))
        window.connect_controller()
        window.present()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: app.quit())
        signal_poll = QTimer()
        signal_poll.timeout.connect(lambda: None)
        signal_poll.start(SIGNAL_POLL_MS)
        watchdog.start()
        return app.exec()
    finally:
        watchdog.stop()
        if window is not None:
            # Unsubscribe before the controller's last snapshots, and delete the widgets while
            # the QApplication still exists: a snapshot queued to a half-destroyed window, or
            # widgets outliving the application at interpreter exit, crash Qt.
            window.close()
        controller.stop()
        if window is not None:
            shiboken6.delete(window)
