"""The treatment controller as a stream of typed events, over pyserial (docs/controller-protocol.md).

The imperative shell around firmware_bridge/host_session.py: a reader thread owns the port,
feeds the session the bytes it reads and the time, writes what the session wants sent, delivers
its events, and reopens the port by itself when the device disappears. The events are defined
in firmware_bridge/link_events.py and offered here, with the link, to its users.
"""

from __future__ import annotations

import errno
import logging
import queue
import select
import termios  # pyserial's flushes raise termios.error (not an OSError) when the device is gone
import threading
import time
from typing import Callable

from firmware_bridge.host_session import HostSession
from firmware_bridge.link_events import (EDGE_EVENTS, ControllerFault, FootswitchPressed, FootswitchReleased,
                                         InputEdge, InterlockClosed, InterlockOpened, LaserOff, LaserOn,
                                         LinkDown, LinkUp, event_as_dict)
from firmware_bridge.link_stats import LinkStats

__all__ = ["ControllerLink", "LinkError", "open_port", "LinkStats", "EDGE_EVENTS", "InputEdge",
           "FootswitchPressed", "FootswitchReleased", "InterlockClosed", "InterlockOpened", "LaserOn",
           "LaserOff", "LinkUp", "LinkDown", "ControllerFault", "event_as_dict"]

logger = logging.getLogger(__name__)


class LinkError(Exception):
    """A port that cannot be used; the message is one line naming the port and the cause."""


RETRY_S = 0.1           # between attempts to open a port that is missing, busy or refused
REFUSED_RETRY_S = 1.0   # before asking a board we refused (wrong version) again
MAX_WAIT_S = 0.01       # the reader wakes at least this often, so set_ready takes effect at once
WRITE_TIMEOUT_S = 0.1


def open_port(path: str):
    """Opens the controller port with pyserial, exclusively; LinkError with a one-line cause."""
    import serial

    try:
        # write_timeout: a device that stops reading must not hang the reader thread.
        return serial.Serial(path, baudrate=115200, timeout=0, write_timeout=WRITE_TIMEOUT_S, exclusive=True)
    except serial.SerialException as error:
        cause = error.errno if isinstance(error.errno, int) else None
        text = str(error)
        if cause == errno.ENOENT or "No such file" in text:
            raise LinkError("controller port %s does not exist (board unplugged?)" % path) from None
        if cause in (errno.EAGAIN, errno.EBUSY) or "exclusively lock" in text:
            raise LinkError("controller port %s is busy: another program has it open" % path) from None
        if cause == errno.ENOTTY or "Inappropriate ioctl" in text:
            raise LinkError("%s is not a serial port" % path) from None
        raise LinkError("controller port %s cannot be opened: %s" % (path, text)) from None
    except OSError as error:
        raise LinkError("controller port %s cannot be opened: %s" % (path, error.strerror)) from None


class ControllerLink:
    """The treatment controller as a stream of typed events, delivered from the reader thread.

    Give `on_event` (called in the reader thread; it must not block) or `events` (a queue).
    """

    def __init__(self, port_path: str, on_event: Callable | None = None, events: queue.Queue | None = None):
        if (on_event is None) == (events is None):
            raise ValueError("give exactly one of on_event or events")
        self.port_path = port_path
        self._deliver = on_event if on_event is not None else events.put
        self._session = HostSession(port_path)
        self._lock = threading.Lock()       # guards the session between the thread and setters
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._port = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="controller-link", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Withdraws ready (the board drops its permissive at once), closes the port."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def set_ready(self, ready: bool) -> None:
        with self._lock:
            self._session.set_ready(bool(ready))

    def set_recording_led(self, on: bool) -> None:
        with self._lock:
            self._session.set_recording_led(bool(on))

    @property
    def is_up(self) -> bool:
        return self._session.state == "up"

    def stats(self) -> LinkStats:
        with self._lock:
            return self._session.stats()

    # The reader thread.

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    if self._port is None and not self._open():
                        self._stop.wait(RETRY_S)
                        continue
                    self._serve()
                except Exception as error:  # noqa: BLE001 - the link must outlive any one failure
                    # A reader thread that died would never reconnect nor deliver another edge:
                    # report the link down, start over with a fresh port.
                    logger.exception("controller link failed; reopening the port")
                    self._close()
                    with self._lock:
                        events = self._session.port_failed("controller link error: %s" % error,
                                                           time.monotonic_ns())
                    self._emit(events)
                    self._stop.wait(RETRY_S)
        finally:
            self._goodbye()

    def _open(self) -> bool:
        try:
            port = open_port(self.port_path)
        except LinkError as error:
            with self._lock:
                events = self._session.port_failed(str(error), time.monotonic_ns())
            self._emit(events)
            return False
        import serial

        self._port = port
        try:
            port.reset_input_buffer()
            with self._lock:
                self._session.connection_opened(time.monotonic_ns())
            self._flush()
        except (serial.SerialException, OSError, termios.error):
            self._close()
            with self._lock:
                events = self._session.port_failed("controller port %s disconnected" % self.port_path,
                                                   time.monotonic_ns())
            self._emit(events)
            return False
        return True

    def _serve(self) -> None:
        """Reads, ticks and writes until the port fails, goes silent or the link is stopped."""
        import serial

        port = self._port
        try:
            while not self._stop.is_set():
                # Wake exactly at the session's next deadline, so silence is detected on time.
                with self._lock:
                    wait_ns = self._session.next_deadline_ns() - time.monotonic_ns()
                readable, _, _ = select.select([port.fileno()], [], [], min(MAX_WAIT_S, max(0, wait_ns / 1e9)))
                data = port.read(port.in_waiting or 1) if readable else b""
                now = time.monotonic_ns()
                with self._lock:
                    events = self._session.receive(data, now) if data else []
                    events += self._session.tick(now)
                    state = self._session.state
                self._flush()
                self._emit(events)
                if state in ("closed", "refused"):
                    break
        except (serial.SerialException, OSError, termios.error):
            with self._lock:
                events = self._session.connection_lost(
                    "controller port %s disconnected" % self.port_path, time.monotonic_ns())
            self._emit(events)
        if self._stop.is_set():
            return   # _goodbye still needs the port
        self._close()
        if self._session.state == "refused":
            self._stop.wait(REFUSED_RETRY_S)

    def _flush(self) -> None:
        with self._lock:
            data = self._session.take_outgoing()
        if data and self._port is not None:
            self._port.write(data)

    def _emit(self, events: list) -> None:
        for event in events:
            try:
                self._deliver(event)
            except Exception:
                # A consumer's bug must not stop the link (and with it the heartbeats).
                logger.exception("controller event consumer failed on %s", type(event).__name__)

    def _close(self) -> None:
        if self._port is not None:
            try:
                self._port.close()
            except OSError:
                pass
            self._port = None

    def _goodbye(self) -> None:
        if self._port is not None:
            with self._lock:
                self._session.goodbye(time.monotonic_ns())
            try:
                self._flush()
            except OSError:
                pass
        self._close()
