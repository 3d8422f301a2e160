"""Streaming vault writer: encrypts as it writes, so plaintext never reaches the disk.

The destination is append-only and never seeked (a pipe or a file opened O_CREAT|O_EXCL).
Each full segment is sealed and written the moment it fills, so a killed process leaves every
complete segment on disk; at most one segment of plaintext is held in memory. Full segments
are never marked last: close() always writes a separate last segment (possibly empty), which
is what lets a reader tell "closed" from "stopped at a segment boundary".
"""

from __future__ import annotations

import io
import os
import stat
from dataclasses import dataclass

from appliance.vault import header_v2, stream
from appliance.vault.digest import DigestBuilder


@dataclass(frozen=True)
class SealedStream:
    file_digest: str          # hex, the file digest (digest.py): what the database and export check
    ciphertext_length: int    # the whole file, vault header included
    body_sha256: str | None   # hex, over the stream after the vault header: what no rewrap changes
                              # (None for a version 1 header: there the one hash covers both)
    segments: int
    plaintext_length: int
    recording_id: str        # hex


class VaultWriter(io.RawIOBase):
    def __init__(self, dst, header: header_v2.VaultHeaderV2, data_key: bytes, fsync_every: int):
        super().__init__()
        self._dst = dst
        self._fsync_every = fsync_every
        self._header = header
        stream_header = stream.StreamHeader.random()
        self._cipher = stream.SegmentCipher(data_key, stream_header, header.body_associated_data)
        self._pending = bytearray()
        self._index = 0
        self._plaintext_length = 0
        header_bytes = header.encode()
        # Each body byte is hashed once; the file digest is derived from it (digest.py).
        self._digest = DigestBuilder(header_bytes, header.version)
        self._sealed: SealedStream | None = None
        self._emit(header_bytes, body=False)
        self._emit(stream_header.encode())
        self._flush_to_os()

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        if self.closed:
            raise ValueError("write to a closed vault writer")
        view = memoryview(data).cast("B")
        size = view.nbytes
        while view:
            capacity = stream.plaintext_capacity(self._index)
            if not self._pending and len(view) >= capacity:
                self._seal_segment(view[:capacity], last=False)  # whole segment: no copy into the buffer
                view = view[capacity:]
                continue
            room = capacity - len(self._pending)
            self._pending += view[:room]
            view = view[room:]
            if len(self._pending) == capacity:
                self._seal_pending(last=False)
        self._plaintext_length += size
        return size

    def _seal_pending(self, last: bool) -> None:
        self._seal_segment(self._pending, last)
        self._pending.clear()

    def _seal_segment(self, plaintext, last: bool) -> None:
        self._emit(self._cipher.seal(self._index, plaintext, last))
        self._index += 1
        self._flush_to_os()
        if last or (self._fsync_every and self._index % self._fsync_every == 0):
            self._fsync()

    def _emit(self, data: bytes, body: bool = True) -> None:
        remaining = memoryview(data)
        while remaining:
            written = self._dst.write(remaining)
            # An unbuffered file may take part of it; None means a sink that took it all.
            remaining = remaining[len(remaining) if written is None else written:]
        if body:
            self._digest.update(data)

    def _flush_to_os(self) -> None:
        # A killed process loses only what is still in its own buffers, so hand each segment
        # to the kernel at once; fsync (power loss) follows the configured cadence.
        self._dst.flush()

    def _fsync(self) -> None:
        try:
            fd = self._dst.fileno()
        except (AttributeError, OSError, io.UnsupportedOperation):
            return  # an in-memory or pipe destination has nothing to sync
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return  # pipes and sockets cannot be fsynced; the reader end owns durability
        os.fsync(fd)  # on a file, a failed sync (EIO, ENOSPC) must reach the recorder

    def close(self) -> SealedStream | None:  # type: ignore[override]
        """Writes the last segment, flushes and fsyncs; returns what the manifest signs."""
        if self._sealed is None and not self.closed:
            self._seal_pending(last=True)
            digest = self._digest.result()
            self._sealed = SealedStream(
                file_digest=digest.file_digest,
                ciphertext_length=digest.length,
                body_sha256=digest.body_sha256,
                segments=self._index,
                plaintext_length=self._plaintext_length,
                recording_id=self._header.recording_id.hex(),
            )
        super().close()
        return self._sealed

    def abandon(self) -> None:
        """Stops without the last segment: the file stays readable as an interrupted prefix."""
        super().close()

    def __exit__(self, exc_type, exc, tb):
        # An exception inside `with` must not seal a partial recording as complete.
        if exc_type is None:
            self.close()
        else:
            self.abandon()

    def __del__(self):
        # io.IOBase.__del__ would close(), i.e. seal; a dropped writer stays unsealed instead.
        pass


def encrypt(dst, recipients, *, recording_id: bytes | None = None, fsync_every: int = 16,
            allow_mixed: bool = False) -> VaultWriter:
    """Starts a version 2 vault on `dst` for `recipients` (X-Wing and/or P-256 public keys; a
    mix only with `allow_mixed`); the header is written before this returns."""
    recording_id = recording_id if recording_id is not None else os.urandom(header_v2.RECORDING_ID_SIZE)
    data_key = os.urandom(stream.KEY_SIZE)
    header = header_v2.seal_header(recipients, recording_id, data_key, allow_mixed=allow_mixed)
    return VaultWriter(dst, header, data_key, fsync_every)
