"""The `[portal]` settings and the self-signed certificate: pure parts, no server."""

from __future__ import annotations

import datetime
import ipaddress

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from appliance.errors import BadInput
from appliance.gateway import settings as gateway_settings
from appliance.portal import tls
from appliance.portal.settings import PortalSettings
from tests.gatewaying import clinic_keys  # noqa: F401 (fixture)
from tests.portaling import write_portal_config

NOW = datetime.datetime(2026, 12, 1, 12, 0, tzinfo=datetime.timezone.utc)


@pytest.mark.parametrize("listen, host, port, url_host", [
    ("0.0.0.0:8443", "0.0.0.0", 8443, "0.0.0.0"),
    ("portal.clinic.example:443", "portal.clinic.example", 443, "portal.clinic.example"),
    ("[::1]:8443", "::1", 8443, "[::1]"),
    ("127.0.0.1:0", "127.0.0.1", 0, "127.0.0.1"),   # any free port: the log names the one bound
])
def test_listen_splits_into_host_and_port(listen, host, port, url_host):
    settings = PortalSettings(listen=listen)
    assert (settings.host, settings.port, settings.url_host) == (host, port, url_host)


@pytest.mark.parametrize("line, complaint", [
    ('listen = "8443"', "portal.listen must be host:port"),
    ('listen = "host:65536"', "portal.listen must be host:port with a port from 0 to 65535"),
    ('listen = "host:https"', "portal.listen must be host:port"),
    ('listen = "[::1:8443"', "an IPv6 address goes in brackets"),
    ('certificate = "portal.crt"', "certificate and key go together"),
    ("idle_minutes = 0", "portal.idle_minutes must be greater than 0"),
    ("lockout_failures = 0", "portal.lockout_failures must be greater than 0"),
    ('idle_minutes = "15"', "portal.idle_minutes must be a number"),
    ("port = 8443", "unknown key portal.port"),
])
def test_bad_portal_settings_are_one_line_naming_the_key(tmp_path, clinic_keys, line, complaint):  # noqa: F811
    config = write_portal_config(tmp_path / "gateway.toml", clinic_keys, tmp_path / "data", port=8443)
    config.write_text(config.read_text().replace('listen = "127.0.0.1:8443"', line))
    with pytest.raises(BadInput, match=complaint) as raised:
        gateway_settings.load(config)
    assert "\n" not in str(raised.value)


def test_a_settings_file_without_a_portal_section_gets_the_defaults(tmp_path, clinic_keys):  # noqa: F811
    config = write_portal_config(tmp_path / "gateway.toml", clinic_keys, tmp_path / "data", port=8443)
    config.write_text(config.read_text().replace("[portal]", "").replace('listen = "127.0.0.1:8443"', ""))
    assert gateway_settings.load(config).portal == PortalSettings()


@pytest.mark.parametrize("host, names", [
    ("127.0.0.1", ["127.0.0.1", "localhost"]),
    ("portal.clinic.example", ["portal.clinic.example", "localhost", "127.0.0.1"]),
])
def test_the_self_signed_certificate_is_for_the_listen_host_and_localhost(host, names):
    certificate_pem, _ = tls.self_signed(tls.subject_names(host), NOW)
    certificate = x509.load_pem_x509_certificate(certificate_pem)
    san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    found = [str(name) for name in san.get_values_for_type(x509.DNSName)] + \
            [str(address) for address in san.get_values_for_type(x509.IPAddress)]
    assert sorted(found) == sorted(names)
    assert all(isinstance(address, ipaddress.IPv4Address) for address in san.get_values_for_type(x509.IPAddress))
    assert certificate.not_valid_after_utc - NOW == datetime.timedelta(days=tls.VALID_DAYS)
    assert certificate.signature_hash_algorithm.name == "sha256"


def test_listening_everywhere_names_the_machine_not_the_wildcard_address():
    names = tls.subject_names("0.0.0.0")
    assert "0.0.0.0" not in names and names[-2:] == ["localhost", "127.0.0.1"]


def test_the_self_signed_pair_is_made_once_and_kept(tmp_path):
    settings = PortalSettings(listen="127.0.0.1:8443")
    first = tls.certificate_pair(settings, tmp_path, now=NOW)
    fingerprint = tls.fingerprint(first[0])
    assert tls.certificate_pair(settings, tmp_path) == first and tls.fingerprint(first[0]) == fingerprint
    assert first[1].stat().st_mode & 0o777 == 0o600 and (tmp_path / "portal").stat().st_mode & 0o777 == 0o700
    tls.check_pair(*first)


def test_the_fingerprint_is_sha256_of_the_der_in_colon_hex():
    assert tls.der_fingerprint(b"") == ("E3:B0:C4:42:98:FC:1C:14:9A:FB:F4:C8:99:6F:B9:24:"
                                        "27:AE:41:E4:64:9B:93:4C:A4:95:99:1B:78:52:B8:55")


def test_an_encrypted_key_is_refused_in_one_line_not_prompted_for(tmp_path):
    certificate_pem, key_pem = tls.self_signed(["localhost"], NOW)
    key = serialization.load_pem_private_key(key_pem, None)
    (tmp_path / "portal.crt").write_bytes(certificate_pem)
    (tmp_path / "portal.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"a passphrase")))
    with pytest.raises(BadInput, match="the portal key is encrypted"):
        tls.check_pair(tmp_path / "portal.crt", tmp_path / "portal.key")
