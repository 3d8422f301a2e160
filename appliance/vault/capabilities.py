"""Does the installed cryptography (and the OpenSSL inside it) have what vault v2 needs?

Vault v2 wraps data keys with HPKE MLKEM768-X25519 (X-Wing) and signs manifests with ML-DSA-65
beside ECDSA P-256. cryptography's wheels bundle an OpenSSL that has them (3.5+); a cryptography
built against an older system OpenSSL imports fine but refuses them at run time, which would
otherwise surface only when the first recording is sealed. Each probe therefore runs its
algorithm once (make a key, use it, check the inverse) instead of looking for names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping


def _mlkem768() -> bool:
    from cryptography.hazmat.primitives.asymmetric.mlkem import MLKEM768PrivateKey

    key = MLKEM768PrivateKey.generate()
    shared, ciphertext = key.public_key().encapsulate()
    return key.decapsulate(ciphertext) == shared


def _x25519() -> bool:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    ours, theirs = X25519PrivateKey.generate(), X25519PrivateKey.generate()
    return ours.exchange(theirs.public_key()) == theirs.exchange(ours.public_key())


def _xwing_hpke() -> bool:
    from cryptography.hazmat.primitives.asymmetric.mlkem import MLKEM768PrivateKey
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
    from cryptography.hazmat.primitives.hpke import AEAD, KDF, KEM, MLKEM768X25519PrivateKey, Suite

    key = MLKEM768X25519PrivateKey(MLKEM768PrivateKey.generate(), X25519PrivateKey.generate())
    suite = Suite(KEM.MLKEM768_X25519, KDF.HKDF_SHA256, AEAD.AES_256_GCM)
    return suite.decrypt(suite.encrypt(b"probe", key.public_key()), key) == b"probe"


def _mldsa65() -> bool:
    from cryptography.hazmat.primitives.asymmetric.mldsa import MLDSA65PrivateKey

    key = MLDSA65PrivateKey.generate()
    key.public_key().verify(key.sign(b"probe"), b"probe")  # raises InvalidSignature on failure
    return True


# What vault v2 uses, by the name a technician would look up.
PROBES: Mapping[str, Callable[[], bool]] = {
    "ML-KEM-768": _mlkem768,
    "X25519": _x25519,
    "HPKE MLKEM768-X25519": _xwing_hpke,
    "ML-DSA-65": _mldsa65,
}


def missing_algorithms(probes: Mapping[str, Callable[[], bool]] | None = None) -> list[str]:
    """The names whose probe failed (of PROBES unless given: the seam tests use to stand for an
    old library)."""
    missing = []
    for name, probe in (PROBES if probes is None else probes).items():
        try:
            works = probe()
        except Exception:  # noqa: BLE001 - ImportError, UnsupportedAlgorithm, ...: all mean "not here"
            works = False
        if not works:
            missing.append(name)
    return missing


def mlkem_supported(probes: Mapping[str, Callable[[], bool]] | None = None) -> bool:
    """True when ML-KEM-768, X25519, their HPKE hybrid and ML-DSA-65 all work here."""
    return not missing_algorithms(probes)


def library_versions() -> str:
    import cryptography
    from cryptography.hazmat.backends.openssl.backend import backend

    return f"cryptography {cryptography.__version__} with {backend.openssl_version_text()}"


def unsupported_line(missing: list[str]) -> str:
    """The one line shown at start-up and by `appliance doctor` when something is missing."""
    return (f"post-quantum vault cryptography unavailable: {library_versions()} lacks "
            f"{', '.join(missing)}; install cryptography >= 48 from its wheel (it bundles OpenSSL 3.5+)")
