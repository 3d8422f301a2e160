"""The host's half of the controller protocol as a pure state machine (sans-IO).

Bytes and the time go in, typed events come out, bytes to send wait in take_outgoing(); no
port, no thread, no clock, so it is tested with a fake clock (tests/test_controller_host_session.py,
and against the firmware's own Board in tests/test_controller_board.py). The serial shell that
feeds it is firmware_bridge/link.py. Message fields are read by their LAYOUTS names.
"""

from __future__ import annotations

from firmware_bridge import protocol
from firmware_bridge.clock_sync import ClockSync
from firmware_bridge.link_events import EDGE_EVENTS, ControllerFault, LinkDown, LinkUp
from firmware_bridge.link_stats import InputLevels, LinkCounters, LinkStats

MS = 1_000_000  # nanoseconds


class HostSession:
    """Handshake, sequence and ack bookkeeping, edge de-duplication, heartbeats and the
    link-down rule.

    Reporting rules live here too: LinkDown once per outage, and a refusal (a ControllerFault
    while the link is not up) once per reason, until the next LinkUp.
    """

    def __init__(self, port_name: str):
        self.port_name = port_name
        self.protocol_version = protocol.PROTOCOL_VERSION
        self.state = "closed"            # closed | handshake | up | refused
        self._ready = False
        self._led = False
        self._flags_changed = False
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
        self._down_reported = False
        self._last_refusal: str | None = None
        # Edge de-duplication survives reconnections to the same board boot.
        self._board: tuple[bytes, int] | None = None
        self._expected_edge = 0
        self.counters = LinkCounters()
        self.clock = ClockSync()
        self.round_trip_ms: float | None = None
        self.firmware_version = ""
        self.board_id = ""
        self.board_state: dict | None = None     # last STATE, by field name
        self.board_outputs: int | None = None

    # Inputs from the shell.

    # A changed flag goes out in a heartbeat at the next tick, not up to 100 ms later.

    def set_ready(self, ready: bool) -> None:
        self._flags_changed |= self._ready != ready
        self._ready = ready

    def set_recording_led(self, on: bool) -> None:
        self._flags_changed |= self._led != on
        self._led = on

    def connection_opened(self, now_ns: int) -> None:
        if self.counters.frames:
            self.counters.reconnects += 1
        self.state = "handshake"
        self._decoder.discard_partial()
        self._opened_ns = now_ns
        self._bytes_in_handshake = 0
        self._no_hello_reported = False
        self._last_frame_ns = None
        self._send_connect(now_ns)

    def connection_lost(self, reason: str, now_ns: int) -> list:
        """The open port failed: LinkDown if the link was up."""
        was_up = self.state == "up"
        self.state = "closed"
        return self._link_down(now_ns, reason, self._last_frame_ns) if was_up else []

    def port_failed(self, reason: str, now_ns: int) -> list:
        """The port could not be opened, or the shell failed: LinkDown unless this outage has one."""
        last_frame_ns = self._last_frame_ns if self.state == "up" else None
        self.state = "closed"
        return self._link_down(now_ns, reason, last_frame_ns)

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
                events += self._fault(now_ns, self._no_hello_reason())
            if now_ns - self._last_connect_ns >= protocol.CONNECT_RETRY_MS * MS:
                self._send_connect(now_ns)
            return events
        if self.state == "up":
            silent_ns = now_ns - self._last_frame_ns
            if silent_ns >= protocol.LINK_SILENCE_MS * MS:
                self.state = "closed"
                return self._link_down(now_ns, "no frame from the controller for %d ms" % (silent_ns // MS),
                                       self._last_frame_ns)
            if (self._flags_changed
                    or now_ns - self._last_heartbeat_ns >= protocol.HEARTBEAT_PERIOD_MS * MS):
                self._send_heartbeat(now_ns)
        return []

    def goodbye(self, now_ns: int) -> None:
        """Withdraws ready and the LED in a last heartbeat, so the board drops its permissive at once."""
        self._ready = self._led = False
        if self.state == "up":
            self._send_heartbeat(now_ns)

    def next_deadline_ns(self) -> int:
        """When tick() next has something to do (monotonic ns)."""
        if self.state == "handshake":
            timeout = self._opened_ns + protocol.HANDSHAKE_TIMEOUT_MS * MS
            retry = self._last_connect_ns + protocol.CONNECT_RETRY_MS * MS
            return retry if self._no_hello_reported else min(timeout, retry)
        if self.state == "up":
            if self._flags_changed:
                return 0
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

    def stats(self) -> LinkStats:
        state, outputs, decoder = self.board_state, self.board_outputs, self._decoder
        return LinkStats(
            up=self.state == "up", port=self.port_name,
            firmware_version=self.firmware_version, board_id=self.board_id,
            frames=self.counters.frames, lost_frames=self.counters.lost_frames,
            edges_delivered=self.counters.edges_delivered, edge_duplicates=self.counters.edge_duplicates,
            reconnects=self.counters.reconnects, faults=self.counters.faults,
            crc_errors=decoder.crc_errors, framing_errors=decoder.framing_errors, resyncs=decoder.resyncs,
            round_trip_ms=self.round_trip_ms, last_frame_ns=self._last_frame_ns,
            raw_levels=None if state is None else InputLevels.from_bits(state["raw_levels"]),
            debounced_levels=None if state is None else InputLevels.from_bits(state["debounced_levels"]),
            permissive=None if outputs is None else bool(outputs & protocol.OUTPUT_PERMISSIVE),
            recording_led=None if outputs is None else bool(outputs & protocol.OUTPUT_LED),
        )

    # Frames.

    def _frame(self, version, seq, msg_type, payload, now_ns):
        if msg_type == protocol.HELLO and self.state == "handshake":
            return self._hello(seq, payload, now_ns)
        if self.state != "up" or version != self.protocol_version:
            return []   # leftovers of an earlier connection, or a board we refused
        try:
            message = protocol.unpack_named(msg_type, payload)
        except protocol.FrameError:
            return []
        self._last_frame_ns = now_ns
        self.counters.frames += 1
        if self._expected_rx_seq is not None and seq != self._expected_rx_seq:
            self.counters.lost_frames += (seq - self._expected_rx_seq) & 0xFF
        self._expected_rx_seq = (seq + 1) & 0xFF
        if msg_type == protocol.EDGE:
            return self._edge(message, now_ns)
        if msg_type == protocol.STATE:
            self.board_state = message
            self.board_outputs = message["outputs"]
        elif msg_type == protocol.HEARTBEAT_REPLY:
            sent_ns = self._heartbeat_sent.pop(message["token"], None)
            if sent_ns is not None:
                self.round_trip_ms = (now_ns - sent_ns) / MS
                self.clock.add_round_trip(sent_ns, now_ns, message["board_ms"])
            self.board_outputs = message["outputs"]
        elif msg_type == protocol.FAULT:
            self.counters.faults += 1
            code = message["code"]
            name = protocol.FAULT_NAMES.get(code, "unknown fault")
            return self._fault(now_ns, "controller fault %d: %s (detail %d)" % (code, name, message["detail"]),
                               code)
        return []

    def _hello(self, seq, payload, now_ns):
        version = payload[0] if payload else None   # read before the layout, which may differ
        if version != self.protocol_version:
            self.state = "refused"
            return self._fault(now_ns, "protocol version mismatch: board speaks v%s, host speaks v%d; "
                                       "install matching firmware" % (version, self.protocol_version))
        try:
            hello = protocol.unpack_named(protocol.HELLO, payload)
        except protocol.FrameError as error:
            self.state = "refused"
            return self._fault(now_ns, "malformed HELLO from the controller: %s" % error)
        board = (hello["board_id"], hello["boot_id"])
        self.clock.new_boot(board)
        if self._board != board:
            self._board = board
            self._expected_edge = hello["first_unacked_edge"]
        self.state = "up"
        self._down_reported = False
        self._last_refusal = None
        self._last_frame_ns = now_ns
        self._expected_rx_seq = (seq + 1) & 0xFF
        self.counters.frames += 1
        self.firmware_version = "%d.%d.%d" % (hello["fw_major"], hello["fw_minor"], hello["fw_patch"])
        self.board_id = hello["board_id"].hex()
        self._send_heartbeat(now_ns)
        return [LinkUp(now_ns, self.firmware_version, self.board_id, version)]

    def _edge(self, edge, now_ns):
        number = edge["edge_number"]
        events = []
        if number == self._expected_edge:
            self._expected_edge = (number + 1) & 0xFFFF
            event_class = EDGE_EVENTS.get((edge["input"], edge["level"]))
            if event_class is None:
                # Acknowledged all the same: one unknown input must not block every later edge.
                events += self._fault(now_ns, "controller reported an edge on unknown input %d (level %d)"
                                              % (edge["input"], edge["level"]))
            else:
                self.counters.edges_delivered += 1
                events.append(event_class(now_ns, number, edge["board_ms"],
                                          self.clock.to_host_ns(edge["board_ms"]), self.clock.uncertainty_ms()))
        else:
            self.counters.edge_duplicates += 1
        self._send(protocol.ACK, (((self._expected_edge - 1) & 0xFFFF),))
        return events

    # Reporting rules.

    def _link_down(self, now_ns, reason, last_frame_ns):
        if self._down_reported:
            return []
        self._down_reported = True
        return [LinkDown(now_ns, reason, last_frame_ns)]

    def _fault(self, now_ns, reason, code=None):
        if self.state != "up":
            # A refusal repeats on every retry of the handshake; it is news only once.
            if reason == self._last_refusal:
                return []
            self._last_refusal = reason
        return [ControllerFault(now_ns, reason, code)]

    def _no_hello_reason(self):
        if self._bytes_in_handshake == 0:
            return ("no answer from %s within %d ms: not a treatment controller, or its firmware "
                    "is not running" % (self.port_name, protocol.HANDSHAKE_TIMEOUT_MS))
        return ("device at %s does not speak the treatment controller protocol (%d bytes without "
                "a valid HELLO)" % (self.port_name, self._bytes_in_handshake))

    # Bytes out.

    def _send_heartbeat(self, now_ns):
        flags = (protocol.FLAG_READY if self._ready else 0) | (protocol.FLAG_LED if self._led else 0)
        self._token = (self._token + 1) & 0xFFFF
        self._heartbeat_sent[self._token] = now_ns
        if len(self._heartbeat_sent) > 32:
            del self._heartbeat_sent[next(iter(self._heartbeat_sent))]
        self._last_heartbeat_ns = now_ns
        self._flags_changed = False
        self._send(protocol.HEARTBEAT, (self._token, flags))

    def _send_connect(self, now_ns):
        self._last_connect_ns = now_ns
        self._seq = 0
        self._send(protocol.CONNECT, (self.protocol_version,))

    def _send(self, msg_type, fields):
        self._outgoing += protocol.encode_frame(self._seq, msg_type, fields, self.protocol_version)
        self._seq = (self._seq + 1) & 0xFF
