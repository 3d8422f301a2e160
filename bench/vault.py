"""Vault throughput and memory: writer/reader MB/s beside raw AES-GCM, peak RSS on a 1 GiB stream.

Writer and reader run on the same 64 KiB segments as a bare AESGCM loop (the floor any design
pays), so the ratios show what the vault's framing and buffering cost; the writer also hashes
the ciphertext for the manifest, so it is compared with AES-GCM plus SHA-256 as well. Peak RSS is
measured in a child process encrypting a generated stream to /dev/null (no plaintext on disk)
and compared with the old design's whole-file AES-GCM on a smaller file.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import time

from bench.rss import peak_rss_mb

MIB = 1024 * 1024
RSS_LIMIT_MB = 100


def add_arguments(parser) -> None:
    parser.add_argument("--mib", type=int, default=128, help="plaintext MiB for the throughput runs")
    parser.add_argument("--stream-mib", type=int, default=1024, help="plaintext MiB for the peak-RSS run")
    parser.add_argument("--old-mib", type=int, default=64, help="file size for the old whole-file baseline")


class _Discard(io.RawIOBase):
    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        return len(data)


def _mb_per_s(size: int, seconds: float) -> float:
    return round(size / MIB / seconds, 1)


def _throughput(total_mib: int) -> dict:
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from appliance import vault
    from appliance.vault import stream

    identity = ec.generate_private_key(ec.SECP256R1())
    chunk = os.urandom(MIB)
    size = total_mib * MIB

    started = time.perf_counter()
    writer = vault.encrypt(_Discard(), [identity.public_key()], fsync_every=0)
    for _ in range(total_mib):
        writer.write(chunk)
    writer.close()
    writer_seconds = time.perf_counter() - started

    aead = AESGCM(os.urandom(32))
    nonce = os.urandom(12)
    segment = chunk[:stream.SEGMENT_PLAINTEXT]
    segments = -(-size // stream.SEGMENT_PLAINTEXT)
    started = time.perf_counter()
    for _ in range(segments):
        sealed = aead.encrypt(nonce, segment, None)
    raw_encrypt_seconds = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(segments):
        aead.decrypt(nonce, sealed, None)
    raw_decrypt_seconds = time.perf_counter() - started

    # The writer also hashes every ciphertext byte for the signed manifest: the second floor.
    digest = hashlib.sha256()
    started = time.perf_counter()
    for _ in range(segments):
        digest.update(sealed)
    raw_sha256_seconds = time.perf_counter() - started

    ciphertext = io.BytesIO()
    writer = vault.encrypt(ciphertext, [identity.public_key()], fsync_every=0)
    for _ in range(total_mib):
        writer.write(chunk)
    writer.close()
    ciphertext_bytes = ciphertext.getvalue()
    started = time.perf_counter()
    reader = vault.open_reader(io.BytesIO(ciphertext_bytes), identity)
    while reader.read(MIB):
        pass
    reader_seconds = time.perf_counter() - started

    # Playback: open (authenticates the first and last segment) + seek + read one segment.
    open_seek_ms = []
    for trial in range(20):
        started = time.perf_counter()
        reader = vault.open_reader(io.BytesIO(ciphertext_bytes), identity)
        reader.seek(size * trial // 20)
        reader.read(stream.SEGMENT_PLAINTEXT)
        open_seek_ms.append((time.perf_counter() - started) * 1000)

    writer_rate, reader_rate = _mb_per_s(size, writer_seconds), _mb_per_s(size, reader_seconds)
    raw_encrypt, raw_decrypt = _mb_per_s(size, raw_encrypt_seconds), _mb_per_s(size, raw_decrypt_seconds)
    return {
        "plaintext_mib": total_mib,
        "writer_mb_s": writer_rate,
        "raw_aesgcm_encrypt_mb_s": raw_encrypt,
        "writer_vs_raw": round(writer_rate / raw_encrypt, 2),
        "raw_sha256_mb_s": _mb_per_s(size, raw_sha256_seconds),
        "writer_vs_raw_aesgcm_plus_sha256": round(writer_seconds and
                                                  (raw_encrypt_seconds + raw_sha256_seconds) / writer_seconds, 2),
        "reader_mb_s": reader_rate,
        "raw_aesgcm_decrypt_mb_s": raw_decrypt,
        "reader_vs_raw": round(reader_rate / raw_decrypt, 2),
        "open_seek_read_ms_median": round(sorted(open_seek_ms)[len(open_seek_ms) // 2], 2),
    }


def child_encrypt_stream(total_mib: int) -> None:
    """Runs in the child: encrypts `total_mib` MiB to /dev/null, prints peak RSS figures."""
    from cryptography.hazmat.primitives.asymmetric import ec

    from appliance import vault

    identity = ec.generate_private_key(ec.SECP256R1())
    chunk = os.urandom(MIB)
    before = peak_rss_mb()
    with open(os.devnull, "wb") as sink:
        writer = vault.encrypt(sink, [identity.public_key()])
        for _ in range(total_mib):
            writer.write(chunk)
        writer.close()
    peak = peak_rss_mb()
    print(json.dumps({"rss_before_stream_mb": before, "peak_rss_mb": peak}))


def child_old_whole_file(total_mib: int) -> None:
    """The old design: the whole recording in memory (as its file read would put it), one AES-GCM call.
    The bytes are generated in memory: the baseline's plaintext file is not recreated on disk."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    data = b"".join(os.urandom(MIB) for _ in range(total_mib))
    sealed = AESGCM(os.urandom(32)).encrypt(os.urandom(12), data, None)
    peak = peak_rss_mb()
    print(json.dumps({"peak_rss_mb": peak, "ciphertext_bytes": len(sealed)}))


def _in_child(function: str, total_mib: int) -> dict:
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", f"from bench.vault import {function}; {function}({total_mib})"],
        capture_output=True, text=True, check=True)
    figures = json.loads(result.stdout)
    figures["seconds"] = round(time.perf_counter() - started, 2)
    return figures


def run(args) -> dict:
    stream_run = _in_child("child_encrypt_stream", args.stream_mib)
    old = _in_child("child_old_whole_file", args.old_mib)
    return {
        "note": "shared machine: figures are noisy; rerun with `appliance bench vault`",
        "throughput": _throughput(args.mib),
        "peak_rss": {
            "vault_stream_mib": args.stream_mib,
            **stream_run,
            "limit_mb": RSS_LIMIT_MB,
            "within_limit": stream_run["peak_rss_mb"] < RSS_LIMIT_MB,
            "old_whole_file_mib": args.old_mib,
            "old_whole_file_peak_rss_mb": old["peak_rss_mb"],
            "old_vs_vault_rss": round(old["peak_rss_mb"] / stream_run["peak_rss_mb"], 2),
        },
    }
