"""Key files (docs/vault-format.md#keys), all PEM.

Recipients (clinic): recipient.pub is a SubjectPublicKeyInfo the appliance holds; recipient.key
is the private key as PKCS#8 encrypted with the passphrase (PBES2: PBKDF2-HMAC-SHA256 600,000
rounds, AES-256-CBC). New pairs are X-Wing (post-quantum hybrid; the private key is the 32-byte
seed under the draft's OID); `classical=True` makes P-256 as before. Device (appliance):
device.key signs manifests unattended, so it is unencrypted and 0600; device.pub lets anyone
verify without a secret. New device pairs are P-256 + ML-DSA-65 (signing.py). Files made by
earlier versions (P-256 everywhere) load unchanged.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, mldsa

from appliance.atomic import write_atomically
from appliance.errors import BadInput
from appliance.vault import pkcs8, recipients, signing
from appliance.vault.xwing import XWingPrivateKey, XWingPublicKey, is_xwing_pkcs8

RECIPIENT_KEY = "recipient.key"
RECIPIENT_PUB = "recipient.pub"
DEVICE_KEY = "device.key"
DEVICE_PUB = "device.pub"
MIN_PASSPHRASE_LENGTH = 8


def _prepare_directory(directory: Path, names: tuple[str, str]) -> Path:
    directory = Path(directory)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    for name in names:
        if (directory / name).exists():
            raise BadInput(f"{directory / name} already exists; refusing to replace a key")
    return directory


def public_pem(public_key) -> bytes:
    if isinstance(public_key, XWingPublicKey):
        return pkcs8.pem(b"PUBLIC KEY", public_key.spki_der())
    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def generate_recipient(directory: Path, passphrase: bytes, *, classical: bool = False) -> tuple[Path, Path]:
    """Writes recipient.key (encrypted) and recipient.pub; returns their paths."""
    if len(passphrase) < MIN_PASSPHRASE_LENGTH:
        raise BadInput(f"the passphrase must have at least {MIN_PASSPHRASE_LENGTH} characters")
    directory = _prepare_directory(directory, (RECIPIENT_KEY, RECIPIENT_PUB))
    if classical:
        key = ec.generate_private_key(ec.SECP256R1())
        private_pem = pkcs8.encrypt_private_key_pem(key, passphrase)
    else:
        key = XWingPrivateKey.generate()
        private_pem = pkcs8.encrypt_der(key.pkcs8_der(), passphrase)
    write_atomically(directory / RECIPIENT_KEY, private_pem)
    write_atomically(directory / RECIPIENT_PUB, public_pem(key.public_key()))
    return directory / RECIPIENT_KEY, directory / RECIPIENT_PUB


def generate_device(directory: Path) -> tuple[Path, Path]:
    """Writes device.key (P-256 + ML-DSA-65, unencrypted, 0600) and device.pub; returns their paths."""
    directory = _prepare_directory(directory, (DEVICE_KEY, DEVICE_PUB))
    key = signing.DeviceKey.generate()
    write_atomically(directory / DEVICE_KEY, key.pem())
    write_atomically(directory / DEVICE_PUB, key.public_key().pem())
    return directory / DEVICE_KEY, directory / DEVICE_PUB


def _read(path: Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise BadInput(f"{what} {path} does not exist") from None
    except OSError as error:
        raise BadInput(f"cannot read {what} {path}: {error.strerror}") from None


def _public_keys(path: Path, what: str) -> list:
    try:
        blocks = pkcs8.pem_blocks(_read(path, what), b"PUBLIC KEY")
    except ValueError:
        blocks = []
    if not blocks:
        raise BadInput(f"{path} is not a PEM public key")
    keys = []
    for block in blocks:
        try:
            keys.append(XWingPublicKey.from_spki_der(block))
        except ValueError:
            try:
                keys.append(serialization.load_der_public_key(block))
            except (ValueError, TypeError):
                raise BadInput(f"{path} holds a public key of a kind this software does not know") from None
    return keys


def load_public(path: Path, what: str = "public key"):
    """A recipient public key: X-Wing or P-256."""
    keys = _public_keys(path, what)
    if len(keys) != 1 or not _is_recipient(keys[0]):
        raise BadInput(f"{path} is not an X-Wing or P-256 {what}")
    return keys[0]


def _is_recipient(key) -> bool:
    try:
        recipients.kind_of(key)
    except BadInput:
        return False
    return True


def load_recipient_public(path: Path):
    return load_public(path, "recipient public key")


def load_device_public(path: Path) -> signing.DevicePublicKey:
    keys = _public_keys(path, "device public key")
    return _device_pair(keys, path, ec.EllipticCurvePublicKey, mldsa.MLDSA65PublicKey, signing.DevicePublicKey)


def _device_pair(keys: list, path: Path, classical_type, pq_type, make):
    if not 1 <= len(keys) <= 2 or not isinstance(keys[0], classical_type) or keys[0].curve.name != "secp256r1" \
            or (len(keys) == 2 and not isinstance(keys[1], pq_type)):
        raise BadInput(f"{path} is not a device key (P-256, optionally followed by ML-DSA-65)")
    return make(keys[0], keys[1] if len(keys) == 2 else None)


def load_identity(path: Path, passphrase: bytes):
    """The recipient's private key (X-Wing or P-256); BadInput on a wrong passphrase."""
    data = _read(path, "identity key")
    if b"ENCRYPTED PRIVATE KEY" not in data:
        raise BadInput(f"{path} is not a passphrase-protected private key")
    try:
        plain = pkcs8.decrypt_pem(data, passphrase)
    except pkcs8.WrongPassphrase:
        raise BadInput(f"wrong passphrase for {path}") from None
    except ValueError:
        plain = None  # another PBES2 variant (openssl's own): let `cryptography` read it
    try:
        if plain is None:
            key = serialization.load_pem_private_key(data, password=passphrase)
        elif is_xwing_pkcs8(plain):
            return XWingPrivateKey.from_pkcs8_der(plain)
        else:
            key = serialization.load_der_private_key(plain, password=None)
    except ValueError as error:
        if "password" in str(error).lower() or "decrypt" in str(error).lower():
            raise BadInput(f"wrong passphrase for {path}") from None
        raise BadInput(f"{path} is not a readable private key") from None
    if not _is_recipient(key):
        raise BadInput(f"{path} is not an X-Wing or P-256 private key")
    return key


def load_device_key(path: Path) -> signing.DeviceKey:
    try:
        data = _read(path, "device key")
        blocks = pkcs8.pem_blocks(data, b"PRIVATE KEY")
        keys = [serialization.load_der_private_key(block, password=None) for block in blocks] or \
            [serialization.load_pem_private_key(data, password=None)]  # e.g. a SEC1 "EC PRIVATE KEY"
    except (ValueError, TypeError):
        raise BadInput(f"{path} is not an unencrypted PEM private key") from None
    return _device_pair(keys, path, ec.EllipticCurvePrivateKey, mldsa.MLDSA65PrivateKey, signing.DeviceKey)
