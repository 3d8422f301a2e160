"""The fMP4 box scanner on crafted byte sequences: where an interrupted recording is cut."""

from __future__ import annotations

import struct

import pytest

from appliance.recording.fmp4 import FragmentScanner


def complete_length(pieces) -> int | None:
    """The scanner's cut for a stream fed in these pieces; None when it is not an MP4."""
    scanner = FragmentScanner()
    for piece in pieces:
        scanner.feed(piece)
    return scanner.complete_length if scanner.is_mp4 else None


def box(kind: bytes, payload: bytes = b"") -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def large_box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4sQ", 1, kind, 16 + len(payload)) + payload


INIT = box(b"ftyp", b"iso5\0\0\2\0") + box(b"moov", box(b"mvhd", bytes(100)))
FRAGMENTS = [box(b"moof", box(b"mfhd", bytes(8)) + bytes(40)) + box(b"mdat", bytes([n]) * (300 + 50 * n))
             for n in range(3)]
RECORDING = INIT + b"".join(FRAGMENTS)
# Where a cut recording may end: after the init segment, then after each complete moof + mdat.
BOUNDARIES = [len(INIT) + sum(map(len, FRAGMENTS[:n])) for n in range(len(FRAGMENTS) + 1)]


def in_pieces(data: bytes, size: int) -> list[bytes]:
    return [data[start:start + size] for start in range(0, len(data), size)]


def test_a_complete_recording_is_not_cut():
    assert complete_length([RECORDING]) == len(RECORDING)


def test_a_recording_cut_anywhere_ends_at_the_last_complete_fragment():
    """Covers a torn ftyp/moov (nothing playable), a torn moof, a torn mdat and torn box headers."""
    for cut in range(len(RECORDING) + 1):
        expected = max([0] + [boundary for boundary in BOUNDARIES if boundary <= cut])
        if cut < 8:
            expected = None     # not even the first box header: nothing says it is an MP4
        assert complete_length([RECORDING[:cut]]) == expected, cut


@pytest.mark.parametrize("size", [1, 3, 7, 8, 9, 15, 16, 17, 64])
def test_pieces_of_any_size_give_the_same_cut_as_one_piece(size):
    torn = RECORDING[:BOUNDARIES[2] + 30]       # a moof header and part of its mdat after fragment 2
    assert complete_length(in_pieces(torn, size)) == BOUNDARIES[2]
    assert complete_length(in_pieces(RECORDING, size)) == len(RECORDING)


@pytest.mark.parametrize("split", range(1, 8))
def test_a_box_header_split_across_reads(split):
    header_at = BOUNDARIES[1]                   # the second fragment's moof header
    pieces = [RECORDING[:header_at + split], RECORDING[header_at + split:]]
    assert complete_length(pieces) == len(RECORDING)
    assert complete_length([RECORDING[:header_at + split]]) == BOUNDARIES[1]


def test_a_torn_mdat_and_a_torn_moof_drop_their_fragment():
    moof_length = len(box(b"moof", box(b"mfhd", bytes(8)) + bytes(40)))
    torn_mdat = INIT + FRAGMENTS[0] + FRAGMENTS[1][:-1]
    torn_moof = INIT + FRAGMENTS[0] + FRAGMENTS[1][:moof_length - 1]
    moof_without_mdat = INIT + FRAGMENTS[0] + FRAGMENTS[1][:moof_length]
    for torn in (torn_mdat, torn_moof, moof_without_mdat):
        assert complete_length([torn]) == BOUNDARIES[1]


def test_skipping_box_bodies_counts_like_reading_them():
    scanner = FragmentScanner()
    fed = 0
    while fed < len(RECORDING):
        if scanner.body_remaining:
            scanner.skip(scanner.body_remaining)
            fed = scanner.offset
        else:
            scanner.feed(RECORDING[fed:fed + 16])
            fed += 16
    assert scanner.complete_length == len(RECORDING)
    with pytest.raises(ValueError):
        FragmentScanner().skip(1)


def test_a_64_bit_box_size_is_read():
    recording = INIT + box(b"moof", bytes(20)) + large_box(b"mdat", bytes(500))
    assert complete_length(in_pieces(recording, 5)) == len(recording)
    assert complete_length([recording[:-1]]) == len(INIT)


def test_other_top_level_boxes_between_fragments_are_kept():
    recording = INIT + FRAGMENTS[0] + box(b"free", bytes(10)) + FRAGMENTS[1] + box(b"mfra", bytes(30))
    assert complete_length([recording]) == len(recording)


def test_a_box_without_a_size_or_with_an_impossible_size_ends_the_scan_before_it():
    for bad in (struct.pack(">I4s", 0, b"mdat") + bytes(100), struct.pack(">I4s", 5, b"moof") + bytes(100)):
        assert complete_length([RECORDING + bad]) == len(RECORDING)


def test_bytes_that_are_not_an_mp4_are_never_cut():
    assert complete_length([b"\0\0\0\x10junk" + bytes(500)]) is None
    assert complete_length([box(b"mdat", bytes(20))]) is None
    assert complete_length([]) is None
