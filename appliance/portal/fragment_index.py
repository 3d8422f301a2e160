"""The index of a fragmented MP4 recording, as a `sidx` box a browser can seek with.

A recording (appliance/recording/clip.py) is `ftyp`, an empty `moov`, then one `moof` + `mdat`
pair per second, with no index. A browser's demuxer (FFmpeg's, in Chromium) then reads every
`moof` of the file before it plays, to learn the duration and where each second starts: for a
60-minute recording that is thousands of range requests. A `sidx` placed right after the `moov`
says the same in one box, so the browser reads the init segment, the index and the one fragment
it wants. Our `moof`s use `default_base_moof` (their sample offsets count from the moof itself),
so inserting a box in front of them changes nothing inside them.

Everything here is pure: it reads box bytes handed to it and returns values or bytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

HEADER = 8
LARGE_HEADER = 16
MOOV_CONTAINERS = frozenset({b"moov", b"trak", b"mdia", b"mvex"})
MOOF_CONTAINERS = frozenset({b"moof", b"traf"})
NON_SYNC_SAMPLE = 0x0001_0000       # sample_is_non_sync_sample in the sample flags
MAX_REFERENCES = 0xFFFF             # sidx reference_count is 16 bits
MAX_REFERENCED_SIZE = 0x7FFF_FFFF   # 31 bits: reference_type takes the top bit
SIDX_FIXED = 40                     # header, version/flags, ids, 64-bit times, count
SIDX_REFERENCE = 12


@dataclass(frozen=True)
class Track:
    """What the index needs from the init segment: the one track's id, clock and defaults."""
    track_id: int
    timescale: int
    default_duration: int
    default_flags: int


@dataclass(frozen=True)
class Fragment:
    """One moof + mdat pair: where it lies in the plaintext and which media time it covers."""
    offset: int
    size: int
    decode_time: int
    duration: int
    starts_with_sync: bool


def box_header(data: bytes, offset: int = 0) -> tuple[bytes, int, int]:
    """(type, size, header length) of the box at `offset`; ValueError when it is not whole."""
    if len(data) - offset < HEADER:
        raise ValueError(f"truncated box header at {offset}")
    size, kind = struct.unpack_from(">I4s", data, offset)
    header = HEADER
    if size == 1:
        if len(data) - offset < LARGE_HEADER:
            raise ValueError(f"truncated box header at {offset}")
        (size,) = struct.unpack_from(">Q", data, offset + HEADER)
        header = LARGE_HEADER
    if size < header:      # 0 ("to the end of the file") never occurs inside a moov or moof
        raise ValueError(f"box {kind!r} at {offset} declares {size} bytes")
    return kind, size, header


def children(data: bytes, start: int, end: int, containers: frozenset) -> dict[bytes, list[tuple[int, int]]]:
    """Every box under data[start:end], descending into `containers`: type -> [(body start, body end)]."""
    found: dict[bytes, list[tuple[int, int]]] = {}
    offset = start
    while offset < end:
        kind, size, header = box_header(data, offset)
        if offset + size > end:
            raise ValueError(f"box {kind!r} at {offset} runs past its parent")
        found.setdefault(kind, []).append((offset + header, offset + size))
        if kind in containers:
            for inner, bodies in children(data, offset + header, offset + size, containers).items():
                found.setdefault(inner, []).extend(bodies)
        offset += size
    return found


def _only(found: dict, kind: bytes, where: str) -> tuple[int, int]:
    bodies = found.get(kind, [])
    if len(bodies) != 1:
        raise ValueError(f"{where} holds {len(bodies)} {kind.decode()} boxes, not one")
    return bodies[0]


def _full_box(data: bytes, body: tuple[int, int], fixed: int) -> tuple[int, int]:
    """(version, flags) of a FullBox whose body must hold at least `fixed` bytes after them."""
    start, end = body
    if end - start < 4 + fixed:
        raise ValueError("a box is too short for its fields")
    (word,) = struct.unpack_from(">I", data, start)
    return word >> 24, word & 0xFF_FFFF


def track_of(moov: bytes) -> Track:
    """The single track of a recording's init segment (the whole moov box)."""
    found = children(moov, box_header(moov)[2], len(moov), MOOV_CONTAINERS)
    start, _ = body = _only(found, b"trex", "the moov")
    _full_box(moov, body, 20)
    track_id, _, default_duration, _, default_flags = struct.unpack_from(">5I", moov, start + 4)
    start, _ = body = _only(found, b"mdhd", "the moov")
    version, _ = _full_box(moov, body, 16)
    (timescale,) = struct.unpack_from(">I", moov, start + 4 + (16 if version == 1 else 8))
    if timescale == 0:
        raise ValueError("the track's timescale is 0")
    return Track(track_id, timescale, default_duration, default_flags)


def fragment_of(moof: bytes, offset: int, size: int, track: Track) -> Fragment:
    """The fragment whose moof box is `moof`, at `offset` with `size` bytes (moof + mdat)."""
    found = children(moof, box_header(moof)[2], len(moof), MOOF_CONTAINERS)
    start, _ = body = _only(found, b"tfhd", "a moof")
    _, flags = _full_box(moof, body, 4)
    (track_id,) = struct.unpack_from(">I", moof, start + 4)
    if track_id != track.track_id:
        raise ValueError(f"a moof is for track {track_id}, the moov's is {track.track_id}")
    duration, sample_flags = track.default_duration, track.default_flags
    field = start + 8
    for bit, width in ((0x01, 8), (0x02, 4), (0x08, 4), (0x10, 4), (0x20, 4)):
        if flags & bit:
            if bit == 0x08:
                (duration,) = struct.unpack_from(">I", moof, field)
            elif bit == 0x20:
                (sample_flags,) = struct.unpack_from(">I", moof, field)
            field += width
    start, _ = body = _only(found, b"tfdt", "a moof")
    version, _ = _full_box(moof, body, 4)
    if version == 1:
        _full_box(moof, body, 8)
    (decode_time,) = struct.unpack_from(">Q" if version == 1 else ">I", moof, start + 4)
    total, first_flags = _run_duration(moof, _only(found, b"trun", "a moof"), duration, sample_flags)
    return Fragment(offset, size, decode_time, total, not first_flags & NON_SYNC_SAMPLE)


def _run_duration(moof: bytes, body: tuple[int, int], duration: int, sample_flags: int) -> tuple[int, int]:
    """(sum of the run's sample durations, the first sample's flags)."""
    _, flags = _full_box(moof, body, 4)
    start, end = body
    (count,) = struct.unpack_from(">I", moof, start + 4)
    field = start + 8 + (4 if flags & 0x01 else 0)
    first_flags = None
    if flags & 0x04:
        (first_flags,) = struct.unpack_from(">I", moof, field)
        field += 4
    per_sample = [(bit, width) for bit, width in ((0x100, 4), (0x200, 4), (0x400, 4), (0x800, 4)) if flags & bit]
    stride = sum(width for _, width in per_sample)
    if field + count * stride > end:
        raise ValueError("a trun's samples run past the box")
    if not flags & 0x100:
        total = count * duration
    else:
        total = sum(struct.unpack_from(">I", moof, field + index * stride)[0] for index in range(count))
    if first_flags is None:
        first_flags = sample_flags
        if flags & 0x400 and count:
            position = field + sum(width for bit, width in per_sample if bit < 0x400)
            (first_flags,) = struct.unpack_from(">I", moof, position)
    return total, first_flags


def sidx(track: Track, fragments: list[Fragment]) -> bytes:
    """A version-1 sidx for `fragments`, to sit right before the first of them: one reference
    per fragment, or per run of neighbours when there are more than sidx can count."""
    if not fragments:
        raise ValueError("nothing to index: the recording has no complete fragment")
    for before, after in zip(fragments, fragments[1:]):
        if after.offset != before.offset + before.size:
            raise ValueError(f"fragments are not contiguous at {after.offset}")
    per_reference = -(-len(fragments) // MAX_REFERENCES)
    references = []
    for first in range(0, len(fragments), per_reference):
        group = fragments[first:first + per_reference]
        size = sum(fragment.size for fragment in group)
        if size > MAX_REFERENCED_SIZE:
            raise ValueError(f"a fragment at {group[0].offset} is too large for a sidx reference")
        duration = group[-1].decode_time + group[-1].duration - group[0].decode_time
        sap = (1 << 31 | 1 << 28) if group[0].starts_with_sync else 0   # starts with SAP, type 1
        references.append(struct.pack(">III", size, duration, sap))
    length = SIDX_FIXED + SIDX_REFERENCE * len(references)
    return (struct.pack(">I4sIIIQQHH", length, b"sidx", 1 << 24, track.track_id, track.timescale,
                        fragments[0].decode_time, 0, 0, len(references)) + b"".join(references))


def renumbered(moof: bytes, sequence: int, decode_time: int) -> bytes:
    """The moof with another sequence number (mfhd) and base decode time (tfdt): a copy of a
    fragment placed later in a recording (bench/replicated.py builds long recordings so)."""
    patched = bytearray(moof)
    found = children(moof, box_header(moof)[2], len(moof), MOOF_CONTAINERS)
    start, _ = body = _only(found, b"mfhd", "a moof")
    _full_box(moof, body, 4)
    struct.pack_into(">I", patched, start + 4, sequence)
    start, _ = body = _only(found, b"tfdt", "a moof")
    version, _ = _full_box(moof, body, 4)
    if version == 1:
        _full_box(moof, body, 8)
        struct.pack_into(">Q", patched, start + 4, decode_time)
    elif decode_time >= 1 << 32:
        raise ValueError("the decode time does not fit a version-0 tfdt")
    else:
        struct.pack_into(">I", patched, start + 4, decode_time)
    return bytes(patched)
