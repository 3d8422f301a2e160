"""The treatment controller's logic: debounced inputs, ack-counted edges, the permissive lease.

Pure of I/O and of clocks: the caller passes the time in (milliseconds, wrapping at
protocol.TICKS_PERIOD as time.ticks_ms does: all arithmetic is modular), hands over received
bytes, and gives pin objects with a machine.Pin-like value() and a transport with write(bytes). main.py binds
it to the RP2040; the simulator binds the very same class to virtual pins and a pseudo-terminal.
MicroPython subset only (see firmware_bridge/protocol.py).
"""

try:
    from firmware_bridge import protocol
except ImportError:  # on the board, protocol.py sits flat beside this file
    import protocol

FIRMWARE_VERSION = (2, 0, 0)   # 2.x speaks protocol version 2 (board time in HEARTBEAT_REPLY)

# Pin names the caller must provide; inputs in protocol input order (bit positions).
INPUT_PINS = ("footswitch", "interlock", "laser")
OUTPUT_PINS = ("permissive", "led")

HOST_TYPES = (protocol.CONNECT, protocol.HEARTBEAT, protocol.ACK)


class Board:
    def __init__(self, pins, transport, board_id, boot_id, now_ms,
                 reset_cause=protocol.RESET_POWER_ON, protocol_version=protocol.PROTOCOL_VERSION):
        self._pins = pins
        self._transport = transport
        self._board_id = board_id
        self._boot_id = boot_id
        self._reset_cause = reset_cause
        self._version = protocol_version
        self._decoder = protocol.Decoder()
        self._seq = 0
        self._connected = False
        self._ever_connected = False
        # Debounce: the last raw sample, since when it has been stable, the accepted level.
        self._raw = [self._sample(name) for name in INPUT_PINS]
        self._stable_since = [now_ms] * len(INPUT_PINS)
        self._debounced = list(self._raw)
        # Pending edges, oldest first: [edge_number, input, level, board_ms].
        self._pending = []
        self._next_edge = 0
        self._edges_lost = 0
        self._last_resend_ms = now_ms
        self._last_state_ms = now_ms
        # Host leases: last HEARTBEAT with ready=1, last HEARTBEAT of any kind.
        self._ready_at_ms = None
        self._heartbeat_at_ms = None
        self._led_requested = False
        self._outputs = -1
        self._apply_outputs(now_ms)

    # -- what the caller drives -------------------------------------------------------------

    def receive(self, data, now_ms):
        """Handles bytes from the host."""
        for version, _seq, msg_type, payload in self._decoder.feed(data):
            self._handle(version, msg_type, payload, now_ms)
        self._apply_outputs(now_ms)

    def step(self, now_ms):
        """Samples inputs and runs timers; call at least every millisecond or two."""
        for index in range(len(INPUT_PINS)):
            self._debounce(index, now_ms)
        self._apply_outputs(now_ms)
        if not self._connected:
            return
        if protocol.elapsed_ms(now_ms, self._last_state_ms) >= protocol.STATE_PERIOD_MS:
            self._send_state(now_ms)
        if self._pending and protocol.elapsed_ms(now_ms, self._last_resend_ms) >= protocol.EDGE_RESEND_MS:
            self._send_pending(now_ms)

    @property
    def outputs(self):
        """Bits of protocol.OUTPUT_PERMISSIVE / OUTPUT_LED as currently driven."""
        return self._outputs

    @property
    def pending_edges(self):
        return len(self._pending)

    # -- inputs ------------------------------------------------------------------------------

    def _sample(self, name):
        # Inputs are active low (pull-ups, contact to ground): 0 on the pin means active.
        return 0 if self._pins[name].value() else 1

    def _debounce(self, index, now_ms):
        raw = self._sample(INPUT_PINS[index])
        if raw != self._raw[index]:
            self._raw[index] = raw
            self._stable_since[index] = now_ms
        elif (raw != self._debounced[index]
              and protocol.elapsed_ms(now_ms, self._stable_since[index]) >= protocol.DEBOUNCE_MS):
            self._debounced[index] = raw
            self._queue_edge(index, raw, now_ms)

    def _queue_edge(self, index, level, now_ms):
        if not self._ever_connected:
            return  # no host has seen any level yet: its first STATE carries them
        if len(self._pending) >= protocol.EDGE_QUEUE_CAPACITY:
            self._edges_lost = min(self._edges_lost + 1, 255)
            self._send(protocol.FAULT, (protocol.FAULT_EDGE_QUEUE_OVERFLOW, self._edges_lost))
            return
        edge = (self._next_edge, index, level, now_ms & protocol.TICKS_MASK)
        self._next_edge = (self._next_edge + 1) & 0xFFFF
        if not self._pending:
            self._last_resend_ms = now_ms   # the resend clock starts with the oldest unacked edge
        self._pending.append(edge)
        if self._connected:
            self._send(protocol.EDGE, edge)

    # -- host messages -----------------------------------------------------------------------

    def _handle(self, version, msg_type, payload, now_ms):
        if version != self._version:
            if msg_type == protocol.CONNECT:
                self._connected = False
                self._seq = 0
                self._send_hello(now_ms)
                self._send(protocol.FAULT, (protocol.FAULT_VERSION_MISMATCH, self._version))
            return
        if msg_type not in HOST_TYPES:
            self._send(protocol.FAULT, (protocol.FAULT_UNKNOWN_MESSAGE, msg_type))
            return
        try:
            fields = protocol.unpack(msg_type, payload)
        except protocol.FrameError:
            self._send(protocol.FAULT, (protocol.FAULT_BAD_PAYLOAD, msg_type))
            return
        if msg_type == protocol.CONNECT:
            self._connect(now_ms)
        elif not self._connected:
            return
        elif msg_type == protocol.HEARTBEAT:
            self._heartbeat(fields[0], fields[1], now_ms)
        else:
            self._acknowledge(fields[0])

    def _connect(self, now_ms):
        self._connected = True
        self._ever_connected = True
        self._seq = 0
        self._send_hello(now_ms)
        if self._reset_cause == protocol.RESET_WATCHDOG:
            self._send(protocol.FAULT, (protocol.FAULT_WATCHDOG_RESET, 0))
        if self._edges_lost:
            self._send(protocol.FAULT, (protocol.FAULT_EDGE_QUEUE_OVERFLOW, self._edges_lost))
        self._send_state(now_ms)
        self._send_pending(now_ms)

    def _heartbeat(self, token, flags, now_ms):
        self._heartbeat_at_ms = now_ms
        self._ready_at_ms = now_ms if flags & protocol.FLAG_READY else None
        self._led_requested = bool(flags & protocol.FLAG_LED)
        self._apply_outputs(now_ms)
        self._send(protocol.HEARTBEAT_REPLY, (token, self._outputs, now_ms & 0xFFFFFFFF))

    def _acknowledge(self, edge_number):
        while self._pending and not protocol.serial_after(self._pending[0][0], edge_number):
            self._pending.pop(0)

    # -- outputs -----------------------------------------------------------------------------

    def _apply_outputs(self, now_ms):
        outputs = 0
        if self._ready_at_ms is not None and protocol.elapsed_ms(now_ms, self._ready_at_ms) < protocol.LEASE_MS:
            outputs |= protocol.OUTPUT_PERMISSIVE
        else:
            self._ready_at_ms = None
        if (self._led_requested and self._heartbeat_at_ms is not None
                and protocol.elapsed_ms(now_ms, self._heartbeat_at_ms) < protocol.LEASE_MS):
            outputs |= protocol.OUTPUT_LED
        if outputs != self._outputs:
            self._outputs = outputs
            self._pins["permissive"].value(1 if outputs & protocol.OUTPUT_PERMISSIVE else 0)
            self._pins["led"].value(1 if outputs & protocol.OUTPUT_LED else 0)

    # -- frames out --------------------------------------------------------------------------

    def _send(self, msg_type, fields):
        self._transport.write(protocol.encode_frame(self._seq, msg_type, fields, self._version))
        self._seq = (self._seq + 1) & 0xFF

    def _send_hello(self, now_ms):
        first_unacked = self._pending[0][0] if self._pending else self._next_edge
        major, minor, patch = FIRMWARE_VERSION
        self._send(protocol.HELLO, (self._version, major, minor, patch, self._board_id, self._boot_id,
                                    now_ms & protocol.TICKS_MASK, first_unacked, self._reset_cause))

    def _send_state(self, now_ms):
        self._last_state_ms = now_ms
        fault_flags = 0
        if self._edges_lost:
            fault_flags |= protocol.FAULT_FLAG_EDGE_OVERFLOW
        if self._reset_cause == protocol.RESET_WATCHDOG:
            fault_flags |= protocol.FAULT_FLAG_WATCHDOG_RESET
        self._send(protocol.STATE, (now_ms & protocol.TICKS_MASK, _bits(self._raw), _bits(self._debounced),
                                    self._outputs, len(self._pending), fault_flags))

    def _send_pending(self, now_ms):
        self._last_resend_ms = now_ms
        for edge in self._pending:
            self._send(protocol.EDGE, edge)


def _bits(levels):
    value = 0
    for index in range(len(levels)):
        if levels[index]:
            value |= 1 << index
    return value
