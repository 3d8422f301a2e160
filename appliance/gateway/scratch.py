"""A seekable scratch file whose bytes on disk are ciphertext under a throwaway key.

The gateway's transcoder muxes an MP4 whose index can only be written at the end (and then
moved to the front, faststart.py); that needs a seekable file larger than memory should hold,
yet plaintext video may never land on a disk. So the file is an anonymous temporary file (no
name: it vanishes on close or crash) holding fixed-size blocks, each sealed with AES-256-GCM
under a key that exists only in this process's memory:

    slot i = nonce (12 bytes, random per write) || ciphertext || tag (16 bytes)
    associated data = i (8 bytes, big-endian), so a block cannot be moved to another slot

A block rewritten (the muxer patches the mdat size) gets a fresh random nonce, so no nonce is
ever reused under the key. One block is cached in memory; memory stays bounded whatever the
size. Reads and writes are plain file-object calls, so PyAV and pydicom use it unchanged.
"""

from __future__ import annotations

import io
import os
import tempfile

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from appliance.errors import IntegrityError
from appliance.positioned import Positioned

BLOCK = 256 * 1024
NONCE = 12
TAG = 16
SLOT = NONCE + BLOCK + TAG


class EncryptedScratch(Positioned, io.RawIOBase):
    """Read/write/seek like a file; writing past the end is refused (the muxers never leave holes)."""

    def __init__(self, directory: str | os.PathLike | None = None):
        super().__init__()
        self._file = tempfile.TemporaryFile(dir=directory)   # O_TMPFILE where available: never named
        self._aead = AESGCM(AESGCM.generate_key(bit_length=256))
        self._size = 0
        self._position = 0
        self._index: int | None = None     # the cached block
        self._block = bytearray()
        self._dirty = False

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True


    @property
    def size(self) -> int:
        return self._size

    def _end(self) -> int:
        return self._size

    def write(self, data) -> int:
        if self._position > self._size:
            raise ValueError(f"cannot write at {self._position}, past the end ({self._size}) of the scratch file")
        view = memoryview(data).cast("B")
        written = 0
        while written < len(view):
            index, within = divmod(self._position, BLOCK)
            block = self._load(index)
            count = min(len(view) - written, BLOCK - within)
            block[within:within + count] = view[written:written + count]
            self._dirty = True
            written += count
            self._position += count
            self._size = max(self._size, self._position)
        return written

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")
        filled = 0
        while filled < len(view) and self._position < self._size:
            index, within = divmod(self._position, BLOCK)
            block = self._load(index)
            count = min(len(view) - filled, len(block) - within)
            view[filled:filled + count] = block[within:within + count]
            filled += count
            self._position += count
        return filled

    def _load(self, index: int) -> bytearray:
        if index == self._index:
            return self._block
        self._store()
        start = index * BLOCK
        length = max(0, min(BLOCK, self._size - start))
        self._block = self._open(index, length) if length else bytearray()
        self._index = index
        return self._block

    def _open(self, index: int, length: int) -> bytearray:
        self._file.seek(index * SLOT)
        slot = self._file.read(NONCE + length + TAG)
        try:
            return bytearray(self._aead.decrypt(slot[:NONCE], slot[NONCE:], index.to_bytes(8, "big")))
        except InvalidTag:
            raise IntegrityError(f"scratch block {index} failed authentication: the scratch file was modified") from None

    def _store(self) -> None:
        if not self._dirty:
            return
        nonce = os.urandom(NONCE)
        self._file.seek(self._index * SLOT)
        self._file.write(nonce + self._aead.encrypt(nonce, bytes(self._block), self._index.to_bytes(8, "big")))
        self._dirty = False

    def flush(self) -> None:
        if not self._file.closed:
            self._store()
            self._file.flush()

    def close(self) -> None:
        if not self.closed:
            self._dirty, self._block = False, bytearray()
            self._file.close()       # the anonymous file goes, and with the key its contents
        super().close()
