"""`appliance record` as an operator runs it: a sealed recording, no plaintext on disk at any
moment, and a killed process leaves an authenticated prefix that plays up to the kill."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from appliance import vault
from appliance.camera.stamp import decoded_stamps
from tests.waiting import wait_for

# What plaintext fragmented MP4 / H.264 would show: box names, an SPS after a start code, and
# x264's version banner (in the first packet's SEI).
PLAINTEXT_MARKERS = (b"ftyp", b"moov", b"moof", b"mdat", b"\x00\x00\x00\x01\x67", b"x264 - core")


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    directory = tmp_path_factory.mktemp("keys")
    key_path, public_path = vault.keys.generate_recipient(directory / "recipient", b"test passphrase")
    device_key_path, _ = vault.keys.generate_device(directory / "device")
    (directory / "passphrase").write_text("test passphrase\n")
    return {"public_path": public_path, "identity": vault.keys.load_identity(key_path, b"test passphrase"),
            "identity_path": key_path, "passphrase_path": directory / "passphrase",
            "device": vault.keys.load_device_key(device_key_path), "device_path": device_key_path}


def record_process(out: Path, keys, *extra: str, seconds: float, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "appliance.cli", "record", "--camera", "synthetic", "--seconds", str(seconds),
         "--out", str(out), "--recipient", str(keys["public_path"]), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **(env or {})})


def plaintext_markers_in(data: bytes) -> list[bytes]:
    return [marker for marker in PLAINTEXT_MARKERS if marker in data]


def scan_for_plaintext(*directories: Path) -> dict[str, list[bytes]]:
    found = {}
    for directory in directories:
        for path in directory.rglob("*"):
            try:
                data = path.read_bytes() if path.is_file() else b""
            except OSError:
                continue   # vanished between listing and reading
            if markers := plaintext_markers_in(data):
                found[str(path)] = markers
    return found


def frame_stamps(plaintext: bytes) -> list[int]:
    return decoded_stamps(io.BytesIO(plaintext))


def ffmpeg_errors(path: Path) -> str:
    """What `ffmpeg -v error` says while decoding the whole file; empty for a file that plays to its end."""
    result = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-f", "null", "-"],
                            capture_output=True, timeout=120)
    return result.stderr.decode().strip() or ("" if result.returncode == 0 else f"exit {result.returncode}")


def test_record_prints_a_summary_of_a_sealed_recording_named_by_an_opaque_uid(tmp_path, keys, appliance_cli):
    result = appliance_cli("record", "--camera", "synthetic", "--width", "512", "--height", "288", "--seconds", "1.5",
                           "--out", str(tmp_path / "out"), "--recipient", str(keys["public_path"]),
                           "--device-key", str(keys["device_path"]))
    assert result.returncode == 0, result.stderr.decode()
    summary = json.loads(result.stdout)
    path = Path(summary["path"])
    assert re.fullmatch(r"[0-9a-f]{32}\.mp4\.vault", path.name)
    assert 40 <= summary["frames"] + summary["dropped"] <= 50 and summary["frames"] > 0
    assert summary["bytes"] == path.stat().st_size and summary["bitrate_bps"] > 0
    assert vault.verify(path, keys["device"].public_key()).ok
    assert (path.stat().st_mode & 0o777, path.parent.stat().st_mode & 0o777) == (0o600, 0o700)
    with vault.open_reader(path, keys["identity"]) as reader:
        assert len(frame_stamps(reader.read())) == summary["frames"]


@pytest.mark.parametrize("arguments, message", [
    (["--camera", "synthetic", "--seconds", "0"], "--seconds must be positive"),
    (["--camera", "dslr", "--seconds", "1"], "unknown camera"),
    (["--camera", "synthetic", "--seconds", "1", "--width", "100"], "at least 512x16"),
    (["--camera", "synthetic", "--seconds", "1", "--codec", "nonesuch"], "not available"),
    (["--camera", "synthetic", "--seconds", "1", "--crf", "60"], "--crf must be between 0 and 51, got 60"),
])
def test_record_rejects_bad_input_in_one_line(tmp_path, keys, appliance_cli, arguments, message):
    result = appliance_cli("record", *arguments, "--out", str(tmp_path / "out"),
                           "--recipient", str(keys["public_path"]))
    assert result.returncode == 2
    assert message in result.stderr.decode() and len(result.stderr.decode().strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_the_scan_recognises_plaintext_video(tmp_path, keys, appliance_cli):
    """The no-plaintext test below is only as good as its scanner: it must see real plaintext."""
    result = appliance_cli("record", "--camera", "synthetic", "--width", "512", "--height", "288", "--seconds", "0.5",
                           "--out", str(tmp_path), "--recipient", str(keys["public_path"]))
    path = Path(json.loads(result.stdout)["path"])
    with vault.open_reader(path, keys["identity"]) as reader:
        mp4_markers = set(plaintext_markers_in(reader.read()))
    assert mp4_markers == {b"ftyp", b"moov", b"moof", b"mdat", b"x264 - core"}
    assert plaintext_markers_in(path.read_bytes()) == []
    # Raw H.264 (Annex B), should it ever escape the muxer: the encoder's own first packet.
    from appliance.camera.synthetic import SyntheticPattern
    from appliance.recording.settings import RecordingSettings
    from appliance.recording.encoder import Encoder

    encoder = Encoder(RecordingSettings(codec_options={"x264-params": "repeat-headers=1"}), 512, 288, 30)
    raw = b"".join(bytes(packet) for packet in encoder.encode(SyntheticPattern(512, 288).render(0), 0))
    assert b"\x00\x00\x00\x01\x67" in plaintext_markers_in(raw)


def test_no_plaintext_video_on_disk_while_recording(tmp_path, keys):
    out, private_tmp = tmp_path / "out", tmp_path / "tmp"
    private_tmp.mkdir()
    process = record_process(out, keys, "--width", "1024", "--height", "576", seconds=3,
                             env={"TMPDIR": str(private_tmp)})
    scans = 0
    try:
        while process.poll() is None:
            assert scan_for_plaintext(out if out.exists() else tmp_path, private_tmp) == {}
            scans += 1
    finally:
        process.kill() if process.poll() is None else None
        process.wait()
    assert process.returncode == 0, process.stderr.read().decode()
    assert scans >= 3 and any(out.glob("*.mp4.vault"))
    assert scan_for_plaintext(out, private_tmp) == {}


def test_a_killed_recording_decrypts_to_video_that_plays_to_its_end_close_to_the_kill(tmp_path, keys, appliance_cli):
    out = tmp_path / "out"
    process = record_process(out, keys, "--width", "1024", "--height", "576", seconds=60)
    try:
        path = wait_for(lambda: next(out.glob("*.mp4.vault"), None) if out.exists() else None,
                        what="the recording file")
        created_at = time.monotonic()
        wait_for(lambda: time.monotonic() - created_at > 4 and path.stat().st_size > 4 * 65536,
                 what="four seconds of recording")
        process.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
    finally:
        process.kill()
        process.wait()
    # The appliance's recovery step on restart: sign what is there as interrupted.
    verification = vault.mark_interrupted(path, keys["device"])
    assert verification.ok and verification.state == "interrupted"
    with vault.open_reader(path, keys["identity"]) as reader:
        assert not reader.finalized
        (tmp_path / "torn.mp4").write_bytes(reader.read())
    assert ffmpeg_errors(tmp_path / "torn.mp4")   # the raw authenticated prefix ends in a torn fragment

    decrypted = tmp_path / "decrypted.mp4"
    result = appliance_cli("vault", "decrypt", str(path), "--identity", str(keys["identity_path"]),
                           "--passphrase-file", str(keys["passphrase_path"]), "-o", str(decrypted))
    assert result.returncode == 0 and b"INTERRUPTED" in result.stderr, result.stderr
    assert ffmpeg_errors(decrypted) == ""
    indices = frame_stamps(decrypted.read_bytes())     # PyAV decodes to the end without an exception
    assert indices == list(range(len(indices)))       # every frame up to the cut, in order, once
    frames_at_kill = (killed_at - created_at) * 30    # the camera ran before the file existed
    assert indices[-1] >= frames_at_kill - 3 * 30, (indices[-1], frames_at_kill)


def test_sigterm_ends_the_recording_early_and_seals_it(tmp_path, keys):
    out = tmp_path / "out"
    process = record_process(out, keys, "--width", "512", "--height", "288", "--device-key", str(keys["device_path"]),
                             seconds=60)
    try:
        path = wait_for(lambda: next(out.glob("*.mp4.vault"), None) if out.exists() else None, what="the file")
        wait_for(lambda: path.stat().st_size > 65536, what="some recorded video")
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, stderr.decode()
    summary = json.loads(stdout)
    assert summary["stopped_early"] is True and summary["frames"] > 0
    verification = vault.verify(path, keys["device"].public_key())
    assert verification.ok and verification.state == "sealed"
    with vault.open_reader(path, keys["identity"]) as reader:
        assert len(frame_stamps(reader.read())) == summary["frames"]
