"""`appliance demo [--headless]`: the appliance on embedded defaults, data in ./data.

The recording pipeline is not in yet, so for now the demo runs the vault round trip: demo
keys (made on first run; the demo passphrase lives in ./data/demo-passphrase, 0600), a
generated stream encrypted straight into a vault (no plaintext file), a signed manifest,
verification without a secret, decryption and comparison.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from pathlib import Path

DEMO_BYTES = 8 * 1024 * 1024 + 12345  # several segments and a short last one


def register(subparsers) -> None:
    parser = subparsers.add_parser("demo", help="run the appliance on embedded defaults (data in ./data)")
    parser.add_argument("--headless", action="store_true", help="no kiosk window")
    parser.add_argument("--data", type=Path, default=Path("data"), help="data directory (default: ./data)")
    parser.set_defaults(func=_demo)


def _generated_chunks(total: int):
    """Deterministic stand-in for an encoded video stream, produced in memory."""
    counter = 0
    while total > 0:
        block = hashlib.sha256(counter.to_bytes(8, "big")).digest() * 2048
        yield block[:total]
        total -= len(block[:total])
        counter += 1


def _demo_keys(data: Path):
    from appliance.vault import keys
    from appliance.vault.atomic import write_atomically

    key_dir = data / "keys"
    passphrase_file = data / "demo-passphrase"
    if not (key_dir / keys.RECIPIENT_KEY).exists():
        if not passphrase_file.exists():
            write_atomically(passphrase_file, secrets.token_urlsafe(18).encode() + b"\n")
        keys.generate_recipient(key_dir, passphrase_file.read_bytes().rstrip(b"\n"))
        print(f"demo recipient key created in {key_dir} (passphrase in {passphrase_file})")
    if not (key_dir / keys.DEVICE_KEY).exists():
        keys.generate_device(key_dir)
        print(f"demo device key created in {key_dir}")
    passphrase = passphrase_file.read_bytes().rstrip(b"\n")
    return (keys.load_recipient_public(key_dir / keys.RECIPIENT_PUB),
            keys.load_identity(key_dir / keys.RECIPIENT_KEY, passphrase),
            keys.load_device_key(key_dir / keys.DEVICE_KEY))


def _demo(args) -> int:
    import os

    from appliance import vault
    from appliance.errors import IntegrityError

    print("NOTE: the recording pipeline (camera, encoder, controller link, kiosk) is not in yet; "
          "this demo runs the encrypted vault round trip only.")
    data = args.data
    data.mkdir(mode=0o700, parents=True, exist_ok=True)
    recipient, identity, device_key = _demo_keys(data)
    vault_dir = data / "demo-vaults"
    vault_dir.mkdir(mode=0o700, exist_ok=True)
    path = vault_dir / f"{uuid.uuid4().hex}.vault"

    written = hashlib.sha256()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        writer = vault.encrypt(out, [recipient])
        for chunk in _generated_chunks(DEMO_BYTES):
            writer.write(chunk)
            written.update(chunk)
        sealed = writer.close()
    vault.write_manifest(path, device_key, state="sealed", metadata={"source": "demo"}, sealed=sealed)
    print(f"encrypted {sealed.plaintext_length} bytes into {path} ({sealed.segments} segments), manifest signed")

    verification = vault.verify(path, device_key.public_key())
    if not verification.ok:
        raise IntegrityError(f"demo vault failed verification: {verification.problem}")
    print(f"verified without a secret: {verification.state}, sha256 matches, device signature valid")

    read_back = hashlib.sha256()
    with vault.open_reader(path, identity) as reader:
        while chunk := reader.read(1 << 20):
            read_back.update(chunk)
        finalized = reader.finalized
    if read_back.digest() != written.digest() or not finalized:
        raise IntegrityError("demo vault decrypted to different bytes")
    print("decrypted in memory with the demo recipient key: identical to what was written")
    print("demo OK")
    return 0
