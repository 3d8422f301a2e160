"""Recordings from the demo in a real archive bucket, for the portal's tests (module scope).

Each is a real sealed recording as the appliance makes it: the synthetic camera's frames (frame
index stamped top-left, laser spot on the frames the laser was on) through the recorder's own
Encoder -> ClipMuxer -> SealingSink into a vault (bench/sealed_recordings.py: production encoder
settings, one fragment per second), its identity card sealed and its treatment timeline (the
controller's edges, appliance/timeline.py) in the manifest signed by the room's device key; then
put into SeaweedFS by the archive's own uploader at the archive's layout. Frame i is shown at
i / 30 s. The interrupted clip ends as a power loss leaves it: its last vault segment never written.

    portal_recordings.bucket / .seaweedfs / .keys / .identity
    portal_recordings.clips["treatment"]   -> Clip(uid, session, frames, laser_frames, ...)
    recordings_app                         -> the portal in-process (Flask app) over them

Sessions: Müller (a 4 s "treatment" clip with two laser emissions, and an "interrupted" clip,
cut by a power loss), Yamada (a 2 s "follow_up" clip, one emission), and a "stranger" clip signed
by a device nobody enrolled (listed with its problem, never its card).
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from appliance import timeline, vault
from appliance.timeline import ClipEvent
from bench.sealed_recordings import FPS, encode_frames, sealed_card, upload
from tests.gatewaying import A_CARD, PASSPHRASE, ClinicKeys, clinic_keys  # noqa: F401 (fixture)
from tests.portaling import ManualClock, close_app, in_process_app, write_portal_config
from tests.servers.seaweedfs import unique_bucket

SIZE = (512, 288)        # the smallest the frame stamp fits comfortably (32 blocks of 16 px)
YAMADA_CARD = {**A_CARD, "patient_name": "山田^太郎", "patient_id": "PID-0077", "birth_date": "19580314",
               "sex": "M", "accession_number": "ACC-9"}


@dataclass(frozen=True)
class Clip:
    uid: str
    session: str
    device_id: str
    frames: int
    laser_frames: tuple[int, ...]
    interrupted: bool
    card: dict | None

    @property
    def duration_s(self) -> float:
        return self.frames / FPS

    @property
    def emissions(self) -> list[tuple[float, float]]:
        """Laser on -> off, as the manifest says (frame i at i / FPS)."""
        return timeline.emissions(laser_events(self.laser_frames), self.duration_s)


@dataclass(frozen=True)
class PortalRecordings:
    seaweedfs: object
    bucket: str
    keys: ClinicKeys
    identity: object
    clips: dict[str, Clip]

    def archive_section(self, credentials: Path) -> str:
        """A gateway config's `[archive]` section reading this bucket."""
        return (f'[archive]\nendpoint = "{self.seaweedfs.endpoint}"\nbucket = "{self.bucket}"\n'
                f'credentials = "{self.seaweedfs.write_credentials(credentials)}"\n')


def laser_events(laser_frames) -> list[ClipEvent]:
    """The controller's laser edges for a run of frames with the laser on (edges numbered in order)."""
    events, edge, previous = [], 0, None
    for index in sorted(laser_frames):
        if previous is None or index != previous + 1:
            if previous is not None:
                edge += 1
                events.append(ClipEvent((previous + 1) / FPS, "laser", 0, edge))
            edge += 1
            events.append(ClipEvent(index / FPS, "laser", 1, edge))
        previous = index
    if previous is not None:
        events.append(ClipEvent((previous + 1) / FPS, "laser", 0, edge + 1))
    return events


def seal_clip(directory: Path, keys: ClinicKeys, *, session: str, frames: int, laser_frames=(),
              interrupted: bool = False, card: dict | None = A_CARD, device_key: Path | None = None) -> Path:
    """A recording as the appliance seals it, in `directory`: vault and signed manifest."""
    recording = uuid.uuid4().hex
    path = directory / f"{recording}.mp4.vault"
    recipient = vault.keys.load_recipient_public(keys.recipient_pub)
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb", buffering=0) as out:
        sealed = encode_frames(vault.encrypt(out, [recipient]), frames, SIZE, laser_frames=laser_frames,
                               power_cut=interrupted)
    metadata = {"session": session, "recording": recording, "appliance_version": "portal-test"}
    if card is not None:
        metadata |= sealed_card(path, card, recipient)
    signer = vault.keys.load_device_key(device_key or keys.device_key)
    if interrupted:    # as recovery signs it: no duration, no timeline
        vault.mark_interrupted(path, signer, metadata | {"reason": "power lost"})
    else:
        duration = frames / FPS
        metadata |= {"frames": frames, "dropped": 0, "duration_s": round(duration, 3),
                     **timeline.manifest_metadata(laser_events(laser_frames), duration, 2.0)}
        vault.write_manifest(path, signer, metadata=metadata, sealed=sealed)
    return path


@pytest.fixture(scope="module")
def portal_recordings(tmp_path_factory, seaweedfs, clinic_keys) -> PortalRecordings:  # noqa: F811
    base = tmp_path_factory.mktemp("portal-recordings")
    bucket = seaweedfs.create_bucket(unique_bucket("portal"))
    device_id = vault.keys.load_device_key(clinic_keys.device_key).public_key().key_id
    stranger_id = vault.keys.load_device_key(clinic_keys.stranger_key).public_key().key_id
    mueller, yamada, stranger = (uuid.uuid4().hex for _ in range(3))
    plan = {   # name: (session, frames, laser frames, interrupted, card, device key, device id)
        "treatment": (mueller, 4 * FPS, (*range(30, 45), *range(75, 90)), False, A_CARD, None, device_id),
        "interrupted": (mueller, 3 * FPS, (), True, A_CARD, None, device_id),
        "follow_up": (yamada, 2 * FPS, tuple(range(30, 45)), False, YAMADA_CARD, None, device_id),
        "stranger": (stranger, 1 * FPS, (), False, A_CARD, clinic_keys.stranger_key, stranger_id),
    }
    clips = {}
    for name, (session, frames, laser, interrupted, card, key, signer_id) in plan.items():
        path = seal_clip(base, clinic_keys, session=session, frames=frames, laser_frames=laser,
                         interrupted=interrupted, card=card, device_key=key)
        upload(seaweedfs.client(), seaweedfs.endpoint, bucket, base / "upload-state", path, session, signer_id)
        uid = path.name.removesuffix(".mp4.vault")
        clips[name] = Clip(uid, session, signer_id, frames, tuple(laser), interrupted, card)
    identity = vault.keys.load_identity(clinic_keys.recipient_key, PASSPHRASE.encode())
    return PortalRecordings(seaweedfs, bucket, clinic_keys, identity, clips)


@pytest.fixture(scope="module")
def recordings_app(tmp_path_factory, portal_recordings, clinic_keys):  # noqa: F811
    """create_app in-process over a real Library reading `portal_recordings`' bucket, with the
    test accounts (tests.portaling.CLINICIAN, IT) and a ManualClock (the context's .clock)."""
    from appliance.portal.library import Library

    directory = tmp_path_factory.mktemp("portal-in-process")
    config = write_portal_config(directory / "gateway.toml", clinic_keys, directory / "data", port=8443,
                                 s3=portal_recordings.seaweedfs, bucket=portal_recordings.bucket)
    devices = [vault.keys.load_device_public(path) for path in clinic_keys.devices.glob("*.pub")]
    clock = ManualClock()
    library = Library(portal_recordings.seaweedfs.client, portal_recordings.bucket, devices,
                      portal_recordings.identity, clock=clock)
    app = in_process_app(config, clock, identity=portal_recordings.identity, devices=devices, library=library)
    yield app
    close_app(app)
