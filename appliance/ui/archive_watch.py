"""The archive backlog for the kiosk: read from the records off the GUI thread, every minute.

The archive runs as its own process (appliance-archive.service); the kiosk only reads what it
wrote to the shared database. The start screen warns once the oldest unarchived recording is
older than `[archive] warn_after_hours`; the service screen shows the backlog line.
"""

from __future__ import annotations

import logging

from PySide6.QtCore import QObject, QTimer, Signal

from appliance.ui.calls import OffThread

REFRESH_MS = 60_000

log = logging.getLogger(__name__)


class ArchiveWatch(QObject):
    changed = Signal(object)      # an ArchiveBacklog, on the GUI thread

    def __init__(self, reader, parent: QObject | None = None, refresh_ms: int = REFRESH_MS) -> None:
        super().__init__(parent)
        self._reader = reader
        self.background = OffThread(self)
        self.timer = QTimer(self)
        self.timer.setInterval(refresh_ms)
        self.timer.timeout.connect(self.refresh)

    def start(self) -> None:
        self.refresh()
        self.timer.start()

    def refresh(self) -> None:
        if self.background.pending:       # a slow read is still running: do not pile up more
            return
        self.background.run(self._reader.archive_backlog, done=self.changed.emit, failed=self._unreadable)

    def _unreadable(self, error: Exception) -> None:
        log.warning("cannot read the archive backlog: %s", error)
