"""The recorder end to end with the real encoder and the real vault: what was captured is what
a recipient decrypts. Decoding happens from memory only (plaintext never touches the disk)."""

from __future__ import annotations

import io
import subprocess
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from appliance import vault
from appliance.camera import Frame, open_camera
from appliance.camera.stamp import decoded_stamps, read_index
from appliance.camera.synthetic import SyntheticPattern
from appliance.errors import BadInput
from appliance.recording.recorder import CameraLost, ClipFault, Recorder
from appliance.recording.settings import RecordingSettings
from tests.waiting import wait_for

WIDTH, HEIGHT = 512, 288


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    directory = tmp_path_factory.mktemp("keys")
    key_path, public_path = vault.keys.generate_recipient(directory / "recipient", b"test passphrase")
    device_key_path, device_public_path = vault.keys.generate_device(directory / "device")
    return {
        "recipient": vault.keys.load_recipient_public(public_path),
        "recipient_path": public_path,
        "identity": vault.keys.load_identity(key_path, b"test passphrase"),
        "identity_path": key_path,
        "device": vault.keys.load_device_key(device_key_path),
        "device_path": device_key_path,
    }


def decrypt(path: Path, identity) -> bytes:
    with vault.open_reader(path, identity) as reader:
        return reader.read()


def stamps(plaintext: bytes, *, truncated: bool = False) -> list[int]:
    """Frame indices of every decodable frame, decoded from memory."""
    return decoded_stamps(io.BytesIO(plaintext), torn_tail_ok=truncated)


def ffprobe_frames(plaintext: bytes) -> int:
    result = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
                             "-show_entries", "stream=nb_read_frames,codec_name,pix_fmt", "-of", "csv=p=0", "-"],
                            input=plaintext, capture_output=True, check=True, timeout=60)
    codec, pix_fmt, frames = result.stdout.decode().strip().split(",")
    assert (codec, pix_fmt) == ("h264", "yuv420p")
    return int(frames)


def synthetic_recorder(settings=None, *, queue_frames=64, width=WIDTH, height=HEIGHT, events=None):
    camera = open_camera("synthetic", width=width, height=height, fps=30, queue_frames=queue_frames)
    return Recorder(camera, settings or RecordingSettings(pre_roll_s=1.0),
                    on_event=(events.append if events is not None else None))


def test_every_frame_once_in_order_including_the_pre_roll(tmp_path, keys):
    recorder = synthetic_recorder()
    recorder.start()
    try:
        wait_for(lambda: recorder.stats()["encoded"] >= 75, what="2.5 s of pre-roll material")
        triggered_at = recorder.stats()["delivered"]
        path = recorder.start_clip(tmp_path / "clip.mp4.vault", [keys["recipient"]])
        wait_for(lambda: recorder.stats()["delivered"] >= triggered_at + 40, what="frames after the trigger")
        result = recorder.stop_clip(keys["device"], metadata={"purpose": "test"})
    finally:
        recorder.stop()
    indices = stamps(decrypt(path, keys["identity"]))
    assert indices == list(range(indices[0], indices[-1] + 1))          # each once, in order
    assert indices[0] % 30 == 0                                         # starts at a keyframe (1 s GOP)
    assert triggered_at - indices[0] >= 30                              # >= 1 s from before the trigger
    assert indices[-1] >= triggered_at + 39                             # up to the stop
    assert result.frames == len(indices) and result.dropped == 0
    assert ffprobe_frames(decrypt(path, keys["identity"])) == len(indices)
    assert result.first_frame_at < result.last_frame_at
    assert abs(result.duration_s - len(indices) / 30) < 0.2
    verification = vault.verify(path, keys["device"].public_key())
    assert verification.ok and verification.state == "sealed"
    assert verification.metadata["frames"] == len(indices) and verification.metadata["purpose"] == "test"
    assert path.stat().st_mode & 0o777 == 0o600


def test_a_second_trigger_continues_the_same_recording(tmp_path, keys):
    recorder = synthetic_recorder()
    recorder.start()
    try:
        first = recorder.start_clip(tmp_path / "clip.mp4.vault", [keys["recipient"]])
        wait_for(lambda: recorder.stats()["encoded"] >= 20, what="frames")
        again = recorder.start_clip(tmp_path / "another.mp4.vault", [keys["recipient"]])
        wait_for(lambda: recorder.stats()["encoded"] >= 40, what="frames")
        result = recorder.stop_clip()
    finally:
        recorder.stop()
    assert again == first and result.triggers == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4.vault"]
    indices = stamps(decrypt(first, keys["identity"]))
    assert indices == list(range(indices[0], indices[-1] + 1)) and len(indices) >= 40


def test_clips_in_a_row_each_decode_on_their_own_and_overlap_only_by_pre_roll(tmp_path, keys):
    recorder = synthetic_recorder()
    recorder.start()
    try:
        paths, results = [], []
        for name in ("a", "b"):
            paths.append(recorder.start_clip(tmp_path / f"{name}.mp4.vault", [keys["recipient"]]))
            target = recorder.stats()["delivered"] + 30
            wait_for(lambda: recorder.stats()["delivered"] >= target, what="frames")
            results.append(recorder.stop_clip())
    finally:
        recorder.stop()
    first, second = (stamps(decrypt(path, keys["identity"])) for path in paths)
    assert first == list(range(first[0], first[-1] + 1))
    assert second == list(range(second[0], second[-1] + 1))
    assert second[0] <= first[-1] + 1       # the second clip's pre-roll reaches back into the first
    assert [r.frames for r in results] == [len(first), len(second)]


def test_a_slow_encoder_drops_frames_counts_them_and_the_recording_stays_valid(tmp_path, keys):
    # x264's slowest preset at 640x360 cannot keep up with 30 fps here: a real slow encoder.
    settings = RecordingSettings(preset="placebo", pre_roll_s=0)
    recorder = synthetic_recorder(settings, queue_frames=4, width=640, height=360)
    recorder.start()
    try:
        path = recorder.start_clip(tmp_path / "slow.mp4.vault", [keys["recipient"]])
        wait_for(lambda: recorder.stats()["dropped"] >= 15 and recorder.stats()["encoded"] >= 10,
                 what="drops behind a slow encoder")
        result = recorder.stop_clip(keys["device"])
    finally:
        recorder.stop()
    indices = stamps(decrypt(path, keys["identity"]))
    assert all(a < b for a, b in zip(indices, indices[1:]))              # in order, none twice
    missing = (indices[-1] - indices[0] + 1) - len(indices)
    assert missing > 0 and result.dropped == missing                     # every gap is a counted drop
    assert result.frames == len(indices)
    assert vault.verify(path, keys["device"].public_key()).ok


def test_pts_follow_capture_time_so_drops_show_as_gaps(tmp_path, keys):
    settings = RecordingSettings(preset="placebo", pre_roll_s=0)
    recorder = synthetic_recorder(settings, queue_frames=2, width=640, height=360)
    recorder.start()
    try:
        path = recorder.start_clip(tmp_path / "gaps.mp4.vault", [keys["recipient"]])
        wait_for(lambda: recorder.stats()["dropped"] >= 10 and recorder.stats()["encoded"] >= 8, what="drops")
        recorder.stop_clip()
    finally:
        recorder.stop()
    with av.open(io.BytesIO(decrypt(path, keys["identity"]))) as container:
        frames = [(frame.time, read_index(frame.to_ndarray(format="bgr24"))) for frame in container.decode(video=0)]
    first_time, first_index = frames[0]
    for seconds, index in frames:
        # the synthetic camera captures frame i at i/30 s: timestamps keep that spacing across gaps
        assert abs((seconds - first_time) - (index - first_index) / 30) < 0.1


def test_opencv_source_records_a_video_file(tmp_path, keys):
    source = tmp_path / "synthetic-test-content.avi"     # generated here: synthetic, not patient video
    writer = cv2.VideoWriter(str(source), cv2.VideoWriter_fourcc(*"MJPG"), 30, (WIDTH, HEIGHT))
    pattern = SyntheticPattern(WIDTH, HEIGHT)
    for index in range(45):
        writer.write(pattern.render(index))
    writer.release()
    events: list = []
    recorder = Recorder(open_camera(f"opencv:{source}"), RecordingSettings(pre_roll_s=5), on_event=events.append)
    recorder.start()
    try:
        path = recorder.start_clip(tmp_path / "from-file.mp4.vault", [keys["recipient"]])
        wait_for(lambda: any(isinstance(event, CameraLost) for event in events), what="end of the file")
        result = recorder.stop_clip()
    finally:
        recorder.stop()
        source.unlink()
    assert stamps(decrypt(path, keys["identity"])) == list(range(45))
    assert result.frames == 45
    assert [event.reason for event in events] == ["the video source ended"]


def test_an_unknown_codec_fails_when_the_recorder_starts(keys):
    recorder = synthetic_recorder(RecordingSettings(codec="no_such_codec"))
    with pytest.raises(BadInput, match="not available"):
        recorder.start()


def test_other_codecs_by_name_mpeg4(tmp_path, keys):
    recorder = synthetic_recorder(RecordingSettings(codec="mpeg4", pre_roll_s=0))
    recorder.start()
    try:
        path = recorder.start_clip(tmp_path / "mpeg4.mp4.vault", [keys["recipient"]])
        wait_for(lambda: recorder.stats()["encoded"] >= 20, what="frames")
        result = recorder.stop_clip()
    finally:
        recorder.stop()
    indices = stamps(decrypt(path, keys["identity"]))
    assert indices == list(range(indices[0], indices[-1] + 1)) and len(indices) == result.frames


def test_an_encoder_failure_is_a_clip_fault_and_the_frames_before_it_are_sealed(tmp_path, keys):
    events: list = []
    recorder = synthetic_recorder(RecordingSettings(pre_roll_s=0), events=events)
    recorder.start()
    try:
        path = recorder.start_clip(tmp_path / "fault.mp4.vault", [keys["recipient"]])
        wait_for(lambda: recorder.stats()["encoded"] >= 20, what="frames")
        # A camera that suddenly delivers another resolution (reconfigured behind our back).
        recorder.camera.frames.put(Frame(10**6, time.monotonic_ns(), np.zeros((HEIGHT // 2, WIDTH, 3), np.uint8)))
        faults = wait_for(lambda: [event for event in events if isinstance(event, ClipFault)], what="a ClipFault")
        result = recorder.stop_clip(keys["device"])
    finally:
        recorder.stop()
    assert len(faults) == 1 and "512x144" in faults[0].reason
    assert result.fault == faults[0].reason and recorder.stats()["fault"]
    indices = stamps(decrypt(path, keys["identity"]))
    assert len(indices) == result.frames >= 20 and indices == list(range(indices[0], indices[-1] + 1))
    assert vault.verify(path, keys["device"].public_key()).ok


def test_a_bad_recipient_leaves_no_file_behind(tmp_path):
    recorder = synthetic_recorder()
    recorder.start()
    try:
        with pytest.raises(BadInput, match="P-256"):
            recorder.start_clip(tmp_path / "nothing.mp4.vault", ["not a public key"])
    finally:
        recorder.stop()
    assert list(tmp_path.iterdir()) == []


def test_the_config_files_recording_section_is_what_the_recorder_is_built_with(tmp_path):
    from appliance import config

    path = tmp_path / "appliance.toml"
    path.write_text('[recording]\npre_roll_s = 2\npost_roll_s = 4.5\ncodec = "mpeg4"\npreset = "veryfast"\n'
                    'crf = 30\nbitrate_estimate_bps = 2000000\nbitrate_bps = 3000000\ngop_s = 0.5\n'
                    '[recording.codec_options]\nqscale = "3"\n')
    recording = config.load(path).recording
    assert recording == RecordingSettings(pre_roll_s=2.0, post_roll_s=4.5, codec="mpeg4", preset="veryfast", crf=30,
                                          bitrate_estimate_bps=2_000_000, bitrate_bps=3_000_000, gop_s=0.5,
                                          codec_options={"qscale": "3"})


@pytest.mark.parametrize("line, message", [
    ("crf = 52", "config: recording.crf must be between 0 and 51, got 52"),
    ("pre_roll_s = -1", "config: recording.pre_roll_s must not be negative"),
    ("gop_s = 0", "config: recording.gop_s must be greater than 0"),
    ("bitrate_estimate_bps = 0", "config: recording.bitrate_estimate_bps must be greater than 0"),
    ("pre_roll_seconds = 3", "config: unknown key recording.pre_roll_seconds"),
    ("codec_options = 3", "config: recording.codec_options must be a table of strings"),
])
def test_bad_recording_settings_in_the_config_are_one_line_naming_the_key(tmp_path, line, message):
    from appliance import config

    path = tmp_path / "appliance.toml"
    path.write_text(f"[recording]\n{line}\n")
    with pytest.raises(BadInput) as raised:
        config.load(path)
    assert str(raised.value).startswith(message) and "\n" not in str(raised.value)
