"""The file the browser gets: a recording's plaintext with a `sidx` after its `moov`, read on
the fly from the vault reader; never a copy of the recording.

    ftyp + moov | sidx (generated, in memory) | moof + mdat ... up to the last complete fragment

The index comes from a scan of the box headers through the seekable reader: one decrypted
segment per fragment (the moof and the next mdat's header), every mdat body skipped by seeking.
That is a chain (each fragment's size says where the next one starts) of one archive GET per
second of video, so a long recording is cut into regions scanned at once, each from the first
moof signature in it; a region joins the index only where the chain from the start arrives
exactly at its first moof, so a signature occurring inside video data changes nothing.
An interrupted recording's last, incomplete fragment is left out, so the view ends where every
decoder can read to the end. Indexes are kept per archive object (key and etag) in a small LRU
cache (about 12 bytes a second of video): the scan runs once per recording, not per request.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

from appliance.errors import IntegrityError
from appliance.gateway.faststart import Concatenation
from appliance.portal import fragment_index
from appliance.portal.fragment_index import Fragment

MAX_MOOF_BYTES = 1 << 20     # a moof holds a second of sample sizes: kilobytes, never megabytes
CACHED_INDEXES = 64
SCAN_REGIONS = 8             # readers scanning one recording at once
REGION_BYTES = 16 << 20      # no region smaller: opening a reader costs a few GETs itself
MOOF_SIGNATURE = b"moof\x00\x00\x00\x10mfhd"
SEARCH_PIECE = 64 << 10
FAILURE_KEPT_S = 60.0      # a broken recording is not rescanned for this long


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


def scan(reader, open_reader: Callable[[], object] | None = None) -> RecordingIndex:
    """The index of the recording behind a seekable plaintext reader (a VaultReader). Given
    `open_reader` (more readers of the same recording), a long recording is scanned in regions
    at once: each GET waits on the archive far longer than it costs here."""
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
        regions = 1 if open_reader is None else max(1, min(SCAN_REGIONS, (length - offset) // REGION_BYTES))
        starts = [init_length + (length - init_length) * region // regions for region in range(1, regions)]
        with ThreadPoolExecutor(max(1, len(starts))) as pool:
            found = [pool.submit(_region, open_reader, track, start, stop, length)
                     for start, stop in zip(starts, starts[1:] + [length])]
            for start, region in zip(starts, found):
                offset = _chain(reader, offset, start, length, track, fragments)
                candidate, chain = region.result()
                if chain and candidate == offset:    # the region starts where the true chain arrived
                    fragments += chain
                    offset = chain[-1].offset + chain[-1].size
        offset = _chain(reader, offset, length, length, track, fragments)
        if not fragments:
            raise NotPlayable("the recording holds no complete second of video")
        sidx = fragment_index.sidx(track, fragments)
    except NotPlayable:
        raise
    except ValueError as error:
        raise NotPlayable(f"the recording's boxes are malformed: {error}") from None
    return RecordingIndex(init_length, sidx, offset - init_length)


def _chain(reader, offset: int, stop: int, length: int, track, fragments: list) -> int:
    """Appends the fragments from `offset` on while they start before `stop`; where it stopped."""
    while offset < stop and (fragment := _fragment_at(reader, offset, length, track)) is not None:
        fragments.append(fragment)
        offset += fragment.size
    return offset


def _region(open_reader, track, start: int, stop: int, length: int) -> tuple[int | None, list[Fragment]]:
    """(where, fragments): the chain of fragments from the first moof at or after `start` (found
    by its signature) while they start before `stop`. A signature inside video data would start
    a chain the true one never arrives at, so the caller ignores it."""
    reader = open_reader()
    try:
        candidate = _signature(reader, start, stop, length)
        while candidate is not None:
            try:
                if _fragment_at(reader, candidate, length, track) is not None:
                    fragments: list[Fragment] = []
                    _chain(reader, candidate, stop, length, track, fragments)
                    return candidate, fragments
            except ValueError:
                pass       # not a moof after all
            candidate = _signature(reader, candidate + 1, stop, length)
        return None, []
    except ValueError:
        return None, []    # a false start chained into malformed boxes
    finally:
        reader.close()


def _signature(reader, start: int, stop: int, length: int) -> int | None:
    """The offset of the first box, at `start` or after and before `stop`, that looks like a
    moof: its type, then its first child's size and type (mfhd, 16 bytes)."""
    position, tail = start + 4, b""
    while position < min(stop + 4, length):
        piece = _read(reader, position, min(SEARCH_PIECE, length - position))
        data = tail + piece
        if (found := data.find(MOOF_SIGNATURE)) >= 0:
            at = position - len(tail) + found - 4
            return at if at < stop else None
        tail = data[-(len(MOOF_SIGNATURE) - 1):]
        position += len(piece)
    return None


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
    requests for it arrive meanwhile (a browser opens several). A recording found broken (not
    playable, or failing authentication) is remembered so for FAILURE_KEPT_S: the requests that
    follow (a browser retries ranges) are refused at once instead of each rescanning it. An
    archive failure is not remembered: the next request tries again."""

    def __init__(self, capacity: int = CACHED_INDEXES, clock: Callable[[], float] = time.monotonic):
        self._capacity, self._clock = capacity, clock
        self._indexes: OrderedDict[tuple, RecordingIndex] = OrderedDict()
        self._failures: dict[tuple, tuple[float, str]] = {}     # key -> (until, why)
        self._scanning: dict[tuple, threading.Lock] = {}
        self._lock = threading.Lock()
        self.scans = 0

    def index(self, key: tuple, reader, open_reader: Callable[[], object] | None = None) -> RecordingIndex:
        with self._lock:
            if (found := self._known(key)) is not None:
                return found
            scanning = self._scanning.setdefault(key, threading.Lock())
        with scanning:
            with self._lock:
                if (found := self._known(key)) is not None:
                    return found
            try:
                found = scan(reader, open_reader)
            except (NotPlayable, IntegrityError) as error:
                self._settle(key, failure=str(error))
                raise
            except BaseException:
                self._settle(key)
                raise
            self._settle(key, found)
            return found

    def _known(self, key: tuple) -> RecordingIndex | None:
        """The cached index, None, or NotPlayable for a recording found broken lately (under the lock)."""
        if key in self._indexes:
            self._indexes.move_to_end(key)
            return self._indexes[key]
        until, why = self._failures.get(key, (0.0, ""))
        if self._clock() < until:
            raise NotPlayable(why)
        self._failures.pop(key, None)
        return None

    def _settle(self, key: tuple, found: RecordingIndex | None = None, failure: str | None = None) -> None:
        """The scan's outcome stored and its lock released in one step: a request arriving after
        it finds the outcome, never a gap in which it would scan again."""
        with self._lock:
            self._scanning.pop(key, None)
            if found is None and failure is None:
                return
            self.scans += 1
            if failure is not None:
                now = self._clock()
                self._failures = {known: kept for known, kept in self._failures.items() if kept[0] > now}
                self._failures[key] = (now + FAILURE_KEPT_S, failure)
                return
            self._indexes[key] = found
            while len(self._indexes) > self._capacity:
                self._indexes.popitem(last=False)
