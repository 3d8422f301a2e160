"""Key files and the signed manifest, in process (the CLI is tested in test_vault_cli.py)."""

from __future__ import annotations

import base64
import io
import json
import os
import stat
import subprocess

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from appliance import vault
from appliance.errors import BadInput, IntegrityError
from appliance.vault import header as vault_header
from appliance.vault import keys, manifest, stream

PASSPHRASE = b"correct horse battery"


@pytest.fixture(scope="module")
def key_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("keys") / "clinic"
    keys.generate_recipient(directory, PASSPHRASE)
    keys.generate_device(directory)
    return directory


def test_key_files_are_private(key_dir):
    assert stat.S_IMODE(key_dir.stat().st_mode) == 0o700
    for name in ("recipient.key", "recipient.pub", "device.key", "device.pub"):
        assert stat.S_IMODE((key_dir / name).stat().st_mode) == 0o600


def _pbes2_rounds(key_file) -> str:
    parsed = subprocess.run(["openssl", "asn1parse", "-in", str(key_file)], capture_output=True, text=True,
                            check=True).stdout
    assert ":PBES2" in parsed and ":PBKDF2" in parsed and ":hmacWithSHA256" in parsed and ":aes-256-cbc" in parsed
    assert int(parsed.split("prim: INTEGER")[1].split(":")[1].split()[0], 16) >= 600_000
    return parsed


def test_classical_recipient_key_is_openssl_readable_pkcs8_with_600k_pbkdf2_sha256_rounds(tmp_path):
    key_file, pub_file = keys.generate_recipient(tmp_path / "classical", PASSPHRASE, classical=True)
    _pbes2_rounds(key_file)
    opened = subprocess.run(["openssl", "pkey", "-in", str(key_file), "-passin", "stdin", "-pubout"],
                            input=PASSPHRASE + b"\n", capture_output=True)
    assert opened.returncode == 0, opened.stderr
    assert opened.stdout == pub_file.read_bytes()
    refused = subprocess.run(["openssl", "pkey", "-in", str(key_file), "-passin", "pass:wrong-passphrase",
                              "-noout"], capture_output=True)
    assert refused.returncode != 0
    assert vault.kind_of(keys.load_identity(key_file, PASSPHRASE)) == "p256"


def _openssl_decrypts_pbes2(key_file, passphrase: bytes) -> bytes:
    """Decrypts our PBES2 key with openssl's own PBKDF2 and AES-256-CBC: the format is the
    standard one, not something only this code reads."""
    der = subprocess.run(["openssl", "base64", "-d", "-in", str(key_file)], capture_output=True, check=True).stdout
    fields = subprocess.run(["openssl", "asn1parse", "-inform", "DER"], input=der, capture_output=True,
                            check=True).stdout.decode()
    octets = [line.split("[HEX DUMP]:")[1] for line in fields.splitlines() if "[HEX DUMP]:" in line]
    salt, iv, ciphertext = octets[0], octets[1], bytes.fromhex(octets[2])
    rounds = int(fields.split("prim: INTEGER")[1].split(":")[1].split()[0], 16)
    key = subprocess.run(["openssl", "kdf", "-keylen", "32", "-kdfopt", "digest:SHA256",
                          "-kdfopt", f"hexpass:{passphrase.hex()}", "-kdfopt", f"hexsalt:{salt}",
                          "-kdfopt", f"iter:{rounds}", "PBKDF2"], capture_output=True, text=True, check=True)
    return subprocess.run(["openssl", "enc", "-d", "-aes-256-cbc", "-K", key.stdout.strip().replace(":", ""),
                           "-iv", iv], input=ciphertext, capture_output=True, check=True).stdout


def test_xwing_recipient_key_is_pkcs8_of_the_32_byte_seed_under_standard_pbes2(key_dir):
    key_file = key_dir / "recipient.key"
    _pbes2_rounds(key_file)
    inner = _openssl_decrypts_pbes2(key_file, PASSPHRASE)
    parsed = subprocess.run(["openssl", "asn1parse", "-inform", "DER"], input=inner, capture_output=True,
                            check=True).stdout.decode()
    assert "OBJECT            :1.3.6.1.4.1.62253.25722" in parsed  # the X-Wing draft's OID
    seed = bytes.fromhex(parsed.split("[HEX DUMP]:")[1].strip())
    assert len(seed) == 32
    assert vault.XWingPrivateKey(seed).public_key() == keys.load_recipient_public(key_dir / "recipient.pub")
    spki = subprocess.run(["openssl", "asn1parse", "-in", str(key_dir / "recipient.pub")], capture_output=True,
                          text=True, check=True).stdout
    assert ":1.3.6.1.4.1.62253.25722" in spki and "BIT STRING" in spki


def test_identity_loads_with_the_passphrase_and_refuses_a_wrong_one(key_dir):
    identity = keys.load_identity(key_dir / "recipient.key", PASSPHRASE)
    assert vault.kind_of(identity) == "xwing"
    assert identity.public_key() == keys.load_recipient_public(key_dir / "recipient.pub")
    with pytest.raises(BadInput, match="wrong passphrase"):
        keys.load_identity(key_dir / "recipient.key", b"not the passphrase")


def test_device_key_is_hybrid_and_openssl_reads_its_p256_half(key_dir):
    device = keys.load_device_key(key_dir / "device.key")
    public = keys.load_device_public(key_dir / "device.pub")
    assert device.public_key() == public and public.hybrid
    assert len(public.key_id) == 16
    first = subprocess.run(["openssl", "pkey", "-in", str(key_dir / "device.key"), "-pubout"], capture_output=True,
                           check=True).stdout
    assert first in (key_dir / "device.pub").read_bytes()


def test_existing_keys_are_never_replaced(key_dir):
    before = (key_dir / "recipient.key").read_bytes()
    with pytest.raises(BadInput, match="already exists"):
        keys.generate_recipient(key_dir, PASSPHRASE)
    with pytest.raises(BadInput, match="already exists"):
        keys.generate_device(key_dir)
    assert (key_dir / "recipient.key").read_bytes() == before


def test_a_short_passphrase_is_refused(tmp_path):
    with pytest.raises(BadInput, match="at least 8"):
        keys.generate_recipient(tmp_path / "k", b"short")
    assert not (tmp_path / "k" / "recipient.key").exists()


@pytest.fixture
def sealed_vault(tmp_path, key_dir):
    path = tmp_path / "clip.vault"
    recipient = keys.load_recipient_public(key_dir / "recipient.pub")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        writer = vault.encrypt(out, [recipient])
        writer.write(os.urandom(3 * stream.SEGMENT_PLAINTEXT))
        sealed = writer.close()
    vault.write_manifest(path, keys.load_device_key(key_dir / "device.key"), metadata={"frames": 90},
                         sealed=sealed)
    return path


def test_a_sealed_vault_verifies_without_any_secret(sealed_vault, key_dir):
    result = vault.verify(sealed_vault, keys.load_device_public(key_dir / "device.pub"))
    assert (result.ok, result.state, result.problem, result.metadata) == (True, "sealed", None, {"frames": 90})
    assert result.device_pinned and result.segments == 4


def test_a_hybrid_signature_names_both_algorithms(sealed_vault):
    result = vault.verify(sealed_vault)
    assert result.ok and result.signature == "ECDSA P-256 + ML-DSA-65"


def test_another_devices_key_is_refused_when_pinned(sealed_vault, key_dir):
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    result = vault.verify(sealed_vault, other)
    assert not result.ok and "different device key" in result.problem
    # Same P-256 half, another ML-DSA half: a hybrid pin needs both.
    ours = keys.load_device_public(key_dir / "device.pub")
    mixed = vault.DevicePublicKey(ours.ecdsa, vault.DeviceKey.generate().public_key().mldsa)
    result = vault.verify(sealed_vault, mixed)
    assert not result.ok and "different device key" in result.problem


def test_each_half_of_the_hybrid_signature_is_required(sealed_vault):
    path = manifest.manifest_path(sealed_vault)
    original = json.loads(path.read_text())
    for algorithm in ("ecdsa-p256-sha256", "ml-dsa-65"):
        document = json.loads(json.dumps(original))
        forged = bytearray(base64.b64decode(document["signatures"][algorithm]))
        forged[len(forged) // 2] ^= 1
        document["signatures"][algorithm] = base64.b64encode(bytes(forged)).decode()
        path.write_text(json.dumps(document))
        assert not vault.verify(sealed_vault).ok
        document = json.loads(json.dumps(original))
        del document["signatures"][algorithm]
        path.write_text(json.dumps(document))
        assert "do not match" in vault.verify(sealed_vault).problem
    document = json.loads(json.dumps(original))
    document["signatures"]["ml-dsa-65"] = 12345
    path.write_text(json.dumps(document))
    assert "ML-DSA-65 signature is invalid" in vault.verify(sealed_vault).problem
    # Stripping the ML-DSA key and signature changes the signed part: the ECDSA signature fails.
    document = json.loads(json.dumps(original))
    del document["signatures"]["ml-dsa-65"], document["signed"]["device_public_keys"]["ml-dsa-65"]
    path.write_text(json.dumps(document))
    assert "invalid" in vault.verify(sealed_vault).problem


def test_a_classical_device_key_from_before_still_signs_and_says_so(tmp_path, key_dir):
    identity = keys.load_identity(key_dir / "recipient.key", PASSPHRASE)
    old_device = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "old-device.vault"
    with open(path, "wb") as out:
        writer = vault.encrypt(out, [identity.public_key()])
        writer.write(b"frames")
        sealed = writer.close()
    vault.write_manifest(path, old_device, sealed=sealed)
    result = vault.verify(path, old_device.public_key())
    assert result.ok and result.signature == "ECDSA P-256 only (classical)"


def test_a_sealed_vault_with_its_tail_cut_is_tampered(sealed_vault, key_dir):
    with open(sealed_vault, "r+b") as handle:
        body_start = vault_header.read_header(handle.read).length
        size = os.path.getsize(sealed_vault)
        handle.truncate(size - (size - body_start) % stream.SEGMENT_SIZE)  # the whole short last segment
    result = vault.verify(sealed_vault)
    assert not result.ok and "shorter" in result.problem and "tampered" in result.problem
    identity = keys.load_identity(key_dir / "recipient.key", PASSPHRASE)
    with pytest.raises(IntegrityError, match="sealed but its last segment is missing"):
        vault.open_reader(sealed_vault, identity)
    assert not vault.open_reader(io.BytesIO(sealed_vault.read_bytes()), identity).finalized


def test_a_modified_byte_or_manifest_fails_verification(sealed_vault):
    with open(sealed_vault, "r+b") as handle:
        handle.seek(100_000)
        byte = handle.read(1)
        handle.seek(100_000)
        handle.write(bytes([byte[0] ^ 1]))
    assert "SHA-256" in vault.verify(sealed_vault).problem
    path = manifest.manifest_path(sealed_vault)
    document = json.loads(path.read_text())
    document["signed"]["state"] = "interrupted"
    path.write_text(json.dumps(document))
    assert "signature is invalid" in vault.verify(sealed_vault).problem


def test_manifest_is_refused_for_a_file_that_is_not_a_vault(tmp_path, key_dir):
    plain = tmp_path / "plain.mp4"
    plain.write_bytes(b"\x00\x00\x00\x18ftypisom" * 10)
    with pytest.raises(BadInput, match="not a vault file"):
        vault.write_manifest(plain, keys.load_device_key(key_dir / "device.key"))
    assert not manifest.manifest_path(plain).exists()


def test_mark_interrupted_signs_what_is_there_and_the_reader_yields_the_prefix(tmp_path, key_dir):
    identity = keys.load_identity(key_dir / "recipient.key", PASSPHRASE)
    path = tmp_path / "crashed.vault"
    plaintext = os.urandom(2 * stream.SEGMENT_PLAINTEXT)
    with open(path, "wb") as out:
        writer = vault.encrypt(out, [identity.public_key()])
        writer.write(plaintext)
        # the process dies here: no close(); simulate a torn write of the next segment
        out.write(os.urandom(500))
    result = vault.mark_interrupted(path, keys.load_device_key(key_dir / "device.key"), {"reason": "power"})
    assert (result.ok, result.state) == (True, "interrupted")
    with vault.open_reader(path, identity) as reader:
        assert not reader.finalized and reader.torn_tail_bytes == 500
        assert reader.read() == plaintext[:2 * stream.SEGMENT_PLAINTEXT - stream.HEADER_LENGTH]
    with pytest.raises(BadInput, match="already has a manifest"):
        vault.mark_interrupted(path, keys.load_device_key(key_dir / "device.key"))


def test_reader_from_memory_matches_reader_from_path(sealed_vault, key_dir):
    identity = keys.load_identity(key_dir / "recipient.key", PASSPHRASE)
    with vault.open_reader(sealed_vault, identity) as from_path:
        expected = from_path.read()
        assert from_path.finalized
    assert vault.open_reader(io.BytesIO(sealed_vault.read_bytes()), identity).read() == expected
