"""The file the browser gets: a recording's plaintext with a `sidx` after its `moov`, read on
the fly from the vault reader; never a copy of the recording.

    ftyp + moov | sidx (generated, in memory) | moof + mdat ... up to the last complete fragment

The index comes from a scan of the box headers through the seekable reader: one decrypted
segment per fragment (the moof and the next mdat's header), every mdat body skipped by seeking.
An interrupted recording's last, incomplete fragment is left out, so the view ends where every
decoder can read to the end. Indexes are kept per archive object (key and etag) in a small LRU
cache (about 12 bytes a second of video): the scan runs once per recording, not per request.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

from appliance.gateway.faststart import Concatenation
from appliance.portal import fragment_index
from appliance.portal.fragment_index import Fragment

MAX_MOOF_BYTES = 1 << 20     # a moof holds a second of sample sizes: kilobytes, never megabytes
CACHED_INDEXES = 64


@dataclass(frozen=True)
class RecordingIndex:
    init_length: int         # ftyp + moov
    sidx: bytes
    media_length: int        # the fragments the view serves, from init_length on

    @property
    def length(self) -> int:
        return self.init_length + len(self.sidx) + self.media_length


class NotPlayable(ValueError):
    """The plaintext is not a recording the portal can serve (no init segment, no fragment)."""


def scan(reader) -> RecordingIndex:
    """The index of the recording behind a seekable plaintext reader (a VaultReader)."""
    length = reader.plaintext_length
    offset, moov = 0, None
    while moov is None:
        kind, size = _box_at(reader, offset, length)
        if kind is None:
            raise NotPlayable("the recording ends before its init segment (ftyp + moov) is complete")
        if kind == b"moov":
            moov = _read(reader, offset, size)
        elif kind == b"moof" or offset == 0 and kind != b"ftyp":
            raise NotPlayable("the recording does not start with an init segment (ftyp + moov)")
        offset += size
    try:
        track = fragment_index.track_of(moov)
        init_length, fragments = offset, []
        while (fragment := _fragment_at(reader, offset, length, track)) is not None:
            fragments.append(fragment)
            offset += fragment.size
        if not fragments:
            raise NotPlayable("the recording holds no complete second of video")
        sidx = fragment_index.sidx(track, fragments)
    except NotPlayable:
        raise
    except ValueError as error:
        raise NotPlayable(f"the recording's boxes are malformed: {error}") from None
    return RecordingIndex(init_length, sidx, offset - init_length)


def _fragment_at(reader, offset: int, length: int, track) -> Fragment | None:
    """The complete moof + mdat at `offset`, or None where the recording ends (or is torn)."""
    kind, moof_size = _box_at(reader, offset, length)
    if kind != b"moof" or moof_size > MAX_MOOF_BYTES:
        return None
    mdat_kind, mdat_size = _box_at(reader, offset + moof_size, length)
    if mdat_kind != b"mdat":
        return None
    return fragment_index.fragment_of(_read(reader, offset, moof_size), offset, moof_size + mdat_size, track)


def _box_at(reader, offset: int, length: int) -> tuple[bytes | None, int]:
    """(type, size) of the box at `offset` when it lies whole within `length`, else (None, 0)."""
    header = _read(reader, offset, min(fragment_index.LARGE_HEADER, length - offset))
    try:
        kind, size, _ = fragment_index.box_header(header)
    except ValueError:
        return None, 0
    return (kind, size) if offset + size <= length else (None, 0)


def _read(reader, offset: int, size: int) -> bytes:
    reader.seek(offset)
    return reader.read(max(0, size))


def view(reader, index: RecordingIndex) -> Concatenation:
    """The served file: a seekable, read-only view over `reader` (which it reads, never copies)."""
    return Concatenation(reader, [(0, index.init_length), index.sidx, (index.init_length, index.media_length)])


class IndexCache:
    """Indexes by archive object; a recording being scanned is scanned once, however many
    requests for it arrive meanwhile (a browser opens several)."""

    def __init__(self, capacity: int = CACHED_INDEXES):
        self._capacity = capacity
        self._indexes: OrderedDict[tuple, RecordingIndex] = OrderedDict()
        self._scanning: dict[tuple, threading.Lock] = {}
        self._lock = threading.Lock()
        self.scans = 0

    def index(self, key: tuple, reader) -> RecordingIndex:
        with self._lock:
            if key in self._indexes:
                self._indexes.move_to_end(key)
                return self._indexes[key]
            scanning = self._scanning.setdefault(key, threading.Lock())
        with scanning:
            with self._lock:
                if key in self._indexes:
                    return self._indexes[key]
            found = scan(reader)
            with self._lock:
                self.scans += 1
                self._indexes[key] = found
                self._scanning.pop(key, None)
                while len(self._indexes) > self._capacity:
                    self._indexes.popitem(last=False)
            return found
