"""Sealed recordings made the appliance's way, for benchmarks and tests (tests import this
module, never the reverse).

The synthetic camera's frames go through the recorder's own path: its Encoder (production
settings), ClipMuxer and SealingSink into a vault writer, so what a portal serves is the
recorder's real output (fragmented MP4, one fragment per keyframe). The identity card is sealed
into the manifest's metadata, and `upload` puts a sealed recording into an archive bucket by the
archive's own uploader at the archive's key layout. No plaintext ever reaches disk.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from appliance import vault
from appliance.archive.service import object_key
from appliance.archive.settings import ArchiveSettings
from appliance.archive.uploader import Uploader
from appliance.camera.synthetic import SyntheticPattern
from appliance.recording.clip import ClipMuxer, SealingSink
from appliance.recording.encoder import TIME_BASE, Encoder
from appliance.recording.settings import RecordingSettings
from appliance.vault import identity_card

FPS = 30
SINK_QUEUE_CHUNKS = 64


class _PowerCut:
    """A vault writer whose end is a power loss: closing it abandons the last segment unsealed,
    as the recorder's file is left when the appliance loses power."""

    def __init__(self, writer):
        self._writer = writer

    def write(self, chunk: bytes) -> None:
        self._writer.write(chunk)

    def close(self) -> None:
        self._writer.abandon()

    def abandon(self) -> None:
        self._writer.abandon()


def encode_frames(writer, frames: int, size: tuple[int, int], *, laser_frames=(), power_cut: bool = False,
                  settings: RecordingSettings | None = None):
    """`frames` of the synthetic camera (laser spot on `laser_frames`; frame i at i / FPS s) into
    `writer`, a vault writer or anything with its write/close/abandon. Returns what close()
    returns (the SealedStream), or None when `power_cut` (the last segment is lost)."""
    encoder = Encoder(settings or RecordingSettings(), *size, FPS)
    sink = SealingSink(_PowerCut(writer) if power_cut else writer, SINK_QUEUE_CHUNKS)
    muxer = ClipMuxer(sink, encoder)
    pattern, step, laser = SyntheticPattern(*size), TIME_BASE.denominator // FPS, set(laser_frames)
    for index in range(frames):
        for packet in encoder.encode(pattern.render(index, index in laser), index * step):
            muxer.write(packet, packet.pts, packet.dts)
    for packet in encoder.flush():
        muxer.write(packet, packet.pts, packet.dts)
    muxer.close()
    sink.finish()
    sink.done.wait()
    if sink.error is not None:
        raise sink.error
    return sink.sealed


def sealed_card(path: Path, card: dict, recipient) -> dict:
    """The manifest metadata entry carrying `card` sealed for `recipient`, bound to the vault's
    recording id (the card only opens with its own recording)."""
    recording_id = vault.manifest.read_vault_header(path).recording_id
    document = {"format": identity_card.FORMAT, "recording_id": recording_id.hex(), **card}
    return {"identity_card": identity_card.seal_card(document, [recipient], recording_id)}


def upload(s3_client, endpoint: str, bucket: str, state_dir: Path, path: Path, session: str, device_id: str) -> str:
    """The vault and then its manifest into `bucket`, as the archive uploads them; the vault's key."""
    settings = ArchiveSettings(endpoint=endpoint, bucket=bucket, retention_days=1)
    uploader = Uploader(s3_client, settings, state_dir)
    key = object_key(device_id, SimpleNamespace(session_uid=session, path=path))
    uploader.upload_file(path, key, {})
    uploader.upload_file(vault.manifest.manifest_path(path), key + ".manifest", {})
    return key
