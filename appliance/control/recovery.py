"""Start-up recovery: what a crash or power loss left open is kept, signed and closed.

A recording whose writer never closed keeps its complete segments: the file is signed
`interrupted` with the device key (so recovery needs that key: without it no session may arm
until it is back), the row is marked interrupted and audited. Sessions left open are closed.
The same keeping serves a clip whose finalizing failed while the appliance runs (sealing.py).
"""

from __future__ import annotations

import logging
from typing import Callable

from appliance.control.identity import discard_card, pending_card
from appliance.errors import BadInput, IntegrityError
from appliance.storage.database import Recording, Store

log = logging.getLogger("appliance.controller")


def keep_what_was_written(recording: Recording, device_key, reason: str) -> tuple[str, dict]:
    """Signs the recording's file `interrupted` unless it already carries a signed manifest.

    Returns the reason and the figures for Store.interrupt_recording. Only file work: runs on
    whichever thread calls it, and the database write is the caller's. The identity card sealed
    when the clip started (identity.py) goes into the manifest; its sidecar is removed."""
    from appliance import vault
    metadata = {"session": recording.session_uid, "recording": recording.uid, "reason": reason,
                **pending_card(recording.path)}
    try:
        if vault.manifest.manifest_path(recording.path).exists():
            # Signed but never committed (stopped between manifest and database): keep it as
            # interrupted; its manifest still proves what the file holds.
            verification = vault.verify(recording.path, device_key.public_key())
            reason = f"{reason}; manifest check: {verification.problem or 'intact'}"
        else:
            verification = vault.mark_interrupted(recording.path, device_key, metadata)
        # The digest as signed, so export later checks the file against what was vouched for;
        # a manifest that no longer verifies leaves the file as it is (the reason says why).
        if verification.file_digest is not None:
            length, digest = verification.ciphertext_length, verification.file_digest
        else:
            found = vault.file_digest(recording.path)
            length, digest = found.length, found.file_digest
    except (BadInput, IntegrityError, FileNotFoundError) as error:
        discard_card(recording.path)   # no vault to carry it
        return f"{reason}; no recoverable data ({error})", {}
    discard_card(recording.path)   # the manifest carries it now
    return reason, dict(bytes=length, sha256=digest,
                        manifest={"state": "interrupted", "segments": verification.segments})


def recover(store: Store, load_device_key: Callable[[], object]) -> bool:
    """Marks recordings left open interrupted and closes open sessions; True when done.

    False when a recording is left open and the device key cannot be loaded: nothing is
    changed, and the appliance stays not ready until the key is back and it restarts."""
    left_open = store.open_recordings()
    if left_open:
        try:
            device_key = load_device_key()
        except BadInput as error:
            log.error("recovery needs the device key: %s", error)
            return False
    for recording in left_open:
        reason, figures = keep_what_was_written(recording, device_key, "the appliance stopped while recording")
        store.interrupt_recording(recording.uid, reason=reason, **figures)
    for session in store.open_sessions():
        store.close_session(session.uid)
    return True
