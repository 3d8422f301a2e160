"""The portal as served: `appliance gateway serve` over real HTTPS on 127.0.0.1 with the
gateway's real archive (SeaweedFS), accounts made with the CLI, the real review, video and
fleet routes refusing the wrong people, Debian's chromium logging in, and the systemd unit."""

from __future__ import annotations

import datetime
import http.client
import json
import os
import re
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.cli import build_parser, main
from appliance.portal import tls
from tests.browsing import chromium, log_in, page  # noqa: F401 (fixtures)
from tests.gatewaying import clinic_keys  # noqa: F401 (fixture)
from tests.portaling import CLINICIAN, IT, Account, portal, write_portal_config  # noqa: F401 (fixture)
from tests.test_deployment import REPO, analyze, exposure, scratch_root, unit_settings

UNIT = REPO / "systemd" / "clinic-server" / "appliance-portal.service"
A_UID = "0f" * 16     # a recording uid: the role check comes before any lookup
HERE = "127.0.0.1"


def events(portal, since: int) -> list[tuple]:  # noqa: F811
    return [(e.event, e.actor, e.details) for e in portal.audit()[since:]]


def test_the_served_certificate_is_the_one_whose_fingerprint_the_log_shows_once(portal):  # noqa: F811
    shown = re.findall(r"portal certificate SHA-256 fingerprint ([0-9A-F:]{95})", portal.log())
    served = ssl.PEM_cert_to_DER_cert(ssl.get_server_certificate(("127.0.0.1", portal.port)))
    assert shown == [tls.der_fingerprint(served)]
    assert f"portal listening on {portal.base_url}/" in portal.log()
    # Valid for 127.0.0.1 as a client verifying it against the saved certificate sees it.
    assert portal.client().get("/login")[0] == 200
    for private in (portal.data / "portal" / "self-signed.key", portal.data / "portal" / "secret_key"):
        assert private.stat().st_mode & 0o777 == 0o600


def test_plain_http_on_the_portal_port_gets_no_page(portal):  # noqa: F811
    connection = http.client.HTTPConnection("127.0.0.1", portal.port, timeout=10)
    try:
        connection.request("GET", "/login")
        response = connection.getresponse()
        status, body = response.status, response.read()
    except (ConnectionError, http.client.RemoteDisconnected):
        status, body = None, b""
    finally:
        connection.close()
    assert status in (None, 400) and b"csrf_token" not in body


def test_anonymous_and_it_are_refused_video_and_a_clinician_the_fleet_all_audited(portal):  # noqa: F811
    before = len(portal.audit())
    anonymous, it, clinician = portal.client(), portal.client(), portal.client()
    status, headers, body = anonymous.get(f"/recordings/{A_UID}/video")
    assert (status, json.loads(body)) == (401, {"error": "log in first"})
    assert headers["Cache-Control"] == "no-store"
    assert it.log_in(IT) == 303
    assert it.get(f"/recordings/{A_UID}/video", headers={"Range": "bytes=0-99"})[0] == 403
    assert it.get("/api/sessions")[0] == 403
    assert clinician.log_in(CLINICIAN) == 303
    assert clinician.get("/fleet")[0] == 403
    assert clinician.get("/api/fleet")[0] == 403
    assert [entry for entry in events(portal, before) if entry[0] != "portal_login"] == [
        ("portal_refused", "anonymous", {"path": f"/recordings/{A_UID}/video", "status": 401, "client": HERE}),
        ("portal_refused", IT.name, {"path": f"/recordings/{A_UID}/video", "status": 403, "client": HERE}),
        ("portal_refused", IT.name, {"path": "/api/sessions", "status": 403, "client": HERE}),
        ("portal_refused", CLINICIAN.name, {"path": "/fleet", "status": 403, "client": HERE}),
        ("portal_refused", CLINICIAN.name, {"path": "/api/fleet", "status": 403, "client": HERE})]


def run_cli(capsys, *args: str) -> tuple[int, list[str]]:
    code = main(list(args))
    return code, capsys.readouterr().err.splitlines()


def test_user_add_and_remove_refuse_bad_input_in_one_line_and_a_removed_user_is_logged_out(portal, capsys, tmp_path):  # noqa: F811
    config = str(portal.config)
    good, short, empty, shared = tmp_path / "good", tmp_path / "short", tmp_path / "empty", tmp_path / "shared"
    for path, text in ((good, "a long enough password\n"), (short, "too short\n"), (empty, "\n"),
                       (shared, "a long enough password\n")):
        path.write_text(text)
        path.chmod(0o600)
    shared.chmod(0o640)
    refusals = {
        ("add", CLINICIAN.name, "--role", "it", "--password-file", str(good)): "already exists",
        ("add", "someone", "--role", "admin", "--password-file", str(good)): "role must be one of clinician, it",
        ("add", "someone", "--role", "it", "--password-file", str(empty)): "is empty",
        ("add", "someone", "--role", "it", "--password-file", str(short)): "at least 12 characters",
        ("add", "someone", "--role", "it", "--password-file", str(tmp_path / "nope")): "cannot read password file",
        ("add", "some one", "--role", "it", "--password-file", str(good)): "account name must be",
        ("add", "someone", "--role", "it", "--password-file", str(shared)): "must be readable by its owner only",
        ("remove", "nobody"): "no account named 'nobody'",
    }
    for args, complaint in refusals.items():
        code, lines = run_cli(capsys, "gateway", "user", *args, "--config", config)
        assert (code, len(lines)) == (2, 1) and complaint in lines[0], (args, lines)
    before = len(portal.audit())
    assert run_cli(capsys, "gateway", "user", "add", "locum", "--role", "clinician", "--password-file", str(good),
                   "--config", config)[0] == 0
    locum = portal.client()
    assert locum.log_in(Account("locum", "clinician", "a long enough password")) == 303
    assert locum.get("/api/sessions")[0] == 200
    assert run_cli(capsys, "gateway", "user", "remove", "locum", "--config", config)[0] == 0
    assert locum.get("/api/sessions")[0] == 401
    audited = {(event, actor, details.get("account")) for event, actor, details in events(portal, before)}
    assert {("portal_user_added", "operator", "locum"), ("portal_login", "locum", None),
            ("portal_user_removed", "operator", "locum")} <= audited


def test_serve_refuses_a_certificate_and_key_that_do_not_match_in_one_line(tmp_path, clinic_keys):  # noqa: F811
    now = datetime.datetime.now(datetime.timezone.utc)
    pairs = [tls.self_signed(["localhost"], now) for _ in range(2)]
    (tmp_path / "portal.crt").write_bytes(pairs[0][0])
    (tmp_path / "portal.key").write_bytes(pairs[1][1])
    config = write_portal_config(tmp_path / "gateway.toml", clinic_keys, tmp_path / "data", port=0,
                                 portal_extra='certificate = "portal.crt"\nkey = "portal.key"')
    result = subprocess.run([sys.executable, "-m", "appliance.cli", "gateway", "serve", "--config", str(config)],
                            capture_output=True, timeout=60)
    lines = result.stderr.decode().splitlines()
    assert result.returncode == 2 and lines[-1].startswith("appliance: portal: cannot use the certificate"), lines
    assert "KEY_VALUES_MISMATCH" in lines[-1] and "Traceback" not in result.stderr.decode()


def test_a_clinician_logs_in_with_chromium_and_a_wrong_password_is_told_so(portal, page):  # noqa: F811
    page.goto(f"{portal.base_url}/login")
    page.fill("input[name=username]", CLINICIAN.name)
    page.fill("input[name=password]", "not my password")
    page.click("button[type=submit]")
    assert "Wrong name or password" in page.inner_text("[role=alert]")
    if screens := os.environ.get("PORTAL_SCREENS"):   # docs/portal.md's picture, on request
        page.screenshot(path=str(Path(screens) / "portal-login.png"))
    log_in(page, portal.base_url, CLINICIAN.name, CLINICIAN.password)
    assert page.inner_text("header .who") == f"{CLINICIAN.name} (clinician)"
    page.click("text=Log out")
    page.wait_for_url(f"{portal.base_url}/login")


def test_the_portal_unit_verifies_its_exposure_is_low_and_its_command_parses(tmp_path):
    root = scratch_root(tmp_path, {UNIT.name: UNIT.read_text()})
    result = analyze(root, "verify", "--man=no", UNIT.name)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")
    assert exposure(root, UNIT.name) <= 2.0
    service = unit_settings(UNIT.read_text())["Service"]
    (command,) = [value for name, value in service if name == "ExecStart"]
    parsed = build_parser().parse_args(command.split()[1:])
    assert (parsed.command, parsed.gateway_action) == ("gateway", "serve")
    assert ("RestartPreventExitStatus", "2") in service
    # Decrypted video, cards and the recipient key: never to swap or a core dump.
    assert {("MemorySwapMax", "0"), ("LimitCORE", "0")} <= set(service)


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")   # offered on purpose
def test_the_portal_refuses_tls_older_than_1_2(portal):  # noqa: F811
    def handshake(highest: ssl.TLSVersion) -> str:
        context = ssl.create_default_context(cafile=str(portal.certificate))
        context.set_ciphers("DEFAULT:@SECLEVEL=0")   # let this client offer TLS 1.0 and 1.1 at all
        context.minimum_version, context.maximum_version = ssl.TLSVersion.TLSv1, highest
        try:
            with socket.create_connection(("127.0.0.1", portal.port), timeout=10) as raw, \
                    context.wrap_socket(raw, server_hostname="127.0.0.1") as tls_socket:
                return tls_socket.version()
        except ssl.SSLError as error:
            return error.reason or str(error)

    assert handshake(ssl.TLSVersion.TLSv1_2) == "TLSv1.2"
    assert handshake(ssl.TLSVersion.TLSv1_1) != "TLSv1.1"

