"""The production kiosk: settings -> controller -> window, systemd notified, clean shutdown.

SIGTERM (systemd stopping the unit) and SIGINT quit the Qt loop; the controller then seals any
recording in progress before the process exits.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path

import shiboken6
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from appliance import config
from appliance.journal import send_logs_to
from appliance.ui import theme
from appliance.ui.presentation import Screen
from appliance.ui.review import ReviewScreen
from appliance.ui.service import RecentLogs, ServiceContext, ServiceScreen
from appliance.ui.simulator_panel import SimulatorPanel
from appliance.ui.watchdog import SystemdNotifier, Watchdog
from appliance.ui.window import KioskOptions, KioskWindow

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


def describe_camera(camera, source: str) -> str:
    """What the service screen says about the camera the controller has open (attribute reads only)."""
    if camera is None:
        return f"{source}: not open"
    counters = camera.counters
    return (f"{source} ({type(camera).__name__}) {camera.width}x{camera.height} @ {camera.nominal_fps:g} fps\n"
            f"driver: {counters.delivered} delivered, {counters.incomplete} incomplete, "
            f"{counters.dropped} dropped at the queue")


def kiosk_options(settings, *, fullscreen: bool | None = None, hide_cursor: bool | None = None) -> KioskOptions:
    """The [kiosk] settings; a command-line flag (not None) overrides its setting."""
    return KioskOptions(fullscreen=settings.kiosk.fullscreen if fullscreen is None else fullscreen,
                        hide_cursor=settings.kiosk.hide_cursor if hide_cursor is None else hide_cursor)


def build_window(controller, settings, logs: RecentLogs, options: KioskOptions) -> KioskWindow:
    window = KioskWindow(controller, options)
    review = ReviewScreen(controller.store, settings.identity_path, auto_lock_s=settings.kiosk.review_autolock_s)
    window.add_screen(Screen.REVIEW, review, "Review recordings")
    context = ServiceContext(controller.store, settings.data.dir, service_pin_path(settings),
                             lambda: describe_camera(controller.camera, settings.camera.source), logs,
                             lambda: usb_export_targets(settings.data.dir))
    window.add_screen(Screen.SERVICE, ServiceScreen(context), "Service")
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
