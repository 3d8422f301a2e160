"""The old design's recording pipeline, as its architecture document describes it, kept as the
baseline every recording figure is compared with.

cv2.VideoWriter with fourcc "mp4v" (MPEG-4 Part 2, despite the document's H.264 claim) writes
a plaintext MP4 file; the frame callback writes synchronously, so a slow write stalls the camera;
at the end the whole file is read into memory, AES-256-GCM encrypted as
[12-byte nonce][ciphertext + 16-byte tag], written, and the plaintext deleted.
Only synthetic benchmark frames ever pass through here.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import cv2
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


def start_recording(output_path: Path, fps: float, frame_size: tuple[int, int]) -> cv2.VideoWriter:
    output_path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(output_path), cv2.VideoWriter_fourcc(*"mp4v"), fps, frame_size)
    if not writer.isOpened():
        raise RuntimeError(f"Failed to open VideoWriter: {output_path}")
    return writer


def encrypt_video_file(input_path: Path, output_path: Path, key: bytes) -> None:
    """Phase 6 of the old design: whole file in memory, one AES-256-GCM message."""
    aesgcm = AESGCM(key)
    nonce = os.urandom(12)
    with open(input_path, "rb") as f:
        plaintext = f.read()
    ciphertext = aesgcm.encrypt(nonce, plaintext, None)
    with open(output_path, "wb") as f:
        f.write(nonce)
        f.write(ciphertext)


def decrypt_video_file(path: Path, key: bytes) -> bytes:
    """The old design's playback step, kept in memory here (it wrote a temp file)."""
    data = path.read_bytes()
    return AESGCM(key).decrypt(data[:12], data[12:], None)


def stop_and_seal(writer: cv2.VideoWriter, plaintext_path: Path, key: bytes) -> tuple[Path, float]:
    """stop_recording() then encrypt and delete the plaintext; returns the sealed file and seconds."""
    started = time.perf_counter()
    writer.release()
    sealed = plaintext_path.with_suffix(".enc")
    encrypt_video_file(plaintext_path, sealed, key)
    os.remove(plaintext_path)
    return sealed, time.perf_counter() - started
