"""An MP4 with its index (moov) at the front, without writing the file a second time.

FFmpeg's `movflags=faststart` re-opens the finished output by name and rewrites it: our output
is an encrypted scratch file (scratch.py) with no name, so we relocate the moov ourselves.
FFmpeg's mov muxer writes `ftyp`, `free`, `mdat` (the samples), and the `moov` last. Moving the
moov to just after `ftyp` shifts every sample by the moov's size, so each chunk offset in the
moov's `stco`/`co64` tables grows by that size; nothing else in the file refers to offsets.

The result is a plan, not a copy: the patched moov (small: a few bytes per frame) in memory, and
byte ranges of the original for everything else. `Concatenation` reads such a plan as one
seekable file, which is what PyAV and pydicom's `encapsulate_buffer` want. The box walk is pure.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from typing import Callable

from appliance.positioned import Positioned

# Boxes on the path from moov to the chunk offset tables.
CONTAINERS = frozenset({b"moov", b"trak", b"mdia", b"minf", b"stbl"})
Piece = bytes | tuple[int, int]    # bytes in memory, or (offset, length) in the original file


@dataclass(frozen=True)
class Box:
    kind: bytes
    offset: int
    size: int


def boxes(read_at: Callable[[int, int], bytes], length: int) -> list[Box]:
    """The top-level boxes of a file of `length` bytes, read header by header."""
    found, offset = [], 0
    while offset < length:
        header = read_at(offset, 16)
        if len(header) < 8:
            raise ValueError(f"truncated box header at {offset}")
        size, kind = struct.unpack_from(">I4s", header)
        if size == 1:
            if len(header) < 16:
                raise ValueError(f"truncated box header at {offset}")
            (size,) = struct.unpack_from(">Q", header, 8)
        elif size == 0:
            size = length - offset
        if size < 8 or offset + size > length:
            raise ValueError(f"box {kind!r} at {offset} claims {size} bytes: the file is not a complete MP4")
        found.append(Box(kind, offset, size))
        offset += size
    return found


def shift_chunk_offsets(moov: bytes, delta: int) -> bytes:
    """The moov with every stco/co64 chunk offset increased by `delta`."""
    patched = bytearray(moov)
    _shift_within(patched, 8, len(patched), delta)
    return bytes(patched)


def _shift_within(data: bytearray, start: int, end: int, delta: int) -> None:
    offset = start
    while offset + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, offset)
        header = 8
        if size == 1:
            (size,) = struct.unpack_from(">Q", data, offset + 8)
            header = 16
        if size < header or offset + size > end:
            raise ValueError(f"box {kind!r} inside the moov is malformed")
        body = offset + header
        if kind in CONTAINERS:
            _shift_within(data, body, offset + size, delta)
        elif kind in (b"stco", b"co64"):
            width, code = (4, ">I") if kind == b"stco" else (8, ">Q")
            (count,) = struct.unpack_from(">I", data, body + 4)
            if body + 8 + count * width > offset + size:
                raise ValueError(f"{kind.decode()} table runs past its box")
            for entry in range(body + 8, body + 8 + count * width, width):
                (value,) = struct.unpack_from(code, data, entry)
                if value + delta >= 1 << (8 * width):
                    raise ValueError("a chunk offset no longer fits in stco: the video part is too large")
                struct.pack_into(code, data, entry, value + delta)
        offset += size


def moov_first(read_at: Callable[[int, int], bytes], length: int) -> list[Piece]:
    """The plan of the same MP4 with the moov right after ftyp."""
    found = boxes(read_at, length)
    kinds = [box.kind for box in found]
    if kinds.count(b"moov") != 1 or not found or found[0].kind != b"ftyp":
        raise ValueError("the file is not an MP4 with one ftyp and one moov")
    moov = found[kinds.index(b"moov")]
    if b"mdat" not in kinds or kinds.index(b"moov") < kinds.index(b"mdat"):
        return [(0, length)]                  # already at the front, or no media to index
    if moov is not found[-1]:
        raise ValueError("the moov is neither before the media data nor the last box")
    ftyp = found[0]
    patched = shift_chunk_offsets(read_at(moov.offset, moov.size), moov.size)
    return [(0, ftyp.size), patched, (ftyp.size, moov.offset - ftyp.size)]


class Concatenation(Positioned, io.BufferedIOBase):
    """The pieces of a plan as one read-only, seekable file; ranges are read from `source`
    (seeked before every read, so several views may share one source, one at a time)."""

    def __init__(self, source, pieces: list[Piece]):
        super().__init__()
        self._source = source
        self._pieces, self._starts, start = [], [], 0
        for piece in pieces:
            self._pieces.append(piece)
            self._starts.append(start)
            start += len(piece) if isinstance(piece, bytes) else piece[1]
        self.length = start
        self._position = 0

    def readable(self) -> bool:
        return True


    def _end(self) -> int:
        return self.length

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            size = self.length
        out = bytearray()
        while len(out) < size and self._position < self.length:
            index = next(i for i in range(len(self._starts) - 1, -1, -1) if self._starts[i] <= self._position)
            piece, within = self._pieces[index], self._position - self._starts[index]
            if isinstance(piece, bytes):
                chunk = piece[within:within + size - len(out)]
            else:
                offset, length = piece
                self._source.seek(offset + within)
                chunk = self._source.read(min(size - len(out), length - within))
                if not chunk:
                    raise ValueError("the source ended before the plan did")
            out += chunk
            self._position += len(chunk)
        return bytes(out)

    def read1(self, size: int = -1) -> bytes:
        return self.read(size)

    def readinto(self, buffer) -> int:
        data = self.read(len(memoryview(buffer)))
        memoryview(buffer).cast("B")[:len(data)] = data
        return len(data)
