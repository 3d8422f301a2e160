"""Committed version 2 test vectors (tests/vectors/vault/vectors-v2.json, docs/vault-format.md),
checked byte by byte with raw primitives -- SHAKE256, ML-KEM-768, X25519, HPKE, HMAC, HKDF,
AES-GCM -- so a change to the layout or the key schedule cannot pass unnoticed."""

from __future__ import annotations

import hashlib
import hmac
import json
import struct
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import mlkem, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hpke import AEAD, KDF, KEM, MLKEM768X25519PrivateKey, Suite
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from appliance import vault
from appliance.errors import BadInput

VECTORS = Path(__file__).parent / "vectors" / "vault"


@pytest.fixture(scope="module")
def vector():
    return json.loads((VECTORS / "vectors-v2.json").read_text())


def raw_xwing_private(seed: bytes) -> MLKEM768X25519PrivateKey:
    expanded = hashlib.shake_256(seed).digest(96)
    return MLKEM768X25519PrivateKey(mlkem.MLKEM768PrivateKey.from_seed_bytes(expanded[:64]),
                                    x25519.X25519PrivateKey.from_private_bytes(expanded[64:]))


@pytest.mark.parametrize("which", [0, 1])
def test_header_bytes_match_the_documented_layout(vector, which):
    described = vector["files"][which]
    data = (VECTORS / described["vault_file"]).read_bytes()
    assert hashlib.sha256(data).hexdigest() == described["vault_sha256"]
    expected = described["header"]
    head = data[:expected["length"]]
    assert head[:8] == b"\x89VAULT\r\n" and head[8] == 2 and head[9] == 0
    assert struct.unpack(">I", head[10:14])[0] == expected["segment_size"]
    assert head[14:30].hex() == expected["recording_id"]
    assert hashlib.sha256(head[:30]).hexdigest() == expected["fixed_sha256_is_body_associated_data"]
    assert struct.unpack(">I", head[30:34])[0] == expected["length"] and head[34] == len(expected["stanzas"])
    for stanza in expected["stanzas"]:
        at = stanza["offset"]
        kind = head[at + 1:at + 1 + head[at]].decode()
        key_id = head[at + 1 + len(kind):at + 9 + len(kind)]
        (body_length,) = struct.unpack(">H", head[at + 9 + len(kind):at + 11 + len(kind)])
        assert (kind, key_id.hex(), body_length) == (stanza["type"], stanza["key_id"], stanza["body_length"])
        assert 1 + len(kind) + 8 + 2 + body_length == stanza["length"]
    last = expected["stanzas"][-1]
    assert last["offset"] + last["length"] == expected["length"] - 32
    assert head[-32:].hex() == expected["header_mac"]
    # The file digest: SHA-256(header || SHA-256(body)), what the database records and export checks.
    file_digest = hashlib.sha256(head + hashlib.sha256(data[len(head):]).digest()).hexdigest()
    assert file_digest == described["file_digest"] == vault.file_digest(VECTORS / described["vault_file"]).file_digest
    mac = hmac.new(bytes.fromhex(vector["mac_key"]), head[:-32], hashlib.sha256).hexdigest()
    assert mac == expected["header_mac"]
    assert HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"treatment-vault v2 header mac") \
        .derive(bytes.fromhex(vector["data_key"])).hex() == vector["mac_key"]


def test_every_stanza_unwraps_with_raw_hpke_to_the_data_key(vector):
    recipients = vector["recipients"]
    private = {recipients["xwing_a_key_id"]: (KEM.MLKEM768_X25519, raw_xwing_private(bytes.fromhex(recipients["xwing_a_seed"]))),
               recipients["xwing_b_key_id"]: (KEM.MLKEM768_X25519, raw_xwing_private(bytes.fromhex(recipients["xwing_b_seed"]))),
               recipients["p256_key_id"]: (KEM.P256, serialization.load_pem_private_key(
                   (VECTORS / recipients["p256_key_file"]).read_bytes(), None))}
    opened = 0
    for described in vector["files"]:
        data = (VECTORS / described["vault_file"]).read_bytes()
        for stanza in described["header"]["stanzas"]:
            kem, key = private[stanza["key_id"]]
            body = data[stanza["offset"] + stanza["length"] - stanza["body_length"]:stanza["offset"] + stanza["length"]]
            assert len(body) == (1120 if kem == KEM.MLKEM768_X25519 else 65) + 48
            suite = Suite(kem, KDF.HKDF_SHA256, AEAD.AES_256_GCM)
            assert suite.decrypt(body, key, info=bytes.fromhex(vector["hpke_info"])).hex() == vector["data_key"]
            opened += 1
    assert opened == 4


def test_segments_open_with_raw_aes_gcm_and_the_body_is_identical_after_rewrap(vector):
    first, rewrapped = ((VECTORS / f["vault_file"]).read_bytes() for f in vector["files"])
    body = first[vector["files"][0]["header"]["length"]:]
    assert rewrapped[vector["files"][1]["header"]["length"]:] == body
    assert hashlib.sha256(body).hexdigest() == vector["body_sha256"]
    assert body[0] == 40 and body[1:33].hex() == vector["stream_header"]["salt"]
    assert body[33:40].hex() == vector["stream_header"]["nonce_prefix"]
    segment_key = HKDF(algorithm=hashes.SHA256(), length=32, salt=body[1:33],
                       info=bytes.fromhex(vector["files"][0]["header"]["fixed_sha256_is_body_associated_data"])) \
        .derive(bytes.fromhex(vector["data_key"]))
    assert segment_key.hex() == vector["segment_key"]
    plaintext = b""
    for segment in vector["segments"]:
        ciphertext = body[segment["body_offset"]:segment["body_offset"] + segment["length"]]
        plaintext += AESGCM(segment_key).decrypt(bytes.fromhex(segment["nonce"]), ciphertext, None)
    assert segment["body_offset"] + segment["length"] == len(body) and segment["last"]
    assert hashlib.sha256(plaintext).hexdigest() == vector["plaintext"]["sha256"]


def test_the_key_files_load_and_the_files_decrypt_and_verify(vector):
    recipients = vector["recipients"]
    identity = vault.keys.load_identity(VECTORS / recipients["xwing_a_key_file"],
                                        recipients["xwing_a_key_passphrase"].encode())
    assert identity.seed.hex() == recipients["xwing_a_seed"]
    assert vault.keys.load_recipient_public(VECTORS / recipients["xwing_a_public_file"]) == identity.public_key()
    device = vault.keys.load_device_public(VECTORS / vector["device_public_key_file"])
    for described, note in zip(vector["files"], (None, "recipients rewritten since signing")):
        path = VECTORS / described["vault_file"]
        with vault.open_reader(path, identity) as reader:
            assert hashlib.sha256(reader.read()).hexdigest() == vector["plaintext"]["sha256"] and reader.finalized
        result = vault.verify(path, device)
        assert (result.ok, result.state, result.signature) == (True, "sealed", "ECDSA P-256 + ML-DSA-65")
        assert (result.note is None) if note is None else note in result.note
    # The rewrap removed the p256 recipient: its key no longer opens the rewrapped file.
    p256 = serialization.load_pem_private_key((VECTORS / recipients["p256_key_file"]).read_bytes(), None)
    with pytest.raises(BadInput, match="not a recipient"):
        vault.open_reader(VECTORS / vector["files"][1]["vault_file"], p256)
