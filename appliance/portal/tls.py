"""The portal's certificate: the clinic's own pair from `[portal] certificate`/`key`, or a
self-signed one made on first start in `<data>/portal/` and kept (browsers then remember the
exception, and IT compares the fingerprint the log shows with what the browser shows).

Self-signed: ECDSA P-256, valid for the listen host (or this machine's name when it listens on
every address), localhost and 127.0.0.1; the key 0600, both written atomically.
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from appliance.atomic import write_atomically
from appliance.errors import BadInput
from appliance.portal.settings import PortalSettings
from appliance.storage.database import make_private_dir

SELF_SIGNED_CERTIFICATE = "self-signed.crt"
SELF_SIGNED_KEY = "self-signed.key"
VALID_DAYS = 5 * 365


def certificate_pair(settings: PortalSettings, data_dir: Path, *, now: datetime.datetime | None = None
                     ) -> tuple[Path, Path]:
    """The (certificate, key) to serve with: the configured pair, else the self-signed one."""
    if settings.certificate is not None:
        return settings.certificate, settings.key
    directory = data_dir / "portal"
    certificate, key = directory / SELF_SIGNED_CERTIFICATE, directory / SELF_SIGNED_KEY
    if not (certificate.is_file() and key.is_file()):
        make_private_dir(directory)
        certificate_pem, key_pem = self_signed(subject_names(settings.host),
                                               now or datetime.datetime.now(datetime.timezone.utc))
        write_atomically(key, key_pem, overwrite=True)
        write_atomically(certificate, certificate_pem, overwrite=True, mode=0o644)
    return certificate, key


def subject_names(host: str) -> list[str]:
    """The names a self-signed certificate is valid for, the listen host first."""
    wildcard = host in ("0.0.0.0", "::", "")
    names = [socket.getfqdn()] if wildcard else [host]
    return list(dict.fromkeys([*names, "localhost", "127.0.0.1"]))


def self_signed(names: list[str], now: datetime.datetime) -> tuple[bytes, bytes]:
    """A PEM certificate and its unencrypted PKCS#8 key (names: DNS names or IP addresses)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0][:64]),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Treatment recordings portal")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))   # a client clock slightly behind
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName([_general_name(name) for name in names]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return certificate.public_bytes(serialization.Encoding.PEM), key_pem


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def fingerprint(certificate: Path) -> str:
    """SHA-256 of the (first) certificate's DER, as browsers show it: AB:CD:..."""
    try:
        loaded = x509.load_pem_x509_certificate(certificate.read_bytes())
    except (OSError, ValueError) as error:
        raise BadInput(f"portal: cannot read the certificate {certificate}: {error}") from None
    return der_fingerprint(loaded.public_bytes(serialization.Encoding.DER))


def der_fingerprint(der: bytes) -> str:
    digest = hashes.Hash(hashes.SHA256())
    digest.update(der)
    return ":".join(f"{byte:02X}" for byte in digest.finalize())


def check_pair(certificate: Path, key: Path) -> None:
    """BadInput (one line) unless the pair loads and belongs together; an encrypted key is
    refused rather than prompted for (a service has no terminal)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(certificate, key, password=_no_passphrase)
    except OSError as error:
        raise BadInput(f"portal: cannot use the certificate {certificate} with the key {key}: "
                       f"{getattr(error, 'strerror', None) or error}") from None


def _no_passphrase() -> bytes:
    raise BadInput("the portal key is encrypted; give an unencrypted key (0600, root or a systemd credential)")
