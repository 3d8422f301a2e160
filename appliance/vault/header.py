"""The vault header: which version, which recording, and the data key wrapped to each recipient.

`read_header` reads either version. Version 2 (header_v2.py) is what this software writes;
version 1 (below, docs/vault-format.md#version-1) is read, decrypted and verified forever:

    magic (8) | version 1 (1) | flags (1) | header_length (2, BE) | segment_size (4, BE)
    | recording_id (16) | recipient_count (1) | recipient_count x stanza (121)
    stanza = key_id (8) | enc (65, uncompressed P-256 point) | sealed data key (32 + 16 tag)

In version 1 the body's associated data is SHA-256 of the whole header, stanzas included, so
its recipients can never change without re-encrypting the body.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

from appliance.errors import BadInput, IntegrityError
from appliance.vault import recipients, stream

MAGIC = b"\x89VAULT\r\n"
VERSIONS = (1, 2)
RECORDING_ID_SIZE = 16
MAX_RECIPIENTS = 16
_FIXED = struct.Struct(">8sBBHI16sB")
FIXED_LENGTH = _FIXED.size  # 33
STANZA_SIZE = recipients.KEY_ID_SIZE + recipients.WRAPPED_KEY_SIZES[recipients.P256]  # 121
HPKE_INFO_LABEL = b"treatment-vault v1 data key"
SUITE = recipients.SUITES[recipients.P256]


def open_vault(path):
    """The vault file opened for reading; BadInput (one line) when it cannot be."""
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise BadInput(f"vault {path} does not exist") from None
    except OSError as error:
        raise BadInput(f"cannot read vault {path}: {error.strerror}") from None


def key_id(public_key) -> bytes:
    return recipients.key_id(public_key)


@dataclass(frozen=True)
class Stanza:
    kind: str          # "xwing" | "p256" | a kind this software does not know (kept, never used)
    key_id: bytes      # 8 bytes
    wrapped: bytes     # HPKE enc || sealed data key


def unwrap_stanzas(stanzas, identity, info: bytes) -> bytes:
    """The data key from the first stanza of `identity`; BadInput when the key is no recipient."""
    kind, wanted = recipients.kind_of(identity), recipients.key_id(identity.public_key())
    matching = [s for s in stanzas if s.kind == kind and s.key_id == wanted]
    if not matching:
        raise BadInput(f"this key ({kind}, id {wanted.hex()}) is not a recipient of the vault")
    for stanza in matching:
        data_key = recipients.unwrap(stanza.wrapped, identity, info)
        if data_key is not None and len(data_key) == stream.KEY_SIZE:
            return data_key
    raise IntegrityError(f"the key stanza for key id {wanted.hex()} failed authentication: "
                         "the vault header was modified")


@dataclass(frozen=True)
class VaultHeaderV1:
    recording_id: bytes
    stanzas: tuple[Stanza, ...]
    segment_size: int = stream.SEGMENT_SIZE
    version: int = 1

    @property
    def length(self) -> int:
        return FIXED_LENGTH + STANZA_SIZE * len(self.stanzas)

    def encode(self) -> bytes:
        fixed = _FIXED.pack(MAGIC, self.version, 0, self.length, self.segment_size,
                            self.recording_id, len(self.stanzas))
        return fixed + b"".join(s.key_id + s.wrapped for s in self.stanzas)

    @property
    def body_associated_data(self) -> bytes:
        return hashlib.sha256(self.encode()).digest()

    def unwrap(self, identity) -> bytes:
        return unwrap_stanzas(self.stanzas, identity, HPKE_INFO_LABEL + self.recording_id)


def read_header(read):
    """Parses a header of either version from `read(n) -> bytes` (a file's read method)."""
    start = read(len(MAGIC) + 1)
    if len(start) < len(MAGIC) or start[:len(MAGIC)] != MAGIC:
        raise BadInput("not a vault file (no vault magic at the start)")
    if len(start) <= len(MAGIC):
        raise IntegrityError("vault header is truncated")
    version = start[len(MAGIC)]
    if version == 2:
        from appliance.vault import header_v2
        return header_v2.parse(start, read)
    if version != 1:
        raise BadInput(f"unsupported vault version {version} (this software reads versions 1 and 2)")
    return _parse_v1(start + read(FIXED_LENGTH - len(start)), read)


def _parse_v1(fixed: bytes, read) -> VaultHeaderV1:
    if len(fixed) < FIXED_LENGTH:
        raise IntegrityError("vault header is truncated")
    _, version, flags, length, segment_size, recording_id, count = _FIXED.unpack(fixed)
    if flags != 0 or segment_size != stream.SEGMENT_SIZE or not 1 <= count <= MAX_RECIPIENTS \
            or length != FIXED_LENGTH + STANZA_SIZE * count:
        raise IntegrityError("vault header is malformed (flags, segment size or recipient count)")
    body = read(STANZA_SIZE * count)
    if len(body) != STANZA_SIZE * count:
        raise IntegrityError("vault header is truncated")
    key_id_size = recipients.KEY_ID_SIZE
    stanzas = tuple(
        Stanza(recipients.P256, body[i:i + key_id_size], body[i + key_id_size:i + STANZA_SIZE])
        for i in range(0, len(body), STANZA_SIZE))
    return VaultHeaderV1(recording_id, stanzas, segment_size, version)
