"""Format 1 manifests (treatment-vault-manifest/1), verified forever, no longer written:

    {"signed": {..., "header_sha256", "ciphertext_sha256", "ciphertext_length",
                "device_public_key": base64 DER SubjectPublicKeyInfo (P-256)},
     "signature": base64 DER ECDSA-P256-SHA256 over canonical(signed)}

The hashes cover the whole file, header included (a version 1 vault's header never changes).
"""

from __future__ import annotations

import base64
import hashlib
import json

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

FORMAT = "treatment-vault-manifest/1"


def check_signature(document: dict) -> ec.EllipticCurvePublicKey | None:
    """The signing device key when the ECDSA signature holds, else None (ValueError/KeyError
    when the document is malformed)."""
    signed = document["signed"]
    signature = base64.b64decode(document["signature"], validate=True)
    public = serialization.load_der_public_key(base64.b64decode(signed["device_public_key"]))
    if not isinstance(public, ec.EllipticCurvePublicKey) or public.curve.name != "secp256r1":
        raise ValueError("not a P-256 device key")
    message = json.dumps(signed, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    try:
        public.verify(signature, message, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return None
    return public


def check_file(signed: dict, header, sha256: str, length: int) -> str | None:
    """None when the file is exactly what the manifest signed, else the problem."""
    if signed["recording_id"] != header.recording_id.hex() or \
            signed["header_sha256"] != hashlib.sha256(header.encode()).hexdigest():
        return "vault header does not match the manifest: the header was replaced"
    expected = signed["ciphertext_length"]
    if length < expected:
        cut = "cut off (a sealed file never loses its end: tampered)" if signed["state"] == "sealed" else "cut off"
        return f"vault is {expected - length} bytes shorter than its manifest: {cut}"
    if length > expected:
        return f"vault is {length - expected} bytes longer than its manifest: data was appended"
    if sha256 != signed["ciphertext_sha256"]:
        return "vault content does not match the manifest's SHA-256: the vault was modified"
    return None
