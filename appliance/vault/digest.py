"""The file digest: the one hash that names a vault file's exact bytes (database, export, manifest).

    version 2: SHA-256(header || SHA-256(body))     version 1: SHA-256(whole file)

where body = every byte after the vault header (the stream). Version 2 hashes the body on its
own because the body is what a rewrap keeps (the manifest signs its SHA-256), and the header
is hashed again only over its own few bytes plus that digest: the writer hashes every body
byte once, and anyone gets both digests from the file in one pass. A rewrap changes the file
digest (new header), never the body digest. Version 1 files keep the plain SHA-256 they were
recorded with (their header never changes). docs/vault-format.md#file-digest.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from appliance.vault import header as vault_header

READ_CHUNK = 1 << 20


@dataclass(frozen=True)
class VaultDigest:
    file_digest: str            # hex, as defined above
    body_sha256: str | None     # hex, SHA-256 of the body; None for version 1 (hashed with its header)
    length: int                 # bytes in the whole file
    header_length: int

    @property
    def body_length(self) -> int:
        return self.length - self.header_length


class DigestBuilder:
    """Hashes a vault as it is written or read: the header once, then each body byte once."""

    def __init__(self, header_bytes: bytes, version: int):
        self._header_bytes = bytes(header_bytes)
        self._version = version
        # Version 1: one hash over header and body; version 2: the body alone.
        self._hash = hashlib.sha256(self._header_bytes if version == 1 else b"")
        self._body_length = 0

    def update(self, body_bytes) -> None:
        self._hash.update(body_bytes)
        self._body_length += len(body_bytes)

    def result(self) -> VaultDigest:
        header_length = len(self._header_bytes)
        length = header_length + self._body_length
        if self._version == 1:
            return VaultDigest(self._hash.hexdigest(), None, length, header_length)
        body = self._hash.digest()
        return VaultDigest(hashlib.sha256(self._header_bytes + body).hexdigest(), body.hex(), length, header_length)


def file_digest(source: Path | str | BinaryIO) -> VaultDigest:
    """The digests of a vault file (a path, or a readable, seekable binary file), in one pass."""
    if isinstance(source, (str, Path)):
        with vault_header.open_vault(source) as file:
            return file_digest(file)
    source.seek(0)
    header = vault_header.read_header(source.read)
    source.seek(0)
    builder = DigestBuilder(source.read(header.length), header.version)
    while chunk := source.read(READ_CHUNK):
        builder.update(chunk)
    return builder.result()
