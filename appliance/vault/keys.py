"""Key files. Recipients (clinic): recipient.key is PKCS#8 PEM encrypted with the passphrase
(PBKDF2-HMAC-SHA256, 600,000 rounds, AES-256-CBC; openssl reads it), recipient.pub is a
SubjectPublicKeyInfo PEM the appliance holds. Device (appliance): device.key signs manifests
unattended, so it is unencrypted and 0600; device.pub lets anyone verify without a secret.
All keys are P-256."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from appliance.errors import BadInput
from appliance.vault import pkcs8
from appliance.atomic import write_atomically

RECIPIENT_KEY = "recipient.key"
RECIPIENT_PUB = "recipient.pub"
DEVICE_KEY = "device.key"
DEVICE_PUB = "device.pub"
MIN_PASSPHRASE_LENGTH = 8


def _public_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def _prepare_directory(directory: Path, names: tuple[str, str]) -> Path:
    directory = Path(directory)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    for name in names:
        if (directory / name).exists():
            raise BadInput(f"{directory / name} already exists; refusing to replace a key")
    return directory


def generate_recipient(directory: Path, passphrase: bytes) -> tuple[Path, Path]:
    """Writes recipient.key (encrypted) and recipient.pub; returns their paths."""
    if len(passphrase) < MIN_PASSPHRASE_LENGTH:
        raise BadInput(f"the passphrase must have at least {MIN_PASSPHRASE_LENGTH} characters")
    directory = _prepare_directory(directory, (RECIPIENT_KEY, RECIPIENT_PUB))
    key = ec.generate_private_key(ec.SECP256R1())
    write_atomically(directory / RECIPIENT_KEY, pkcs8.encrypt_private_key_pem(key, passphrase))
    write_atomically(directory / RECIPIENT_PUB, _public_pem(key))
    return directory / RECIPIENT_KEY, directory / RECIPIENT_PUB


def generate_device(directory: Path) -> tuple[Path, Path]:
    """Writes device.key (unencrypted, 0600) and device.pub; returns their paths."""
    directory = _prepare_directory(directory, (DEVICE_KEY, DEVICE_PUB))
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    write_atomically(directory / DEVICE_KEY, pem)
    write_atomically(directory / DEVICE_PUB, _public_pem(key))
    return directory / DEVICE_KEY, directory / DEVICE_PUB


def _read(path: Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise BadInput(f"{what} {path} does not exist") from None
    except OSError as error:
        raise BadInput(f"cannot read {what} {path}: {error.strerror}") from None


def _require_p256(key, path: Path, what: str):
    if not isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)) \
            or key.curve.name != "secp256r1":
        raise BadInput(f"{path} is not a P-256 {what}")
    return key


def load_public(path: Path, what: str = "public key") -> ec.EllipticCurvePublicKey:
    data = _read(path, what)
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        raise BadInput(f"{path} is not a PEM public key") from None
    return _require_p256(key, path, what)


def load_recipient_public(path: Path) -> ec.EllipticCurvePublicKey:
    return load_public(path, "recipient public key")


def load_device_public(path: Path) -> ec.EllipticCurvePublicKey:
    return load_public(path, "device public key")


def load_identity(path: Path, passphrase: bytes) -> ec.EllipticCurvePrivateKey:
    """The recipient's private key; BadInput on a wrong passphrase."""
    data = _read(path, "identity key")
    if b"ENCRYPTED PRIVATE KEY" not in data:
        raise BadInput(f"{path} is not a passphrase-protected private key")
    try:
        key = serialization.load_pem_private_key(data, password=passphrase)
    except ValueError as error:
        if "password" in str(error).lower() or "decrypt" in str(error).lower():
            raise BadInput(f"wrong passphrase for {path}") from None
        raise BadInput(f"{path} is not a readable private key") from None
    return _require_p256(key, path, "private key")


def load_device_key(path: Path) -> ec.EllipticCurvePrivateKey:
    data = _read(path, "device key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise BadInput(f"{path} is not an unencrypted PEM private key") from None
    return _require_p256(key, path, "device key")
