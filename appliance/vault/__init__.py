"""The sealed recording vault: streaming AES-256-GCM (Tink's AES-GCM-HKDF layout), data key
wrapped to recipients with HPKE (X-Wing post-quantum hybrid, or P-256), signed sidecar manifest
(ECDSA P-256 + ML-DSA-65). Specification and this API: docs/vault-format.md.

    w = vault.encrypt(dst, recipients); w.write(...); sealed = w.close()
    vault.write_manifest(path, device_key, metadata={...}, sealed=sealed)
    vault.verify(path, device_public_key)          # no secret needed
    vault.file_digest(path).file_digest            # what the database records and export checks
    vault.open_reader(path, identity)              # seekable plaintext, .finalized
    vault.rewrap(path, identity, add=[pub], remove=[key_id])   # recipients change, body stays
"""

from __future__ import annotations

from pathlib import Path

from appliance.errors import IntegrityError
from appliance.vault import keys, manifest, recipients
from appliance.vault.digest import VaultDigest, file_digest
from appliance.vault.header import open_vault, read_header
from appliance.vault.manifest import Verification, mark_interrupted, read_signed, verify, write_manifest
from appliance.vault.reader import VaultReader
from appliance.vault.recipients import key_id, kind_of
from appliance.vault.rewrap import rewrap
from appliance.vault.signing import DeviceKey, DevicePublicKey
from appliance.vault.writer import SealedStream, VaultWriter, encrypt
from appliance.vault.xwing import XWingPrivateKey, XWingPublicKey

__all__ = ["encrypt", "write_manifest", "verify", "mark_interrupted", "open_reader", "rewrap", "read_header",
           "file_digest", "VaultDigest",
           "keys", "manifest", "recipients", "key_id", "kind_of", "SealedStream", "Verification", "VaultWriter", "VaultReader",
           "DeviceKey", "DevicePublicKey", "XWingPrivateKey", "XWingPublicKey"]


def open_reader(source, identity, *, torn_tail_ok: bool | None = None) -> VaultReader:
    """A seekable plaintext view of a vault. For a path, the signed manifest (when present)
    decides: `interrupted` at the present length accepts a torn last segment; `sealed` makes a
    stream without its last segment an IntegrityError (a sealed file never loses its end)."""
    if not isinstance(source, (str, Path)):
        return VaultReader(source, identity, torn_tail_ok=bool(torn_tail_ok))
    path = Path(source)
    signed, _ = read_signed(path)
    state = signed.get("state") if signed else None
    if torn_tail_ok is None:
        torn_tail_ok = state == "interrupted" and manifest.signed_length_matches(signed, path)
    handle = open_vault(path)
    try:
        reader = VaultReader(handle, identity, torn_tail_ok=torn_tail_ok, owns_source=True)
    except BaseException:
        handle.close()
        raise
    if state == "sealed" and not reader.finalized:
        reader.close()
        raise IntegrityError("the vault is sealed but its last segment is missing: it was cut (tampered)")
    return reader

