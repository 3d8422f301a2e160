"""The signed sidecar manifest `<vault>.manifest`: what the appliance vouches for.

Format 2 (written now) signs the parts of the vault no rewrap changes -- the fixed header
(version, recording id) and the body (stream salt included) by SHA-256 and length -- plus the
recipients and file digest (digest.py) at signing time; its signature is hybrid (signing.py). A vault
whose recipients were rewritten since still verifies, and the result says so. Format 1
(ECDSA only, whole-file hash) is still verified. canonical = json.dumps(signed, sort_keys=True,
separators=(",", ":"), ensure_ascii=True). Verification needs no secret.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from appliance.atomic import write_atomically
from appliance.errors import BadInput
from appliance.vault import header as vault_header
from appliance.vault import identity_card, manifest_v1, signing, stream
from appliance.vault.digest import VaultDigest, file_digest
from appliance.vault.writer import SealedStream

FORMAT = "treatment-vault-manifest/2"
FORMAT_V1 = manifest_v1.FORMAT
STATES = ("sealed", "interrupted")


@dataclass(frozen=True)
class Verification:
    ok: bool
    state: str | None                 # "sealed" | "interrupted" | None (no usable manifest)
    problem: str | None               # one line when not ok
    recording_id: str | None = None
    device_key_id: str | None = None
    device_pinned: bool = False       # True when checked against a given device public key
    ciphertext_length: int | None = None
    segments: int | None = None
    metadata: dict = field(default_factory=dict)
    signature: str | None = None      # which algorithms signed, e.g. "ECDSA P-256 + ML-DSA-65"
    note: str | None = None           # e.g. the recipients were rewritten since signing
    file_digest: str | None = None    # the file digest as signed (digest.py; format 1: whole-file SHA-256)


def manifest_path(vault_path: Path) -> Path:
    vault_path = Path(vault_path)
    return vault_path.with_name(vault_path.name + ".manifest")


def canonical(signed: dict) -> bytes:
    return json.dumps(signed, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def fixed_header_sha256(header) -> str:
    """The header bytes no rewrap changes: version 2's fixed part, version 1's whole header."""
    return hashlib.sha256(header.fixed if header.version == 2 else header.encode()).hexdigest()


def recipient_list(header) -> list[str]:
    return [f"{s.kind}:{s.key_id.hex()}" for s in header.stanzas]


def read_vault_header(path: Path):
    with vault_header.open_vault(path) as source:
        return vault_header.read_header(source.read)


def write_manifest(vault_path: Path, device_key, *, state: str = "sealed", metadata: dict | None = None,
                   sealed: SealedStream | None = None) -> Path:
    """Signs and writes `<vault_path>.manifest` (format 2) atomically. `sealed` (from
    VaultWriter.close()) saves re-reading the file to hash it when its length still matches."""
    vault_path, device_key = Path(vault_path), signing.as_device_key(device_key)
    if state not in STATES:
        raise ValueError(f"state must be one of {STATES}")
    header = read_vault_header(vault_path)
    if sealed is not None and sealed.ciphertext_length == vault_path.stat().st_size:
        digest = VaultDigest(sealed.file_digest, sealed.body_sha256, sealed.ciphertext_length, header.length)
    else:
        digest = file_digest(vault_path)
    public = device_key.public_key()
    signed = {
        "format": FORMAT,
        "vault_name": vault_path.name,
        "vault_version": header.version,
        "recording_id": header.recording_id.hex(),
        "header_fixed_sha256": fixed_header_sha256(header),
        "header_sha256": hashlib.sha256(header.encode()).hexdigest(),
        "recipients": recipient_list(header),
        "state": state,
        "file_digest": digest.file_digest,
        "ciphertext_length": digest.length,
        "body_sha256": digest.body_sha256,
        "body_length": digest.body_length,
        "segments": stream.segment_count(digest.body_length),
        "metadata": dict(metadata or {}),
        "signed_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device_key_id": public.key_id,
        "device_public_keys": {name: base64.b64encode(value).decode()
                               for name, value in public.der_by_algorithm().items()},
    }
    document = {"signed": signed, "signatures": device_key.sign(canonical(signed))}
    path = manifest_path(vault_path)
    write_atomically(path, json.dumps(document, indent=2, sort_keys=True).encode() + b"\n")
    return path


def read_manifest(vault_path: Path) -> tuple[dict | None, signing.DevicePublicKey | None, str | None]:
    """(signed fields, the device key that signed them, None) when every signature holds,
    else (None, None, problem)."""
    path = manifest_path(vault_path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None, None, f"no manifest ({path.name}): the recording was never sealed or marked interrupted"
    except OSError:
        return None, None, f"manifest {path.name} is malformed"
    return parse_manifest(data, path.name)


def parse_manifest(data: bytes, name: str) -> tuple[dict | None, signing.DevicePublicKey | None, str | None]:
    """read_manifest for a manifest's bytes (e.g. a copy in the archive) called `name` in problems."""
    try:
        document = json.loads(data)
        signed = document["signed"]
        if signed.get("format") == FORMAT_V1:
            public = manifest_v1.check_signature(document)
            problem = None if public else "manifest signature is invalid: the manifest was modified"
            return (signed, signing.as_device_public(public), None) if public else (None, None, problem)
        if signed.get("format") != FORMAT:
            return None, None, f"manifest {name} is not a {FORMAT} manifest"
        public = signing.public_from_der({name: base64.b64decode(value, validate=True)
                                          for name, value in signed["device_public_keys"].items()})
        signatures = document["signatures"]
        if not isinstance(signatures, dict):
            raise TypeError
    except (ValueError, KeyError, TypeError, AttributeError):
        return None, None, f"manifest {name} is malformed"
    problem = signing.verify_all(public, signatures, canonical(signed))
    return (None, None, problem) if problem else (signed, public, None)


def read_signed(vault_path: Path) -> tuple[dict | None, str | None]:
    """(signed fields, None) when the manifest's signatures hold, else (None, problem)."""
    signed, _, problem = read_manifest(vault_path)
    return signed, problem


def signed_length_matches(signed: dict, vault_path: Path) -> bool:
    """Whether the body has exactly the signed length (format 1: the whole file)."""
    try:
        if signed.get("format") == FORMAT_V1:
            return signed.get("ciphertext_length") == Path(vault_path).stat().st_size
        return signed.get("body_length") == Path(vault_path).stat().st_size - read_vault_header(vault_path).length
    except (OSError, BadInput):
        return False


def verify(vault_path: Path, device_public_key=None) -> Verification:
    """Checks the manifest's signatures and that the file is what they signed."""
    vault_path = Path(vault_path)
    header = read_vault_header(vault_path)
    signed, public, problem = read_manifest(vault_path)
    if signed is None:
        return Verification(False, None, problem, recording_id=header.recording_id.hex())
    state, pinned = signed["state"], signing.as_device_public(device_public_key)
    facts = dict(recording_id=signed["recording_id"], device_key_id=signed["device_key_id"],
                 device_pinned=pinned is not None, ciphertext_length=signed["ciphertext_length"],
                 segments=signed["segments"], metadata=signed["metadata"],
                 signature=signing.describe(public),
                 file_digest=signed["ciphertext_sha256" if signed["format"] == FORMAT_V1 else "file_digest"])

    def failed(reason: str) -> Verification:
        return Verification(False, state, reason, **facts)

    if pinned is not None and not _pinned_key_signed(pinned, public):
        return failed("manifest was signed by a different device key")
    if state not in STATES:
        return failed(f"manifest state {state!r} is unknown")
    problem = header_problem(signed, header) or content_problem(signed, header, file_digest(vault_path))
    if problem:
        return failed(problem)
    if signed["format"] == FORMAT_V1:
        return Verification(True, state, None, **facts)
    note = None
    if hashlib.sha256(header.encode()).hexdigest() != signed["header_sha256"]:
        now = recipient_list(header)
        note = (f"recipients rewritten since signing (rewrap; body unchanged): signed for "
                f"{', '.join(signed['recipients'])}; now {', '.join(now)}")
    return Verification(True, state, None, note=note, **facts)


def header_problem(signed: dict, header) -> str | None:
    """Whether a format 2 manifest's fixed header fields, and its identity card, name this header
    (format 1: content_problem)."""
    if signed["format"] == FORMAT_V1:
        return None
    card_problem = identity_card.binding_problem(signed)
    if card_problem:
        return card_problem
    if signed["recording_id"] != header.recording_id.hex() or signed["vault_version"] != header.version \
            or signed["header_fixed_sha256"] != fixed_header_sha256(header):
        return "vault header does not match the manifest: the header was replaced"
    return None


def content_problem(signed: dict, header, digest: VaultDigest) -> str | None:
    """Whether the vault with this header and digest holds exactly what `signed` vouches for.
    Takes a digest, so a vault read from anywhere (a file, an archive's stream) is checked alike."""
    if signed["format"] == FORMAT_V1:
        return manifest_v1.check_file(signed, header, digest.file_digest, digest.length)
    # A version 1 body is hashed with its header (which never changes): its file digest pins it.
    content_holds = digest.body_sha256 == signed["body_sha256"] if header.version == 2 \
        else digest.file_digest == signed["file_digest"]
    return _length_problem(signed["body_length"], digest.body_length, signed["state"]) or \
        (None if content_holds else "vault content does not match the manifest's SHA-256: the vault was modified")


def _pinned_key_signed(pinned: signing.DevicePublicKey, public: signing.DevicePublicKey) -> bool:
    """The manifest's keys include every key of the pinned device (a hybrid pin needs both)."""
    signer = public.der_by_algorithm()
    return all(signer.get(name) == value for name, value in pinned.der_by_algorithm().items())


def _length_problem(expected: int, length: int, state: str) -> str | None:
    if length < expected:
        cut = "cut off (a sealed file never loses its end: tampered)" if state == "sealed" else "cut off"
        return f"vault is {expected - length} bytes shorter than its manifest: {cut}"
    if length > expected:
        return f"vault is {length - expected} bytes longer than its manifest: data was appended"
    return None


def mark_interrupted(vault_path: Path, device_key, metadata: dict | None = None) -> Verification:
    """For a vault whose writer never closed: signs it, as it is, as `interrupted`.

    Needs no recipient key. Nothing is cut: a torn last segment cannot be told apart from a
    short last segment without the data key, so the reader decides at decryption time.
    """
    vault_path, device_key = Path(vault_path), signing.as_device_key(device_key)
    if manifest_path(vault_path).exists():
        raise BadInput(f"{vault_path.name} already has a manifest; nothing to recover")
    header = read_vault_header(vault_path)
    stream_length = vault_path.stat().st_size - header.length
    if stream_length < stream.HEADER_LENGTH:
        raise BadInput(f"{vault_path.name} ends inside its headers: no recording data to recover")
    write_manifest(vault_path, device_key, state="interrupted", metadata=metadata)
    return verify(vault_path, device_key.public_key())
