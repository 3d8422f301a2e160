"""Vault throughput, memory and opening: MB/s beside raw AES-GCM, peak RSS, v2 against v1 headers.

Writer and reader run on the same 64 KiB segments as a bare AESGCM loop (the floor any design
pays), so the ratios show what the vault's framing and buffering cost; the writer also hashes
the ciphertext for the manifest, so it is compared with AES-GCM plus SHA-256 as well. Both are
run for format v1 and v2 (interleaved, best of two: the body is the same stream, so v2/v1 should
be 1 within noise); the v1 file is written by today's writer, so this compares the formats, not
this release's code with the previous one's. Peak RSS is measured in a child process encrypting a generated stream to
/dev/null (no plaintext on disk) and compared with the old design's whole-file AES-GCM on a
smaller file. For 1 and 16 recipients, v1 (P-256), v2 with X-Wing and v2 with P-256 stanzas:
header bytes, time to seal the header, and time to open (parse, unwrap, header MAC, last
segment) and read the first segment.
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
RECIPIENT_COUNTS = (1, 16)
OPEN_TRIALS = 15


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


def _v1_writer(dst, public_keys):
    """A version 1 vault as this software wrote them before version 2 (it now only reads them):
    P-256 stanzas, the body bound to the whole header (docs/vault-format.md)."""
    from appliance.vault import header as v1
    from appliance.vault import recipients, stream
    from appliance.vault.writer import VaultWriter

    recording_id, data_key = os.urandom(v1.RECORDING_ID_SIZE), os.urandom(stream.KEY_SIZE)
    info = v1.HPKE_INFO_LABEL + recording_id
    stanzas = tuple(v1.Stanza(recipients.P256, recipients.key_id(key), recipients.wrap(data_key, key, info))
                    for key in public_keys)
    return VaultWriter(dst, v1.VaultHeaderV1(recording_id, stanzas), data_key, fsync_every=0)


def _v2_writer(dst, public_keys):
    from appliance import vault

    return vault.encrypt(dst, public_keys, fsync_every=0)


def _p256_identity():
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _xwing_identity():
    from appliance.vault.xwing import XWingPrivateKey

    return XWingPrivateKey.generate()


# format -> (writer, recipient key generator): v1 as it was, v2 with the default post-quantum
# recipients, and v2 with classical ones (`keys init --classical`).
FORMATS = {
    "v1_p256": (_v1_writer, _p256_identity),
    "v2_xwing": (_v2_writer, _xwing_identity),
    "v2_p256": (_v2_writer, _p256_identity),
}


def _write(make_writer, public_keys, sink, chunk: bytes, mib: int) -> float:
    started = time.perf_counter()
    writer = make_writer(sink, public_keys)
    for _ in range(mib):
        writer.write(chunk)
    writer.close()
    return time.perf_counter() - started


def _read_all(ciphertext: bytes, identity) -> float:
    from appliance import vault

    started = time.perf_counter()
    reader = vault.open_reader(io.BytesIO(ciphertext), identity)
    while reader.read(MIB):
        pass
    return time.perf_counter() - started


def _median_ms(samples: list[float]) -> float:
    return round(sorted(samples)[len(samples) // 2] * 1000, 2)


def _opening(format_name: str, recipient_count: int) -> dict:
    """Header size, sealing the header, and opening: parse + unwrap (+ MAC in v2) alone, and the
    whole open (that, the last segment's authentication) plus the first segment's plaintext.
    The reader's key is the last stanza, so it passes every other recipient's."""
    from appliance import vault
    from appliance.vault import header as vault_header
    from appliance.vault import stream

    make_writer, generate = FORMATS[format_name]
    identities = [generate() for _ in range(recipient_count)]
    public_keys = [identity.public_key() for identity in identities]
    seal_seconds = []
    for _ in range(OPEN_TRIALS):
        started = time.perf_counter()
        make_writer(_Discard(), public_keys)
        seal_seconds.append(time.perf_counter() - started)
    sink = io.BytesIO()
    _write(make_writer, public_keys, sink, os.urandom(MIB), 1)
    data, identity = sink.getvalue(), identities[-1]
    unwrap_seconds, open_seconds = [], []
    for _ in range(OPEN_TRIALS):
        started = time.perf_counter()
        vault_header.read_header(io.BytesIO(data).read).unwrap(identity)
        unwrap_seconds.append(time.perf_counter() - started)
        started = time.perf_counter()
        reader = vault.open_reader(io.BytesIO(data), identity)
        first = reader.read(stream.FIRST_SEGMENT_PLAINTEXT)
        open_seconds.append(time.perf_counter() - started)
        assert len(first) == stream.FIRST_SEGMENT_PLAINTEXT
    return {
        "header_bytes": reader.header.length,
        "seal_header_ms_median": _median_ms(seal_seconds),
        "parse_unwrap_ms_median": _median_ms(unwrap_seconds),
        "open_first_segment_ms_median": _median_ms(open_seconds),
    }


def _openings() -> dict:
    figures = {f"{name}_{count}_recipients": _opening(name, count)
               for count in RECIPIENT_COUNTS for name in FORMATS}
    for count in RECIPIENT_COUNTS:
        v1, v2 = figures[f"v1_p256_{count}_recipients"], figures[f"v2_xwing_{count}_recipients"]
        figures[f"v2_xwing_vs_v1_{count}_recipients"] = {
            "header_bytes": round(v2["header_bytes"] / v1["header_bytes"], 2),
            "open_first_segment_ms": round(v2["open_first_segment_ms_median"] / v1["open_first_segment_ms_median"], 2),
        }
    return figures


def _throughput(total_mib: int) -> dict:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from appliance import vault
    from appliance.vault import stream

    chunk = os.urandom(MIB)
    size = total_mib * MIB
    identities = {name: FORMATS[name][1]() for name in ("v1_p256", "v2_xwing")}
    writer_seconds_of: dict[str, list[float]] = {name: [] for name in identities}
    reader_seconds_of: dict[str, list[float]] = {name: [] for name in identities}
    ciphertexts = {}
    for _ in range(2):
        for name, identity in identities.items():
            writer_seconds_of[name].append(
                _write(FORMATS[name][0], [identity.public_key()], _Discard(), chunk, total_mib))
            sink = io.BytesIO()
            _write(FORMATS[name][0], [identity.public_key()], sink, chunk, total_mib)
            ciphertexts[name] = sink.getvalue()
            reader_seconds_of[name].append(_read_all(ciphertexts[name], identity))
    rates = {name: (_mb_per_s(size, min(writer_seconds_of[name])), _mb_per_s(size, min(reader_seconds_of[name])))
             for name in identities}
    writer_rate, reader_rate = rates["v2_xwing"]
    writer_seconds = min(writer_seconds_of["v2_xwing"])

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

    # Playback: open (authenticates the first and last segment) + seek + read one segment.
    ciphertext_bytes, identity = ciphertexts["v2_xwing"], identities["v2_xwing"]
    open_seek_ms = []
    for trial in range(20):
        started = time.perf_counter()
        reader = vault.open_reader(io.BytesIO(ciphertext_bytes), identity)
        reader.seek(size * trial // 20)
        reader.read(stream.SEGMENT_PLAINTEXT)
        open_seek_ms.append((time.perf_counter() - started) * 1000)

    raw_encrypt, raw_decrypt = _mb_per_s(size, raw_encrypt_seconds), _mb_per_s(size, raw_decrypt_seconds)
    return {
        "plaintext_mib": total_mib,
        "format": "v2, one xwing recipient",
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
        "v1_writer_mb_s": rates["v1_p256"][0],
        "v1_reader_mb_s": rates["v1_p256"][1],
        "v2_vs_v1_writer": round(writer_rate / rates["v1_p256"][0], 2),
        "v2_vs_v1_reader": round(reader_rate / rates["v1_p256"][1], 2),
    }


def child_encrypt_stream(total_mib: int) -> None:
    """Runs in the child: encrypts `total_mib` MiB to /dev/null, prints peak RSS figures."""
    from appliance import vault

    identity = _xwing_identity()
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
        "header_and_open": _openings(),
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
