"""What the portal knows of each archived recording, from the bucket listing and its signed
manifest alone (pure: no I/O; the vault itself is never read here).

The archive's layout (appliance/archive/service.py object_key): `<device id>/<session uid>/
<recording uid>.mp4.vault` beside its `.manifest`. A manifest is taken as fact only when every
signature holds, its signer is an enrolled device, and it names the very object it sits beside
(device, session, recording, vault name). Otherwise the recording is listed with its problem and
nothing the manifest claims: no card, no events, no times. Problems name fields, never values.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Iterable

from appliance import timeline
from appliance.errors import BadInput, IntegrityError
from appliance.gateway.verify import signer_enrolled
from appliance.storage.layout import RECORDING_SUFFIX
from appliance.vault import identity_card
from appliance.vault import manifest as vault_manifest

MANIFEST_SUFFIX = ".manifest"
# A manifest is a few kilobytes (an hour of pedal presses: some hundred more); anything much
# larger is not one, and is not downloaded.
MAX_MANIFEST_BYTES = 4 << 20
_UID = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True)
class ArchivedObject:
    key: str
    size: int
    etag: str


@dataclass(frozen=True)
class ArchivedRecording:
    """A vault and its manifest side by side in the bucket; names from the key only."""
    device_id: str
    session_uid: str
    uid: str
    vault: ArchivedObject
    manifest: ArchivedObject


@dataclass(frozen=True)
class RecordingEntry:
    uid: str
    session_uid: str
    device_id: str
    vault_key: str
    size: int
    etag: str                     # the archive object (ciphertext)
    started_at: float | None      # seconds since the epoch: the seal time less the duration
    duration_s: float | None      # None: not known from the manifest (an interrupted clip)
    events: list                  # timeline.ClipEvent, from the signed manifest
    interrupted: bool             # the vault was cut short (crash): its reader takes a torn tail
    card: dict | None             # the opened identity card (memory only, never disk)
    problem: str | None           # why it cannot be shown; then nothing above is the manifest's
    signed_at: float | None = None
    has_timeline: bool = False    # the manifest carries the controller's events (maybe none)

    @property
    def emissions(self) -> list[tuple[float, float]]:
        """Laser on -> off intervals; an interrupted clip's run to its last event."""
        end = self.duration_s if self.duration_s is not None else max((e.t for e in self.events), default=0.0)
        return timeline.emissions(self.events, end)


def pair_objects(objects: Iterable[ArchivedObject]) -> list[ArchivedRecording]:
    """The recordings in a bucket listing: each vault at the archive's layout whose manifest is
    there too (one without is still being uploaded), ordered by key. Other objects (audit
    anchors, device statuses) are not recordings."""
    by_key = {item.key: item for item in objects}
    found = []
    for key in sorted(by_key):
        parts = key.split("/")
        if len(parts) != 3 or not parts[2].endswith(RECORDING_SUFFIX):
            continue
        device_id, session_uid, name = parts
        uid = name.removesuffix(RECORDING_SUFFIX)
        manifest = by_key.get(key + MANIFEST_SUFFIX)
        if manifest is None or not device_id or not _UID.fullmatch(session_uid) or not _UID.fullmatch(uid):
            continue
        found.append(ArchivedRecording(device_id, session_uid, uid, by_key[key], manifest))
    return found


def unverified(recording: ArchivedRecording, problem: str) -> RecordingEntry:
    """A recording listed with why it cannot be shown, and nothing its manifest claims."""
    return RecordingEntry(recording.uid, recording.session_uid, recording.device_id, recording.vault.key,
                          recording.vault.size, recording.vault.etag, None, None, [], False, None, problem)


def withheld(entry: RecordingEntry, problem: str) -> RecordingEntry:
    """`entry` with a problem found beyond its manifest: its manifest's claims withheld too."""
    return dataclasses.replace(entry, started_at=None, duration_s=None, events=[], interrupted=False, card=None,
                               problem=problem, signed_at=None, has_timeline=False)


def entry_from_manifest(recording: ArchivedRecording, manifest: bytes, devices: list, identity) -> RecordingEntry:
    """The entry for `recording` given its manifest's bytes, the enrolled device keys and the
    recipient private key (which opens the identity card, in memory)."""
    name = recording.manifest.key.rsplit("/", 1)[1]
    signed, signer, problem = vault_manifest.parse_manifest(manifest, name)
    if signed is None:
        return unverified(recording, problem)
    problem = _placement_problem(recording, signed) or _signer_problem(recording, signer, signed, devices)
    if problem:
        return unverified(recording, problem)
    try:
        card = identity_card.open_card(signed, identity)
    except IntegrityError as error:
        return unverified(recording, str(error))
    except BadInput:
        return unverified(recording, "its identity card is not sealed to this gateway's recipient key")
    metadata = signed.get("metadata") or {}
    try:
        events = timeline.events_from_manifest(metadata)
    except ValueError:
        return unverified(recording, "its manifest's treatment events are malformed")
    has_timeline = timeline.EVENTS_KEY in metadata
    signed_at = _timestamp(signed.get("signed_at"))
    duration = metadata.get("duration_s")
    duration = float(duration) if isinstance(duration, (int, float)) and duration >= 0 else None
    started = signed_at - duration if signed_at is not None and duration is not None else None
    return RecordingEntry(recording.uid, recording.session_uid, recording.device_id, recording.vault.key,
                          recording.vault.size, recording.vault.etag, started, duration, events,
                          signed.get("state") == "interrupted", card, None, signed_at, has_timeline)


def _placement_problem(recording: ArchivedRecording, signed: dict) -> str | None:
    """Whether the manifest was signed for the object it sits beside: a genuine manifest copied
    next to another vault, or under another session, must not vouch for it."""
    metadata = signed.get("metadata") or {}
    vault_name = recording.vault.key.rsplit("/", 1)[1]
    if signed.get("vault_name", vault_name) != vault_name or metadata.get("recording", recording.uid) != recording.uid:
        return "its manifest was signed for another recording"
    if metadata.get("session", recording.session_uid) != recording.session_uid:
        return "its manifest was signed for another session than the one it is archived under"
    if signed.get("state") not in vault_manifest.STATES:
        return "its manifest's state is unknown"
    body_length = signed.get("body_length", signed.get("ciphertext_length"))
    if isinstance(body_length, int) and recording.vault.size < body_length:
        return f"the archived vault is {body_length - recording.vault.size} bytes shorter than its manifest: cut off"
    return None


def _signer_problem(recording: ArchivedRecording, signer, signed: dict, devices: list) -> str | None:
    if not signer_enrolled(signer, devices):
        return f"signed by device key {signer.key_id}, which is not enrolled"
    if signed.get("device_key_id", signer.key_id) != signer.key_id:
        return "its manifest names another device key than the one that signed it"
    if recording.device_id != signer.key_id:
        return f"archived under device {recording.device_id} but signed by device {signer.key_id}"
    return None


def _timestamp(text) -> float | None:
    try:
        return datetime.fromisoformat(text).timestamp()
    except (TypeError, ValueError):
        return None
