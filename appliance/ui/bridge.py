"""Hands values from a worker thread to the GUI thread, newest only.

The controller's status callback and the playback decoder run on their own threads; they call
`publish`, which stores the value and queues one signal, so they never wait for painting. Values
that arrive faster than the GUI paints are coalesced: the GUI always gets the newest.
"""

from __future__ import annotations

import threading

from PySide6.QtCore import QObject, Qt, Signal, Slot


class LatestOnly(QObject):
    delivered = Signal(object)   # emitted on the thread this object lives in (the GUI thread)
    _arrived = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._lock = threading.Lock()
        self._latest = None
        self._delivery_queued = False
        self._arrived.connect(self._deliver, Qt.ConnectionType.QueuedConnection)

    def publish(self, value) -> None:
        """Thread-safe; returns at once."""
        with self._lock:
            self._latest = value
            if self._delivery_queued:
                return
            self._delivery_queued = True
        self._arrived.emit()

    @Slot()
    def _deliver(self) -> None:
        with self._lock:
            value, self._latest, self._delivery_queued = self._latest, None, False
        if value is not None:
            self.delivered.emit(value)
