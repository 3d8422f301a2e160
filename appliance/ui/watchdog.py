"""systemd notifications: READY=1 once the kiosk is up, WATCHDOG=1 from a QTimer on the GUI
thread, so a frozen GUI stops the pings and systemd restarts the kiosk.

sd_notify is one datagram to the unix socket named in $NOTIFY_SOCKET (a leading '@' means the
abstract namespace); outside systemd the variable is absent and every call is a no-op. The
kiosk runs as a child of the cage compositor, so WATCHDOG_PID names cage, not us; the unit has
NotifyAccess=all and we honour WATCHDOG_USEC without comparing PIDs.
"""

from __future__ import annotations

import logging
import os
import socket

from PySide6.QtCore import QObject, QTimer

log = logging.getLogger(__name__)


class SystemdNotifier:
    def __init__(self, socket_path: str | None, watchdog_usec: int | None) -> None:
        self.address = None
        if socket_path:
            self.address = "\0" + socket_path[1:] if socket_path.startswith("@") else socket_path
        self.watchdog_usec = watchdog_usec if watchdog_usec and watchdog_usec > 0 else None

    @classmethod
    def from_environment(cls, environ=os.environ) -> "SystemdNotifier":
        usec = environ.get("WATCHDOG_USEC", "")
        return cls(environ.get("NOTIFY_SOCKET") or None, int(usec) if usec.isdigit() else None)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, message: str) -> bool:
        """Sends one notification; False when not under systemd or the socket is gone (the
        kiosk keeps running: systemd will notice the missing pings on its own)."""
        if self.address is None:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(message.encode(), self.address)
            return True
        except OSError as error:
            log.warning("systemd notify failed: %s", error)
            return False


class Watchdog(QObject):
    """Pings at half the watchdog interval from the GUI thread's event loop."""

    def __init__(self, notifier: SystemdNotifier, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.notifier = notifier
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.ping)
        if notifier.watchdog_usec:
            self.timer.setInterval(max(1, notifier.watchdog_usec // 2000))

    def start(self) -> None:
        self.notifier.notify("READY=1\nSTATUS=Kiosk up")
        if self.notifier.enabled and self.notifier.watchdog_usec:
            self.timer.start()

    def ping(self) -> None:
        self.notifier.notify("WATCHDOG=1")

    def stop(self) -> None:
        self.timer.stop()
        self.notifier.notify("STOPPING=1")
