"""X-Wing keys (draft-connolly-cfrg-xwing-kem: ML-KEM-768 + X25519, HPKE KEM MLKEM768-X25519,
id 0x647a), used through `cryptography`'s HPKE.

The private key is the 32-byte seed, as age and the draft store it: SHAKE256(seed, 96 bytes)
gives the ML-KEM-768 seed d || z (64 bytes) and the X25519 private key (32 bytes). The public
key is ML-KEM-768's encapsulation key (1,184 bytes) || X25519's (32 bytes). Key files use the
draft's OID 1.3.6.1.4.1.62253.25722 in PKCS#8 (privateKey = the seed) and SubjectPublicKeyInfo
(subjectPublicKey = the 1,216-byte public key), no algorithm parameters.
"""

from __future__ import annotations

import hashlib
import os

from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric import mlkem, x25519

from appliance.vault import der

OID = "1.3.6.1.4.1.62253.25722"
SEED_SIZE = 32
MLKEM_PUBLIC_SIZE = 1184
PUBLIC_KEY_SIZE = MLKEM_PUBLIC_SIZE + 32
_ALGORITHM = der.sequence(der.oid(OID))


class XWingPublicKey:
    def __init__(self, raw: bytes):
        if len(raw) != PUBLIC_KEY_SIZE:
            raise ValueError(f"an X-Wing public key is {PUBLIC_KEY_SIZE} bytes")
        self._raw = bytes(raw)
        self.hpke_key = hpke.MLKEM768X25519PublicKey(
            mlkem.MLKEM768PublicKey.from_public_bytes(self._raw[:MLKEM_PUBLIC_SIZE]),
            x25519.X25519PublicKey.from_public_bytes(self._raw[MLKEM_PUBLIC_SIZE:]))

    def public_bytes_raw(self) -> bytes:
        return self._raw

    def spki_der(self) -> bytes:
        return der.sequence(_ALGORITHM, der.bit_string(self._raw))

    @classmethod
    def from_spki_der(cls, data: bytes) -> "XWingPublicKey":
        algorithm, bits = der.parse_sequence(data, der.SEQUENCE, der.BIT_STRING)
        if algorithm != _ALGORITHM or not bits.startswith(b"\x00"):
            raise ValueError("not an X-Wing SubjectPublicKeyInfo")
        return cls(bits[1:])

    def __eq__(self, other) -> bool:
        return isinstance(other, XWingPublicKey) and other._raw == self._raw

    def __hash__(self) -> int:
        return hash(self._raw)


class XWingPrivateKey:
    def __init__(self, seed: bytes):
        if len(seed) != SEED_SIZE:
            raise ValueError(f"an X-Wing private key is a {SEED_SIZE}-byte seed")
        self.seed = bytes(seed)
        expanded = hashlib.shake_256(self.seed).digest(96)
        kem = mlkem.MLKEM768PrivateKey.from_seed_bytes(expanded[:64])
        dh = x25519.X25519PrivateKey.from_private_bytes(expanded[64:])
        self.hpke_key = hpke.MLKEM768X25519PrivateKey(kem, dh)
        self._public = XWingPublicKey(kem.public_key().public_bytes_raw() + dh.public_key().public_bytes_raw())

    @classmethod
    def generate(cls) -> "XWingPrivateKey":
        return cls(os.urandom(SEED_SIZE))

    def public_key(self) -> XWingPublicKey:
        return self._public

    def pkcs8_der(self) -> bytes:
        return der.sequence(der.integer(0), _ALGORITHM, der.octet_string(self.seed))

    @classmethod
    def from_pkcs8_der(cls, data: bytes) -> "XWingPrivateKey":
        version, algorithm, seed = der.parse_sequence(data, der.INTEGER, der.SEQUENCE, der.OCTET_STRING)
        if der.parse_integer(version) != 0 or algorithm != _ALGORITHM:
            raise ValueError("not an X-Wing PKCS#8 private key")
        return cls(seed)


def is_xwing_pkcs8(data: bytes) -> bool:
    try:
        XWingPrivateKey.from_pkcs8_der(data)
    except ValueError:
        return False
    return True
