"""The treatment timeline as subtitles: `appliance vault decrypt` writes the signed manifest's
controller events into the MP4 as a mov_text track that PyAV and ffprobe read back with the
right cue times, and an interrupted recording's cues end where its video ends."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import av
import pytest
from conftest import run_appliance

from appliance import vault
from appliance.recording.subtitles import Cue, timeline_cues
from appliance.vault.manifest import manifest_path
from appliance.timeline import ClipEvent
from tests import clips

PASSPHRASE = b"subtitle passphrase"

# Footswitch 0.4-2.0 s, laser 0.5-1.2 s and 1.8-2.5 s, interlock opened at 2.7 s and never closed.
EVENTS = [ClipEvent(0.4, "footswitch", 1, 11), ClipEvent(0.5, "laser", 1, 12), ClipEvent(1.2, "laser", 0, 13),
          ClipEvent(1.8, "laser", 1, 14), ClipEvent(2.0, "footswitch", 0, 15), ClipEvent(2.5, "laser", 0, 16),
          ClipEvent(2.7, "interlock", 0, 17)]
EXPECTED_CUES = [(0.4, 0.5, "FOOTSWITCH"), (0.5, 1.2, "LASER ON\nFOOTSWITCH"), (1.2, 1.8, "FOOTSWITCH"),
                 (1.8, 2.0, "LASER ON\nFOOTSWITCH"), (2.0, 2.5, "LASER ON"), (2.7, 3.0, "INTERLOCK OPEN")]


def test_cues_never_overlap_and_read_every_active_input():
    cues = timeline_cues(EVENTS, 3.0)
    assert [(cue.start_s, cue.end_s, cue.text) for cue in cues] == EXPECTED_CUES


def test_an_input_active_at_the_first_frame_shows_from_the_start_and_times_clamp_to_the_clip():
    events = [ClipEvent(-0.01, "footswitch", 1, 1), ClipEvent(0.7, "laser", 0, 2), ClipEvent(2.2, "laser", 1, 3)]
    assert timeline_cues(events, 2.0) == [Cue(0.0, 0.7, "LASER ON\nFOOTSWITCH"), Cue(0.7, 2.0, "FOOTSWITCH")]
    assert timeline_cues([], 2.0) == []


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    home = tmp_path_factory.mktemp("keys")
    vault.keys.generate_recipient(home, PASSPHRASE)
    vault.keys.generate_device(home)
    (home / "pass").write_bytes(PASSPHRASE + b"\n")
    return home


def events_metadata(events) -> dict:
    return {"events": [event.as_dict() for event in events]}


def decrypt(keys, path, output):
    return run_appliance("vault", "decrypt", str(path), "--identity", str(keys / "recipient.key"),
                         "--passphrase-file", str(keys / "pass"), "-o", str(output))


def cues_read_by_pyav(path) -> list[tuple[float, float, str]]:
    with av.open(str(path)) as container:
        [track] = container.streams.subtitles
        assert track.codec_context.name == "mov_text"
        return [(round(float(packet.pts * packet.time_base), 3),
                 round(float((packet.pts + packet.duration) * packet.time_base), 3),
                 bytes(packet)[2:].decode())
                for packet in container.demux(track) if packet.size > 2]      # > 2: not an empty gap sample


def cues_read_by_ffprobe(path) -> list[tuple[float, float]]:
    probe = subprocess.run([shutil.which("ffprobe"), "-v", "error", "-select_streams", "s", "-show_entries",
                            "stream=codec_name:packet=pts_time,duration_time,size", "-of", "json", str(path)],
                           capture_output=True, check=True, timeout=60)
    found = json.loads(probe.stdout)
    assert [stream["codec_name"] for stream in found["streams"]] == ["mov_text"]
    return [(round(float(packet["pts_time"]), 3), round(float(packet["pts_time"]) + float(packet["duration_time"]), 3))
            for packet in found["packets"] if int(packet["size"]) > 2]


def decoded_frames(path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def test_a_decrypted_clip_carries_its_events_as_a_subtitle_track(keys, tmp_path):
    path = tmp_path / "clip.mp4.vault"
    with open(path, "wb") as destination:
        sealed = clips.write_clip(destination, vault.keys.load_recipient_public(keys / "recipient.pub"), 3 * clips.FPS)
    vault.write_manifest(path, vault.keys.load_device_key(keys / "device.key"), metadata=events_metadata(EVENTS),
                         sealed=sealed)
    result = decrypt(keys, path, tmp_path / "clip.mp4")
    assert result.returncode == 0, result.stderr
    assert b"with 6 timeline cues" in result.stderr
    assert cues_read_by_pyav(tmp_path / "clip.mp4") == EXPECTED_CUES
    assert cues_read_by_ffprobe(tmp_path / "clip.mp4") == [(start, end) for start, end, _ in EXPECTED_CUES]
    assert decoded_frames(tmp_path / "clip.mp4") == 3 * clips.FPS        # the video is all there, unchanged
    assert oct(os.stat(tmp_path / "clip.mp4").st_mode & 0o777) == "0o600"


def test_an_interrupted_clips_cues_end_where_its_video_ends(keys, tmp_path):
    path = tmp_path / "torn.mp4.vault"
    with open(path, "wb") as destination:
        # Three noisy GOPs: the muxer still holds the third, the power cut tears the second, the first plays.
        clips.write_clip(destination, vault.keys.load_recipient_public(keys / "recipient.pub"), 3 * clips.FPS,
                         noisy=True, seal=False)
    laser_on_when_the_power_went = [ClipEvent(0.5, "laser", 1, 3)]
    vault.mark_interrupted(path, vault.keys.load_device_key(keys / "device.key"),
                           metadata=events_metadata(laser_on_when_the_power_went))
    result = decrypt(keys, path, tmp_path / "torn.mp4")
    assert result.returncode == 0 and b"INTERRUPTED" in result.stderr, result.stderr
    frames = decoded_frames(tmp_path / "torn.mp4")
    assert 0 < frames < 3 * clips.FPS
    assert cues_read_by_pyav(tmp_path / "torn.mp4") == [(0.5, round(frames / clips.FPS, 3), "LASER ON")]


def test_a_clip_without_events_decrypts_to_the_recorded_bytes_and_stdout_says_where_the_track_is(keys, tmp_path):
    path = tmp_path / "clip.mp4.vault"
    with open(path, "wb") as destination:
        sealed = clips.write_clip(destination, vault.keys.load_recipient_public(keys / "recipient.pub"), clips.FPS)
    device_key = vault.keys.load_device_key(keys / "device.key")
    vault.write_manifest(path, device_key, sealed=sealed)
    assert decrypt(keys, path, tmp_path / "plain.mp4").returncode == 0
    with av.open(str(tmp_path / "plain.mp4")) as container:
        assert not container.streams.subtitles
    os.unlink(manifest_path(path))
    vault.write_manifest(path, device_key, metadata=events_metadata(EVENTS), sealed=sealed)
    piped = decrypt(keys, path, "-")
    assert piped.returncode == 0 and piped.stdout == (tmp_path / "plain.mp4").read_bytes()
    assert b"the timeline track needs a file" in piped.stderr
