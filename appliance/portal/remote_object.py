"""An archive object as a seekable read-only file: each read is a ranged GET, nothing on disk.

The vault reader asks for one 64 KiB segment at a time. A random read (the index scan hopping
from moof to moof) fetches what is asked, at least MIN_FETCH (the vault's header is read in
small pieces: one GET brings it and the first segment); a read that continues where
the last fetch ended doubles the next fetch, up to READ_AHEAD_MAX, so a browser playing on
costs a few large GETs rather than one per segment. Fetched spans are kept up to CACHE_BYTES,
least recently used first out: memory per open object stays bounded whatever its size.
"""

from __future__ import annotations

import io
from collections import OrderedDict

from botocore.exceptions import BotoCoreError, ClientError

from appliance.archive.s3 import classify
from appliance.positioned import Positioned

MIN_FETCH = 64 << 10
READ_AHEAD_MAX = 1 << 20
CACHE_BYTES = 2 << 20


class RemoteObject(Positioned, io.RawIOBase):
    def __init__(self, client, bucket: str, key: str, size: int):
        super().__init__()
        self._client, self._bucket, self._key, self.size = client, bucket, key, size
        self._spans: OrderedDict[int, bytes] = OrderedDict()     # start -> bytes fetched there
        self._cached = 0
        self._next_fetch = -1      # where the last fetch ended: a read there is sequential
        self._window = 0
        self.requests = 0          # GETs made and bytes they brought: what tests and bench count
        self.bytes_fetched = 0
        self._position = 0

    def readable(self) -> bool:
        return True

    def _end(self) -> int:
        return self.size

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")
        filled = 0
        while filled < len(view) and self._position < self.size:
            start, data = self._span_at(self._position, len(view) - filled)
            within = self._position - start
            count = min(len(view) - filled, len(data) - within)
            view[filled:filled + count] = data[within:within + count]
            filled += count
            self._position += count
        return filled

    def _span_at(self, position: int, wanted: int) -> tuple[int, bytes]:
        for start, data in reversed(self._spans.items()):
            if start <= position < start + len(data):
                self._spans.move_to_end(start)
                return start, data
        self._window = min(READ_AHEAD_MAX, max(wanted, 2 * self._window)) if position == self._next_fetch else wanted
        length = min(max(wanted, self._window, MIN_FETCH), READ_AHEAD_MAX, self.size - position)
        data = self._get(position, length)
        self._next_fetch = position + len(data)
        self._spans[position] = data
        self._cached += len(data)
        while self._cached > CACHE_BYTES and len(self._spans) > 1:
            self._cached -= len(self._spans.popitem(last=False)[1])
        return position, data

    def _get(self, position: int, length: int) -> bytes:
        try:
            answer = self._client.get_object(Bucket=self._bucket, Key=self._key,
                                             Range=f"bytes={position}-{position + length - 1}")
            data = answer["Body"].read()
        except (ClientError, BotoCoreError) as error:
            raise classify(error, "reading a recording") from None
        if len(data) != length:
            raise OSError(f"the archive returned {len(data)} bytes for a {length}-byte range: the object changed")
        self.requests += 1
        self.bytes_fetched += length
        return data
