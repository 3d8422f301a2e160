"""Recipient kinds: how a data key is wrapped to one recipient, and what names it.

    kind    key                         HPKE suite (RFC 9180 base mode, single-shot)       stanza body
    xwing   X-Wing (ML-KEM-768+X25519)  MLKEM768-X25519 (0x647a) / HKDF-SHA256 / AES-256-GCM  enc 1120 + 48
    p256    P-256                       DHKEM(P-256, HKDF-SHA256) / HKDF-SHA256 / AES-256-GCM   enc 65 + 48

A key id is the first 8 bytes of SHA-256 over the raw public key (X-Wing: the 1,216 bytes;
P-256: the uncompressed SEC1 point), shown as 16 hex digits: it names the key, reveals nothing.
`xwing` is post-quantum hybrid; `p256` is classical: one classical stanza in a file opens its
data key to whoever can break P-256, so a file mixing the two is refused unless asked for.
"""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.hpke import AEAD, KDF, KEM, Suite

from appliance.errors import BadInput
from appliance.vault.xwing import XWingPrivateKey, XWingPublicKey

XWING, P256 = "xwing", "p256"
KINDS = (XWING, P256)
HYBRID_KINDS = (XWING,)
KEY_ID_SIZE = 8
SUITES = {
    XWING: Suite(KEM.MLKEM768_X25519, KDF.HKDF_SHA256, AEAD.AES_256_GCM),
    P256: Suite(KEM.P256, KDF.HKDF_SHA256, AEAD.AES_256_GCM),
}
WRAPPED_KEY_SIZES = {XWING: 1120 + 48, P256: 65 + 48}


def kind_of(key) -> str:
    """`xwing` or `p256` for a public or private recipient key; BadInput for anything else."""
    if isinstance(key, (XWingPublicKey, XWingPrivateKey)):
        return XWING
    if isinstance(key, (ec.EllipticCurvePublicKey, ec.EllipticCurvePrivateKey)) and key.curve.name == "secp256r1":
        return P256
    raise BadInput("recipients must be X-Wing or P-256 keys")


def raw_public(public_key) -> bytes:
    if kind_of(public_key) == XWING:
        return public_key.public_bytes_raw()
    return public_key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)


def key_id(public_key) -> bytes:
    return hashlib.sha256(raw_public(public_key)).digest()[:KEY_ID_SIZE]


def _hpke_key(key):
    return key.hpke_key if isinstance(key, (XWingPublicKey, XWingPrivateKey)) else key


def wrap(data_key: bytes, public_key, info: bytes) -> bytes:
    """enc || sealed data key, for one recipient."""
    return SUITES[kind_of(public_key)].encrypt(data_key, _hpke_key(public_key), info=info)


def unwrap(wrapped: bytes, private_key, info: bytes) -> bytes | None:
    """The data key, or None when this stanza was not sealed to this key with this info."""
    try:
        return SUITES[kind_of(private_key)].decrypt(wrapped, _hpke_key(private_key), info=info)
    except Exception:  # noqa: BLE001 - a wrong key, wrong info or edited stanza all fail alike
        return None


def check_mix(kinds, allow_mixed: bool) -> None:
    """Refuses post-quantum and classical recipients in one file unless `allow_mixed` (stanza
    types this software does not know are left out of the judgement)."""
    hybrid = {k in HYBRID_KINDS for k in kinds if k in KINDS}
    if len(hybrid) > 1 and not allow_mixed:
        raise BadInput("the recipients mix post-quantum (xwing) and classical (p256) keys: the classical one "
                       "would leave the recording open to a future quantum attacker; use only xwing keys, "
                       "or allow the mix explicitly (--allow-mixed)")
