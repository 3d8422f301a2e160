"""Published vectors for the post-quantum key wrap vault v2 uses (HPKE with X-Wing,
MLKEM768-X25519, KEM id 0x647a), and an independent ML-KEM agreeing with cryptography's.

Sources (docs/vault-vectors.md says more):
- cryptography_vectors/HPKE/hpke-pq-test-vectors.json (the cryptography-vectors package, the
  version the dev lock pins): the two MLKEM768-X25519 cases, HKDF-SHA256 and SHAKE256 KDFs,
  both with ChaCha20-Poly1305.
- tests/vectors/xwing/draft-connolly-cfrg-xwing-kem-10.txt: Appendix C of the X-Wing draft,
  transcribed; cryptography_vectors does not ship X-Wing's own vectors.
- kyber-py: a pure-Python ML-KEM (FIPS 203), the independent implementation.

cryptography exposes X-Wing only inside HPKE (MLKEM768X25519PrivateKey/PublicKey made from an
ML-KEM-768 and an X25519 key; no X-Wing seed loading, no derandomized encapsulation, no key
schedule or shared secret). So the seed expansion and combiner (draft section 5) are written
here from cryptography's ML-KEM, X25519 and SHA-3, and the HPKE key schedule (RFC 9180 5.1)
from its HMAC; these tests then check that cryptography's HPKE agrees with them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import cryptography_vectors
import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.bindings._rust import openssl as rust_openssl
from cryptography.hazmat.primitives.asymmetric.mlkem import MLKEM768PrivateKey, MLKEM768PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hpke import (AEAD, KDF, KEM, MLKEM768X25519PrivateKey,
                                                 MLKEM768X25519PublicKey, Suite)
from kyber_py.ml_kem import ML_KEM_768

XWING_KEM_ID = 0x647A
XWING_LABEL = bytes.fromhex("5c2e2f2f5e5c")   # the draft's "\./" "/^\"
MLKEM_PUBLIC, MLKEM_CIPHERTEXT = 1184, 1088
HPKE_PQ_JSON = Path(cryptography_vectors.__file__).parent / "HPKE" / "hpke-pq-test-vectors.json"
XWING_DRAFT = Path(__file__).parent / "vectors" / "xwing" / "draft-connolly-cfrg-xwing-kem-10.txt"
KDFS = {0x0001: KDF.HKDF_SHA256, 0x0011: KDF.SHAKE256}
AEADS = {0x0002: AEAD.AES_256_GCM, 0x0003: AEAD.CHACHA20_POLY1305}


# -- X-Wing (draft section 5) and the RFC 9180 key schedule, from primitives ----------------

def xwing_keys(seed: bytes) -> tuple[MLKEM768PrivateKey, X25519PrivateKey, bytes]:
    """expandDecapsulationKey: SHAKE256(seed, 96 bytes) = ML-KEM d || z | X25519 secret."""
    expanded = hashlib.shake_256(seed).digest(96)
    mlkem = MLKEM768PrivateKey.from_seed_bytes(expanded[:64])
    x25519 = X25519PrivateKey.from_private_bytes(expanded[64:])
    public = mlkem.public_key().public_bytes_raw() + x25519.public_key().public_bytes_raw()
    return mlkem, x25519, public


def combiner(ss_m: bytes, ss_x: bytes, ct_x: bytes, pk_x: bytes) -> bytes:
    return hashlib.sha3_256(ss_m + ss_x + ct_x + pk_x + XWING_LABEL).digest()


def decapsulate(seed: bytes, ciphertext: bytes) -> bytes:
    mlkem, x25519, public = xwing_keys(seed)
    ct_x = ciphertext[MLKEM_CIPHERTEXT:]
    ss_x = x25519.exchange(X25519PublicKey.from_public_bytes(ct_x))
    return combiner(mlkem.decapsulate(ciphertext[:MLKEM_CIPHERTEXT]), ss_x, ct_x, public[MLKEM_PUBLIC:])


def encapsulate_with_kyber_py(public: bytes, eseed: bytes) -> tuple[bytes, bytes]:
    """EncapsulateDerand with kyber-py's ML-KEM: (shared secret, ciphertext)."""
    ss_m, ct_m = ML_KEM_768._encaps_internal(public[:MLKEM_PUBLIC], eseed[:32])
    ephemeral = X25519PrivateKey.from_private_bytes(eseed[32:])
    ct_x = ephemeral.public_key().public_bytes_raw()
    ss_x = ephemeral.exchange(X25519PublicKey.from_public_bytes(public[MLKEM_PUBLIC:]))
    return combiner(ss_m, ss_x, ct_x, public[MLKEM_PUBLIC:]), ct_m + ct_x


def hpke_base_key_and_nonce(shared_secret: bytes, info: bytes, kdf_id: int, aead_id: int) -> tuple[bytes, bytes]:
    """RFC 9180 KeySchedule (base mode, HKDF-SHA256) for an X-Wing shared secret."""
    suite_id = b"HPKE" + XWING_KEM_ID.to_bytes(2, "big") + kdf_id.to_bytes(2, "big") + aead_id.to_bytes(2, "big")

    def extract(salt: bytes, label: bytes, ikm: bytes) -> bytes:
        return hmac.digest(salt or bytes(32), b"HPKE-v1" + suite_id + label + ikm, "sha256")

    def expand(prk: bytes, label: bytes, context: bytes, length: int) -> bytes:
        labeled = length.to_bytes(2, "big") + b"HPKE-v1" + suite_id + label + context
        output, block = b"", b""
        for counter in range(1, -(-length // 32) + 1):
            block = hmac.digest(prk, block + labeled + bytes([counter]), "sha256")
            output += block
        return output[:length]

    context = b"\x00" + extract(b"", b"psk_id_hash", b"") + extract(b"", b"info_hash", info)
    secret = extract(shared_secret, b"secret", b"")
    return expand(secret, b"key", context, 32), expand(secret, b"base_nonce", context, 12)


def hybrid_private_key(seed: bytes) -> MLKEM768X25519PrivateKey:
    mlkem, x25519, _ = xwing_keys(seed)
    return MLKEM768X25519PrivateKey(mlkem, x25519)


def hybrid_public_key(public: bytes) -> MLKEM768X25519PublicKey:
    return MLKEM768X25519PublicKey(MLKEM768PublicKey.from_public_bytes(public[:MLKEM_PUBLIC]),
                                   X25519PublicKey.from_public_bytes(public[MLKEM_PUBLIC:]))


# -- cryptography_vectors' HPKE-PQ JSON: the MLKEM768-X25519 cases ----------------------------

def hpke_pq_cases() -> list[dict]:
    cases = [case for case in json.loads(HPKE_PQ_JSON.read_text()) if case["kem_id"] == XWING_KEM_ID]
    assert {(case["mode"], case["kdf_id"], case["aead_id"]) for case in cases} == {(0, 0x0001, 0x0003),
                                                                                  (0, 0x0011, 0x0003)}
    return cases


HPKE_PQ = hpke_pq_cases()
CASE_IDS = [f"kdf-{case['kdf_id']:#06x}" for case in HPKE_PQ]


def h(value: str) -> bytes:
    return bytes.fromhex(value)


@pytest.mark.parametrize("case", HPKE_PQ, ids=CASE_IDS)
def test_hpke_pq_recipient_seed_expands_to_the_published_public_key(case):
    assert xwing_keys(h(case["skRm"]))[2] == h(case["pkRm"])


@pytest.mark.parametrize("case", HPKE_PQ, ids=CASE_IDS)
def test_hpke_pq_encapsulation_from_ikmE_is_reproduced_by_kyber_py(case):
    shared, enc = encapsulate_with_kyber_py(h(case["pkRm"]), h(case["ikmE"]))
    assert enc == h(case["enc"]) and shared == h(case["shared_secret"])


@pytest.mark.parametrize("case", HPKE_PQ, ids=CASE_IDS)
def test_hpke_pq_published_enc_decapsulates_to_the_published_shared_secret(case):
    assert decapsulate(h(case["skRm"]), h(case["enc"])) == h(case["shared_secret"])


@pytest.mark.parametrize("case", HPKE_PQ, ids=CASE_IDS)
def test_cryptography_hpke_opens_the_published_first_message(case):
    # Single-shot HPKE is sequence number 0: the first of the published encryptions. Its aad
    # ("Count-0") needs the binding's aad entry point; the public Suite.decrypt has none.
    suite = Suite(KEM.MLKEM768_X25519, KDFS[case["kdf_id"]], AEADS[case["aead_id"]])
    first = case["encryptions"][0]
    plaintext = rust_openssl.hpke._decrypt_with_aad(suite, h(case["enc"]) + h(first["ct"]),
                                                    hybrid_private_key(h(case["skRm"])),
                                                    info=h(case["info"]), aad=h(first["aad"]))
    assert plaintext == h(first["pt"])
    tampered = bytearray(h(case["enc"]) + h(first["ct"]))
    tampered[0] ^= 1
    with pytest.raises(InvalidTag):
        rust_openssl.hpke._decrypt_with_aad(suite, bytes(tampered), hybrid_private_key(h(case["skRm"])),
                                            info=h(case["info"]), aad=h(first["aad"]))


def test_the_key_schedule_written_here_matches_the_published_key_and_nonce():
    case = next(case for case in HPKE_PQ if case["kdf_id"] == 0x0001)
    key, nonce = hpke_base_key_and_nonce(h(case["shared_secret"]), h(case["info"]), 0x0001, 0x0003)
    assert (key, nonce) == (h(case["key"]), h(case["base_nonce"]))


def test_cryptography_hpke_encryption_to_the_published_key_opens_with_kyber_py():
    """The encrypt direction (cryptography's ephemeral randomness cannot be fixed): the vault's
    suite seals to the published public key; kyber-py decapsulates, and the key schedule and
    AES-256-GCM written here open it."""
    case = next(case for case in HPKE_PQ if case["kdf_id"] == 0x0001)
    seed, info, message = h(case["skRm"]), b"treatment-vault test info", b"data key, 32 bytes long........"
    sealed = Suite(KEM.MLKEM768_X25519, KDF.HKDF_SHA256, AEAD.AES_256_GCM).encrypt(
        message, hybrid_public_key(h(case["pkRm"])), info=info)
    enc, ciphertext = sealed[:MLKEM_CIPHERTEXT + 32], sealed[MLKEM_CIPHERTEXT + 32:]
    expanded = hashlib.shake_256(seed).digest(96)
    _, kyber_private = ML_KEM_768.key_derive(expanded[:64])
    ss_m = ML_KEM_768.decaps(kyber_private, enc[:MLKEM_CIPHERTEXT])
    ss_x = X25519PrivateKey.from_private_bytes(expanded[64:]).exchange(
        X25519PublicKey.from_public_bytes(enc[MLKEM_CIPHERTEXT:]))
    shared = combiner(ss_m, ss_x, enc[MLKEM_CIPHERTEXT:], h(case["pkRm"])[MLKEM_PUBLIC:])
    key, nonce = hpke_base_key_and_nonce(shared, info, 0x0001, 0x0002)
    assert AESGCM(key).decrypt(nonce, ciphertext, b"") == message


# -- the X-Wing draft's own vectors (Appendix C) ----------------------------------------------

def xwing_draft_vectors() -> list[dict[str, bytes]]:
    vectors: list[dict[str, str]] = []
    name = ""
    for line in XWING_DRAFT.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        if line.startswith(" "):
            vectors[-1][name] += line.strip()
            continue
        name, *value = line.split()
        if name == "seed":
            vectors.append({})
        vectors[-1][name] = "".join(value)
    return [{key: h(value) for key, value in vector.items()} for vector in vectors]


XWING = xwing_draft_vectors()


def test_the_transcribed_draft_vectors_have_the_draft_sizes():
    assert len(XWING) == 3
    for vector in XWING:
        assert {key: len(value) for key, value in vector.items()} == {
            "seed": 32, "sk": 32, "pk": 1216, "eseed": 64, "ct": 1120, "ss": 32}


@pytest.mark.parametrize("vector", XWING, ids=["1", "2", "3"])
def test_xwing_seed_expands_to_the_published_public_key(vector):
    assert vector["sk"] == vector["seed"]
    assert xwing_keys(vector["seed"])[2] == vector["pk"]


@pytest.mark.parametrize("vector", XWING, ids=["1", "2", "3"])
def test_xwing_derandomized_encapsulation_with_kyber_py_gives_the_published_ct_and_ss(vector):
    assert encapsulate_with_kyber_py(vector["pk"], vector["eseed"]) == (vector["ss"], vector["ct"])


@pytest.mark.parametrize("vector", XWING, ids=["1", "2", "3"])
def test_xwing_published_ct_decapsulates_with_cryptography_to_the_published_ss(vector):
    assert decapsulate(vector["seed"], vector["ct"]) == vector["ss"]


@pytest.mark.parametrize("vector", XWING, ids=["1", "2", "3"])
def test_cryptography_hpke_decapsulates_the_published_ct_to_the_published_ss(vector):
    """cryptography computes X-Wing's shared secret only inside HPKE: a message sealed under the
    key schedule of the published ss, behind the published ct, opens there only if its own
    decapsulation and combiner give that ss."""
    info, message = b"treatment-vault test info", b"opened with the draft's ss"
    key, nonce = hpke_base_key_and_nonce(vector["ss"], info, 0x0001, 0x0002)
    sealed = vector["ct"] + AESGCM(key).encrypt(nonce, message, b"")
    suite = Suite(KEM.MLKEM768_X25519, KDF.HKDF_SHA256, AEAD.AES_256_GCM)
    assert suite.decrypt(sealed, hybrid_private_key(vector["seed"]), info=info) == message
    other_ss = hpke_base_key_and_nonce(XWING[(XWING.index(vector) + 1) % 3]["ss"], info, 0x0001, 0x0002)
    with pytest.raises(InvalidTag):
        suite.decrypt(vector["ct"] + AESGCM(other_ss[0]).encrypt(other_ss[1], message, b""),
                      hybrid_private_key(vector["seed"]), info=info)


# -- kyber-py and cryptography agree on ML-KEM-768 --------------------------------------------

def test_kyber_py_encapsulates_to_a_cryptography_key_and_cryptography_decapsulates_the_same_secret():
    private = MLKEM768PrivateKey.generate()
    shared, ciphertext = ML_KEM_768.encaps(private.public_key().public_bytes_raw())
    assert private.decapsulate(ciphertext) == shared


def test_cryptography_encapsulates_to_a_kyber_py_key_and_kyber_py_decapsulates_the_same_secret():
    public, private = ML_KEM_768.keygen()
    shared, ciphertext = MLKEM768PublicKey.from_public_bytes(public).encapsulate()
    assert ML_KEM_768.decaps(private, ciphertext) == shared


def test_the_same_seed_makes_the_same_key_pair_and_a_modified_ciphertext_is_rejected_alike():
    seed = bytes(range(64))   # d || z, FIPS 203's 64-byte seed
    ours = MLKEM768PrivateKey.from_seed_bytes(seed)
    kyber_public, kyber_private = ML_KEM_768.key_derive(seed)
    assert ours.public_key().public_bytes_raw() == kyber_public
    shared, ciphertext = ours.public_key().encapsulate()
    modified = bytearray(ciphertext)
    modified[100] ^= 0x01
    # Implicit rejection (FIPS 203 Decaps): both return the same pseudorandom secret from z.
    rejected = ours.decapsulate(bytes(modified))
    assert rejected != shared
    assert ML_KEM_768.decaps(kyber_private, bytes(modified)) == rejected
