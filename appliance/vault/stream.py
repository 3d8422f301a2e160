"""The vault body: Tink's streaming AEAD layout "AES-GCM-HKDF" (AES-256, HKDF-SHA256).

Pure functions and small value objects; no I/O. Stream coordinates start at the Tink header:

    stream  = header || segment_0 || segment_1 || ... || segment_{n-1}
    header  = header_length (1 byte, 40) || salt (32 bytes) || nonce_prefix (7 bytes)
    segment = AES-256-GCM(segment_key, nonce_i, plaintext_i, no associated data) (ciphertext || 16-byte tag)
    segment_key = HKDF-SHA256(ikm=data_key, salt=salt, info=associated_data, length=32)
    nonce_i = nonce_prefix || uint32_be(i) || (0x01 if last segment else 0x00)

Every ciphertext segment is SEGMENT_SIZE bytes except the last; the first one shares its
SEGMENT_SIZE with the header, so it carries HEADER_LENGTH fewer plaintext bytes. The counter
in the nonce makes a reordered, duplicated or dropped segment fail authentication; the last
flag makes a cut at a segment boundary visible (the new last segment is not marked last).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

KEY_SIZE = 32
NONCE_PREFIX_SIZE = 7
TAG_SIZE = 16
HEADER_LENGTH = 1 + KEY_SIZE + NONCE_PREFIX_SIZE  # 40
SEGMENT_SIZE = 65536  # ciphertext bytes per segment, tag included
SEGMENT_PLAINTEXT = SEGMENT_SIZE - TAG_SIZE
FIRST_SEGMENT_PLAINTEXT = SEGMENT_PLAINTEXT - HEADER_LENGTH
MAX_SEGMENTS = 2**32


class SegmentRejected(Exception):
    """A segment failed AES-GCM authentication under the expected counter and last flag."""


@dataclass(frozen=True)
class StreamHeader:
    salt: bytes
    nonce_prefix: bytes

    @classmethod
    def random(cls) -> "StreamHeader":
        return cls(os.urandom(KEY_SIZE), os.urandom(NONCE_PREFIX_SIZE))

    def encode(self) -> bytes:
        return bytes([HEADER_LENGTH]) + self.salt + self.nonce_prefix

    @classmethod
    def decode(cls, data: bytes) -> "StreamHeader":
        if len(data) != HEADER_LENGTH or data[0] != HEADER_LENGTH:
            raise ValueError("stream header is not 40 bytes starting with 0x28")
        return cls(bytes(data[1:1 + KEY_SIZE]), bytes(data[1 + KEY_SIZE:]))


class SegmentCipher:
    """Seals and opens segments of one stream: (data key, stream header, associated data)."""

    def __init__(self, data_key: bytes, header: StreamHeader, associated_data: bytes):
        if len(data_key) != KEY_SIZE:
            raise ValueError("the data key must be 32 bytes")
        segment_key = HKDF(algorithm=hashes.SHA256(), length=KEY_SIZE, salt=header.salt,
                           info=associated_data).derive(data_key)
        self._aead = AESGCM(segment_key)
        self._prefix = header.nonce_prefix

    def _nonce(self, index: int, last: bool) -> bytes:
        if not 0 <= index < MAX_SEGMENTS:
            raise ValueError("segment counter out of range")
        return self._prefix + struct.pack(">IB", index, 1 if last else 0)

    def seal(self, index: int, plaintext: bytes | bytearray | memoryview, last: bool) -> bytes:
        return self._aead.encrypt(self._nonce(index, last), plaintext, None)

    def open(self, index: int, ciphertext: bytes, last: bool) -> bytes:
        try:
            return self._aead.decrypt(self._nonce(index, last), ciphertext, None)
        except InvalidTag:
            raise SegmentRejected(index) from None


# Layout arithmetic, all in stream coordinates (offset 0 = first byte of the stream header).

def segment_start(index: int) -> int:
    return HEADER_LENGTH if index == 0 else index * SEGMENT_SIZE


def plaintext_start(index: int) -> int:
    return 0 if index == 0 else FIRST_SEGMENT_PLAINTEXT + (index - 1) * SEGMENT_PLAINTEXT


def plaintext_capacity(index: int) -> int:
    return FIRST_SEGMENT_PLAINTEXT if index == 0 else SEGMENT_PLAINTEXT


def segment_of_plaintext_offset(offset: int) -> int:
    if offset < FIRST_SEGMENT_PLAINTEXT:
        return 0
    return 1 + (offset - FIRST_SEGMENT_PLAINTEXT) // SEGMENT_PLAINTEXT


def segment_count(stream_length: int) -> int:
    """Segments (complete or not) present in a stream of this many bytes, header included."""
    if stream_length <= HEADER_LENGTH:
        return 0
    return -(-stream_length // SEGMENT_SIZE)


def segment_length(index: int, stream_length: int) -> int:
    """Ciphertext bytes of segment `index` present in a stream of `stream_length` bytes."""
    return min(SEGMENT_SIZE * (index + 1), stream_length) - segment_start(index)
