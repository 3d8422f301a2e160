"""The one database writer: a thread that owns the read-write Store and runs every write in turn.

Callers hand it work, a function of the Store, and get a Future: `submit` never blocks (the
queue is unbounded), so neither the GUI nor the camera path ever waits on SQLite; `call` waits
for the answer and must not run on the GUI thread. Work runs in submission order, one item at a
time, so a transaction never interleaves with another. An exception inside work (a SQLite error,
BadInput, IntegrityError) lands on its Future; the thread carries on with the next item.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Callable, TypeVar

from appliance.storage import audit
from appliance.storage.database import Store
from appliance.storage.layout import DataLayout

log = logging.getLogger(__name__)

T = TypeVar("T")
_CLOSE = object()


class WriterClosed(RuntimeError):
    pass


class DatabaseWriter:
    def __init__(self, data_dir: Path, clock: Callable[[], float] = time.time):
        self.layout = DataLayout(Path(data_dir))
        self.clock = clock
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="database-writer", daemon=True)
        self._opened: Future[None] = Future()
        self._accepting = False
        self._state_lock = threading.Lock()    # orders submit() against close()

    def start(self) -> DatabaseWriter:
        """Opens the Store (and migrates it) on the writer thread; raises what opening raised."""
        with self._state_lock:
            self._accepting = True
        self._thread.start()
        try:
            self._opened.result()
        except BaseException:
            with self._state_lock:
                self._accepting = False
            self._thread.join()
            raise
        return self

    def submit(self, work: Callable[[Store], T]) -> Future[T]:
        future: Future[T] = Future()
        with self._state_lock:
            if not self._accepting:
                raise WriterClosed("the database writer is not running")
            self._queue.put((work, future))
        return future

    def call(self, work: Callable[[Store], T], timeout: float = 30.0) -> T:
        """Runs `work` on the writer thread and returns its result (or raises its exception)."""
        if threading.current_thread() is self._thread:
            raise RuntimeError("call() from inside writer work would wait for itself")
        return self.submit(work).result(timeout)

    def audit(self, event: str, actor: str = "appliance", **details) -> Future[audit.AuditEntry]:
        """Appends an audit entry in turn; a failure is logged, so fire and forget is safe."""
        audit.check_event(event)
        future = self.submit(lambda store: store.audit(event, actor, **details))
        future.add_done_callback(_log_failure)
        return future

    def close(self) -> None:
        """Runs everything already submitted, then closes the database. Idempotent."""
        with self._state_lock:
            was_accepting, self._accepting = self._accepting, False
        if was_accepting:
            self._queue.put(_CLOSE)
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join()

    def _run(self) -> None:
        try:
            store = Store(self.layout.root, clock=self.clock)
        except BaseException as error:
            self._opened.set_exception(error)
            return
        self._opened.set_result(None)
        try:
            while (item := self._queue.get()) is not _CLOSE:
                work, future = item
                if future.set_running_or_notify_cancel():
                    _run_one(store, work, future)
        finally:
            store.close()


def _run_one(store: Store, work: Callable[[Store], T], future: Future[T]) -> None:
    try:
        result = work(store)
    except Exception as error:
        future.set_exception(error)
    else:
        future.set_result(result)


def _log_failure(future: Future) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("an audit entry could not be written: %s", future.exception())
