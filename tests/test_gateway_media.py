"""Gateway media: a recording decrypted and transcoded to what DICOM allows, with plaintext only in
memory or, encrypted under a throwaway key, in an anonymous scratch file."""

from __future__ import annotations

import io
import json
import os
import struct
import threading

import av
import cv2
import pytest

from appliance import vault
from appliance.camera.stamp import read_index
from appliance.camera.synthetic import SyntheticPattern
from appliance.errors import ApplianceError, IntegrityError
from appliance.gateway import faststart, media
from appliance.gateway.scratch import BLOCK, EncryptedScratch
from appliance.recording.fmp4 import end_at_last_fragment
from tests.clips import write_clip

CAMERA = (1920, 1200)


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    directory = tmp_path_factory.mktemp("keys")
    key_path, public_path = vault.keys.generate_recipient(directory / "recipient", b"test passphrase")
    return {"recipient": vault.keys.load_recipient_public(public_path),
            "identity": vault.keys.load_identity(key_path, b"test passphrase")}


@pytest.fixture(scope="module")
def camera_clip(tmp_path_factory, keys):
    """Seventy-five 1920x1200 frames of the synthetic camera (2.5 s: three GOPs), sealed."""
    path = tmp_path_factory.mktemp("clips") / "camera.mp4.vault"
    with open(path, "wb") as out:
        write_clip(out, keys["recipient"], 75, synthetic=SyntheticPattern(*CAMERA))
    return path


def stamps_of(part: media.VideoPart) -> list[int]:
    """The stamped source index of every frame, read after scaling back to the camera's size
    (the stamp's 16 px blocks are 14.4 px wide at 1728x1080)."""
    with av.open(part.open()) as container:
        return [read_index(cv2.resize(frame.to_ndarray(format="bgr24"), CAMERA, interpolation=cv2.INTER_LINEAR))
                for frame in container.decode(video=0)]


def top_level(part: media.VideoPart) -> list[bytes]:
    view = part.open()

    def read_at(offset, length):
        view.seek(offset)
        return view.read(length)
    return [box.kind for box in faststart.boxes(read_at, view.length)]


# --- pure: sizes, levels, the moov relocation -------------------------------------------------

def test_frames_too_large_for_level_4_1_are_scaled_to_fit_1920x1080_keeping_the_aspect():
    assert media.output_size(1920, 1200, media.H264) == (1728, 1080)
    assert media.output_size(3840, 2400, media.H264) == (1728, 1080)
    assert media.output_size(1920, 1080, media.H264) == (1920, 1080)
    assert media.output_size(1280, 720, media.H264) == (1280, 720)
    assert media.output_size(2560, 1080, media.H264) == (1920, 810)
    assert media.output_size(1920, 1200, media.HEVC) == (1920, 1200)


def test_a_frame_rate_beyond_the_level_is_refused_with_one_line():
    assert media.level_problem(1728, 1080, 30, media.H264) is None
    problem = media.level_problem(1728, 1080, 60, media.H264)
    assert "1728x1080 at 60 fps exceeds High level 4.1" in problem


def box(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(body), kind) + body


def offsets_table(kind: bytes, offsets: list[int]) -> bytes:
    code = ">I" if kind == b"stco" else ">Q"
    return box(kind, b"\0\0\0\0" + struct.pack(">I", len(offsets)) + b"".join(struct.pack(code, o) for o in offsets))


def moov_with(*tables: bytes) -> bytes:
    stbl = box(b"stbl", box(b"stsz", b"\0" * 12) + b"".join(tables))
    return box(b"moov", box(b"mvhd", b"\0" * 20) + box(b"trak", box(b"mdia", box(b"minf", stbl))))


def test_chunk_offsets_shift_in_stco_and_co64_and_nothing_else_changes():
    moov = moov_with(offsets_table(b"stco", [48, 1000]), offsets_table(b"co64", [1 << 33]))
    shifted = faststart.shift_chunk_offsets(moov, 500)
    assert len(shifted) == len(moov)
    assert shifted == moov_with(offsets_table(b"stco", [548, 1500]), offsets_table(b"co64", [(1 << 33) + 500]))


def test_an_offset_that_would_overflow_stco_is_refused():
    with pytest.raises(ValueError, match="too large"):
        faststart.shift_chunk_offsets(moov_with(offsets_table(b"stco", [0xFFFF_FF00])), 0x100)


def test_moov_moves_right_after_ftyp_and_the_samples_are_found_where_the_index_says():
    ftyp, free = box(b"ftyp", b"isom\0\0\2\0"), box(b"free", b"")
    samples = b"sample-one" + b"sample-two"
    mdat_at = len(ftyp) + len(free)
    moov = moov_with(offsets_table(b"stco", [mdat_at + 8, mdat_at + 18]))
    original = ftyp + free + box(b"mdat", samples) + moov
    plan = faststart.moov_first(lambda offset, length: original[offset:offset + length], len(original))
    moved = faststart.Concatenation(io.BytesIO(original), plan).read()
    assert len(moved) == len(original)
    assert [b.kind for b in faststart.boxes(lambda o, n: moved[o:n + o], len(moved))] == \
        [b"ftyp", b"moov", b"free", b"mdat"]
    stco = moved.index(b"stco") + 12
    first, second = struct.unpack_from(">II", moved, stco)
    assert moved[first:first + 10] == b"sample-one" and moved[second:second + 10] == b"sample-two"


def test_a_file_already_moov_first_is_left_as_it_is_and_a_cut_file_is_refused():
    ftyp, moov, mdat = box(b"ftyp", b"isom"), moov_with(offsets_table(b"stco", [7])), box(b"mdat", b"xy")
    whole = ftyp + moov + mdat
    assert faststart.moov_first(lambda o, n: whole[o:o + n], len(whole)) == [(0, len(whole))]
    cut = ftyp + mdat + moov[:-4]
    with pytest.raises(ValueError, match="not a complete MP4"):
        faststart.moov_first(lambda o, n: cut[o:o + n], len(cut))


# --- the encrypted scratch file ---------------------------------------------------------------

def test_scratch_reads_back_what_was_written_across_blocks_and_rewrites(tmp_path):
    model = io.BytesIO()
    with EncryptedScratch(tmp_path) as scratch:
        for position, data in [(0, os.urandom(BLOCK + 1000)), (None, b"tail" * 5000), (40, b"PATCHED!"),
                               (BLOCK - 3, b"straddles"), (None, b"end")]:
            for target in (scratch, model):
                target.seek(position if position is not None else 0, os.SEEK_SET if position is not None else os.SEEK_END)
                target.write(data)
        assert scratch.size == len(model.getvalue())
        for offset, length in [(0, 100), (BLOCK - 10, 30), (35, 20), (scratch.size - 7, 100)]:
            scratch.seek(offset)
            model.seek(offset)
            assert scratch.read(length) == model.read(length)
        scratch.seek(0)
        assert scratch.read() == model.getvalue()


def test_scratch_leaves_no_name_on_disk_and_only_ciphertext_in_its_file(tmp_path):
    secret = b"PLAINTEXT-VIDEO-" * 40_000
    with EncryptedScratch(tmp_path) as scratch:
        scratch.write(secret)
        scratch.flush()
        assert os.listdir(tmp_path) == []          # anonymous: nothing to find, nothing left by a crash
        raw = os.pread(scratch._file.fileno(), 2 * len(secret), 0)
        assert len(raw) >= len(secret)
        assert b"PLAINTEXT-VIDEO-" not in raw


def test_a_modified_scratch_block_fails_authentication(tmp_path):
    with EncryptedScratch(tmp_path) as scratch:
        scratch.write(b"x" * (2 * BLOCK))
        scratch.flush()
        os.pwrite(scratch._file.fileno(), b"\xff", 100)
        scratch.seek(0)
        with pytest.raises(IntegrityError, match="scratch block 0"):
            scratch.read(10)


# --- transcoding real recordings ---------------------------------------------------------------

def test_a_1920x1200_recording_becomes_h264_high_4_1_at_1728x1080_moov_first_every_frame_in_order(
        camera_clip, keys, tmp_path):
    with vault.open_reader(camera_clip, keys["identity"]) as reader:
        parts = list(media.transcode(reader, media.H264, scratch_dir=tmp_path))
    try:
        assert len(parts) == 1
        part = parts[0]
        assert (part.width, part.height, part.frames) == (1728, 1080, 75)
        assert (part.profile, part.level) == ("High", 41)
        assert part.frame_time_ms == pytest.approx(1000 / 30)
        assert part.duration_s == pytest.approx(2.5)
        assert top_level(part)[:2] == [b"ftyp", b"moov"]
        assert stamps_of(part) == list(range(75))
        with av.open(part.open()) as container:       # what a DICOM viewer's decoder is told
            context = container.streams.video[0].codec_context
            assert (context.profile, context.level) == ("High", 41)
    finally:
        for part in parts:
            part.close()


def test_the_plaintext_mp4_never_reaches_the_scratch_directory_in_the_clear(camera_clip, keys, tmp_path):
    with vault.open_reader(camera_clip, keys["identity"]) as reader:
        for part in media.transcode(reader, media.H264, scratch_dir=tmp_path):
            with part:
                assert os.listdir(tmp_path) == []
                raw = os.pread(part.scratch._file.fileno(), part.length * 2, 0)
                head = part.open().read(4096)
                assert head[4:8] == b"ftyp" and b"avc1" in head
                # whole runs of the MP4's bytes (4-byte box names alone turn up in ciphertext by chance)
                assert head[:64] not in raw and head[64:4096] not in raw


def test_a_long_video_is_cut_into_parts_under_the_size_limit_at_keyframes(camera_clip, keys):
    limit = 1_400_000     # about three of this clip's one-second GOPs
    with vault.open_reader(camera_clip, keys["identity"]) as reader:
        parts = list(media.transcode(reader, media.H264, max_part_bytes=limit))
    try:
        assert len(parts) >= 2
        assert all(part.length <= limit for part in parts)
        assert [part.index for part in parts] == list(range(len(parts)))
        assert [stamp for part in parts for stamp in stamps_of(part)] == list(range(75))
        assert sum(part.frames for part in parts) == 75
        assert parts[1].start_s == pytest.approx(parts[0].frames / 30)
    finally:
        for part in parts:
            part.close()


def test_an_interrupted_recording_transcodes_up_to_its_last_complete_fragment(keys, tmp_path):
    path = tmp_path / "interrupted.mp4.vault"
    with open(path, "wb") as out:
        write_clip(out, keys["recipient"], 75, synthetic=SyntheticPattern(*CAMERA), seal=False)
    with vault.open_reader(path, keys["identity"], torn_tail_ok=True) as reader:
        end_at_last_fragment(reader)
        parts = list(media.transcode(reader, media.H264))
    try:
        (part,) = parts
        assert 0 < part.frames < 75
        assert stamps_of(part) == list(range(part.frames))
    finally:
        for part in parts:
            part.close()


def test_hevc_main_keeps_the_native_size(keys, tmp_path):
    path = tmp_path / "small.mp4.vault"
    with open(path, "wb") as out:
        write_clip(out, keys["recipient"], 20, synthetic=SyntheticPattern(640, 400))
    with vault.open_reader(path, keys["identity"]) as reader:
        (part,) = list(media.transcode(reader, media.HEVC))
    with part:
        assert (part.width, part.height, part.frames, part.profile) == (640, 400, 20, "Main")
        assert 0 < part.level <= 153
        assert b"hvc1" in part.open().read(4096)     # the sample entry players outside FFmpeg expect
        with av.open(part.open()) as container:
            frames = [read_index(frame.to_ndarray(format="bgr24")) for frame in container.decode(video=0)]
        assert frames == list(range(20))


def test_what_is_not_a_video_is_one_line_not_a_traceback(keys, tmp_path):
    with pytest.raises(ApplianceError, match="could not be transcoded"):
        list(media.transcode(io.BytesIO(b"\0" * 4096), media.H264))


def test_a_consumer_that_stops_after_the_first_part_leaves_no_decoder_thread_running(camera_clip, keys):
    with vault.open_reader(camera_clip, keys["identity"]) as reader:
        parts = media.transcode(reader, media.H264, max_part_bytes=1_400_000)
        with next(parts):
            assert any(thread.name == "gateway-decode" for thread in threading.enumerate())
        parts.close()
    assert not any(thread.name == "gateway-decode" for thread in threading.enumerate())


def test_the_gateway_benchmark_runs_end_to_end_and_reports_its_figures(appliance_cli):
    """A three-second recording through `appliance bench gateway`, sent to storescp: the figures
    the full run reports exist and are consistent (no speed asserted: that is the benchmark's job)."""
    result = appliance_cli("bench", "gateway", "--minutes", "0.05", timeout=300)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    figures = json.loads(result.stdout)
    ours = figures["ours"]
    assert ours["instances"] == 1 and ours["peak_rss_mb"] > 0
    assert sum(ours["share"].values()) == pytest.approx(1, abs=0.01)
    assert figures["ffmpeg_cli"]["output_bytes"] > 0
    assert set(figures["targets"]) == {"at_least_2x_real_time", "peak_rss_at_most_400_mb"}
