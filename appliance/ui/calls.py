"""Work off the GUI thread, with the answer back on it.

The controller's verbs wait for its event thread to answer (opening a session touches the
database and starts the pre-roll), and the records are read from SQLite; neither may hold up the
GUI thread. `OffThread` runs such work on a short-lived worker thread and hands the result, or
the exception, back on the GUI thread through a queued signal. `ControllerCalls` turns a verb's
failure into the sentence the technician reads.
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


class OffThread(QObject):
    _finished = Signal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._finished.connect(self._deliver, Qt.ConnectionType.QueuedConnection)
        self.pending = 0        # work started and not yet answered (the screenshot tool waits for 0)

    def run(self, work: Callable, *args, done: Callable[[object], None],
            failed: Callable[[Exception], None]) -> None:
        """Runs `work(*args)` on a worker thread; then, on the GUI thread, `done(result)` or
        `failed(exception)`. One of the two is always called."""
        self.pending += 1

        def worker() -> None:
            try:
                answer = (done, work(*args))
            except Exception as error:      # handed to `failed`, which decides what the screen says
                answer = (failed, error)
            self._finished.emit(answer)
        threading.Thread(target=worker, name="kiosk-worker", daemon=True).start()

    @Slot(object)
    def _deliver(self, answer) -> None:
        callback, value = answer
        self.pending -= 1
        callback(value)


def failure_message(verb_name: str, error: Exception) -> str:
    """What the technician reads when a verb failed: the controller's refusal as it is worded,
    else a plain sentence; a bug keeps its traceback in the log, never leaves a screen waiting."""
    if isinstance(error, ApplianceError):
        return str(error)
    if isinstance(error, TimeoutError):
        return NO_ANSWER
    log.error("the controller's %s failed unexpectedly", verb_name, exc_info=error)
    return UNEXPECTED


class ControllerCalls:
    """The controller's verbs, off the GUI thread."""

    def __init__(self, parent: QObject | None = None) -> None:
        self.off_thread = OffThread(parent)

    def run(self, verb: Callable, *args, done: Callable[[str | None], None]) -> None:
        """Runs `verb(*args)` off the GUI thread; then `done(None)`, or `done(message)` with a
        message for the technician when it failed."""
        name = getattr(verb, "__name__", "verb")
        self.off_thread.run(verb, *args, done=lambda _: done(None),
                            failed=lambda error: done(failure_message(name, error)))
