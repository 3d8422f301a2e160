"""The controller wire codec (docs/controller-protocol.md): vectors, properties, MicroPython subset."""

from __future__ import annotations

import ast
import random
import struct
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge import protocol

ROOT = Path(__file__).resolve().parents[1]

# (seq, type, fields) -> wire bytes in hex, delimiter included. Normative: section 1 and 2.
VECTORS = [
    ((0, protocol.CONNECT, (2,)), "0202078102b1dfdb4700"),
    ((1, protocol.HEARTBEAT, (7, 3)), "0502018207060397107c1a00"),
    ((2, protocol.ACK, (0,)), "0402028301052fc998f500"),
    ((0, protocol.HELLO, (2, 1, 0, 0, b"SIMBOARD", 0xDEADBEEF, 1234, 0, 0)), "020204010201010f53494d424f415244efbeadded2040101010105fc16bc0500"),
    ((5, protocol.STATE, (100, 0b011, 0b010, 1, 0, 0)), "050205026401010403020101054b2ca80f00"),
    ((6, protocol.EDGE, (258, 0, 1, 0x01020304)), "0602060302010a0104030201cc1a5f1600"),
    ((7, protocol.HEARTBEAT_REPLY, (7, 1, 0x01020304)), "05020704070a01040302015cb7863700"),
    ((8, protocol.FAULT, (4, 1)), "0a0208050401ebbbf66c00"),
]

COBS_VECTORS = [
    (b"", "01"),
    (b"\x00", "0101"),
    (b"\x11\x22\x00\x33", "0311220233"),
    (b"\x11\x00\x00\x00", "0211010101"),
    (bytes(range(1, 255)), "ff" + bytes(range(1, 255)).hex() + "01"),
]


@pytest.mark.parametrize("message, wire", VECTORS, ids=[protocol.LAYOUTS[m[1]][0] for m, _ in VECTORS])
def test_vectors_encode_and_decode(message, wire):
    seq, msg_type, fields = message
    assert protocol.encode_frame(seq, msg_type, fields).hex() == wire
    [(version, got_seq, got_type, payload)] = protocol.Decoder().feed(bytes.fromhex(wire))
    assert (version, got_seq, got_type) == (protocol.PROTOCOL_VERSION, seq, msg_type)
    assert protocol.unpack(got_type, payload) == fields


def test_vector_crc_is_zlib_crc32_of_the_body_little_endian():
    body = protocol.cobs_decode(bytes.fromhex(VECTORS[0][1])[:-1])
    assert body[:4] == bytes((2, 0, protocol.CONNECT, 2))
    assert struct.unpack("<I", body[4:])[0] == zlib.crc32(body[:4])


@pytest.mark.parametrize("data, encoded", COBS_VECTORS)
def test_cobs_vectors(data, encoded):
    assert protocol.cobs_encode(data).hex() == encoded
    assert protocol.cobs_decode(bytes.fromhex(encoded)) == data


def crafted_body(size):
    head = bytes((protocol.PROTOCOL_VERSION, 0, 0x7F)) + bytes(size - 7)
    return head + struct.pack("<I", zlib.crc32(head))


def test_largest_frame_is_66_bytes_on_the_wire_and_longer_bodies_are_refused():
    largest = protocol.cobs_encode(crafted_body(protocol.MAX_BODY)) + b"\x00"
    assert len(largest) == 66
    assert protocol.decode_body(largest[:-1])[2] == 0x7F
    with pytest.raises(protocol.FrameError, match="65 bytes"):
        protocol.decode_body(protocol.cobs_encode(crafted_body(protocol.MAX_BODY + 1)))


# -- properties ------------------------------------------------------------------------------

def field_strategy(fmt):
    parts = []
    count = ""
    for char in fmt[1:]:
        if char.isdigit():
            count += char
            continue
        if char == "s":
            parts.append(st.binary(min_size=int(count), max_size=int(count)))
        else:
            size = struct.calcsize("<" + char)
            parts.append(st.integers(0, (1 << (8 * size)) - 1))
        count = ""
    return st.tuples(*parts)


messages = st.one_of(*[
    st.tuples(st.just(msg_type), field_strategy(layout[1]))
    for msg_type, layout in protocol.LAYOUTS.items()
])


@settings(deadline=None, max_examples=150)
@given(st.lists(messages, max_size=40), st.integers(0, 255), st.lists(st.integers(1, 64), max_size=10))
def test_any_message_sequence_round_trips_in_any_chunking(sequence, first_seq, cuts):
    wire = b"".join(protocol.encode_frame(first_seq + i, t, f) for i, (t, f) in enumerate(sequence))
    decoder = protocol.Decoder()
    frames = []
    position = 0
    for cut in cuts + [len(wire)]:
        frames += decoder.feed(wire[position:position + cut])
        position += cut
    frames += decoder.feed(wire[position:])
    assert [(t, protocol.unpack(t, p)) for _, _, t, p in frames] == sequence
    assert [s for _, s, _, _ in frames] == [(first_seq + i) & 0xFF for i in range(len(sequence))]
    assert decoder.crc_errors == decoder.framing_errors == 0


def test_100000_frames_of_random_noise_yield_zero_accepted_frames():
    rng = random.Random(20261124)
    decoder = protocol.Decoder()
    accepted = 0
    for _ in range(50_000):      # raw noise: random bytes, delimited
        accepted += len(decoder.feed(rng.randbytes(rng.randrange(1, 80)) + b"\x00"))
    for _ in range(50_000):      # noise that is valid COBS, so every chunk reaches the CRC check
        body = rng.randbytes(rng.randrange(7, protocol.MAX_BODY + 1))
        accepted += len(decoder.feed(protocol.cobs_encode(body) + b"\x00"))
    assert accepted == 0
    assert decoder.frames == 0
    assert decoder.crc_errors >= 50_000 - 100   # nearly all well-formed noise dies at the CRC
    assert decoder.crc_errors + decoder.framing_errors >= 99_000


@settings(deadline=None, max_examples=200)
@given(st.lists(messages, min_size=2, max_size=12), st.binary(min_size=1, max_size=200),
       st.integers(0, 11))
def test_after_garbage_at_most_one_frame_is_lost(sequence, garbage, position):
    frames = [protocol.encode_frame(i, t, f) for i, (t, f) in enumerate(sequence)]
    position = min(position, len(frames))
    wire = b"".join(frames[:position]) + garbage + b"".join(frames[position:])
    decoder = protocol.Decoder()
    got = decoder.feed(wire)
    seqs = [s for _, s, _, _ in got]
    expected = list(range(len(sequence)))
    # Only the frame the garbage ran into may be missing; nothing is invented or reordered.
    missing = [s for s in expected if s not in seqs]
    assert len(missing) <= 1 and (not missing or missing == [position])
    assert seqs == [s for s in expected if s not in missing]


def test_overlong_chunk_is_discarded_and_the_next_frame_resyncs():
    decoder = protocol.Decoder()
    good = protocol.encode_frame(0, protocol.ACK, (5,))
    assert decoder.feed(b"\x01" * 500 + b"\x00" + good) != []
    assert decoder.framing_errors == 1 and decoder.resyncs == 1 and decoder.frames == 1


def test_unpack_rejects_unknown_types_and_wrong_lengths():
    with pytest.raises(protocol.FrameError, match="unknown message type 0x7f"):
        protocol.unpack(0x7F, b"")
    with pytest.raises(protocol.FrameError, match="ACK payload of 3 bytes"):
        protocol.unpack(protocol.ACK, b"\x00\x00\x00")


def test_serial_edge_numbers_wrap():
    assert protocol.serial_after(0, 0xFFFF)
    assert not protocol.serial_after(0xFFFF, 0)
    assert not protocol.serial_after(7, 7)


# -- the MicroPython subset ------------------------------------------------------------------

FIRMWARE_FILES = [ROOT / "firmware_bridge" / "protocol.py",
                  *sorted((ROOT / "firmware_bridge" / "firmware").glob("*.py"))]
# Modules MicroPython on the RP2040 provides (and the firmware's own modules).
MICROPYTHON_MODULES = {"binascii", "struct", "machine", "micropython", "random", "select", "sys", "time",
                       "protocol", "board", "firmware_bridge"}


def micropython_violations(source: str) -> list[str]:
    """Constructs in `source` that MicroPython does not run (or that we keep out of firmware)."""
    problems = []
    tree = ast.parse(source)
    for node in ast.walk(tree):
        where = "line %d" % getattr(node, "lineno", 0)
        if isinstance(node, ast.Import):
            names = [alias.name.split(".")[0] for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [(node.module or "").split(".")[0]]
        else:
            names = []
        for name in names:
            if name not in MICROPYTHON_MODULES:
                problems.append("%s: import of %s" % (where, name))
        if isinstance(node, ast.AnnAssign):
            problems.append("%s: variable annotation" % where)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            arguments = node.args
            annotated = [a for a in arguments.posonlyargs + arguments.args + arguments.kwonlyargs
                         + [arguments.vararg, arguments.kwarg] if a is not None and a.annotation]
            if annotated or getattr(node, "returns", None) is not None:
                problems.append("%s: function annotation" % where)
        if isinstance(node, ast.Match):
            problems.append("%s: match statement" % where)
        if isinstance(node, ast.NamedExpr):
            problems.append("%s: walrus operator" % where)
        if isinstance(node, ast.JoinedStr):
            segment = ast.get_source_segment(source, node) or ""
            if "=}" in segment or "=!" in segment or "=:" in segment:
                problems.append("%s: f-string debugging form" % where)
        if isinstance(node, (ast.AsyncFunctionDef, ast.TryStar)):
            problems.append("%s: %s" % (where, type(node).__name__))
        if isinstance(node, ast.ClassDef) and node.decorator_list:
            problems.append("%s: class decorator (dataclass?)" % where)
    return problems


@pytest.mark.parametrize("path", FIRMWARE_FILES, ids=lambda p: p.name)
def test_firmware_files_stay_in_the_micropython_subset(path):
    assert micropython_violations(path.read_text()) == []


def test_the_stand_in_machine_stays_in_the_subset_of_the_unix_port():
    source = (ROOT / "firmware_bridge" / "board_standin" / "machine.py").read_text()
    assert [problem for problem in micropython_violations(source) if problem.split()[-1] != "os"] == []


@pytest.mark.parametrize("source, problem", [
    ("from dataclasses import dataclass\n", "import of dataclasses"),
    ("import typing\n", "import of typing"),
    ("from __future__ import annotations\n", "import of __future__"),
    ("x: int = 1\n", "variable annotation"),
    ("def f(a: int): pass\n", "function annotation"),
    ("def f(a) -> int: pass\n", "function annotation"),
    ("x = 1\ny = f'{x=}'\n", "f-string debugging form"),
    ("match x:\n    case 1: pass\n", "match statement"),
    ("if (n := 1): pass\n", "walrus operator"),
    ("@decorate\nclass A: pass\n", "class decorator"),
])
def test_the_subset_checker_catches_what_micropython_lacks(source, problem):
    assert any(problem in found for found in micropython_violations(source))


def test_firmware_imports_the_shared_codec_not_a_copy():
    board_source = (ROOT / "firmware_bridge" / "firmware" / "board.py").read_text()
    assert "from firmware_bridge import protocol" in board_source and "import protocol" in board_source
    assert not list((ROOT / "firmware_bridge" / "firmware").glob("protocol*.py"))
