"""Where a fragmented MP4 stops being complete: a scan of its top-level boxes.

A recording is `ftyp`, `moov` (the init segment), then one `moof` + `mdat` pair per fragment
(clip.py). An interrupted recording's authenticated prefix usually ends inside a fragment; cut
at the end of the last complete pair, every decoder reads it to its end without an error.

The scanner is pure: it is fed the plaintext in pieces of any size (or told to skip a box body
it need not see) and keeps at most one box header between pieces, so memory stays bounded
whatever the recording's length.
"""

from __future__ import annotations

import os
import struct

HEADER = 8           # uint32 size, 4-byte type
LARGE_HEADER = 16    # size == 1: a uint64 size follows the type


class FragmentScanner:
    def __init__(self) -> None:
        self.offset = 0               # stream bytes seen (fed or skipped)
        self.complete_length = 0      # the longest prefix holding only complete fragments
        self.is_mp4: bool | None = None   # unknown until the first box header is read
        self.stopped = False          # a box runs to the end of the stream, or the stream is not an MP4
        self._header = bytearray()    # a box header split across pieces
        self._box_type = b""
        self._box_end = 0
        self._init_complete = False   # the moov has been seen whole
        self._fragment_open = False   # a moof whose mdat has not ended yet

    @property
    def body_remaining(self) -> int:
        """Bytes of the current box's body still to come: the caller may skip() them."""
        return 0 if self.stopped or self._header else max(0, self._box_end - self.offset)

    def skip(self, count: int) -> None:
        """Accounts for `count` bytes of box body the caller did not read."""
        if not 0 <= count <= self.body_remaining:
            raise ValueError(f"can skip at most {self.body_remaining} body bytes, not {count}")
        self.offset += count
        if count and self.offset == self._box_end:
            self._box_ended()

    def feed(self, data: bytes) -> None:
        position = 0
        while position < len(data) and not self.stopped:
            body = min(self.body_remaining, len(data) - position)
            if body:
                self.skip(body)
                position += body
                continue
            wanted = LARGE_HEADER if len(self._header) >= HEADER and self._declared_size() == 1 else HEADER
            taken = min(wanted - len(self._header), len(data) - position)
            self._header += data[position:position + taken]
            position += taken
            self.offset += taken
            if len(self._header) == wanted and not (wanted == HEADER and self._declared_size() == 1):
                self._begin_box()

    def _declared_size(self) -> int:
        return struct.unpack_from(">I", self._header)[0]

    def _begin_box(self) -> None:
        header, self._header = bytes(self._header), bytearray()
        size, box_type = struct.unpack_from(">I4s", header)
        if size == 1:
            (size,) = struct.unpack_from(">Q", header, HEADER)
        if self.is_mp4 is None:
            self.is_mp4 = box_type == b"ftyp"
        # size 0 means "to the end of the file": never known to be complete.
        if not self.is_mp4 or size < len(header):
            self.stopped = True
            return
        self._box_type = box_type
        self._box_end = self.offset - len(header) + size
        if self.offset == self._box_end:
            self._box_ended()

    def _box_ended(self) -> None:
        if self._box_type == b"moov":
            self._init_complete = True
        elif self._box_type == b"moof":
            self._fragment_open = True
            return
        elif self._box_type == b"mdat":
            self._fragment_open = False
        if self._init_complete and not self._fragment_open:
            self.complete_length = self._box_end


def end_at_last_fragment(reader) -> int:
    """Ends an interrupted recording's plaintext view at its last complete fragment and returns
    the bytes dropped. A finalized (sealed) stream is never cut, nor is one that is not an MP4.

    Box bodies are skipped by seeking, so only the segments holding box headers are decrypted.
    """
    if reader.finalized:
        return 0
    scanner = FragmentScanner()
    reader.seek(0)
    while not scanner.stopped:
        if scanner.body_remaining:
            skipped = min(scanner.body_remaining, reader.plaintext_length - reader.tell())
            if not skipped:
                break
            scanner.skip(skipped)
            reader.seek(skipped, os.SEEK_CUR)
            continue
        piece = reader.read(LARGE_HEADER)
        if not piece:
            break
        scanner.feed(piece)
    reader.seek(0)
    if not scanner.is_mp4:
        return 0
    dropped = reader.plaintext_length - scanner.complete_length
    reader.end_at(scanner.complete_length)
    return dropped
