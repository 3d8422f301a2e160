"""The controller firmware under real MicroPython (its WebAssembly port, on Node) gives CPython's bytes.

protocol.py and board.py run on the RP2040 under MicroPython and on the host under CPython
(docs/controller-protocol.md, section 11). tests/micropython/controller_exercise.py runs in both
interpreters on the same JSON requests; every answer must be identical, and where the spec has
test vectors, equal to them. `make test` installs the npm package into .cache/micropython.
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from firmware_bridge import protocol
from firmware_bridge.firmware.board import FIRMWARE_VERSION
from test_controller_protocol import COBS_VECTORS, VECTORS

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent / "micropython"
PACKAGE = "@micropython/micropython-webassembly-pyscript"
MICROPYTHON_MJS = ROOT / ".cache" / "micropython" / "node_modules" / PACKAGE / "micropython.mjs"
FIRMWARE = [ROOT / "firmware_bridge" / "protocol.py", ROOT / "firmware_bridge" / "firmware" / "board.py"]
EXERCISE = HERE / "controller_exercise.py"

_spec = importlib.util.spec_from_file_location("controller_exercise", EXERCISE)
controller_exercise = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(controller_exercise)


def _missing() -> str | None:
    if shutil.which("node") is None:
        return "node is not installed: MicroPython's WebAssembly port (npm %s) needs Node.js" % PACKAGE
    if not MICROPYTHON_MJS.is_file():
        return "npm package %s is not installed in .cache/micropython (`make test` installs it)" % PACKAGE
    return None


@pytest.fixture(scope="module")
def micropython():
    """Runs Python code under MicroPython with the firmware files beside it; the CompletedProcess."""
    missing = _missing()
    if missing and os.environ.get("CI") == "true":
        pytest.fail("MicroPython compatibility cannot be checked: " + missing, pytrace=False)
    if missing:
        pytest.skip(missing)

    def run(code: str) -> subprocess.CompletedProcess:
        return subprocess.run(["node", str(HERE / "run.mjs"), str(MICROPYTHON_MJS), *map(str, FIRMWARE), str(EXERCISE)],
                              input=code, capture_output=True, text=True, timeout=60)
    return run


@pytest.fixture(scope="module")
def both(micropython):
    """Answers of the exercise to one request: (under MicroPython, under CPython)."""

    def ask(request: dict) -> tuple[dict, dict]:
        code = ("import json\nimport controller_exercise\n"
                "print(json.dumps(controller_exercise.run(json.loads(%r))))\n" % json.dumps(request))
        result = micropython(code)
        assert result.returncode == 0, result.stderr
        on_micropython = json.loads(result.stdout)
        assert on_micropython.pop("interpreter")[0] == "micropython"
        on_cpython = json.loads(json.dumps(controller_exercise.run(request)))
        assert on_cpython.pop("interpreter")[0] == "cpython"
        return on_micropython, on_cpython
    return ask


def _json_fields(fields) -> list:
    return [field.hex() if isinstance(field, bytes) else field for field in fields]


def _raw_frame(version: int, seq: int, msg_type: int, payload: bytes) -> bytes:
    """A frame with a valid CRC whatever its type and payload (encode_frame only builds valid ones)."""
    body = bytes((version, seq, msg_type)) + payload
    return protocol.cobs_encode(body + struct.pack("<I", protocol.crc32(body))) + protocol.DELIMITER


def _frame(seq: int, msg_type: int, fields: tuple, version: int = protocol.PROTOCOL_VERSION) -> bytes:
    return protocol.encode_frame(seq, msg_type, fields, version)


# -- the files as they go onto the board --------------------------------------------------------

def test_firmware_files_import_flat_under_micropython(micropython):
    result = micropython("import sys\nimport protocol\nimport board\n"
                         "print(sys.implementation.name, protocol.PROTOCOL_VERSION, board.FIRMWARE_VERSION)\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["micropython", str(protocol.PROTOCOL_VERSION), *str(FIRMWARE_VERSION).split()]


def test_code_outside_the_micropython_subset_fails_there(micropython):
    result = micropython("import dataclasses\n")
    assert result.returncode == 1
    assert "ImportError" in result.stderr and "dataclasses" in result.stderr


# -- the codec ---------------------------------------------------------------------------------

EXTRA_MESSAGES = [
    (255, protocol.STATE, (0xFFFFFFFF, 0b111, 0b111, 3, 32, 3)),          # every field at its largest
    (256, protocol.EDGE, (0xFFFF, 2, 0, 0x80000000)),                     # seq wraps to 0
    (0, protocol.HELLO, (1, 0, 0, 0, b"\x00" * 8, 0, 0, 0, 0)),           # zeros everywhere: many COBS blocks
    (3, protocol.HELLO, (9, 255, 255, 255, bytes(range(248, 256)), 0x7FFFFFFF, 0x40000000, 0x8000, 2)),
    (4, protocol.FAULT, (protocol.FAULT_EDGE_QUEUE_OVERFLOW, 255)),
    (5, protocol.HEARTBEAT, (0xFFFF, 0)),
]


def test_encoding_gives_the_committed_vectors_and_cpythons_bytes(both):
    messages = [[seq, msg_type, _json_fields(fields), protocol.PROTOCOL_VERSION]
                for (seq, msg_type, fields), _wire in VECTORS]
    messages += [[seq, msg_type, _json_fields(fields), version]
                 for seq, msg_type, fields in EXTRA_MESSAGES for version in (1, 2)]
    on_micropython, on_cpython = both({"encode": messages})
    assert on_micropython["encode"][:len(VECTORS)] == [wire for _message, wire in VECTORS]
    assert on_micropython == on_cpython


def test_cobs_and_crc32_match_cpython(both):
    datas = [data.hex() for data, _encoded in COBS_VECTORS]
    datas += [bytes(300).hex(), bytes(range(256)).hex(), (b"\xff" * 254 + b"\x00" + b"\x01" * 253).hex()]
    on_micropython, on_cpython = both({"cobs": datas})
    assert [encoded for encoded, _decoded, _crc in on_micropython["cobs"][:len(COBS_VECTORS)]] == [
        encoded for _data, encoded in COBS_VECTORS]
    assert [decoded for _encoded, decoded, _crc in on_micropython["cobs"]] == datas
    assert on_micropython == on_cpython


def test_committed_vectors_decode_and_bad_chunks_fail_alike(both):
    chunks = [bytes.fromhex(wire)[:-1] for _message, wire in VECTORS]
    connect = chunks[0]
    bad = [
        connect[:-1] + bytes([connect[-1] ^ 0x01]),                   # CRC mismatch
        b"\x01" * (protocol.MAX_ENCODED + 1),                         # longer than any frame
        b"\x05\x01\x02",                                              # COBS block past the end
        protocol.cobs_encode(b"\x01\x02\x03"),                        # body shorter than 7 bytes
        _raw_frame(1, 0, 0x7E, b"")[:-1],                             # unknown type
        _raw_frame(1, 0, protocol.HEARTBEAT, b"\x01")[:-1],           # payload of the wrong length
    ]
    on_micropython, on_cpython = both({"decode": [chunk.hex() for chunk in chunks + bad]})
    decoded = on_micropython["decode"]
    assert decoded[:len(VECTORS)] == [[protocol.PROTOCOL_VERSION, seq, msg_type, _json_fields(fields)]
                                      for (seq, msg_type, fields), _wire in VECTORS]
    assert decoded[len(VECTORS)][:2] == ["error", "CrcError"]
    assert [answer[0] for answer in decoded[len(VECTORS) + 1:len(VECTORS) + 4]] == ["error"] * 3
    assert decoded[-2][3] == ["error", "FrameError", "unknown message type 0x7e"]
    assert decoded[-1][3] == ["error", "FrameError", "HEARTBEAT payload of 1 bytes"]
    assert on_micropython == on_cpython


def test_stream_decoder_resyncs_and_counts_alike(both):
    wire = b"".join(bytes.fromhex(wire) for _message, wire in VECTORS)
    corrupted = bytearray(bytes.fromhex(VECTORS[1][1]))
    corrupted[4] ^= 0x40
    pieces = [b"\x13\x37", wire[:7], wire[7:], bytes(corrupted), b"\x01" * 200 + b"\x00", wire,
              b"\x00\x00", _raw_frame(1, 9, 0x7E, b"")]
    on_micropython, on_cpython = both({"stream": [piece.hex() for piece in pieces]})
    frames, counters = on_micropython["stream"]
    # The garbage costs the first frame it runs into, and nothing else.
    assert sum(len(feed) for feed in frames) == 2 * len(VECTORS)
    assert counters == [2 * len(VECTORS), 1, 2, 2]          # frames, crc errors, framing errors, resyncs
    assert on_micropython == on_cpython


# -- the board ---------------------------------------------------------------------------------

RELEASED = {"footswitch": 1, "interlock": 0, "laser": 1, "permissive": 0, "led": 0}   # active low inputs
READY_AND_LED = protocol.FLAG_READY | protocol.FLAG_LED


def _receive(data: bytes) -> list:
    return ["receive", data.hex()]


def _scripted_session() -> dict:
    corrupted = bytearray(_frame(1, protocol.HEARTBEAT, (99, READY_AND_LED)))
    corrupted[3] ^= 0x10
    steps = [
        ["run", 3], ["pin", "footswitch", 0], ["run", 10],           # pressed before any host: no edge
        _receive(_frame(0, protocol.CONNECT, (protocol.PROTOCOL_VERSION,))), ["run", 20],
        _receive(_frame(1, protocol.HEARTBEAT, (1, READY_AND_LED))), ["run", 50],
        ["pin", "footswitch", 1], ["run", 2], ["pin", "footswitch", 0], ["run", 1],   # bounce, then release
        ["pin", "footswitch", 1], ["run", 10], ["run", 45],          # EDGE, then its resend
        _receive(_frame(2, protocol.ACK, (0,))),
        _receive(b"\x13\x37\xfe\x00" + bytes(corrupted) + _frame(3, protocol.HEARTBEAT, (2, protocol.FLAG_READY))),
        ["run", 350],                                                 # the lease runs out
        _receive(_raw_frame(protocol.PROTOCOL_VERSION, 4, 0x84, b"")), _receive(_raw_frame(protocol.PROTOCOL_VERSION, 5, protocol.HEARTBEAT, b"\x01")),
        _receive(_frame(0, protocol.CONNECT, (3,), version=3)), ["run", 20],   # version mismatch: unconnected
        _receive(_frame(0, protocol.CONNECT, (protocol.PROTOCOL_VERSION,))),
    ]
    for _ in range(17):                                              # 34 edges, no ACK: the queue overflows
        steps += [["pin", "laser", 0], ["run", 6], ["pin", "laser", 1], ["run", 6]]
    steps += [_receive(_frame(1, protocol.ACK, (20,))), ["run", 50], _receive(_frame(0, protocol.CONNECT, (protocol.PROTOCOL_VERSION,))),
              ["run", 5], ["jump", 0x1FFFFFF0], ["run", 5], ["jump", 0x1FFFFFF0],
              ["run", 120]]                                           # the clock wraps at 2**30, as ticks_ms
    return {"setup": {"pins": RELEASED, "board_id": b"MPYBOARD".hex(), "boot_id": 0xDEADBEEF,
                      "reset_cause": protocol.RESET_POWER_ON}, "steps": steps}


def _watchdog_session() -> dict:
    steps = [["run", 5], _receive(_frame(0, protocol.CONNECT, (protocol.PROTOCOL_VERSION,))), ["run", 150],
             _receive(_frame(1, protocol.HEARTBEAT, (0xFFFF, protocol.FLAG_LED))), ["run", 400]]
    return {"setup": {"pins": {**RELEASED, "interlock": 1}, "board_id": "00b0a4d000ff0001",
                      "boot_id": 0xFFFFFFFF, "reset_cause": protocol.RESET_WATCHDOG}, "steps": steps}


def _random_session(seed: int) -> dict:
    rng = random.Random(seed)
    steps = [_receive(_frame(0, protocol.CONNECT, (protocol.PROTOCOL_VERSION,)))]
    seq = 1
    for _ in range(400):
        choice = rng.random()
        if choice < 0.35:
            steps.append(["pin", rng.choice(["footswitch", "interlock", "laser"]), rng.randint(0, 1)])
        elif choice < 0.65:
            steps.append(["run", rng.randint(1, 30)])
        elif choice < 0.8:
            steps.append(_receive(_frame(seq, protocol.HEARTBEAT, (rng.getrandbits(16), rng.getrandbits(2)))))
        elif choice < 0.9:
            steps.append(_receive(_frame(seq, protocol.ACK, (rng.randint(0, 40),))))
        elif choice < 0.97:
            steps.append(_receive(bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 20)))))
        else:
            steps.append(_receive(_frame(0, protocol.CONNECT, (protocol.PROTOCOL_VERSION,))))
        seq += 1
    return {"setup": {"pins": RELEASED, "board_id": b"RANDOMID".hex(), "boot_id": seed,
                      "reset_cause": protocol.RESET_OTHER}, "steps": steps}


def _first_difference(on_micropython: list, on_cpython: list) -> str:
    """Where two board traces part, for a failure message that a whole-trace diff would bury."""
    for index, (mine, theirs) in enumerate(zip(on_micropython, on_cpython)):
        if mine != theirs:
            return "trace entry %d: MicroPython %r, CPython %r" % (index, mine, theirs)
    return "traces of %d (MicroPython) and %d (CPython) entries" % (len(on_micropython), len(on_cpython))


def _frames_of(trace: list) -> list[tuple]:
    frames = []
    for entry in trace:
        if entry[1] == "frame":
            _version, _seq, msg_type, payload = protocol.decode_body(bytes.fromhex(entry[2])[:-1])
            frames.append((msg_type, protocol.unpack(msg_type, payload)))
    return frames


def test_board_sessions_emit_the_same_frames_under_micropython(both):
    on_micropython, on_cpython = both({"board": _scripted_session()})
    assert on_micropython == on_cpython, _first_difference(on_micropython["board"], on_cpython["board"])
    trace = on_micropython["board"]
    frames = _frames_of(trace)
    # The session reaches every message and fault a board sends, and the permissive both ways.
    assert {msg_type for msg_type, _fields in frames} == {
        protocol.HELLO, protocol.STATE, protocol.EDGE, protocol.HEARTBEAT_REPLY, protocol.FAULT}
    assert {fields[0] for msg_type, fields in frames if msg_type == protocol.FAULT} == {
        protocol.FAULT_VERSION_MISMATCH, protocol.FAULT_UNKNOWN_MESSAGE, protocol.FAULT_BAD_PAYLOAD,
        protocol.FAULT_EDGE_QUEUE_OVERFLOW}
    permissive = [entry[3] for entry in trace if entry[1] == "outputs"]
    assert 1 in permissive and permissive[-1] == 0
    state_at, (_type, state) = [(entry[0], frame) for entry, frame in zip(
        [entry for entry in trace if entry[1] == "frame"], frames) if frame[0] == protocol.STATE][-1]
    assert state_at > protocol.TICKS_MASK and state[0] == state_at & protocol.TICKS_MASK


def test_watchdog_reset_board_emits_the_same_frames_under_micropython(both):
    on_micropython, on_cpython = both({"board": _watchdog_session()})
    assert on_micropython == on_cpython, _first_difference(on_micropython["board"], on_cpython["board"])
    frames = _frames_of(on_micropython["board"])
    assert frames[1] == (protocol.FAULT, (protocol.FAULT_WATCHDOG_RESET, 0))
    assert frames[0][1][4:] == (bytes.fromhex("00b0a4d000ff0001"), 0xFFFFFFFF, 5, 0, protocol.RESET_WATCHDOG)


@pytest.mark.parametrize("seed", [1, 2])
def test_random_board_sessions_emit_the_same_frames_under_micropython(both, seed):
    on_micropython, on_cpython = both({"board": _random_session(seed)})
    assert len(_frames_of(on_cpython["board"])) > 50
    assert on_micropython == on_cpython, _first_difference(on_micropython["board"], on_cpython["board"])
