"""Host side of the treatment controller link (docs/controller-protocol.md).

HostSession is the protocol logic as a pure state machine: bytes and the time go in, events
and bytes to send come out, so it is tested with a fake clock against the firmware's own Board.
ControllerLink is the imperative shell: a reader thread that owns the pyserial port, feeds the
session, sends what it produces, and reopens the port by itself when the device disappears.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import queue
import select
import termios  # pyserial's flushes raise termios.error (not an OSError) when the device is gone
import threading
import time
from dataclasses import dataclass
from typing import Callable

from firmware_bridge import protocol

MS = 1_000_000  # nanoseconds
logger = logging.getLogger(__name__)


# -- events ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class InputEdge:
    at_ns: int          # host monotonic time the edge was decoded
    edge_number: int
    board_ms: int       # board uptime at the debounced edge


class FootswitchPressed(InputEdge): pass
class FootswitchReleased(InputEdge): pass
class InterlockClosed(InputEdge): pass
class InterlockOpened(InputEdge): pass
class LaserOn(InputEdge): pass
class LaserOff(InputEdge): pass


# (input, level) -> event class
EDGE_EVENTS = {
    (protocol.FOOTSWITCH, 1): FootswitchPressed, (protocol.FOOTSWITCH, 0): FootswitchReleased,
    (protocol.INTERLOCK, 1): InterlockClosed, (protocol.INTERLOCK, 0): InterlockOpened,
    (protocol.LASER, 1): LaserOn, (protocol.LASER, 0): LaserOff,
}


@dataclass(frozen=True)
class LinkUp:
    at_ns: int
    firmware_version: str
    board_id: str       # hex
    protocol_version: int


@dataclass(frozen=True)
class LinkDown:
    at_ns: int
    reason: str
    last_frame_ns: int | None = None   # when the last valid frame arrived, if any


@dataclass(frozen=True)
class ControllerFault:
    at_ns: int
    reason: str
    code: int | None = None            # FAULT code when the board reported it


def event_as_dict(event) -> dict:
    return {"event": type(event).__name__, **dataclasses.asdict(event)}


class LinkError(Exception):
    """A port that cannot be used; the message is one line naming the port and the cause."""


# -- the protocol logic -----------------------------------------------------------------------

class HostSession:
    """Handshake, heartbeats, edge de-duplication and silence detection; no I/O, no clock."""

    def __init__(self, port_name: str):
        self.port_name = port_name
        self.protocol_version = protocol.PROTOCOL_VERSION
        self.state = "closed"            # closed | handshake | up | refused
        self.ready = False
        self.led = False
        self._outgoing = bytearray()
        self._decoder = protocol.Decoder()
        self._seq = 0
        self._expected_rx_seq: int | None = None
        self._last_frame_ns: int | None = None
        self._opened_ns = 0
        self._last_connect_ns = 0
        self._bytes_in_handshake = 0
        self._no_hello_reported = False
        self._last_heartbeat_ns = 0
        self._token = 0
        self._heartbeat_sent: dict[int, int] = {}
        # Edge de-duplication survives reconnections to the same board boot.
        self._board: tuple[bytes, int] | None = None
        self._expected_edge = 0
        self.counters = {"frames": 0, "lost_frames": 0, "edges_delivered": 0,
                         "edge_duplicates": 0, "reconnects": 0, "faults": 0}
        self.round_trip_ms: float | None = None
        self.firmware_version = ""
        self.board_id = ""
        self.board_state: tuple | None = None     # last STATE fields
        self.board_outputs: int | None = None

    # Inputs from the shell.

    def connection_opened(self, now_ns: int) -> None:
        self.state = "handshake"
        self._decoder.discard_partial()
        self._opened_ns = now_ns
        self._bytes_in_handshake = 0
        self._no_hello_reported = False
        self._last_frame_ns = None
        self._send_connect(now_ns)

    def connection_lost(self, reason: str, now_ns: int) -> list:
        was_up = self.state == "up"
        self.state = "closed"
        return [LinkDown(now_ns, reason, self._last_frame_ns)] if was_up else []

    def receive(self, data: bytes, now_ns: int) -> list:
        if self.state == "handshake":
            self._bytes_in_handshake += len(data)
        events = []
        for version, seq, msg_type, payload in self._decoder.feed(data):
            events.extend(self._frame(version, seq, msg_type, payload, now_ns))
        return events

    def tick(self, now_ns: int) -> list:
        """Timers: connect retries, handshake timeout, heartbeats, silence detection."""
        if self.state == "handshake":
            events = []
            if (not self._no_hello_reported
                    and now_ns - self._opened_ns >= protocol.HANDSHAKE_TIMEOUT_MS * MS):
                # Reported once; CONNECT keeps going out in case the board is still booting.
                self._no_hello_reported = True
                events.append(ControllerFault(now_ns, self._no_hello_reason()))
            if now_ns - self._last_connect_ns >= protocol.CONNECT_RETRY_MS * MS:
                self._send_connect(now_ns)
            return events
        elif self.state == "up":
            silent_ns = now_ns - self._last_frame_ns
            if silent_ns >= protocol.LINK_SILENCE_MS * MS:
                self.state = "closed"
                return [LinkDown(now_ns, "no frame from the controller for %d ms" % (silent_ns // MS),
                                 self._last_frame_ns)]
            if now_ns - self._last_heartbeat_ns >= protocol.HEARTBEAT_PERIOD_MS * MS:
                self.send_heartbeat(now_ns)
        return []

    def send_heartbeat(self, now_ns: int) -> None:
        flags = (protocol.FLAG_READY if self.ready else 0) | (protocol.FLAG_LED if self.led else 0)
        self._token = (self._token + 1) & 0xFFFF
        self._heartbeat_sent[self._token] = now_ns
        if len(self._heartbeat_sent) > 32:
            del self._heartbeat_sent[next(iter(self._heartbeat_sent))]
        self._last_heartbeat_ns = now_ns
        self._send(protocol.HEARTBEAT, (self._token, flags))

    def next_deadline_ns(self) -> int:
        """When tick() next has something to do (monotonic ns)."""
        if self.state == "handshake":
            timeout = self._opened_ns + protocol.HANDSHAKE_TIMEOUT_MS * MS
            retry = self._last_connect_ns + protocol.CONNECT_RETRY_MS * MS
            return retry if self._no_hello_reported else min(timeout, retry)
        if self.state == "up":
            return min(self._last_frame_ns + protocol.LINK_SILENCE_MS * MS,
                       self._last_heartbeat_ns + protocol.HEARTBEAT_PERIOD_MS * MS)
        return 0

    def take_outgoing(self) -> bytes:
        data = bytes(self._outgoing)
        self._outgoing.clear()
        return data

    @property
    def last_frame_ns(self) -> int | None:
        return self._last_frame_ns

    @property
    def decoder(self) -> protocol.Decoder:
        return self._decoder

    # Frames.

    def _frame(self, version, seq, msg_type, payload, now_ns):
        if msg_type == protocol.HELLO and self.state == "handshake":
            return self._hello(seq, payload, now_ns)
        if self.state != "up" or version != self.protocol_version:
            return []   # leftovers of an earlier connection, or a board we refused
        try:
            fields = protocol.unpack(msg_type, payload)
        except protocol.FrameError:
            return []
        self._last_frame_ns = now_ns
        self.counters["frames"] += 1
        if self._expected_rx_seq is not None and seq != self._expected_rx_seq:
            self.counters["lost_frames"] += (seq - self._expected_rx_seq) & 0xFF
        self._expected_rx_seq = (seq + 1) & 0xFF
        if msg_type == protocol.EDGE:
            return self._edge(fields, now_ns)
        if msg_type == protocol.STATE:
            self.board_state = fields
            self.board_outputs = fields[3]
        elif msg_type == protocol.HEARTBEAT_REPLY:
            sent_ns = self._heartbeat_sent.pop(fields[0], None)
            if sent_ns is not None:
                self.round_trip_ms = (now_ns - sent_ns) / MS
            self.board_outputs = fields[1]
        elif msg_type == protocol.FAULT:
            self.counters["faults"] += 1
            code, detail = fields
            name = protocol.FAULT_NAMES.get(code, "unknown fault")
            return [ControllerFault(now_ns, "controller fault %d: %s (detail %d)" % (code, name, detail), code)]
        return []

    def _hello(self, seq, payload, now_ns):
        version = payload[0] if payload else None
        if version != self.protocol_version:
            self.state = "refused"
            return [ControllerFault(now_ns, "protocol version mismatch: board speaks v%s, host speaks v%d; "
                                            "install matching firmware" % (version, self.protocol_version))]
        try:
            fields = protocol.unpack(protocol.HELLO, payload)
        except protocol.FrameError as error:
            self.state = "refused"
            return [ControllerFault(now_ns, "malformed HELLO from the controller: %s" % error)]
        (_, major, minor, patch, board_id, boot_id, _uptime, first_unacked, _cause) = fields
        if self._board != (board_id, boot_id):
            self._board = (board_id, boot_id)
            self._expected_edge = first_unacked
        self.state = "up"
        self._last_frame_ns = now_ns
        self._expected_rx_seq = (seq + 1) & 0xFF
        self.counters["frames"] += 1
        self.firmware_version = "%d.%d.%d" % (major, minor, patch)
        self.board_id = board_id.hex()
        self.send_heartbeat(now_ns)
        return [LinkUp(now_ns, self.firmware_version, self.board_id, version)]

    def _edge(self, fields, now_ns):
        number, input_index, level, board_ms = fields
        events = []
        if number == self._expected_edge:
            self._expected_edge = (number + 1) & 0xFFFF
            event_class = EDGE_EVENTS.get((input_index, level))
            if event_class is None:
                # Acknowledged all the same: one unknown input must not block every later edge.
                events.append(ControllerFault(now_ns, "controller reported an edge on unknown input %d "
                                                      "(level %d)" % (input_index, level)))
            else:
                self.counters["edges_delivered"] += 1
                events.append(event_class(now_ns, number, board_ms))
        else:
            self.counters["edge_duplicates"] += 1
        self._send(protocol.ACK, (((self._expected_edge - 1) & 0xFFFF),))
        return events

    def _no_hello_reason(self):
        if self._bytes_in_handshake == 0:
            return ("no answer from %s within %d ms: not a treatment controller, or its firmware "
                    "is not running" % (self.port_name, protocol.HANDSHAKE_TIMEOUT_MS))
        return ("device at %s does not speak the treatment controller protocol (%d bytes without "
                "a valid HELLO)" % (self.port_name, self._bytes_in_handshake))

    def _send_connect(self, now_ns):
        self._last_connect_ns = now_ns
        self._seq = 0
        self._send(protocol.CONNECT, (self.protocol_version,))

    def _send(self, msg_type, fields):
        self._outgoing += protocol.encode_frame(self._seq, msg_type, fields, self.protocol_version)
        self._seq = (self._seq + 1) & 0xFF


# -- the shell ------------------------------------------------------------------------------

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
        self._down_reported = False          # LinkDown once per outage
        self._last_fault: str | None = None  # a refusal once per reason, not on every retry
        self._flags_changed = False

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
            self._flags_changed |= self._session.ready != bool(ready)
            self._session.ready = bool(ready)

    def set_recording_led(self, on: bool) -> None:
        with self._lock:
            self._flags_changed |= self._session.led != bool(on)
            self._session.led = bool(on)

    @property
    def is_up(self) -> bool:
        return self._session.state == "up"

    def stats(self) -> dict:
        with self._lock:
            session = self._session
            decoder = session.decoder
            state = session.board_state
            outputs = session.board_outputs
            return {
                "up": session.state == "up",
                "port": self.port_path,
                "firmware_version": session.firmware_version,
                "board_id": session.board_id,
                **session.counters,
                "crc_errors": decoder.crc_errors,
                "framing_errors": decoder.framing_errors,
                "resyncs": decoder.resyncs,
                "round_trip_ms": session.round_trip_ms,
                "last_frame_ns": session.last_frame_ns,
                "raw_levels": None if state is None else _levels(state[1]),
                "debounced_levels": None if state is None else _levels(state[2]),
                "permissive": None if outputs is None else bool(outputs & protocol.OUTPUT_PERMISSIVE),
                "recording_led": None if outputs is None else bool(outputs & protocol.OUTPUT_LED),
            }

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
                    reason = "controller link error: %s" % error
                    with self._lock:
                        events = self._session.connection_lost(reason, time.monotonic_ns())
                    for event in events or [LinkDown(time.monotonic_ns(), reason)]:
                        self._emit(event)
                    self._stop.wait(RETRY_S)
        finally:
            self._goodbye()

    def _open(self) -> bool:
        try:
            port = open_port(self.port_path)
        except LinkError as error:
            self._emit(LinkDown(time.monotonic_ns(), str(error)))
            return False
        import serial

        self._port = port
        try:
            port.reset_input_buffer()
            with self._lock:
                if self._session.counters["frames"]:
                    self._session.counters["reconnects"] += 1
                self._session.connection_opened(time.monotonic_ns())
            self._flush()
        except (serial.SerialException, OSError, termios.error):
            self._close()
            self._emit(LinkDown(time.monotonic_ns(), "controller port %s disconnected" % self.port_path))
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
                    if self._flags_changed and self._session.state == "up":
                        self._session.send_heartbeat(now)
                    self._flags_changed = False
                    state = self._session.state
                self._flush()
                for event in events:
                    self._emit(event)
                if state in ("closed", "refused"):
                    break
        except (serial.SerialException, OSError, termios.error):
            with self._lock:
                events = self._session.connection_lost(
                    "controller port %s disconnected" % self.port_path, time.monotonic_ns())
            for event in events:
                self._emit(event)
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

    def _emit(self, event) -> None:
        if isinstance(event, LinkUp):
            self._down_reported = False
            self._last_fault = None
        elif isinstance(event, LinkDown):
            if self._down_reported:
                return
            self._down_reported = True
        elif isinstance(event, ControllerFault) and self._session.state != "up":
            if event.reason == self._last_fault:
                return
            self._last_fault = event.reason
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
        if self._port is not None and self._session.state == "up":
            with self._lock:
                self._session.ready = False
                self._session.led = False
                self._session.send_heartbeat(time.monotonic_ns())
            try:
                self._flush()
            except OSError:
                pass
        self._close()


def _levels(bits: int) -> dict:
    """{"footswitch": pressed, "interlock": closed, "laser": emitting} from a STATE level byte."""
    return {name: bool(bits >> bit & 1) for bit, name in enumerate(protocol.INPUT_NAMES)}
