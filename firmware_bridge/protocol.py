"""Wire codec of the treatment controller protocol (docs/controller-protocol.md).

Shared verbatim by the host and the RP2040 firmware, so it is written in the subset of Python
that MicroPython runs: no dataclasses, no typing, no annotations, only `struct` and `binascii`.
Messages are plain tuples in the field order of LAYOUTS; unpack_named keys them by name.
"""

import binascii
import struct

PROTOCOL_VERSION = 2

MAX_BODY = 64                     # version + seq + type + payload + crc
MAX_PAYLOAD = MAX_BODY - 7
MAX_ENCODED = MAX_BODY + 1        # COBS adds one byte per 254 (one here); the 0x00 comes after
DELIMITER = b"\x00"

# Board to host.
HELLO = 0x01
STATE = 0x02
EDGE = 0x03
HEARTBEAT_REPLY = 0x04
FAULT = 0x05
# Host to board.
CONNECT = 0x81
HEARTBEAT = 0x82
ACK = 0x83

# type -> (name, struct format of the payload, field names)
LAYOUTS = {
    HELLO: ("HELLO", "<BBBB8sIIHB", ("protocol_version", "fw_major", "fw_minor", "fw_patch",
                                     "board_id", "boot_id", "uptime_ms", "first_unacked_edge",
                                     "reset_cause")),
    STATE: ("STATE", "<IBBBBB", ("uptime_ms", "raw_levels", "debounced_levels", "outputs",
                                 "pending_edges", "fault_flags")),
    EDGE: ("EDGE", "<HBBI", ("edge_number", "input", "level", "board_ms")),
    HEARTBEAT_REPLY: ("HEARTBEAT_REPLY", "<HBI", ("token", "outputs", "board_ms")),
    FAULT: ("FAULT", "<BB", ("code", "detail")),
    CONNECT: ("CONNECT", "<B", ("protocol_version",)),
    HEARTBEAT: ("HEARTBEAT", "<HB", ("token", "flags")),
    ACK: ("ACK", "<H", ("edge_number",)),
}

# Inputs (EDGE.input and bit positions in the level bytes); level 1 means active.
FOOTSWITCH = 0
INTERLOCK = 1
LASER = 2
INPUT_NAMES = ("footswitch", "interlock", "laser")

# Bits of STATE.outputs and HEARTBEAT_REPLY.outputs.
OUTPUT_PERMISSIVE = 0x01
OUTPUT_LED = 0x02
# Bits of HEARTBEAT.flags.
FLAG_READY = 0x01
FLAG_LED = 0x02
# Bits of STATE.fault_flags.
FAULT_FLAG_EDGE_OVERFLOW = 0x01
FAULT_FLAG_WATCHDOG_RESET = 0x02

# HELLO.reset_cause
RESET_POWER_ON = 0
RESET_WATCHDOG = 1
RESET_OTHER = 2

# FAULT.code
FAULT_VERSION_MISMATCH = 1
FAULT_UNKNOWN_MESSAGE = 2
FAULT_BAD_PAYLOAD = 3
FAULT_EDGE_QUEUE_OVERFLOW = 4
FAULT_WATCHDOG_RESET = 5
FAULT_NAMES = {
    FAULT_VERSION_MISMATCH: "host and board protocol versions differ",
    FAULT_UNKNOWN_MESSAGE: "board received a message type it does not know",
    FAULT_BAD_PAYLOAD: "board received a message with a malformed payload",
    FAULT_EDGE_QUEUE_OVERFLOW: "board edge queue overflowed: input edges were lost",
    FAULT_WATCHDOG_RESET: "board was reset by its watchdog",
}

# Timing (milliseconds); section 9 of the specification.
DEBOUNCE_MS = 5
EDGE_RESEND_MS = 40
STATE_PERIOD_MS = 100
LEASE_MS = 300
WATCHDOG_MS = 2000
HEARTBEAT_PERIOD_MS = 100
LINK_SILENCE_MS = 500
CONNECT_RETRY_MS = 250
HANDSHAKE_TIMEOUT_MS = 1500

EDGE_QUEUE_CAPACITY = 32

# The board clock is MicroPython's ticks_ms: it wraps at 2**30 on the RP2040 so that it stays a
# small int (no heap allocation); uptime_ms and board_ms on the wire wrap there too.
TICKS_PERIOD = 1 << 30
TICKS_MASK = TICKS_PERIOD - 1


class FrameError(ValueError):
    """A chunk between delimiters that is not a valid frame."""


class CrcError(FrameError):
    """A well-formed chunk whose CRC does not match: corrupted on the wire."""


def cobs_encode(data):
    """COBS-encodes `data`; the result contains no zero byte."""
    out = bytearray()
    block = bytearray()
    for byte in data:
        if byte == 0:
            out.append(len(block) + 1)
            out.extend(block)
            block = bytearray()
        else:
            block.append(byte)
            if len(block) == 254:
                out.append(255)
                out.extend(block)
                block = bytearray()
    out.append(len(block) + 1)
    out.extend(block)
    return bytes(out)


def cobs_decode(data):
    """Inverse of cobs_encode; raises FrameError on a malformed chunk."""
    if b"\x00" in data:
        raise FrameError("zero byte inside a COBS frame")
    out = bytearray()
    index = 0
    length = len(data)
    while index < length:
        code = data[index]
        end = index + code
        if end > length:
            raise FrameError("COBS block runs past the end of the frame")
        out.extend(data[index + 1:end])
        index = end
        if code < 255 and index < length:
            out.append(0)
    return bytes(out)


def crc32(data):
    return binascii.crc32(data) & 0xFFFFFFFF


def pack(msg_type, fields):
    """Payload bytes of a message given its fields (a tuple in LAYOUTS order)."""
    return struct.pack(LAYOUTS[msg_type][1], *fields)


def unpack(msg_type, payload):
    """Fields of a message; FrameError if the type is unknown or the length is wrong."""
    layout = LAYOUTS.get(msg_type)
    if layout is None:
        raise FrameError("unknown message type 0x%02x" % msg_type)
    if len(payload) != struct.calcsize(layout[1]):
        raise FrameError("%s payload of %d bytes" % (layout[0], len(payload)))
    return struct.unpack(layout[1], payload)


def unpack_named(msg_type, payload):
    """Fields of a message as a dict keyed by the LAYOUTS names; FrameError as unpack."""
    fields = unpack(msg_type, payload)
    return dict(zip(LAYOUTS[msg_type][2], fields))


def encode_frame(seq, msg_type, fields, version=PROTOCOL_VERSION):
    """Wire bytes (COBS body plus the 0x00 delimiter) of one message."""
    body = bytes((version, seq & 0xFF, msg_type)) + pack(msg_type, fields)
    body += struct.pack("<I", crc32(body))
    return cobs_encode(body) + DELIMITER


def decode_body(chunk):
    """(version, seq, type, payload) of one chunk without its delimiter; FrameError if invalid.

    Checks COBS, length and CRC only: the caller decides what a version or type means.
    """
    if len(chunk) > MAX_ENCODED:
        raise FrameError("frame longer than %d bytes" % MAX_ENCODED)
    body = cobs_decode(chunk)
    if len(body) < 7 or len(body) > MAX_BODY:
        raise FrameError("frame body of %d bytes" % len(body))
    if struct.unpack("<I", body[-4:])[0] != crc32(body[:-4]):
        raise CrcError("CRC mismatch")
    return body[0], body[1], body[2], bytes(body[3:-4])


class Decoder:
    """Splits a byte stream into frames; counts what it had to throw away.

    feed(data) returns a list of (version, seq, type, payload) for every valid body. Garbage
    costs at most the one frame it runs into: everything up to the next 0x00 is discarded.
    """

    def __init__(self):
        self._chunk = bytearray()
        self._overflowed = False
        self._in_error = False
        self.frames = 0
        self.crc_errors = 0
        self.framing_errors = 0
        self.resyncs = 0

    def discard_partial(self):
        """Forgets a frame cut short (the port was reopened); counters are kept."""
        self._chunk = bytearray()
        self._overflowed = False

    def feed(self, data):
        frames = []
        for byte in data:
            if byte != 0:
                if len(self._chunk) < MAX_ENCODED:
                    self._chunk.append(byte)
                else:
                    self._overflowed = True
                continue
            chunk = self._chunk
            self._chunk = bytearray()
            if self._overflowed:
                self._overflowed = False
                self._reject(False)
                continue
            if not chunk:
                continue
            try:
                frame = decode_body(bytes(chunk))
            except CrcError:
                self._reject(True)
                continue
            except FrameError:
                self._reject(False)
                continue
            self.frames += 1
            if self._in_error:
                self._in_error = False
                self.resyncs += 1
            frames.append(frame)
        return frames

    def _reject(self, crc):
        if crc:
            self.crc_errors += 1
        else:
            self.framing_errors += 1
        self._in_error = True


def elapsed_ms(now, then):
    """Milliseconds from board time `then` to `now` across the clock's wrap (time.ticks_diff)."""
    return ((now - then + TICKS_PERIOD // 2) & TICKS_MASK) - TICKS_PERIOD // 2


def serial_after(a, b):
    """True when 16-bit edge number a comes after b (RFC 1982 serial number arithmetic)."""
    difference = (a - b) & 0xFFFF
    return 0 < difference < 0x8000
