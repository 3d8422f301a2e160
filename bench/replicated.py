"""Long recordings, fast: a REPLICATED recording, for the portal's benchmark and tests.

Encoding 60 minutes for real takes longer than a test may. So a few seconds are encoded by the
recorder's own path (bench/sealed_recordings.py: Encoder -> ClipMuxer -> SealingSink, the
synthetic camera's frames), and their fragments are repeated, each copy's moof renumbered (mfhd
sequence number, tfdt decode time: appliance/portal/fragment_index.renumbered), up to the asked
length; the result is streamed into the real vault writer and signed with the real manifest,
like any recording. It plays as a long recording whose picture repeats every `template_s`
seconds (the frame stamps repeat too); its manifest says `"replicated": true`. No plaintext ever reaches disk.
"""

from __future__ import annotations

import io
import os
import uuid
from pathlib import Path

from appliance import timeline, vault
from appliance.portal import fragment_index
from bench.sealed_recordings import FPS, encode_frames, sealed_card


class _Collected:
    """A vault writer's stand-in for the template: its bytes, in memory."""

    def __init__(self):
        self.data = io.BytesIO()

    def write(self, chunk: bytes) -> None:
        self.data.write(chunk)

    def close(self):
        return None

    def abandon(self) -> None:
        pass


def template(seconds: int, size: tuple[int, int]) -> bytes:
    """`seconds` of the synthetic camera through the recorder's encoder and clip muxer."""
    collected = _Collected()
    encode_frames(collected, seconds * FPS, size)
    return collected.data.getvalue()


def split(recording: bytes) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """(ftyp + moov, [(moof, mdat), ...]); anything after the last fragment (mfra) is left out."""
    offset, init, fragments = 0, b"", []
    while offset < len(recording):
        kind, size, _ = fragment_index.box_header(recording, offset)
        if kind == b"moof":
            mdat_kind, mdat_size, _ = fragment_index.box_header(recording, offset + size)
            if mdat_kind != b"mdat":
                raise ValueError("a moof without its mdat")
            fragments.append((recording[offset:offset + size], recording[offset + size:offset + size + mdat_size]))
            size += mdat_size
        elif not fragments:
            init += recording[offset:offset + size]
        offset += size
    return init, fragments


def write_replicated(path: Path, recipient, device_key, *, minutes: float, template_s: int = 4,
                     size: tuple[int, int] = (640, 400), session: str | None = None, card: dict | None = None) -> dict:
    """A sealed, signed recording of `minutes` at `path` (+ its manifest); its metadata."""
    init, fragments = split(template(template_s, size))
    track = fragment_index.track_of(init[fragment_index.box_header(init)[1]:])
    durations = [fragment_index.fragment_of(moof, 0, 0, track).duration for moof, _ in fragments]
    count = max(1, round(minutes * 60 * track.timescale / (sum(durations) / len(durations))))
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as out:
        writer = vault.encrypt(out, [recipient])
        writer.write(init)
        decode_time = 0
        for number in range(count):
            moof, mdat = fragments[number % len(fragments)]
            writer.write(fragment_index.renumbered(moof, number + 1, decode_time))
            writer.write(mdat)
            decode_time += durations[number % len(fragments)]
        sealed = writer.close()
    duration = decode_time / track.timescale
    recording = path.name.removesuffix(".mp4.vault")
    metadata = {"session": session or uuid.uuid4().hex, "recording": recording, "appliance_version": "bench",
                "replicated": True, "frames": round(duration * FPS), "dropped": 0, "duration_s": round(duration, 3),
                **timeline.manifest_metadata([], duration, 2.0)}
    if card is not None:
        metadata |= sealed_card(path, card, recipient)
    vault.write_manifest(path, device_key, metadata=metadata, sealed=sealed)
    return metadata


def new_path(directory: Path) -> Path:
    return directory / f"{uuid.uuid4().hex}.mp4.vault"
