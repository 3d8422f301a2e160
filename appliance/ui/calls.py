"""Calls into the controller without blocking the GUI thread.

The controller's verbs wait for its event thread to answer (opening a session touches the
database and starts the pre-roll), so the kiosk runs each on a short-lived worker thread and
gets the outcome back on the GUI thread through a queued signal.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

from PySide6.QtCore import QObject, Qt, Signal, Slot

from appliance.errors import ApplianceError

log = logging.getLogger(__name__)

NO_ANSWER = "The appliance did not answer in time. Try again; call service if this repeats."
UNEXPECTED = "The appliance could not do this because of an internal error. Call service; the log has the details."


class ControllerCalls(QObject):
    _finished = Signal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._finished.connect(self._deliver, Qt.ConnectionType.QueuedConnection)
        self.pending = 0

    def run(self, verb: Callable, *args, done: Callable[[str | None], None]) -> None:
        """Runs `verb(*args)` off the GUI thread; then `done(None)`, or `done(message)` with a
        message for the technician when it failed. Every failure reaches `done`: a screen that
        waits for the answer must never be left waiting."""
        self.pending += 1

        def work() -> None:
            try:
                verb(*args)
                outcome = None
            except ApplianceError as refusal:
                outcome = str(refusal)
            except TimeoutError:
                outcome = NO_ANSWER
            except Exception:       # a bug in the appliance: say so on screen, keep the traceback in the log
                log.exception("the controller's %s failed unexpectedly", getattr(verb, "__name__", "verb"))
                outcome = UNEXPECTED
            self._finished.emit((done, outcome))
        threading.Thread(target=work, name="kiosk-call", daemon=True).start()

    @Slot(object)
    def _deliver(self, finished) -> None:
        done, outcome = finished
        self.pending -= 1
        done(outcome)
