"""Carries status snapshots from the controller's thread to the GUI thread.

`publish` is the callback given to `controller.subscribe`; it only stores the snapshot and
queues a signal, so the controller thread never waits for painting. Snapshots that arrive
faster than the GUI paints are coalesced: the GUI always renders the newest one.
"""

from __future__ import annotations

import threading

from PySide6.QtCore import QObject, Qt, Signal, Slot

from appliance.status import ApplianceStatus


class StatusBridge(QObject):
    status_changed = Signal(object)   # ApplianceStatus, emitted on the GUI thread
    _arrived = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._lock = threading.Lock()
        self._latest: ApplianceStatus | None = None
        self._delivery_queued = False
        self._arrived.connect(self._deliver, Qt.ConnectionType.QueuedConnection)

    def publish(self, status: ApplianceStatus) -> None:
        """Thread-safe; called from the controller thread (or any thread)."""
        with self._lock:
            self._latest = status
            if self._delivery_queued:
                return
            self._delivery_queued = True
        self._arrived.emit()

    @Slot()
    def _deliver(self) -> None:
        with self._lock:
            status, self._latest, self._delivery_queued = self._latest, None, False
        if status is not None:
            self.status_changed.emit(status)
