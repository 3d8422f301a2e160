"""Export: copy a sealed recording (and its signed manifest) elsewhere, then prove the copy.

The copy is written under a temporary name (appliance/atomic.py), read back and hashed; only a
vault copy whose file digest (appliance/vault/digest.py: version 2 SHA-256(header || SHA-256(body)),
version 1 the whole file's SHA-256) equals the recorded one, and a manifest copy whose SHA-256
equals the source manifest's, is synced, renamed into place and reported. The source is never
touched. A recording whose local copy the archive freed (appliance/archive/reclaim.py) is in the
clinic archive only: refused with one line naming its archive object, nothing written.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable

from appliance.atomic import create_atomically
from appliance.errors import BadInput, IntegrityError
from appliance.vault.digest import file_digest

_CHUNK = 1 << 20


class InArchiveOnly(BadInput):
    """The recording's local copy was freed once the clinic archive confirmed it."""


@dataclass(frozen=True)
class ExportResult:
    path: Path
    digest: str      # the vault copy's file digest, verified
    bytes: int


def sha256_of(path: Path) -> str:
    with open(path, "rb") as file:
        return _sha256_of_file(file)


def _sha256_of_file(file: BinaryIO) -> str:
    digest = hashlib.sha256()
    while chunk := file.read(_CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


def _vault_digest_of_file(file: BinaryIO) -> str:
    return file_digest(file).file_digest


def export_file(source: Path, destination_dir: Path, *, expected_digest: str) -> ExportResult:
    """Copies `source` (and `source`.manifest when present) into `destination_dir`, verified."""
    destination_dir = Path(destination_dir)
    if not destination_dir.is_dir():
        raise BadInput(f"export destination is not a directory: {destination_dir}")
    target = destination_dir / source.name
    if target.exists():
        raise BadInput(f"export destination already holds {source.name}")
    copied = _verified_copy(source, target, expected_digest, _vault_digest_of_file)
    manifest = source.with_name(source.name + ".manifest")
    if manifest.exists():
        _verified_copy(manifest, target.with_name(target.name + ".manifest"), sha256_of(manifest), _sha256_of_file)
    return copied


def _verified_copy(source: Path, target: Path, expected: str, digest_of: Callable[[BinaryIO], str]) -> ExportResult:
    with create_atomically(target) as copy, open(source, "rb") as original:
        shutil.copyfileobj(original, copy, _CHUNK)
        copy.flush()
        copy.seek(0)
        try:
            actual = digest_of(copy)
        except (BadInput, IntegrityError):
            actual = None  # the copy's vault header no longer parses
        if actual != expected:
            raise IntegrityError(f"export of {source.name} failed verification: the copy's digest "
                                 "differs from the recorded one; try another medium")
    return ExportResult(target, actual, target.stat().st_size)


def export_recording(store, recording_uid: str, destination_dir: Path, *, actor: str) -> ExportResult:
    """Exports one sealed or interrupted recording of `store` and records it in the audit trail."""
    recording = store.recording(recording_uid)
    if recording_uid in store.reclaimed_recordings():
        raise InArchiveOnly(in_archive_only(recording_uid, store.archived_recording(recording_uid).vault_key))
    if recording.state == "recording" or recording.sha256 is None:
        raise BadInput(f"recording {recording_uid} is still being written; export it once it is sealed")
    try:
        result = export_file(recording.path, destination_dir, expected_digest=recording.sha256)
    except FileNotFoundError:
        raise IntegrityError(f"recording {recording_uid}: its local copy is missing, though no archive freed it; "
                             "nothing exported (run `appliance vault verify`)") from None
    store.audit("export", actor, recording=recording_uid, digest=result.digest, bytes=result.bytes)
    return result


def in_archive_only(recording_uid: str, archive_key: str) -> str:
    """The line for a recording whose local copy was freed (the key names no subject: uids only)."""
    return (f"recording {recording_uid}: in the clinic archive only (its local copy was freed once the "
            f"archive confirmed it), as {archive_key}; not exported")
