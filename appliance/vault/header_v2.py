"""Vault header version 2: typed, variable-length recipient stanzas that can be rewritten
without touching the body (docs/vault-format.md#header-version-2).

    fixed  = magic (8) | version 2 (1) | flags 0 (1) | segment_size (4) | recording_id (16)
    header = fixed | header_length (4) | recipient_count n (1) | n x stanza | header_mac (32)
    stanza = type_length (1) | type (ASCII: "xwing", "p256") | key_id (8) | body_length (2) | body
    body   = HPKE enc || sealed data key;  info = "treatment-vault v2 data key" || recording_id
    header_mac = HMAC-SHA256(HKDF-SHA256(data_key, salt "", info "treatment-vault v2 header mac"),
                             every header byte before it)

The body is bound to `fixed` only (its associated data is SHA-256(fixed)); the stanzas are
bound to the data key by the MAC, as in age. So a key holder can add or remove recipients
(rewrap) and the body stays byte-identical, while anyone without the data key who edits,
drops, reorders or transplants a stanza is caught by the MAC.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from appliance.errors import BadInput, IntegrityError
from appliance.vault import recipients, stream
from appliance.vault.header import MAGIC, MAX_RECIPIENTS, RECORDING_ID_SIZE, Stanza, unwrap_stanzas

VERSION = 2
_FIXED = struct.Struct(">8sBBI16s")
FIXED_LENGTH = _FIXED.size  # 30
_COUNTS = struct.Struct(">IB")
MAC_SIZE = 32
MIN_LENGTH = FIXED_LENGTH + _COUNTS.size + MAC_SIZE
MAX_LENGTH = 1 << 20
MAX_STANZA_BODY = 0xFFFF
HPKE_INFO_LABEL = b"treatment-vault v2 data key"
MAC_KEY_INFO = b"treatment-vault v2 header mac"


def hpke_info(recording_id: bytes) -> bytes:
    return HPKE_INFO_LABEL + recording_id


def mac_key(data_key: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=MAC_KEY_INFO).derive(data_key)


def _encode_stanza(stanza: Stanza) -> bytes:
    kind = stanza.kind.encode("ascii")
    return bytes([len(kind)]) + kind + stanza.key_id + struct.pack(">H", len(stanza.wrapped)) + stanza.wrapped


@dataclass(frozen=True)
class VaultHeaderV2:
    recording_id: bytes
    stanzas: tuple[Stanza, ...]
    mac: bytes
    segment_size: int = stream.SEGMENT_SIZE
    version: int = VERSION

    @property
    def fixed(self) -> bytes:
        return _FIXED.pack(MAGIC, VERSION, 0, self.segment_size, self.recording_id)

    def _before_mac(self) -> bytes:
        stanzas = b"".join(_encode_stanza(s) for s in self.stanzas)
        length = FIXED_LENGTH + _COUNTS.size + len(stanzas) + MAC_SIZE
        return self.fixed + _COUNTS.pack(length, len(self.stanzas)) + stanzas

    def encode(self) -> bytes:
        return self._before_mac() + self.mac

    @property
    def length(self) -> int:
        return len(self._before_mac()) + MAC_SIZE

    @property
    def body_associated_data(self) -> bytes:
        return hashlib.sha256(self.fixed).digest()

    def unwrap(self, identity) -> bytes:
        """The data key, after checking the header MAC with it (IntegrityError if it fails)."""
        data_key = unwrap_stanzas(self.stanzas, identity, hpke_info(self.recording_id))
        if not hmac.compare_digest(_mac(data_key, self._before_mac()), self.mac):
            raise IntegrityError("the vault header's MAC failed: its recipient list was modified")
        return data_key

    def rewrapped(self, data_key: bytes, *, add=(), remove=(), allow_mixed: bool = False) -> "VaultHeaderV2":
        """A header for the same body with recipients added (public keys) or removed (key ids)."""
        stanzas = [s for s in self.stanzas if s.key_id not in set(remove)]
        missing = set(remove) - {s.key_id for s in self.stanzas}
        if missing:
            raise BadInput(f"no recipient with key id {', '.join(sorted(k.hex() for k in missing))} in this vault")
        present = {(s.kind, s.key_id) for s in stanzas}
        for public_key in add:
            if (recipients.kind_of(public_key), recipients.key_id(public_key)) in present:
                raise BadInput(f"key id {recipients.key_id(public_key).hex()} is already a recipient")
            stanzas.append(_seal_stanza(public_key, self.recording_id, data_key))
        return _finish(self.recording_id, stanzas, data_key, allow_mixed)


def _mac(data_key: bytes, header_bytes: bytes) -> bytes:
    return hmac.new(mac_key(data_key), header_bytes, hashlib.sha256).digest()


def _seal_stanza(public_key, recording_id: bytes, data_key: bytes) -> Stanza:
    return Stanza(recipients.kind_of(public_key), recipients.key_id(public_key),
                  recipients.wrap(data_key, public_key, hpke_info(recording_id)))


def _finish(recording_id: bytes, stanzas: list[Stanza], data_key: bytes, allow_mixed: bool) -> VaultHeaderV2:
    if not 1 <= len(stanzas) <= MAX_RECIPIENTS:
        raise BadInput(f"a vault needs 1 to {MAX_RECIPIENTS} recipients, got {len(stanzas)}")
    recipients.check_mix([s.kind for s in stanzas], allow_mixed)
    unsigned = VaultHeaderV2(recording_id, tuple(stanzas), b"")
    return VaultHeaderV2(recording_id, tuple(stanzas), _mac(data_key, unsigned._before_mac()))


def seal_header(public_keys, recording_id: bytes, data_key: bytes, *, allow_mixed: bool = False) -> VaultHeaderV2:
    if len(recording_id) != RECORDING_ID_SIZE:
        raise ValueError("recording_id must be 16 bytes")
    public_keys = list(public_keys)
    if not 1 <= len(public_keys) <= MAX_RECIPIENTS:
        raise BadInput(f"a vault needs 1 to {MAX_RECIPIENTS} recipients, got {len(public_keys)}")
    recipients.check_mix([recipients.kind_of(k) for k in public_keys], allow_mixed)
    return _finish(recording_id, [_seal_stanza(k, recording_id, data_key) for k in public_keys],
                   data_key, allow_mixed)


def parse(start: bytes, read) -> VaultHeaderV2:
    """Parses a v2 header whose first 9 bytes (magic, version) are `start`."""
    rest_of_fixed = read(FIXED_LENGTH + _COUNTS.size - len(start))
    fixed = start + rest_of_fixed
    if len(fixed) < FIXED_LENGTH + _COUNTS.size:
        raise IntegrityError("vault header is truncated")
    _, _, flags, segment_size, recording_id = _FIXED.unpack(fixed[:FIXED_LENGTH])
    length, count = _COUNTS.unpack(fixed[FIXED_LENGTH:])
    if flags != 0 or segment_size != stream.SEGMENT_SIZE or not 1 <= count <= MAX_RECIPIENTS \
            or not MIN_LENGTH <= length <= MAX_LENGTH:
        raise IntegrityError("vault header is malformed (flags, segment size, length or recipient count)")
    rest = read(length - len(fixed))
    if len(rest) != length - len(fixed):
        raise IntegrityError("vault header is truncated")
    stanzas, position, body_end = [], 0, len(rest) - MAC_SIZE
    for _ in range(count):
        stanza, position = _parse_stanza(rest, position, body_end)
        stanzas.append(stanza)
    if position != body_end:
        raise IntegrityError("vault header is malformed (its length disagrees with its stanzas)")
    return VaultHeaderV2(recording_id, tuple(stanzas), rest[body_end:], segment_size)


def _parse_stanza(data: bytes, position: int, end: int) -> tuple[Stanza, int]:
    malformed = IntegrityError("vault header is malformed (a recipient stanza is cut or invalid)")
    if position >= end:
        raise malformed
    kind_length = data[position]
    kind_end = position + 1 + kind_length
    if not 1 <= kind_length <= 16 or kind_end + recipients.KEY_ID_SIZE + 2 > end:
        raise malformed
    kind = data[position + 1:kind_end]
    if not all(0x21 <= c <= 0x7E for c in kind):
        raise malformed
    key_id = data[kind_end:kind_end + recipients.KEY_ID_SIZE]
    (body_length,) = struct.unpack_from(">H", data, kind_end + recipients.KEY_ID_SIZE)
    body_start = kind_end + recipients.KEY_ID_SIZE + 2
    if body_start + body_length > end:
        raise malformed
    kind_name = kind.decode("ascii")
    if kind_name in recipients.KINDS and body_length != recipients.WRAPPED_KEY_SIZES[kind_name]:
        raise malformed
    return Stanza(kind_name, key_id, data[body_start:body_start + body_length]), body_start + body_length
