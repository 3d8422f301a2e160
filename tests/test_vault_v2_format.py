"""Version 2 in process: round trips with 1-16 recipients of both kinds, the mixed-recipient
rule, and tampering -- every bit flip, every truncation, stanza reorder, stanza and header
transplants between files -- refused before any plaintext comes out."""

from __future__ import annotations

import io
import os

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance import vault
from appliance.errors import ApplianceError, BadInput, IntegrityError
from appliance.vault import header_v2

FAST = settings(deadline=None, max_examples=20, suppress_health_check=[HealthCheck.function_scoped_fixture])
POOL = 16


@pytest.fixture(scope="module")
def xwing_keys():
    return [vault.XWingPrivateKey.generate() for _ in range(POOL)]


@pytest.fixture(scope="module")
def p256_keys():
    return [ec.generate_private_key(ec.SECP256R1()) for _ in range(POOL)]


def seal(plaintext: bytes, public_keys, **options) -> bytes:
    out = io.BytesIO()
    writer = vault.encrypt(out, public_keys, **options)
    writer.write(plaintext)
    writer.close()
    return out.getvalue()


def open_all(data: bytes, identity) -> bytes:
    with vault.open_reader(io.BytesIO(data), identity) as reader:
        assert reader.finalized
        return reader.read()


def header_of(data: bytes):
    return vault.read_header(io.BytesIO(data).read)


def stanza_spans(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of each stanza in the file, from the documented layout."""
    spans, at = [], header_v2.FIXED_LENGTH + 5
    for stanza in header_of(data).stanzas:
        end = at + 1 + len(stanza.kind) + 8 + 2 + len(stanza.wrapped)
        spans.append((at, end))
        at = end
    return spans


@FAST
@given(kind=st.sampled_from(["xwing", "p256"]), count=st.integers(1, 16), size=st.integers(0, 140_000),
       data=st.data())
def test_every_recipient_of_one_kind_decrypts(xwing_keys, p256_keys, kind, count, size, data):
    chosen = data.draw(st.permutations(range(POOL)))[:count]
    identities = [(xwing_keys if kind == "xwing" else p256_keys)[i] for i in chosen]
    plaintext = os.urandom(size)
    sealed = seal(plaintext, [key.public_key() for key in identities])
    header = header_of(sealed)
    assert header.version == 2 and [s.kind for s in header.stanzas] == [kind] * count
    assert [s.key_id for s in header.stanzas] == [vault.key_id(key.public_key()) for key in identities]
    for identity in identities:
        assert open_all(sealed, identity) == plaintext
    outsider = (xwing_keys if kind == "xwing" else p256_keys)[[i for i in range(POOL) if i not in chosen][0]] \
        if count < POOL else vault.XWingPrivateKey.generate()
    with pytest.raises(BadInput, match="not a recipient"):
        open_all(sealed, outsider)


@FAST
@given(kinds=st.lists(st.sampled_from(["xwing", "p256"]), min_size=2, max_size=16))
def test_mixed_recipients_are_refused_unless_allowed(xwing_keys, p256_keys, kinds):
    public_keys = [(xwing_keys if kind == "xwing" else p256_keys)[i].public_key() for i, kind in enumerate(kinds)]
    if len(set(kinds)) == 1:
        assert header_of(seal(b"x", public_keys)).stanzas
        return
    with pytest.raises(BadInput, match="mix post-quantum"):
        vault.encrypt(io.BytesIO(), public_keys)
    sealed = seal(b"mixed on purpose", public_keys, allow_mixed=True)
    for i, kind in enumerate(kinds):
        assert open_all(sealed, (xwing_keys if kind == "xwing" else p256_keys)[i]) == b"mixed on purpose"


def test_no_or_seventeen_recipients_are_refused(xwing_keys):
    with pytest.raises(BadInput, match="1 to 16"):
        vault.encrypt(io.BytesIO(), [])
    with pytest.raises(BadInput, match="1 to 16"):
        vault.encrypt(io.BytesIO(), [k.public_key() for k in xwing_keys] + [vault.XWingPrivateKey.generate().public_key()])


@pytest.fixture(scope="module")
def small_mixed(xwing_keys, p256_keys):
    """One X-Wing and one P-256 recipient (both stanza kinds), a one-segment body."""
    return seal(b"a short recording", [xwing_keys[0].public_key(), p256_keys[0].public_key()], allow_mixed=True)


def test_every_single_bit_flip_is_refused(small_mixed, xwing_keys, p256_keys):
    for identity in (xwing_keys[0], p256_keys[0]):
        survivors = []
        for bit in range(len(small_mixed) * 8):
            flipped = bytearray(small_mixed)
            flipped[bit // 8] ^= 1 << (bit % 8)
            try:
                open_all(bytes(flipped), identity)
            except ApplianceError:
                continue
            survivors.append(bit)
        assert survivors == []


def test_every_truncation_is_refused(small_mixed, xwing_keys):
    for length in range(len(small_mixed)):
        with pytest.raises(ApplianceError):
            open_all(small_mixed[:length], xwing_keys[0])


def test_reordered_stanzas_fail_the_header_mac(small_mixed, xwing_keys, p256_keys):
    (a_start, a_end), (b_start, b_end) = stanza_spans(small_mixed)
    reordered = small_mixed[:a_start] + small_mixed[b_start:b_end] + small_mixed[a_start:a_end] + small_mixed[b_end:]
    for identity in (xwing_keys[0], p256_keys[0]):
        with pytest.raises(IntegrityError, match="header's MAC failed"):
            open_all(reordered, identity)


def test_a_stanza_from_another_file_is_refused(xwing_keys):
    recipients = [xwing_keys[0].public_key(), xwing_keys[1].public_key()]
    first, second = seal(b"first recording", recipients), seal(b"second recording", recipients)
    for which in range(2):
        (start, end), (other_start, other_end) = stanza_spans(first)[which], stanza_spans(second)[which]
        assert end - start == other_end - other_start
        transplanted = first[:start] + second[other_start:other_end] + first[end:]
        for identity in xwing_keys[:2]:
            with pytest.raises(IntegrityError):
                open_all(transplanted, identity)


def test_a_header_on_another_files_body_is_refused(xwing_keys):
    recipients = [xwing_keys[0].public_key()]
    first, second = seal(b"first" * 30_000, recipients), seal(b"second" * 30_000, recipients)
    length = header_of(first).length
    assert header_of(second).length == length
    with pytest.raises(IntegrityError, match="segment 0 failed"):
        open_all(first[:length] + second[length:], xwing_keys[0])


def test_unknown_stanza_types_are_kept_under_the_mac_skipped_and_survive_a_rewrap(xwing_keys, tmp_path):
    data_key, recording_id = os.urandom(32), os.urandom(16)
    header = header_v2.seal_header([xwing_keys[0].public_key()], recording_id, data_key)
    future = vault.header.Stanza("mlkem1024", b"\x01" * 8, os.urandom(1616))
    extended = header_v2.VaultHeaderV2(recording_id, header.stanzas + (future,), b"")
    extended = header_v2.VaultHeaderV2(recording_id, extended.stanzas,
                                       header_v2._mac(data_key, extended._before_mac()))
    out = io.BytesIO()
    writer = vault.VaultWriter(out, extended, data_key, fsync_every=0)
    writer.write(b"from a later version")
    writer.close()
    assert [s.kind for s in header_of(out.getvalue()).stanzas] == ["xwing", "mlkem1024"]
    assert open_all(out.getvalue(), xwing_keys[0]) == b"from a later version"
    path = tmp_path / "later.vault"
    path.write_bytes(out.getvalue())
    vault.rewrap(path, xwing_keys[0], add=[xwing_keys[1].public_key()])
    assert [s.kind for s in header_of(path.read_bytes()).stanzas] == ["xwing", "mlkem1024", "xwing"]
    assert open_all(path.read_bytes(), xwing_keys[1]) == b"from a later version"
