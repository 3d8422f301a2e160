"""Drives the controller firmware's codec and Board; the very same file runs under CPython and MicroPython.

tests/test_controller_micropython.py hands both interpreters the same JSON request and compares
their JSON answers. Bytes travel as hex strings, so nothing here depends on the interpreter, and
the file stays in the subset MicroPython runs (see firmware_bridge/protocol.py).
"""

import binascii
import sys

try:
    from firmware_bridge import protocol
    from firmware_bridge.firmware.board import Board
except ImportError:  # under MicroPython the firmware files sit flat beside this one, as on the board
    import protocol
    from board import Board


def run(request):
    """Answers every part of `request` ({part: input}) with that part's result."""
    parts = {"encode": encode, "cobs": cobs, "decode": decode, "stream": stream, "board": board}
    answer = {"interpreter": [sys.implementation.name, list(sys.implementation.version[:3])]}
    for part in request:
        answer[part] = parts[part](request[part])
    return answer


def _hex(data):
    return binascii.hexlify(data).decode()


def _unhex(text):
    return binascii.unhexlify(text)


def _fields_to_json(fields):
    return [_hex(field) if isinstance(field, bytes) else field for field in fields]


def _fields_from_json(fields):
    return tuple(_unhex(field) if isinstance(field, str) else field for field in fields)


def _error(error):
    return ["error", type(error).__name__, str(error)]


def encode(messages):
    """[seq, type, fields, version] -> wire bytes."""
    return [_hex(protocol.encode_frame(seq, msg_type, _fields_from_json(fields), version))
            for seq, msg_type, fields, version in messages]


def cobs(datas):
    """data -> [COBS encoding, its decoding, CRC-32]."""
    answers = []
    for text in datas:
        data = _unhex(text)
        encoded = protocol.cobs_encode(data)
        answers.append([_hex(encoded), _hex(protocol.cobs_decode(encoded)), protocol.crc32(data)])
    return answers


def decode(chunks):
    """Chunk without its delimiter -> [version, seq, type, fields], or the error it raises."""
    answers = []
    for text in chunks:
        try:
            version, seq, msg_type, payload = protocol.decode_body(_unhex(text))
        except protocol.FrameError as error:
            answers.append(_error(error))
            continue
        try:
            fields = _fields_to_json(protocol.unpack(msg_type, payload))
        except protocol.FrameError as error:
            answers.append([version, seq, msg_type, _error(error)])
            continue
        answers.append([version, seq, msg_type, fields])
    return answers


def stream(pieces):
    """Feeds the pieces to one Decoder: the frames of each feed, then the decoder's counters."""
    decoder = protocol.Decoder()
    frames = []
    for text in pieces:
        frames.append([[version, seq, msg_type, _hex(payload)]
                       for version, seq, msg_type, payload in decoder.feed(_unhex(text))])
    return [frames, [decoder.frames, decoder.crc_errors, decoder.framing_errors, decoder.resyncs]]


class Pin:
    """machine.Pin's value() and value(level)."""

    def __init__(self, level):
        self.level = level

    def value(self, *level):
        if level:
            self.level = level[0]
            return None
        return self.level


class Wire:
    """The board's transport: every frame written, with the board time it was written at."""

    def __init__(self, trace):
        self.trace = trace
        self.now = 0

    def write(self, frame):
        self.trace.append([self.now, "frame", _hex(frame)])


def board(scenario):
    """Runs Board through scenario["steps"] on a fake millisecond clock; the trace of what it did.

    Steps: ["pin", name, level], ["receive", hex bytes from the host], ["run", milliseconds] (one
    step() per millisecond), ["jump", milliseconds] (the clock moves on without a step, as over a
    stalled loop; under 2**29 ms at a time, or modular time reads it as a step back). The board
    gets the time as time.ticks_ms gives it, wrapping at 2**30; the trace keeps the unwrapped
    time. The trace holds every frame written and every change of the outputs and of the
    pending-edge count, each with its board time.
    """
    setup = scenario["setup"]
    trace = []
    wire = Wire(trace)
    pins = {}
    for name in setup["pins"]:
        pins[name] = Pin(setup["pins"][name])
    now = 0
    device = Board(pins, wire, _unhex(setup["board_id"]), setup["boot_id"], now, setup["reset_cause"])
    seen = [None]

    def observe():
        state = [device.outputs, pins["permissive"].level, pins["led"].level, device.pending_edges]
        if state != seen[0]:
            seen[0] = state
            trace.append([now, "outputs"] + state)

    observe()
    for step in scenario["steps"]:
        if step[0] == "pin":
            pins[step[1]].value(step[2])
        elif step[0] == "receive":
            device.receive(_unhex(step[1]), now & protocol.TICKS_MASK)
            observe()
        elif step[0] == "jump":
            now += step[1]
            wire.now = now
        else:
            for _ in range(step[1]):
                now += 1
                wire.now = now
                device.step(now & protocol.TICKS_MASK)
                observe()
    return trace
