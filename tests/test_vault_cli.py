"""`appliance keys` and `appliance vault` through subprocesses, as an operator runs them."""

from __future__ import annotations

import hashlib
import json
import os
import select
import signal
import stat
import subprocess
import sys
import textwrap
import time

import av
import pytest
from conftest import run_appliance

from appliance.camera.stamp import decoded_stamps
from appliance.vault import stream
from appliance.vault.header import read_header

PASSPHRASE = "a clinic passphrase"


def pattern(size: int) -> bytes:
    return b"".join(hashlib.sha256(i.to_bytes(8, "big")).digest() for i in range(size // 32 + 1))[:size]


def one_line_error(result, code: int) -> str:
    lines = result.stderr.decode().strip().splitlines()
    assert result.returncode == code, result.stderr
    assert len(lines) == 1 and "Traceback" not in lines[0], lines
    return lines[0]


@pytest.fixture(scope="module")
def clinic(tmp_path_factory):
    home = tmp_path_factory.mktemp("clinic")
    (home / "pass").write_text(PASSPHRASE + "\n")
    (home / "wrong").write_text("not the passphrase\n")
    for args in (("keys", "init", "--dir", str(home / "keys"), "--passphrase-file", str(home / "pass")),
                 ("keys", "device", "--dir", str(home / "keys")),
                 ("keys", "init", "--dir", str(home / "other"), "--passphrase-file", str(home / "pass"))):
        result = run_appliance(*args)
        assert result.returncode == 0, result.stderr
    return home


@pytest.fixture
def sealed(tmp_path, clinic, appliance_cli):
    plain = tmp_path / "input.bin"
    plain.write_bytes(pattern(3 * stream.SEGMENT_PLAINTEXT + 99))
    out = tmp_path / "out" / "clip.vault"
    out.parent.mkdir()
    result = appliance_cli("vault", "encrypt", str(plain), "-o", str(out),
                           "--recipient", str(clinic / "keys/recipient.pub"),
                           "--recipient", str(clinic / "other/recipient.pub"),
                           "--device-key", str(clinic / "keys/device.key"))
    assert result.returncode == 0, result.stderr
    return out, plain.read_bytes()


def decrypt(clinic, path, output, *, identity="keys", passphrase="pass"):
    return run_appliance("vault", "decrypt", str(path), "--identity", str(clinic / identity / "recipient.key"),
                         "--passphrase-file", str(clinic / passphrase), "-o", str(output))


def test_keys_init_writes_private_files_and_never_overwrites(clinic, appliance_cli):
    for name in ("recipient.key", "recipient.pub", "device.key", "device.pub"):
        assert stat.S_IMODE((clinic / "keys" / name).stat().st_mode) == 0o600
    before = (clinic / "keys/recipient.key").read_bytes()
    result = appliance_cli("keys", "init", "--dir", str(clinic / "keys"), "--passphrase-file", str(clinic / "pass"))
    assert "already exists" in one_line_error(result, 2)
    assert (clinic / "keys/recipient.key").read_bytes() == before


def test_encrypt_verify_info_decrypt_round_trip(sealed, clinic, appliance_cli, tmp_path):
    vault_path, plaintext = sealed
    assert stat.S_IMODE(vault_path.stat().st_mode) == 0o600
    verified = appliance_cli("vault", "verify", str(vault_path), "--device-pub", str(clinic / "keys/device.pub"))
    assert verified.returncode == 0 and b"sealed" in verified.stdout
    info = appliance_cli("vault", "info", str(vault_path))
    assert info.returncode == 0 and b"manifest: sealed" in info.stdout and b"version: 2" in info.stdout
    assert decrypt(clinic, vault_path, tmp_path / "back.bin").returncode == 0
    assert (tmp_path / "back.bin").read_bytes() == plaintext
    assert stat.S_IMODE((tmp_path / "back.bin").stat().st_mode) == 0o600
    escrow = decrypt(clinic, vault_path, "-", identity="other")
    assert escrow.returncode == 0 and escrow.stdout == plaintext


def test_wrong_passphrase_or_key_is_one_line_exit_2_and_writes_nothing(sealed, clinic, tmp_path):
    vault_path, _ = sealed
    assert "wrong passphrase" in one_line_error(decrypt(clinic, vault_path, tmp_path / "a", passphrase="wrong"), 2)
    stranger = clinic / "stranger"
    run_appliance("keys", "init", "--dir", str(stranger), "--passphrase-file", str(clinic / "pass"))
    assert "not a recipient" in one_line_error(decrypt(clinic, vault_path, tmp_path / "b", identity="stranger"), 2)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_bad_input_is_one_line_exit_2_and_nothing_is_written(sealed, clinic, tmp_path, appliance_cli):
    vault_path, _ = sealed
    not_vault = tmp_path / "movie.mp4"
    not_vault.write_bytes(b"\x00\x00\x00\x18ftypisom" * 100)
    newer = tmp_path / "newer.vault"
    newer.write_bytes(vault_path.read_bytes()[:8] + b"\x07" + vault_path.read_bytes()[9:])
    existing = tmp_path / "exists.bin"
    existing.write_bytes(b"keep me")
    out_dir = tmp_path / "outputs"
    out_dir.mkdir()
    cases = [
        (decrypt(clinic, not_vault, out_dir / "1"), "not a vault file"),
        (decrypt(clinic, newer, out_dir / "2"), "unsupported vault version 7"),
        (decrypt(clinic, tmp_path / "missing.vault", out_dir / "3"), "does not exist"),
        (decrypt(clinic, tmp_path, out_dir / "4"), "is not a file"),
        (decrypt(clinic, vault_path, existing), "already exists"),
        (appliance_cli("vault", "decrypt", str(vault_path), "--identity", str(tmp_path / "no.key"),
                       "--passphrase-file", str(clinic / "pass"), "-o", str(out_dir / "5")), "does not exist"),
        (appliance_cli("vault", "verify", str(not_vault)), "not a vault file"),
        (appliance_cli("vault", "verify", str(tmp_path)), "Is a directory"),
        (appliance_cli("vault", "info", str(tmp_path)), "Is a directory"),
        (appliance_cli("vault", "encrypt", str(not_vault), "-o", str(out_dir / "6"),
                       "--recipient", str(tmp_path / "missing.pub")), "does not exist"),
        (appliance_cli("vault", "encrypt", str(tmp_path / "nothing"), "-o", str(out_dir / "7"),
                       "--recipient", str(clinic / "keys/recipient.pub")), "does not exist"),
        (appliance_cli("vault", "encrypt", str(not_vault), "-o", str(existing),
                       "--recipient", str(clinic / "keys/recipient.pub")), "already exists"),
        (appliance_cli("vault", "encrypt", str(not_vault), "-o", str(out_dir / "8"),
                       "--recipient", str(clinic / "keys/recipient.key")), "not a PEM public key"),
    ]
    for result, message in cases:
        assert message in one_line_error(result, 2)
    assert list(out_dir.iterdir()) == []
    assert existing.read_bytes() == b"keep me"


def test_a_tampered_vault_fails_with_exit_1_and_leaves_no_plaintext(sealed, clinic, tmp_path, appliance_cli):
    vault_path, _ = sealed
    data = bytearray(vault_path.read_bytes())
    data[150_000] ^= 0x10
    vault_path.write_bytes(bytes(data))
    assert "SHA-256" in one_line_error(appliance_cli("vault", "verify", str(vault_path)), 1)
    assert "segment 2 failed authentication" in one_line_error(decrypt(clinic, vault_path, tmp_path / "p"), 1)
    to_stdout = decrypt(clinic, vault_path, "-")
    assert "segment 2 failed authentication" in one_line_error(to_stdout, 1) and to_stdout.stdout == b""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["input.bin", "out"]


def test_a_sealed_vault_with_its_last_segment_cut_off_is_tampered(sealed, clinic, tmp_path, appliance_cli):
    vault_path, _ = sealed
    with open(vault_path, "rb") as source:
        body_start = read_header(source.read).length
    size = vault_path.stat().st_size
    os.truncate(vault_path, size - (size - body_start) % stream.SEGMENT_SIZE)  # drop the short last segment
    assert "tampered" in one_line_error(appliance_cli("vault", "verify", str(vault_path)), 1)
    assert "tampered" in one_line_error(decrypt(clinic, vault_path, tmp_path / "p"), 1)
    assert not (tmp_path / "p").exists()


WRITER = textwrap.dedent("""
    import hashlib, os, sys
    from appliance import vault
    from appliance.vault import keys
    def pattern(size):
        return b"".join(hashlib.sha256(i.to_bytes(8, "big")).digest() for i in range(size // 32 + 1))[:size]
    recipient = keys.load_recipient_public(sys.argv[1])
    fd = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    writer = vault.encrypt(os.fdopen(fd, "wb"), [recipient])
    writer.write(pattern(int(sys.argv[3])))
    print("written", flush=True)
    sys.stdin.read()  # recording goes on until the process is killed
""")


def test_writer_killed_then_marked_interrupted_decrypts_its_authenticated_prefix(clinic, tmp_path, appliance_cli):
    path = tmp_path / "clip.vault"
    size = 3 * stream.SEGMENT_PLAINTEXT + 5000   # three full segments on disk, 5000 bytes pending
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(clinic / "keys/recipient.pub"), str(path),
                               str(size)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not select.select([writer.stdout], [], [], 0.5)[0]:
            assert writer.poll() is None and time.monotonic() < deadline, "writer did not start"
        assert writer.stdout.readline() == b"written\n"
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=30)
    assert writer.returncode == -signal.SIGKILL

    assert "no manifest" in one_line_error(appliance_cli("vault", "verify", str(path)), 1)
    assert "no last segment" in one_line_error(decrypt(clinic, path, tmp_path / "early"), 1)
    with open(path, "ab") as torn:  # a write cut by power loss leaves part of a segment
        torn.write(os.urandom(777))
    marked = appliance_cli("vault", "mark-interrupted", str(path), "--device-key", str(clinic / "keys/device.key"))
    assert marked.returncode == 0, marked.stderr
    verified = appliance_cli("vault", "verify", str(path), "--device-pub", str(clinic / "keys/device.pub"))
    assert verified.returncode == 0 and b"interrupted" in verified.stdout
    result = decrypt(clinic, path, tmp_path / "prefix.bin")
    assert result.returncode == 0 and b"INTERRUPTED" in result.stderr
    assert (tmp_path / "prefix.bin").read_bytes() == pattern(size)[:3 * stream.SEGMENT_PLAINTEXT - 40]
    assert not (tmp_path / "early").exists()


def decodes_cleanly(path) -> list[int]:
    """The stamped frame indices, after ffmpeg and PyAV have both read the file to its end without an error."""
    checked = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-f", "null", "-"],
                             capture_output=True, timeout=120)
    assert checked.returncode == 0 and checked.stderr == b"", checked.stderr
    with open(path, "rb") as video:
        try:
            return decoded_stamps(video)
        except av.error.FFmpegError as error:
            raise AssertionError(f"PyAV stopped before the end: {error}") from None


def test_a_recording_cut_by_power_loss_decrypts_to_its_last_complete_fragment(clinic, tmp_path, appliance_cli):
    recorded = appliance_cli("record", "--camera", "synthetic", "--width", "512", "--height", "288",
                             "--seconds", "6", "--out", str(tmp_path / "out"),
                             "--recipient", str(clinic / "keys/recipient.pub"))
    assert recorded.returncode == 0, recorded.stderr
    path = tmp_path / "out" / os.path.basename(json.loads(recorded.stdout)["path"])
    assert decrypt(clinic, path, tmp_path / "full.mp4").returncode == 0
    full = (tmp_path / "full.mp4").read_bytes()
    with open(path, "rb") as source:
        body_start = read_header(source.read).length
    assert path.stat().st_size > body_start + 3 * stream.SEGMENT_SIZE
    os.truncate(path, body_start + 2 * stream.SEGMENT_SIZE + 777)    # two whole segments and a torn write
    assert appliance_cli("vault", "mark-interrupted", str(path),
                         "--device-key", str(clinic / "keys/device.key")).returncode == 0

    result = decrypt(clinic, path, tmp_path / "cut.mp4")
    assert result.returncode == 0 and b"INTERRUPTED" in result.stderr and b"torn fragment" in result.stderr
    cut = (tmp_path / "cut.mp4").read_bytes()
    authenticated = 2 * stream.SEGMENT_PLAINTEXT - stream.HEADER_LENGTH
    assert full.startswith(cut) and 0 < len(cut) < authenticated
    assert decrypt(clinic, path, "-").stdout == cut
    indices = decodes_cleanly(tmp_path / "cut.mp4")
    # Every frame up to the cut: each one whose data lies wholly inside the kept prefix.
    with av.open(str(tmp_path / "full.mp4")) as container:
        kept = sum(1 for packet in container.demux(video=0) if packet.size and packet.pos + packet.size <= len(cut))
    assert indices == list(range(indices[0], indices[0] + kept))

    (tmp_path / "torn.mp4").write_bytes(full[:authenticated])    # what decrypting used to write
    with pytest.raises(AssertionError):
        decodes_cleanly(tmp_path / "torn.mp4")


def read_until(fd: int, marker: bytes, deadline_s: float = 60) -> bytes:
    seen = b""
    deadline = time.monotonic() + deadline_s
    while marker not in seen:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no {marker!r} on the terminal; got {seen!r}"
        if select.select([fd], [], [], remaining)[0]:
            seen += os.read(fd, 1024)
    return seen


def test_keys_init_prompts_for_the_passphrase_twice_on_a_terminal(tmp_path):
    from appliance.vault import keys

    controller, terminal = os.openpty()
    # A new session has no controlling terminal, so getpass reads the pty given as stdin.
    process = subprocess.Popen([sys.executable, "-m", "appliance.cli", "keys", "init", "--dir", str(tmp_path / "k")],
                               stdin=terminal, stdout=terminal, stderr=terminal, start_new_session=True)
    os.close(terminal)
    try:
        read_until(controller, b"Passphrase: ")
        os.write(controller, b"typed at the terminal\n")
        read_until(controller, b"Repeat passphrase: ")
        os.write(controller, b"typed at the terminal\n")
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
        os.close(controller)
    assert keys.load_identity(tmp_path / "k" / "recipient.key", b"typed at the terminal")
