"""Calls into the controller without blocking the GUI thread.

The controller's verbs wait for its event thread to answer (opening a session touches the
database and starts the pre-roll), so the kiosk runs each on a short-lived worker thread and
gets the outcome back on the GUI thread through a queued signal.
"""

from __future__ import annotations

import threading
from typing import Callable

from PySide6.QtCore import QObject, Qt, Signal, Slot

from appliance.errors import ApplianceError


class ControllerCalls(QObject):
    _finished = Signal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._finished.connect(self._deliver, Qt.ConnectionType.QueuedConnection)
        self.pending = 0

    def run(self, verb: Callable, *args, done: Callable[[str | None], None]) -> None:
        """Runs `verb(*args)` off the GUI thread; then `done(None)`, or `done(message)` when the
        controller refused with an ApplianceError (the message is for the technician)."""
        self.pending += 1

        def work() -> None:
            try:
                verb(*args)
                outcome = None
            except ApplianceError as refusal:
                outcome = str(refusal)
            except TimeoutError:
                outcome = "The appliance did not answer in time. Try again; call service if this repeats."
            self._finished.emit((done, outcome))
        threading.Thread(target=work, name="kiosk-call", daemon=True).start()

    @Slot(object)
    def _deliver(self, finished) -> None:
        done, outcome = finished
        self.pending -= 1
        done(outcome)
