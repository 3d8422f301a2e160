"""The vault format in process: round trips, tamper and truncation detection, Tink cross-check."""

from __future__ import annotations

import hashlib
import io
import os

import pytest
import tink
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance import vault
from appliance.errors import ApplianceError, BadInput, IntegrityError
from appliance.vault import header as vault_header
from appliance.vault import header_v2, stream

FAST = settings(deadline=None, max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])

# Plaintext sizes where a segment fills exactly (first segment, then each following one).
BOUNDARIES = [0] + [stream.FIRST_SEGMENT_PLAINTEXT + k * stream.SEGMENT_PLAINTEXT for k in range(4)]


@pytest.fixture(scope="module")
def identity():
    return ec.generate_private_key(ec.SECP256R1())


def pattern(size: int) -> bytes:
    """Plaintext whose every 32-byte block differs, so a misplaced block cannot go unnoticed."""
    blocks = (hashlib.sha256(i.to_bytes(8, "big")).digest() for i in range(size // 32 + 1))
    return b"".join(blocks)[:size]


def seal(plaintext: bytes, recipients, chunk: int = 1 << 20) -> bytes:
    out = io.BytesIO()
    writer = vault.encrypt(out, recipients)
    for start in range(0, len(plaintext), chunk):
        writer.write(plaintext[start:start + chunk])
    writer.close()
    return out.getvalue()


def decrypt_all(data: bytes, key, **options) -> tuple[bytes, bool]:
    reader = vault.open_reader(io.BytesIO(data), key, **options)
    return reader.read(), reader.finalized


def body_offset(data: bytes) -> int:
    return vault_header.read_header(io.BytesIO(data).read).length


def segments_of(data: bytes) -> tuple[bytes, list[bytes]]:
    """Splits a vault into (headers, ciphertext segments)."""
    start = body_offset(data)
    body = data[start:]
    count = stream.segment_count(len(body))
    segments = [body[stream.segment_start(i):stream.segment_start(i) + stream.segment_length(i, len(body))]
                for i in range(count)]
    return data[:start + stream.HEADER_LENGTH], segments


@FAST
@given(boundary=st.sampled_from(BOUNDARIES), delta=st.integers(-2, 2), chunk=st.integers(1, 70_000))
def test_round_trip_around_every_segment_boundary(identity, boundary, delta, chunk):
    size = max(0, boundary + delta)
    plaintext = pattern(size)
    data = seal(plaintext, [identity.public_key()], chunk)
    assert decrypt_all(data, identity) == (plaintext, True)


@FAST
@given(size=st.integers(0, 3 * stream.SEGMENT_SIZE), position=st.floats(0, 1), length=st.integers(0, 140_000))
def test_random_access_reads_match_the_plaintext(identity, size, position, length):
    plaintext = pattern(size)
    reader = vault.open_reader(io.BytesIO(seal(plaintext, [identity.public_key()])), identity)
    offset = int(position * size)
    reader.seek(offset)
    got = b""
    while len(got) < length and (piece := reader.read(length - len(got))):
        got += piece
    assert got == plaintext[offset:offset + length]
    assert reader.plaintext_length == size


def test_every_recipient_can_decrypt_and_others_cannot(identity):
    escrow = ec.generate_private_key(ec.SECP256R1())
    stranger = ec.generate_private_key(ec.SECP256R1())
    data = seal(b"treatment video", [identity.public_key(), escrow.public_key()])
    assert decrypt_all(data, identity)[0] == decrypt_all(data, escrow)[0] == b"treatment video"
    with pytest.raises(BadInput, match="not a recipient"):
        decrypt_all(data, stranger)


THREE_SEGMENTS = pattern(2 * stream.SEGMENT_PLAINTEXT + 1000)


@pytest.fixture(scope="module")
def three_segment_vault(identity):
    return seal(THREE_SEGMENTS, [identity.public_key()])


@FAST
@given(where=st.floats(0, 1, exclude_max=True), bit=st.integers(0, 7))
def test_a_flipped_bit_anywhere_is_detected_and_names_its_segment(identity, three_segment_vault, where, bit):
    data = bytearray(three_segment_vault)
    offset = int(where * len(data))
    data[offset] ^= 1 << bit
    with pytest.raises(ApplianceError) as caught:
        decrypt_all(bytes(data), identity)
    body = body_offset(three_segment_vault) + stream.HEADER_LENGTH
    if offset >= body:
        stream_offset = offset - body_offset(three_segment_vault)
        segment = 0 if stream_offset < stream.SEGMENT_SIZE else stream_offset // stream.SEGMENT_SIZE
        assert isinstance(caught.value, IntegrityError)
        assert f"segment {segment} failed authentication" in str(caught.value)


def test_a_flipped_bit_in_any_header_byte_is_detected(identity, three_segment_vault):
    for offset in range(body_offset(three_segment_vault) + stream.HEADER_LENGTH):
        data = bytearray(three_segment_vault)
        data[offset] ^= 0x04
        with pytest.raises(ApplianceError):
            decrypt_all(bytes(data), identity)


@FAST
@given(where=st.floats(0, 1, exclude_max=True))
def test_truncation_at_any_offset_is_detected(identity, three_segment_vault, where):
    cut = int(where * len(three_segment_vault))
    try:
        plaintext, finalized = decrypt_all(three_segment_vault[:cut], identity)
    except ApplianceError:
        return
    assert not finalized and len(plaintext) < len(THREE_SEGMENTS)


def test_cut_at_a_segment_boundary_reads_as_an_unfinalized_prefix(identity, three_segment_vault):
    headers, segments = segments_of(three_segment_vault)
    plaintext, finalized = decrypt_all(headers + b"".join(segments[:2]), identity)
    assert not finalized
    assert plaintext == THREE_SEGMENTS[:len(plaintext)] and len(plaintext) == 2 * stream.SEGMENT_PLAINTEXT - 40


@pytest.mark.parametrize("rearrange", [
    lambda s: [s[0], s[2], s[1], s[3]],
    lambda s: [s[0], s[1], s[1], s[2], s[3]],
    lambda s: [s[0], s[2], s[3]],
    lambda s: [s[1], s[0], s[2], s[3]],
    lambda s: [s[0], s[1], s[2], s[3], s[3]],
], ids=["reordered", "duplicated", "dropped", "first-two-swapped", "last-duplicated"])
def test_reordered_duplicated_or_dropped_segments_are_detected(identity, rearrange):
    plaintext = pattern(3 * stream.SEGMENT_PLAINTEXT + 5)
    headers, segments = segments_of(seal(plaintext, [identity.public_key()]))
    assert len(segments) == 4
    forged = headers + b"".join(rearrange(segments))
    with pytest.raises(IntegrityError, match="segment [0-9]+ failed authentication") as caught:
        decrypt_all(forged, identity)
    named = int(str(caught.value).split()[1])
    # The named segment is one whose bytes at that position are not the original ones.
    _, forged_segments = segments_of(forged)
    assert named >= len(segments) or forged_segments[named] != segments[named]


def test_swapping_headers_between_two_files_is_detected(identity):
    first = seal(pattern(100_000), [identity.public_key()])
    second = seal(pattern(100_000), [identity.public_key()])
    start = body_offset(first)
    for forged in (first[:start] + second[start:], first[:start + stream.HEADER_LENGTH] + second[start + 40:]):
        with pytest.raises(IntegrityError, match="segment 0 failed authentication.*header does not belong"):
            decrypt_all(forged, identity)


def test_not_a_vault_and_unknown_version_are_bad_input(identity, three_segment_vault):
    with pytest.raises(BadInput, match="not a vault file"):
        decrypt_all(b"\x00\x00\x00 an mp4 file" * 10, identity)
    newer = bytearray(three_segment_vault)
    newer[len(vault_header.MAGIC)] = 3
    with pytest.raises(BadInput, match="unsupported vault version 3"):
        decrypt_all(bytes(newer), identity)


def test_a_torn_last_segment_is_tampering_unless_the_file_is_known_interrupted(identity, three_segment_vault):
    headers, segments = segments_of(three_segment_vault)
    torn = headers + segments[0] + segments[1][:1000]
    with pytest.raises(IntegrityError, match="segment 1 failed authentication"):
        decrypt_all(torn, identity)
    reader = vault.open_reader(io.BytesIO(torn), identity, torn_tail_ok=True)
    assert (reader.read(), reader.finalized, reader.torn_tail_bytes) == (
        THREE_SEGMENTS[:stream.FIRST_SEGMENT_PLAINTEXT], False, 1000)


def test_writer_keeps_at_most_one_segment_and_writes_each_full_segment_at_once(identity):
    out = io.BytesIO()
    writer = vault.encrypt(out, [identity.public_key()])
    after_header = len(out.getvalue())
    writer.write(pattern(stream.FIRST_SEGMENT_PLAINTEXT - 1))
    assert len(out.getvalue()) == after_header
    writer.write(b"x")
    assert len(out.getvalue()) == after_header + stream.SEGMENT_SIZE - stream.HEADER_LENGTH
    writer.write(pattern(5 * stream.SEGMENT_PLAINTEXT + 7))
    assert len(out.getvalue()) == after_header - stream.HEADER_LENGTH + 6 * stream.SEGMENT_SIZE
    sealed = writer.close()
    data = out.getvalue()
    assert (sealed.ciphertext_length, sealed.segments) == (len(data), 7)
    header_length = vault.read_header(io.BytesIO(data).read).length
    body_sha256 = hashlib.sha256(data[header_length:]).digest()
    assert sealed.body_sha256 == body_sha256.hex()
    assert sealed.file_digest == hashlib.sha256(data[:header_length] + body_sha256).hexdigest()
    assert sealed.plaintext_length == 6 * stream.SEGMENT_PLAINTEXT - 40 + 7


def test_a_writer_left_by_an_exception_is_not_sealed(identity):
    out = io.BytesIO()
    with pytest.raises(RuntimeError):
        with vault.encrypt(out, [identity.public_key()]) as writer:
            writer.write(pattern(stream.FIRST_SEGMENT_PLAINTEXT + 10))
            raise RuntimeError("encoder failed")
    plaintext, finalized = decrypt_all(out.getvalue(), identity)
    assert not finalized and plaintext == pattern(stream.FIRST_SEGMENT_PLAINTEXT)


# Tink cross-check: the body is Tink's AES-GCM-HKDF streaming layout with 64 KiB segments.


@pytest.fixture(scope="module")
def tink_streaming_aead():
    from tink import secret_key_access, streaming_aead
    from tink.proto import aes_gcm_hkdf_streaming_pb2, common_pb2, tink_pb2

    streaming_aead.register()

    def primitive(raw_key: bytes):
        key = aes_gcm_hkdf_streaming_pb2.AesGcmHkdfStreamingKey(
            version=0, key_value=raw_key,
            params=aes_gcm_hkdf_streaming_pb2.AesGcmHkdfStreamingParams(
                ciphertext_segment_size=stream.SEGMENT_SIZE, derived_key_size=32,
                hkdf_hash_type=common_pb2.SHA256))
        keyset = tink_pb2.Keyset(primary_key_id=1, key=[tink_pb2.Keyset.Key(
            key_data=tink_pb2.KeyData(
                type_url="type.googleapis.com/google.crypto.tink.AesGcmHkdfStreamingKey",
                value=key.SerializeToString(), key_material_type=tink_pb2.KeyData.SYMMETRIC),
            status=tink_pb2.ENABLED, key_id=1, output_prefix_type=tink_pb2.RAW)])
        handle = tink.proto_keyset_format.parse(keyset.SerializeToString(), secret_key_access.TOKEN)
        return handle.primitive(streaming_aead.StreamingAead)

    return primitive


class KeepOpen(io.BytesIO):
    def close(self):  # Tink closes its destination; the test still needs the bytes
        pass


TINK_SIZES = [0, 1, stream.FIRST_SEGMENT_PLAINTEXT, stream.FIRST_SEGMENT_PLAINTEXT + 1,
              stream.FIRST_SEGMENT_PLAINTEXT + stream.SEGMENT_PLAINTEXT, 300_000]


@pytest.mark.parametrize("size", TINK_SIZES)
def test_tink_decrypts_our_body(identity, tink_streaming_aead, size):
    plaintext = pattern(size)
    data = seal(plaintext, [identity.public_key()])
    header = vault_header.read_header(io.BytesIO(data).read)
    aead = tink_streaming_aead(header.unwrap(identity))
    with aead.new_decrypting_stream(io.BytesIO(data[header.length:]), header.body_associated_data) as decrypting:
        assert decrypting.read() == plaintext


@pytest.mark.parametrize("size", TINK_SIZES)
def test_we_decrypt_tinks_body(identity, tink_streaming_aead, size):
    plaintext = pattern(size)
    data_key = os.urandom(32)
    header = header_v2.seal_header([identity.public_key()], os.urandom(16), data_key)
    body = KeepOpen()
    with tink_streaming_aead(data_key).new_encrypting_stream(body, header.body_associated_data) as encrypting:
        encrypting.write(plaintext)
    assert decrypt_all(header.encode() + body.getvalue(), identity) == (plaintext, True)


def test_an_unbuffered_destination_taking_short_writes_gets_every_byte(identity):
    class ShortWrites(io.RawIOBase):
        def __init__(self):
            self.data = bytearray()

        def writable(self):
            return True

        def write(self, chunk):
            taken = bytes(chunk[:1000])
            self.data += taken
            return len(taken)

    plaintext = pattern(2 * stream.SEGMENT_PLAINTEXT)
    sink = ShortWrites()
    writer = vault.encrypt(sink, [identity.public_key()])
    writer.write(plaintext)
    sealed = writer.close()
    assert sealed.ciphertext_length == len(sink.data)
    assert decrypt_all(bytes(sink.data), identity) == (plaintext, True)
