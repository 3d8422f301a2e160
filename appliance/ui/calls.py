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

import shiboken6
from PySide6.QtCore import QCoreApplication, QObject, Qt, Signal, Slot

from appliance.errors import ApplianceError

log = logging.getLogger(__name__)

NO_ANSWER = "The appliance did not answer in time. Try again; call service if this repeats."
UNEXPECTED = "The appliance could not do this because of an internal error. Call service; the log has the details."


class _Relay(QObject):
    """Carries workers' answers to the GUI thread: one per application, a child of it, so it
    outlives every screen. A worker whose screen was deleted while it ran (a stalled worklist
    service, a window closed mid-call) must not emit on a deleted object, which crashes Qt; its
    answer is dropped here instead."""
    finished = Signal(object)

    def __init__(self) -> None:
        super().__init__(QCoreApplication.instance())
        self.finished.connect(self._deliver, Qt.ConnectionType.QueuedConnection)

    @Slot(object)
    def _deliver(self, answer) -> None:
        owner, callback, value = answer
        if not shiboken6.isValid(owner):     # its screen is gone: nobody to tell
            return
        owner.pending -= 1
        callback(value)


_relay: _Relay | None = None


def _application_relay() -> _Relay:
    """The relay of the running QApplication (called on the GUI thread)."""
    global _relay
    if _relay is None or not shiboken6.isValid(_relay):
        _relay = _Relay()
    return _relay


class OffThread(QObject):
    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._relay = _application_relay()
        self.pending = 0        # work started and not yet answered (the screenshot tool waits for 0)

    def run(self, work: Callable, *args, done: Callable[[object], None],
            failed: Callable[[Exception], None]) -> None:
        """Runs `work(*args)` on a worker thread; then, on the GUI thread, `done(result)` or
        `failed(exception)`. One of the two is always called, unless this object (its screen)
        has been deleted meanwhile."""
        self.pending += 1
        relay = self._relay

        def worker() -> None:
            try:
                answer = (done, work(*args))
            except Exception as error:      # handed to `failed`, which decides what the screen says
                answer = (failed, error)
            if shiboken6.isValid(relay):    # else the application has quit meanwhile
                relay.finished.emit((self, *answer))
        threading.Thread(target=worker, name="kiosk-worker", daemon=True).start()


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
