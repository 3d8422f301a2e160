"""The signed sidecar manifest `<vault>.manifest`: what the appliance vouches for.

JSON: {"signed": {...}, "signature": base64(DER ECDSA-P256-SHA256 over canonical(signed))},
canonical = json.dumps(signed, sort_keys=True, separators=(",", ":"), ensure_ascii=True).
It pins the exact ciphertext (SHA-256 and length), so verification needs no secret: anyone
with the file can tell sealed, interrupted or tampered. The device public key is embedded so
a manifest verifies on its own; passing the expected device key pins who signed it.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from appliance.errors import BadInput
from appliance.vault import header as vault_header
from appliance.vault import stream
from appliance.atomic import write_atomically
from appliance.vault.writer import SealedStream

FORMAT = "treatment-vault-manifest/1"
STATES = ("sealed", "interrupted")
HASH_CHUNK = 1 << 20


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


def manifest_path(vault_path: Path) -> Path:
    vault_path = Path(vault_path)
    return vault_path.with_name(vault_path.name + ".manifest")


def canonical(signed: dict) -> bytes:
    return json.dumps(signed, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _file_digest(path: Path) -> tuple[str, int]:
    digest, length = hashlib.sha256(), 0
    with open(path, "rb") as source:
        while chunk := source.read(HASH_CHUNK):
            digest.update(chunk)
            length += len(chunk)
    return digest.hexdigest(), length


def _read_vault_header(path: Path) -> vault_header.VaultHeader:
    try:
        with open(path, "rb") as source:
            return vault_header.read_header(source.read)
    except FileNotFoundError:
        raise BadInput(f"vault {path} does not exist") from None
    except OSError as error:
        raise BadInput(f"cannot read vault {path}: {error.strerror}") from None


def _device_public_der(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def write_manifest(vault_path: Path, device_key: ec.EllipticCurvePrivateKey, *, state: str = "sealed",
                   metadata: dict | None = None, sealed: SealedStream | None = None) -> Path:
    """Signs and writes `<vault_path>.manifest` atomically. `sealed` (from VaultWriter.close())
    saves re-reading the file to hash it; the length is still checked against the file."""
    vault_path = Path(vault_path)
    if state not in STATES:
        raise ValueError(f"state must be one of {STATES}")
    header = _read_vault_header(vault_path)
    if sealed is not None and sealed.ciphertext_length == vault_path.stat().st_size:
        sha256, length = sealed.ciphertext_sha256, sealed.ciphertext_length
    else:
        sha256, length = _file_digest(vault_path)
    signed = {
        "format": FORMAT,
        "vault_name": vault_path.name,
        "recording_id": header.recording_id.hex(),
        "header_sha256": hashlib.sha256(header.encode()).hexdigest(),
        "state": state,
        "ciphertext_sha256": sha256,
        "ciphertext_length": length,
        "segments": stream.segment_count(length - header.length),
        "metadata": dict(metadata or {}),
        "signed_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device_key_id": vault_header.key_id(device_key.public_key()).hex(),
        "device_public_key": base64.b64encode(_device_public_der(device_key.public_key())).decode(),
    }
    body = canonical(signed)
    signature = device_key.sign(body, ec.ECDSA(hashes.SHA256()))
    document = {"signed": signed, "signature": base64.b64encode(signature).decode()}
    path = manifest_path(vault_path)
    write_atomically(path, json.dumps(document, indent=2, sort_keys=True).encode() + b"\n")
    return path


def read_signed(vault_path: Path) -> tuple[dict | None, str | None]:
    """(signed fields, None) when the manifest's signature holds, else (None, problem)."""
    path = manifest_path(vault_path)
    try:
        document = json.loads(path.read_bytes())
        signed = document["signed"]
        signature = base64.b64decode(document["signature"], validate=True)
        public = serialization.load_der_public_key(base64.b64decode(signed["device_public_key"]))
    except FileNotFoundError:
        return None, f"no manifest ({path.name}): the recording was never sealed or marked interrupted"
    except (OSError, ValueError, KeyError, TypeError):
        return None, f"manifest {path.name} is malformed"
    if not isinstance(public, ec.EllipticCurvePublicKey) or signed.get("format") != FORMAT:
        return None, f"manifest {path.name} is not a {FORMAT} manifest"
    try:
        public.verify(signature, canonical(signed), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return None, "manifest signature is invalid: the manifest was modified"
    return signed, None


def verify(vault_path: Path, device_public_key: ec.EllipticCurvePublicKey | None = None) -> Verification:
    """Checks the manifest's signature and that the file is exactly what it signed."""
    vault_path = Path(vault_path)
    header = _read_vault_header(vault_path)
    signed, problem = read_signed(vault_path)
    if signed is None:
        return Verification(False, None, problem, recording_id=header.recording_id.hex())
    state = signed["state"]
    facts = dict(recording_id=signed["recording_id"], device_key_id=signed["device_key_id"],
                 device_pinned=device_public_key is not None, ciphertext_length=signed["ciphertext_length"],
                 segments=signed["segments"], metadata=signed["metadata"])

    def failed(reason: str) -> Verification:
        return Verification(False, state, reason, **facts)

    if device_public_key is not None and \
            base64.b64decode(signed["device_public_key"]) != _device_public_der(device_public_key):
        return failed("manifest was signed by a different device key")
    if state not in STATES:
        return failed(f"manifest state {state!r} is unknown")
    if signed["recording_id"] != header.recording_id.hex() or \
            signed["header_sha256"] != hashlib.sha256(header.encode()).hexdigest():
        return failed("vault header does not match the manifest: the header was replaced")
    sha256, length = _file_digest(vault_path)
    expected = signed["ciphertext_length"]
    if length < expected:
        cut = "cut off (a sealed file never loses its end: tampered)" if state == "sealed" else "cut off"
        return failed(f"vault is {expected - length} bytes shorter than its manifest: {cut}")
    if length > expected:
        return failed(f"vault is {length - expected} bytes longer than its manifest: data was appended")
    if sha256 != signed["ciphertext_sha256"]:
        return failed("vault content does not match the manifest's SHA-256: the vault was modified")
    return Verification(True, state, None, **facts)


def mark_interrupted(vault_path: Path, device_key: ec.EllipticCurvePrivateKey,
                     metadata: dict | None = None) -> Verification:
    """For a vault whose writer never closed: signs it, as it is, as `interrupted`.

    Needs no recipient key. Nothing is cut: a torn last segment cannot be told apart from a
    short last segment without the data key, so the reader decides at decryption time.
    """
    vault_path = Path(vault_path)
    if manifest_path(vault_path).exists():
        raise BadInput(f"{vault_path.name} already has a manifest; nothing to recover")
    header = _read_vault_header(vault_path)
    stream_length = vault_path.stat().st_size - header.length
    if stream_length < stream.HEADER_LENGTH:
        raise BadInput(f"{vault_path.name} ends inside its headers: no recording data to recover")
    write_manifest(vault_path, device_key, state="interrupted", metadata=metadata)
    return verify(vault_path, device_key.public_key())
