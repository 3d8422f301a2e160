"""Passphrase-protected PKCS#8 (RFC 5958 EncryptedPrivateKeyInfo, PBES2 per RFC 8018):
PBKDF2-HMAC-SHA256 with a chosen iteration count, AES-256-CBC. `cryptography` reads this
format for the keys it knows but writes only 2,048 PBKDF2 rounds, and cannot read an X-Wing
key at all, so the structure is encoded and decoded here. `openssl pkey` reads a P-256 key;
for X-Wing, which OpenSSL has no key type for, `openssl kdf PBKDF2` + `openssl enc` decrypt it.
"""

from __future__ import annotations

import base64
import os

from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from appliance.vault import der

PBKDF2_ROUNDS = 600_000
MAX_PBKDF2_ROUNDS = 10_000_000  # a hostile file must not make loading take hours
PEM_LABEL = b"ENCRYPTED PRIVATE KEY"

_OID_PBES2 = "1.2.840.113549.1.5.13"
_OID_PBKDF2 = "1.2.840.113549.1.5.12"
_OID_HMAC_SHA256 = "1.2.840.113549.2.9"
_OID_AES256_CBC = "2.16.840.1.101.3.4.1.42"
_NULL = b"\x05\x00"


class WrongPassphrase(ValueError):
    """Decryption produced no valid PKCS#8 structure: the passphrase is wrong."""


def _derive(passphrase: bytes, salt: bytes, rounds: int) -> bytes:
    return PBKDF2HMAC(algorithm=hashes.SHA256(), length=32, salt=salt, iterations=rounds).derive(passphrase)


def pem(label: bytes, der_bytes: bytes) -> bytes:
    body = base64.encodebytes(der_bytes).replace(b"\n", b"")
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return b"-----BEGIN " + label + b"-----\n" + b"\n".join(lines) + b"\n-----END " + label + b"-----\n"


def pem_blocks(data: bytes, label: bytes) -> list[bytes]:
    """The DER of every PEM block with this label, in file order."""
    begin, end = b"-----BEGIN " + label + b"-----", b"-----END " + label + b"-----"
    blocks = []
    for part in data.split(begin)[1:]:
        if end not in part:
            raise ValueError("unterminated PEM block")
        blocks.append(base64.b64decode(b"".join(part.split(end)[0].split()), validate=True))
    return blocks


def encrypt_der(plain_der: bytes, passphrase: bytes, rounds: int = PBKDF2_ROUNDS) -> bytes:
    """PEM EncryptedPrivateKeyInfo around a PKCS#8 PrivateKeyInfo (DER)."""
    salt, iv = os.urandom(16), os.urandom(16)
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plain_der) + padder.finalize()
    encryptor = Cipher(algorithms.AES(_derive(passphrase, salt, rounds)), modes.CBC(iv)).encryptor()
    encrypted = encryptor.update(padded) + encryptor.finalize()
    algorithm = der.sequence(
        der.oid(_OID_PBES2),
        der.sequence(
            der.sequence(der.oid(_OID_PBKDF2),
                         der.sequence(der.octet_string(salt), der.integer(rounds),
                                      der.sequence(der.oid(_OID_HMAC_SHA256), _NULL))),
            der.sequence(der.oid(_OID_AES256_CBC), der.octet_string(iv)),
        ),
    )
    return pem(PEM_LABEL, der.sequence(algorithm, der.octet_string(encrypted)))


def encrypt_private_key_pem(private_key, passphrase: bytes, rounds: int = PBKDF2_ROUNDS) -> bytes:
    plain = private_key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())
    return encrypt_der(plain, passphrase, rounds)


def decrypt_pem(data: bytes, passphrase: bytes) -> bytes:
    """The PKCS#8 PrivateKeyInfo DER inside our PBES2 PEM. ValueError when the file is not this
    exact scheme (PBKDF2-HMAC-SHA256 + AES-256-CBC); WrongPassphrase when the passphrase is."""
    blocks = pem_blocks(data, PEM_LABEL)
    if len(blocks) != 1:
        raise ValueError("expected one ENCRYPTED PRIVATE KEY block")
    algorithm, encrypted = der.parse_sequence(blocks[0], der.SEQUENCE, der.OCTET_STRING)
    scheme, parameters = der.parse_sequence(algorithm, der.OID, der.SEQUENCE)
    kdf, cipher = der.parse_sequence(parameters, der.SEQUENCE, der.SEQUENCE)
    kdf_oid, kdf_parameters = der.parse_sequence(kdf, der.OID, der.SEQUENCE)
    salt, rounds, prf = der.parse_sequence(kdf_parameters, der.OCTET_STRING, der.INTEGER, der.SEQUENCE)
    cipher_oid, iv = der.parse_sequence(cipher, der.OID, der.OCTET_STRING)
    rounds = der.parse_integer(rounds)
    if (scheme, kdf_oid, cipher_oid) != tuple(der.oid_content(o) for o in (_OID_PBES2, _OID_PBKDF2, _OID_AES256_CBC)) \
            or der.parse_sequence(prf, der.OID, der.NULL)[0] != der.oid_content(_OID_HMAC_SHA256) \
            or len(iv) != 16 or not 1 <= rounds <= MAX_PBKDF2_ROUNDS or len(encrypted) % 16:
        raise ValueError("not a PBES2 PBKDF2-HMAC-SHA256 AES-256-CBC key")
    decryptor = Cipher(algorithms.AES(_derive(passphrase, salt, rounds)), modes.CBC(iv)).decryptor()
    padded = decryptor.update(encrypted) + decryptor.finalize()
    try:
        unpadder = padding.PKCS7(128).unpadder()
        plain = unpadder.update(padded) + unpadder.finalize()
        content, rest = der.parse(plain, der.SEQUENCE)
        der.parse(content, der.INTEGER)  # PrivateKeyInfo starts with its version
        if rest:
            raise ValueError("trailing bytes")
    except ValueError:
        raise WrongPassphrase("wrong passphrase") from None
    return plain
