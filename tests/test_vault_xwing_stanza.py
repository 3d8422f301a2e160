"""Our `xwing` recipient stanza against the X-Wing specification, with keys derived per the draft
from its published seeds: what the vault seals opens with the spec's decapsulation (kyber-py's
ML-KEM) and RFC 9180's key schedule written in tests/test_vault_pq_vectors.py, and a stanza
made that way opens in the vault."""

from __future__ import annotations

import hashlib
import io

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from kyber_py.ml_kem import ML_KEM_768

from appliance import vault
from appliance.vault import header_v2, recipients
from appliance.vault import header as vault_header
from appliance.vault.xwing import XWingPrivateKey, XWingPublicKey
from tests.test_vault_pq_vectors import (MLKEM_CIPHERTEXT, XWING, combiner, encapsulate_with_kyber_py,
                                         hpke_base_key_and_nonce)

HKDF_SHA256, AES_256_GCM = 0x0001, 0x0002
PLAINTEXT = bytes(range(256)) * 700   # three segments


def open_stanza_per_spec(seed: bytes, wrapped: bytes, info: bytes) -> bytes:
    """Decapsulate with kyber-py from the seed's expansion, then the HPKE key schedule and AEAD."""
    enc, sealed = wrapped[:MLKEM_CIPHERTEXT + 32], wrapped[MLKEM_CIPHERTEXT + 32:]
    expanded = hashlib.shake_256(seed).digest(96)
    public, private = ML_KEM_768.key_derive(expanded[:64])
    x25519 = X25519PrivateKey.from_private_bytes(expanded[64:])
    ss_x = x25519.exchange(X25519PublicKey.from_public_bytes(enc[MLKEM_CIPHERTEXT:]))
    shared = combiner(ML_KEM_768.decaps(private, enc[:MLKEM_CIPHERTEXT]), ss_x, enc[MLKEM_CIPHERTEXT:],
                      x25519.public_key().public_bytes_raw())
    key, nonce = hpke_base_key_and_nonce(shared, info, HKDF_SHA256, AES_256_GCM)
    return AESGCM(key).decrypt(nonce, sealed, b"")


@pytest.mark.parametrize("vector", XWING, ids=["1", "2", "3"])
def test_our_xwing_key_from_a_published_seed_is_the_published_public_key(vector):
    identity = XWingPrivateKey(vector["seed"])
    assert identity.public_key().public_bytes_raw() == vector["pk"]
    assert recipients.key_id(identity.public_key()) == hashlib.sha256(vector["pk"]).digest()[:8]


@pytest.mark.parametrize("vector", XWING, ids=["1", "2", "3"])
def test_a_vault_sealed_to_a_published_key_opens_per_the_spec_and_with_our_reader(vector):
    sink = io.BytesIO()
    writer = vault.encrypt(sink, [XWingPublicKey(vector["pk"])], fsync_every=0)
    writer.write(PLAINTEXT)
    writer.close()
    data = sink.getvalue()
    header = vault_header.read_header(io.BytesIO(data).read)
    [stanza] = header.stanzas
    assert (stanza.kind, stanza.key_id) == ("xwing", hashlib.sha256(vector["pk"]).digest()[:8])
    assert len(stanza.wrapped) == 1120 + 32 + 16
    identity = XWingPrivateKey(vector["seed"])
    data_key = open_stanza_per_spec(vector["seed"], stanza.wrapped, header_v2.hpke_info(header.recording_id))
    assert data_key == header.unwrap(identity)
    assert vault.open_reader(io.BytesIO(data), identity).read() == PLAINTEXT


@pytest.mark.parametrize("vector", XWING, ids=["1", "2", "3"])
def test_a_stanza_made_per_the_spec_opens_with_our_key(vector):
    info, data_key = header_v2.hpke_info(bytes(16)), bytes(range(32))
    shared, ct = encapsulate_with_kyber_py(vector["pk"], vector["eseed"])
    assert ct == vector["ct"]
    key, nonce = hpke_base_key_and_nonce(shared, info, HKDF_SHA256, AES_256_GCM)
    wrapped = ct + AESGCM(key).encrypt(nonce, data_key, b"")
    assert recipients.unwrap(wrapped, XWingPrivateKey(vector["seed"]), info) == data_key
    # The same stanza under another recording's info (a transplanted stanza) does not open.
    assert recipients.unwrap(wrapped, XWingPrivateKey(vector["seed"]), header_v2.hpke_info(b"\x01" * 16)) is None

