"""Seekable vault reader: random access by segment, a small cache, authenticated output only.

Opening authenticates the last segment, which decides `finalized`: a stream whose last
segment carries the last flag was closed by its writer; one that ends on a segment that is not
marked last stopped early (a crash, or a cut). A torn last segment (a write cut mid-segment)
is accepted only when the caller says the file is known to be interrupted (`torn_tail_ok`);
otherwise it is reported as the segment that failed, like any other modification.
"""

from __future__ import annotations

import io
import os
from collections import OrderedDict

from cryptography.hazmat.primitives.asymmetric import ec

from appliance.errors import IntegrityError
from appliance.positioned import Positioned
from appliance.vault import header as vault_header
from appliance.vault import stream

CACHED_SEGMENTS = 4


def _segment_failed(index: int) -> IntegrityError:
    hint = " (or the header does not belong to this body)" if index == 0 else ""
    return IntegrityError(f"segment {index} failed authentication: the vault was modified{hint}")


class VaultReader(Positioned, io.RawIOBase):
    def __init__(self, source, identity: ec.EllipticCurvePrivateKey, *, torn_tail_ok: bool = False,
                 owns_source: bool = False):
        super().__init__()
        self._source = source
        self._owns_source = owns_source
        source.seek(0)
        self.header = vault_header.read_header(source.read)
        data_key = self.header.unwrap(identity)
        self._stream_offset = self.header.length
        stream_header_bytes = source.read(stream.HEADER_LENGTH)
        if len(stream_header_bytes) < stream.HEADER_LENGTH:
            raise IntegrityError("vault is truncated inside its stream header")
        try:
            stream_header = stream.StreamHeader.decode(stream_header_bytes)
        except ValueError as error:
            raise IntegrityError(f"vault stream header is malformed: {error}") from None
        self._cipher = stream.SegmentCipher(data_key, stream_header, self.header.body_associated_data)
        self._stream_length = source.seek(0, os.SEEK_END) - self._stream_offset
        self._cache: OrderedDict[int, bytes] = OrderedDict()
        self.torn_tail_bytes = 0
        self._segments, self.finalized = self._authenticate_end(torn_tail_ok)
        self.plaintext_length = (0 if self._segments == 0 else
                                 stream.plaintext_start(self._segments - 1) + len(self._segment(self._segments - 1)))
        self._position = 0

    def _authenticate_end(self, torn_tail_ok: bool) -> tuple[int, bool]:
        count = stream.segment_count(self._stream_length)
        if count == 0:
            if torn_tail_ok:
                self.torn_tail_bytes = self._stream_length - stream.HEADER_LENGTH
                return 0, False
            raise IntegrityError("segment 0 is missing: the vault was cut after its header")
        last = count - 1
        if last > 0:
            # Segment 0 first: a header that belongs to another body fails here, with a clear hint.
            try:
                self._cache[0] = self._cipher.open(0, self._read_ciphertext(0), last=False)
            except stream.SegmentRejected:
                raise _segment_failed(0) from None
        ciphertext = self._read_ciphertext(last)
        try:
            self._cache[last] = self._cipher.open(last, ciphertext, last=True)
            return count, True
        except stream.SegmentRejected:
            pass
        full_length = stream.segment_start(last + 1) - stream.segment_start(last)
        if len(ciphertext) == full_length:
            try:
                self._cache[last] = self._cipher.open(last, ciphertext, last=False)
                return count, False
            except stream.SegmentRejected:
                pass
        if not torn_tail_ok:
            raise _segment_failed(last)
        self.torn_tail_bytes = len(ciphertext)
        if last == 0:
            return 0, False
        try:
            self._cache[last - 1] = self._cipher.open(last - 1, self._read_ciphertext(last - 1), last=False)
        except stream.SegmentRejected:
            raise _segment_failed(last - 1) from None
        return last, False

    def end_at(self, length: int) -> None:
        """Shortens the plaintext view (an interrupted recording ends at its last complete
        fragment); the view never grows past the authenticated plaintext."""
        if not 0 <= length <= self.plaintext_length:
            raise ValueError(f"cannot end a {self.plaintext_length}-byte plaintext at {length}")
        self.plaintext_length = length

    @property
    def segments(self) -> int:
        """Authenticated segments the plaintext is made of."""
        return self._segments

    def _read_ciphertext(self, index: int) -> bytes:
        self._source.seek(self._stream_offset + stream.segment_start(index))
        return self._source.read(stream.segment_length(index, self._stream_length))

    def _segment(self, index: int) -> bytes:
        cached = self._cache.get(index)
        if cached is not None:
            self._cache.move_to_end(index)
            return cached
        ciphertext = self._read_ciphertext(index)
        last = self.finalized and index == self._segments - 1
        try:
            plaintext = self._cipher.open(index, ciphertext, last=last)
        except stream.SegmentRejected:
            raise _segment_failed(index) from None
        self._cache[index] = plaintext
        while len(self._cache) > CACHED_SEGMENTS:
            self._cache.popitem(last=False)
        return plaintext

    def readable(self) -> bool:
        return True


    def _end(self) -> int:
        return self.plaintext_length

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")
        filled = 0
        while filled < len(view) and self._position < self.plaintext_length:
            index = stream.segment_of_plaintext_offset(self._position)
            plaintext = memoryview(self._segment(index))
            within = self._position - stream.plaintext_start(index)
            count = min(len(view) - filled, len(plaintext) - within, self.plaintext_length - self._position)
            view[filled:filled + count] = plaintext[within:within + count]
            filled += count
            self._position += count
        return filled

    def close(self) -> None:
        if not self.closed and self._owns_source:
            self._source.close()
        self._cache.clear()
        super().close()
