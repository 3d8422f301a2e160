"""The device's manifest signature: hybrid ECDSA P-256 (SHA-256) AND ML-DSA-65 (FIPS 204, context
"treatment-vault-manifest/2"); a manifest verifies only when every signature it declares holds.

A device key made before version 2 is P-256 only and still signs (classical signature, reported
as such); `appliance keys device` makes the hybrid pair. Files are standard PEM: device.key holds
one unencrypted PKCS#8 "PRIVATE KEY" block per algorithm (P-256 first, then ML-DSA-65 as its
32-byte seed, which OpenSSL 3.5 reads), device.pub the matching "PUBLIC KEY" blocks.
Agility: signatures and keys are named per algorithm, so another can be added beside them.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, mldsa

from appliance.errors import BadInput

ECDSA_P256 = "ecdsa-p256-sha256"
ML_DSA_65 = "ml-dsa-65"
ALGORITHMS = (ECDSA_P256, ML_DSA_65)
MLDSA_CONTEXT = b"treatment-vault-manifest/2"
_SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _check_p256(key) -> None:
    if not isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)) or key.curve.name != "secp256r1":
        raise BadInput("the device's classical key must be P-256")


class DevicePublicKey:
    def __init__(self, ecdsa: ec.EllipticCurvePublicKey, mldsa_key: mldsa.MLDSA65PublicKey | None = None):
        _check_p256(ecdsa)
        self.ecdsa, self.mldsa = ecdsa, mldsa_key

    @property
    def hybrid(self) -> bool:
        return self.mldsa is not None

    def der_by_algorithm(self) -> dict[str, bytes]:
        keys = {ECDSA_P256: self.ecdsa.public_bytes(*_SPKI)}
        if self.mldsa is not None:
            keys[ML_DSA_65] = self.mldsa.public_bytes(*_SPKI)
        return keys

    @property
    def key_id(self) -> str:
        """16 hex: SHA-256 over the raw public keys (P-256 point, then ML-DSA-65 when present);
        for a P-256-only key the same id version 1 manifests carry."""
        raw = self.ecdsa.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        if self.mldsa is not None:
            raw += self.mldsa.public_bytes_raw()
        return hashlib.sha256(raw).digest()[:8].hex()

    def pem(self) -> bytes:
        return b"".join(key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
                        for key in (self.ecdsa, self.mldsa) if key is not None)

    def __eq__(self, other) -> bool:
        return isinstance(other, DevicePublicKey) and other.der_by_algorithm() == self.der_by_algorithm()


class DeviceKey:
    def __init__(self, ecdsa: ec.EllipticCurvePrivateKey, mldsa_key: mldsa.MLDSA65PrivateKey | None = None):
        _check_p256(ecdsa)
        self.ecdsa, self.mldsa = ecdsa, mldsa_key

    @classmethod
    def generate(cls) -> "DeviceKey":
        return cls(ec.generate_private_key(ec.SECP256R1()), mldsa.MLDSA65PrivateKey.generate())

    def public_key(self) -> DevicePublicKey:
        return DevicePublicKey(self.ecdsa.public_key(), self.mldsa.public_key() if self.mldsa else None)

    def sign(self, message: bytes) -> dict[str, str]:
        signatures = {ECDSA_P256: self.ecdsa.sign(message, ec.ECDSA(hashes.SHA256()))}
        if self.mldsa is not None:
            signatures[ML_DSA_65] = self.mldsa.sign(message, MLDSA_CONTEXT)
        return {name: base64.b64encode(value).decode() for name, value in signatures.items()}

    def pem(self) -> bytes:
        return b"".join(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption())
                        for key in (self.ecdsa, self.mldsa) if key is not None)


def as_device_key(key) -> DeviceKey:
    return key if isinstance(key, DeviceKey) else DeviceKey(key)


def as_device_public(key) -> DevicePublicKey | None:
    if key is None or isinstance(key, DevicePublicKey):
        return key
    return DevicePublicKey(key)


def public_from_der(der_by_algorithm: dict[str, bytes]) -> DevicePublicKey:
    """ValueError unless it is a P-256 key, optionally with an ML-DSA-65 key, nothing else."""
    if ECDSA_P256 not in der_by_algorithm or set(der_by_algorithm) - set(ALGORITHMS):
        raise ValueError(f"device keys must be {ECDSA_P256} [+ {ML_DSA_65}]")
    ecdsa = serialization.load_der_public_key(der_by_algorithm[ECDSA_P256])
    pq = serialization.load_der_public_key(der_by_algorithm[ML_DSA_65]) if ML_DSA_65 in der_by_algorithm else None
    if not isinstance(ecdsa, ec.EllipticCurvePublicKey) or ecdsa.curve.name != "secp256r1" \
            or (pq is not None and not isinstance(pq, mldsa.MLDSA65PublicKey)):
        raise ValueError("device key of the wrong type")
    return DevicePublicKey(ecdsa, pq)


def verify_all(public: DevicePublicKey, signatures: dict[str, str], message: bytes) -> str | None:
    """None when exactly the public key's algorithms signed `message`, else the problem."""
    expected = set(public.der_by_algorithm())
    if set(signatures) != expected:
        return f"manifest signatures ({', '.join(sorted(signatures))}) do not match its device keys"
    try:
        public.ecdsa.verify(base64.b64decode(signatures[ECDSA_P256], validate=True), message,
                            ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError, TypeError):
        return "manifest ECDSA P-256 signature is invalid: the manifest was modified"
    if public.mldsa is not None:
        try:
            public.mldsa.verify(base64.b64decode(signatures[ML_DSA_65], validate=True), message, MLDSA_CONTEXT)
        except (InvalidSignature, ValueError, TypeError):
            return "manifest ML-DSA-65 signature is invalid: the manifest was modified"
    return None


def describe(public: DevicePublicKey) -> str:
    return "ECDSA P-256 + ML-DSA-65" if public.hybrid else "ECDSA P-256 only (classical)"
