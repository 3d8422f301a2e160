"""Committed test vectors (tests/vectors/vault): the format documented in docs/vault-format.md,
checked with raw primitives so a change to the layout cannot pass unnoticed."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from cryptography.hazmat.bindings._rust import openssl as rust_openssl
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from appliance import vault
from appliance.vault import header as vault_header

VECTORS = Path(__file__).parent / "vectors" / "vault"


@pytest.fixture(scope="module")
def vector():
    return json.loads((VECTORS / "vectors.json").read_text())


@pytest.fixture(scope="module")
def recipient(vector):
    return serialization.load_pem_private_key((VECTORS / vector["recipient_private_key_file"]).read_bytes(), None)


def test_header_bytes_match_the_documented_layout(vector):
    data = (VECTORS / vector["vault_file"]).read_bytes()
    assert hashlib.sha256(data).hexdigest() == vector["vault_sha256"]
    expected = vector["header"]
    head = data[:expected["length"]]
    assert head[:8] == b"\x89VAULT\r\n" and head[8] == 1 and head[9] == 0
    assert int.from_bytes(head[10:12], "big") == expected["length"]
    assert int.from_bytes(head[12:16], "big") == expected["segment_size"]
    assert head[16:32].hex() == expected["recording_id"]
    assert head[32] == len(expected["recipient_key_ids"])
    assert [head[33 + 121 * i:41 + 121 * i].hex() for i in range(head[32])] == expected["recipient_key_ids"]
    assert hashlib.sha256(head).hexdigest() == expected["sha256_is_body_associated_data"]
    stream_header = data[expected["length"]:expected["length"] + 40]
    assert stream_header[0] == 40
    assert stream_header[1:33].hex() == vector["stream_header"]["salt"]
    assert stream_header[33:].hex() == vector["stream_header"]["nonce_prefix"]


def test_data_key_unwraps_with_hpke_and_the_documented_info(vector, recipient):
    data = (VECTORS / vector["vault_file"]).read_bytes()
    stanza = data[33:33 + 121]
    suite = vault_header.SUITE
    assert suite.decrypt(stanza[8:], recipient, info=bytes.fromhex(vector["hpke_info"])).hex() == vector["data_key"]


def test_segments_open_with_raw_aes_gcm_under_the_documented_key_and_nonces(vector):
    data = (VECTORS / vector["vault_file"]).read_bytes()
    segment_key = HKDF(algorithm=hashes.SHA256(), length=32, salt=bytes.fromhex(vector["stream_header"]["salt"]),
                       info=bytes.fromhex(vector["header"]["sha256_is_body_associated_data"])) \
        .derive(bytes.fromhex(vector["data_key"]))
    assert segment_key.hex() == vector["segment_key"]
    plaintext = b""
    for segment in vector["segments"]:
        ciphertext = data[segment["file_offset"]:segment["file_offset"] + segment["length"]]
        plaintext += AESGCM(segment_key).decrypt(bytes.fromhex(segment["nonce"]), ciphertext, None)
    assert segment["file_offset"] + segment["length"] == len(data) and segment["last"]
    assert hashlib.sha256(plaintext).hexdigest() == vector["plaintext"]["sha256"]
    generated = b"".join(hashlib.sha256(i.to_bytes(8, "big")).digest() for i in range(len(plaintext) // 32 + 1))
    assert generated[:vector["plaintext"]["length"]] == plaintext


def test_reader_and_manifest_accept_the_vector(vector, recipient):
    with vault.open_reader(VECTORS / vector["vault_file"], recipient) as reader:
        assert hashlib.sha256(reader.read()).hexdigest() == vector["plaintext"]["sha256"] and reader.finalized
    device = serialization.load_pem_public_key((VECTORS / vector["device_public_key_file"]).read_bytes())
    result = vault.verify(VECTORS / vector["vault_file"], device)
    assert (result.ok, result.state, result.metadata["note"]) == (True, "sealed", "test vector")


def test_hpke_suite_matches_the_cfrg_vector():
    vector = json.loads((VECTORS / "hpke-base-p256-sha256-aes256gcm.json").read_text())
    recipient = ec.derive_private_key(int(vector["skRm"], 16), ec.SECP256R1())
    assert recipient.public_key().public_bytes(serialization.Encoding.X962,
                                               serialization.PublicFormat.UncompressedPoint).hex() == vector["pkRm"]
    first = vector["encryptions"][0]
    # The public one-shot API fixes aad to empty; the vector's aad is "Count-0", so the
    # library's aad-taking entry point checks that its key schedule is RFC 9180's.
    opened = rust_openssl.hpke._decrypt_with_aad(
        vault_header.SUITE, bytes.fromhex(vector["enc"] + first["ct"]), recipient,
        info=bytes.fromhex(vector["info"]), aad=bytes.fromhex(first["aad"]))
    assert opened.hex() == first["pt"]
    for encryption in vector["encryptions"]:
        nonce = (int(vector["base_nonce"], 16) ^ encryption["seq"]).to_bytes(12, "big")
        assert AESGCM(bytes.fromhex(vector["key"])).decrypt(
            nonce, bytes.fromhex(encryption["ct"]), bytes.fromhex(encryption["aad"])).hex() == encryption["pt"]
