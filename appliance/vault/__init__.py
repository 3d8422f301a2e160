"""The sealed recording vault: streaming AES-256-GCM (Tink's AES-GCM-HKDF layout), data key
wrapped to recipients with HPKE, signed sidecar manifest. Specification: docs/vault-format.md.

    w = vault.encrypt(dst, recipients); w.write(...); sealed = w.close()
    vault.write_manifest(path, device_key, metadata={...}, sealed=sealed)
    vault.verify(path, device_public_key)          # no secret needed
    vault.open_reader(path, identity)              # seekable plaintext, .finalized
"""

from __future__ import annotations

from pathlib import Path

from appliance.errors import BadInput, IntegrityError
from appliance.vault import keys
from appliance.vault.manifest import Verification, mark_interrupted, read_signed, verify, write_manifest
from appliance.vault.reader import VaultReader
from appliance.vault.writer import SealedStream, VaultWriter, encrypt

__all__ = ["encrypt", "write_manifest", "verify", "mark_interrupted", "open_reader", "keys",
           "SealedStream", "Verification", "VaultWriter", "VaultReader"]


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
        torn_tail_ok = state == "interrupted" and signed.get("ciphertext_length") == _size(path)
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        raise BadInput(f"vault {path} does not exist") from None
    except OSError as error:
        raise BadInput(f"cannot read vault {path}: {error.strerror}") from None
    try:
        reader = VaultReader(handle, identity, torn_tail_ok=torn_tail_ok, owns_source=True)
    except BaseException:
        handle.close()
        raise
    if state == "sealed" and not reader.finalized:
        reader.close()
        raise IntegrityError("the vault is sealed but its last segment is missing: it was cut (tampered)")
    return reader


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None
