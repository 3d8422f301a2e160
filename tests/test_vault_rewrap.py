"""Rewrap: recipients added and removed without re-encrypting -- the body stays byte-identical,
the manifest keeps verifying and says what changed, a removed recipient is locked out -- in
process (hypothesis) and through `appliance vault rewrap|info|encrypt` as an operator runs them."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from conftest import run_appliance
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from appliance import vault
from appliance.errors import BadInput

FAST = settings(deadline=None, max_examples=15, suppress_health_check=[HealthCheck.function_scoped_fixture])
POOL = 8
VECTORS = Path(__file__).parent / "vectors" / "vault"
PASSPHRASE = "a clinic passphrase"


@pytest.fixture(scope="module")
def pool():
    return [vault.XWingPrivateKey.generate() for _ in range(POOL)]


@pytest.fixture(scope="module")
def device():
    return vault.DeviceKey.generate()


def make_vault(path, recipients, device, plaintext: bytes):
    with open(path, "wb") as out:
        writer = vault.encrypt(out, [key.public_key() for key in recipients])
        writer.write(plaintext)
        sealed = writer.close()
    vault.write_manifest(path, device, metadata={"frames": 3}, sealed=sealed)


def body_of(path) -> bytes:
    data = path.read_bytes()
    return data[vault.read_header(open(path, "rb").read).length:]


@FAST
@given(data=st.data())
def test_rewrap_changes_only_the_header_and_locks_out_removed_recipients(tmp_path_factory, pool, device, data):
    start = data.draw(st.sets(st.integers(0, POOL - 1), min_size=1, max_size=POOL))
    remove = data.draw(st.sets(st.sampled_from(sorted(start))))
    outsiders = [i for i in range(POOL) if i not in start]
    add = data.draw(st.sets(st.sampled_from(outsiders))) if outsiders else set()
    holder = data.draw(st.sampled_from(sorted(start)))
    if not (start - remove) | add:
        remove = remove - {holder}
    assume(add or remove)
    path = tmp_path_factory.mktemp("rewrap") / "clip.vault"
    plaintext = os.urandom(data.draw(st.integers(0, 200_000)))
    make_vault(path, [pool[i] for i in sorted(start)], device, plaintext)
    body, manifest_before = body_of(path), vault.manifest.manifest_path(path).read_bytes()
    vault.rewrap(path, pool[holder], add=[pool[i].public_key() for i in sorted(add)],
                 remove=[vault.key_id(pool[i].public_key()) for i in sorted(remove)])
    assert body_of(path) == body
    assert vault.manifest.manifest_path(path).read_bytes() == manifest_before
    now = (start - remove) | add
    assert {s.key_id for s in vault.read_header(open(path, "rb").read).stanzas} == \
        {vault.key_id(pool[i].public_key()) for i in now}
    for i in range(POOL):
        if i in now:
            with vault.open_reader(path, pool[i]) as reader:
                assert reader.read() == plaintext
        else:
            with pytest.raises(BadInput, match="not a recipient"):
                vault.open_reader(path, pool[i])
    result = vault.verify(path, device.public_key())
    assert result.ok and result.state == "sealed"
    assert "recipients rewritten since signing" in result.note


def test_refused_rewraps_leave_the_file_untouched(tmp_path, pool, device):
    path = tmp_path / "clip.vault"
    make_vault(path, pool[:2], device, b"frames")
    before = path.read_bytes()
    refusals = [
        (dict(identity=pool[5], add=[pool[3].public_key()]), "not a recipient"),
        (dict(identity=pool[0], remove=[vault.key_id(k.public_key()) for k in pool[:2]]), "1 to 16"),
        (dict(identity=pool[0], add=[pool[1].public_key()]), "already a recipient"),
        (dict(identity=pool[0], remove=[b"\x00" * 8]), "no recipient with key id"),
        (dict(identity=pool[0], add=[ec.generate_private_key(ec.SECP256R1()).public_key()]), "mix post-quantum"),
    ]
    for options, message in refusals:
        with pytest.raises(BadInput, match=message):
            vault.rewrap(path, **options)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["clip.vault",
                                                                                         "clip.vault.manifest"]


def test_a_classical_archive_moves_to_xwing_in_one_rewrap(tmp_path, pool, device):
    classical = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "clip.vault"
    make_vault(path, [classical], device, b"kept for thirty years")
    vault.rewrap(path, classical, add=[pool[0].public_key()], remove=[vault.key_id(classical.public_key())])
    assert [s.kind for s in vault.read_header(open(path, "rb").read).stanzas] == ["xwing"]
    with vault.open_reader(path, pool[0]) as reader:
        assert reader.read() == b"kept for thirty years"
    with pytest.raises(BadInput, match="not a recipient"):
        vault.open_reader(path, classical)


def test_a_version_1_vault_is_not_rewrapped_and_stays_readable(tmp_path, pool):
    from cryptography.hazmat.primitives import serialization
    path = tmp_path / "v1.vault"
    path.write_bytes((VECTORS / "two-segments.vault").read_bytes())
    old = serialization.load_pem_private_key((VECTORS / "recipient-test-only.key").read_bytes(), None)
    with pytest.raises(BadInput, match="version 1 vault.*re-encrypted"):
        vault.rewrap(path, old, add=[pool[0].public_key()])
    assert path.read_bytes() == (VECTORS / "two-segments.vault").read_bytes()


@pytest.fixture(scope="module")
def clinic(tmp_path_factory):
    home = tmp_path_factory.mktemp("clinic")
    (home / "pass").write_text(PASSPHRASE + "\n")
    for args in (("keys", "init", "--dir", str(home / "a"), "--passphrase-file", str(home / "pass")),
                 ("keys", "init", "--dir", str(home / "b"), "--passphrase-file", str(home / "pass")),
                 ("keys", "init", "--classical", "--dir", str(home / "old"), "--passphrase-file", str(home / "pass")),
                 ("keys", "device", "--dir", str(home / "device"))):
        result = run_appliance(*args)
        assert result.returncode == 0, result.stderr
    return home


def key_id_of(clinic, name: str) -> str:
    return vault.key_id(vault.keys.load_recipient_public(clinic / name / "recipient.pub")).hex()


def test_cli_mixed_recipients_are_one_line_exit_2_unless_allowed(clinic, tmp_path):
    plain = tmp_path / "clip.mp4"
    plain.write_bytes(b"frames" * 1000)
    mixed = ("--recipient", str(clinic / "a/recipient.pub"), "--recipient", str(clinic / "old/recipient.pub"))
    refused = run_appliance("vault", "encrypt", str(plain), "-o", str(tmp_path / "mixed.vault"), *mixed)
    lines = refused.stderr.decode().strip().splitlines()
    assert refused.returncode == 2 and len(lines) == 1 and "mix post-quantum (xwing) and classical (p256)" in lines[0]
    assert not (tmp_path / "mixed.vault").exists()
    allowed = run_appliance("vault", "encrypt", str(plain), "-o", str(tmp_path / "mixed.vault"), *mixed,
                            "--allow-mixed")
    assert allowed.returncode == 0, allowed.stderr
    info = run_appliance("vault", "info", str(tmp_path / "mixed.vault")).stdout.decode()
    assert "version: 2" in info
    assert f"  xwing {key_id_of(clinic, 'a')}\n" in info and f"  p256 {key_id_of(clinic, 'old')}\n" in info


def test_cli_rewrap_replaces_a_recipient_and_verify_explains(clinic, tmp_path):
    plain = tmp_path / "clip.mp4"
    plain.write_bytes(os.urandom(150_000))
    path = tmp_path / "clip.vault"
    sealed = run_appliance("vault", "encrypt", str(plain), "-o", str(path), "--recipient", str(clinic / "a/recipient.pub"),
                           "--device-key", str(clinic / "device/device.key"))
    assert sealed.returncode == 0, sealed.stderr
    body = hashlib.sha256(body_of(path)).hexdigest()
    rewrap = run_appliance("vault", "rewrap", str(path), "--identity", str(clinic / "a/recipient.key"),
                           "--passphrase-file", str(clinic / "pass"), "--add-recipient", str(clinic / "b/recipient.pub"),
                           "--remove-recipient", key_id_of(clinic, "a"))
    assert rewrap.returncode == 0, rewrap.stderr
    assert hashlib.sha256(body_of(path)).hexdigest() == body
    verified = run_appliance("vault", "verify", str(path), "--device-pub", str(clinic / "device/device.pub"))
    assert verified.returncode == 0, verified.stderr
    assert b"ECDSA P-256 + ML-DSA-65" in verified.stdout and b"recipients rewritten since signing" in verified.stdout
    locked_out = run_appliance("vault", "decrypt", str(path), "--identity", str(clinic / "a/recipient.key"),
                               "--passphrase-file", str(clinic / "pass"), "-o", str(tmp_path / "a.mp4"))
    assert locked_out.returncode == 2 and b"not a recipient" in locked_out.stderr
    assert not (tmp_path / "a.mp4").exists()
    opened = run_appliance("vault", "decrypt", str(path), "--identity", str(clinic / "b/recipient.key"),
                           "--passphrase-file", str(clinic / "pass"), "-o", str(tmp_path / "b.mp4"))
    assert opened.returncode == 0, opened.stderr
    assert (tmp_path / "b.mp4").read_bytes() == plain.read_bytes()
    bad_id = run_appliance("vault", "rewrap", str(path), "--identity", str(clinic / "b/recipient.key"),
                           "--passphrase-file", str(clinic / "pass"), "--remove-recipient", "xyz")
    assert bad_id.returncode == 2 and len(bad_id.stderr.decode().strip().splitlines()) == 1


def test_an_appliance_configured_with_mixed_recipients_reports_it_as_its_key_problem(clinic, tmp_path):
    from appliance.config import DataSettings, KeySettings, Settings
    from appliance.control.keys import KeyRing

    def ring(*names):
        return KeyRing(Settings(data=DataSettings(tmp_path), keys=KeySettings(
            recipients=tuple(clinic / name / "recipient.pub" for name in names),
            device_key=clinic / "device" / "device.key")))
    assert ring("a", "b").problem() is None
    assert "mix post-quantum (xwing) and classical (p256)" in ring("a", "old").problem()
