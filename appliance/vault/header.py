"""The vault header: format identification, recording id, and the per-file data key wrapped
to each recipient with HPKE (RFC 9180 base mode, DHKEM(P-256, HKDF-SHA256), HKDF-SHA256,
AES-256-GCM, from `cryptography.hazmat.primitives.hpke`).

    magic (8) | version (1) | flags (1) | header_length (2, BE) | segment_size (4, BE)
    | recording_id (16) | recipient_count (1) | recipient_count x stanza (121)
    stanza = key_id (8) | enc (65, uncompressed P-256 point) | sealed data key (32 + 16 tag)

The body's associated data is SHA-256 of these exact bytes, so the header cannot be
swapped, edited or have a stanza removed without the first body segment failing.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.hpke import AEAD, KDF, KEM, Suite

from appliance.errors import BadInput, IntegrityError
from appliance.vault import stream

MAGIC = b"\x89VAULT\r\n"
VERSION = 1
_FIXED = struct.Struct(">8sBBHI16sB")
FIXED_LENGTH = _FIXED.size  # 33
KEY_ID_SIZE = 8
ENC_SIZE = 65
WRAPPED_KEY_SIZE = stream.KEY_SIZE + 16
STANZA_SIZE = KEY_ID_SIZE + ENC_SIZE + WRAPPED_KEY_SIZE  # 121
MAX_RECIPIENTS = 16
RECORDING_ID_SIZE = 16
HPKE_INFO_LABEL = b"treatment-vault v1 data key"

SUITE = Suite(KEM.P256, KDF.HKDF_SHA256, AEAD.AES_256_GCM)


def key_id(public_key: ec.EllipticCurvePublicKey) -> bytes:
    """First 8 bytes of SHA-256 over the uncompressed SEC1 point: names a recipient, not secret."""
    point = public_key.public_bytes(serialization.Encoding.X962,
                                    serialization.PublicFormat.UncompressedPoint)
    return hashlib.sha256(point).digest()[:KEY_ID_SIZE]


def hpke_info(recording_id: bytes) -> bytes:
    return HPKE_INFO_LABEL + recording_id


@dataclass(frozen=True)
class Stanza:
    key_id: bytes
    wrapped: bytes  # enc || sealed data key, as `Suite.encrypt` returns it


@dataclass(frozen=True)
class VaultHeader:
    recording_id: bytes
    stanzas: tuple[Stanza, ...]
    segment_size: int = stream.SEGMENT_SIZE
    version: int = VERSION

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

    def unwrap(self, identity: ec.EllipticCurvePrivateKey) -> bytes:
        """The data key, for a recipient's private key; BadInput if it is not a recipient."""
        wanted = key_id(identity.public_key())
        matching = [s for s in self.stanzas if s.key_id == wanted]
        if not matching:
            raise BadInput(f"this key (id {wanted.hex()}) is not a recipient of the vault")
        for stanza in matching:
            try:
                data_key = SUITE.decrypt(stanza.wrapped, identity, info=hpke_info(self.recording_id))
            except Exception:  # noqa: BLE001 - any failure here means this stanza is not ours
                continue
            if len(data_key) == stream.KEY_SIZE:
                return data_key
        raise IntegrityError(f"the key stanza for key id {wanted.hex()} failed authentication: "
                             "the vault header was modified")


def seal_header(recipients: list[ec.EllipticCurvePublicKey], recording_id: bytes,
                data_key: bytes) -> VaultHeader:
    if not 1 <= len(recipients) <= MAX_RECIPIENTS:
        raise BadInput(f"a vault needs 1 to {MAX_RECIPIENTS} recipients, got {len(recipients)}")
    if len(recording_id) != RECORDING_ID_SIZE:
        raise ValueError("recording_id must be 16 bytes")
    stanzas = []
    for recipient in recipients:
        if not isinstance(recipient, ec.EllipticCurvePublicKey) or recipient.curve.name != "secp256r1":
            raise BadInput("recipients must be P-256 public keys")
        wrapped = SUITE.encrypt(data_key, recipient, info=hpke_info(recording_id))
        stanzas.append(Stanza(key_id(recipient), wrapped))
    return VaultHeader(recording_id, tuple(stanzas))


def read_header(read) -> VaultHeader:
    """Parses a header from `read(n) -> bytes` (a file's read method)."""
    fixed = read(FIXED_LENGTH)
    if len(fixed) < len(MAGIC) or fixed[:len(MAGIC)] != MAGIC:
        raise BadInput("not a vault file (no vault magic at the start)")
    if len(fixed) < FIXED_LENGTH:
        raise IntegrityError("vault header is truncated")
    magic, version, flags, length, segment_size, recording_id, count = _FIXED.unpack(fixed)
    if version != VERSION:
        raise BadInput(f"unsupported vault version {version} (this software reads version {VERSION})")
    if flags != 0 or segment_size != stream.SEGMENT_SIZE or not 1 <= count <= MAX_RECIPIENTS \
            or length != FIXED_LENGTH + STANZA_SIZE * count:
        raise IntegrityError("vault header is malformed (flags, segment size or recipient count)")
    body = read(STANZA_SIZE * count)
    if len(body) != STANZA_SIZE * count:
        raise IntegrityError("vault header is truncated")
    stanzas = tuple(
        Stanza(body[i:i + KEY_ID_SIZE], body[i + KEY_ID_SIZE:i + STANZA_SIZE])
        for i in range(0, len(body), STANZA_SIZE))
    return VaultHeader(recording_id, stanzas, segment_size, version)
