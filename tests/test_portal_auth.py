"""Portal logins, sessions, roles, CSRF and headers, in-process under a controllable clock
(the served portal over real HTTPS: test_portal_server.py).

The routes guarded here are a test blueprint of the test's own, so these tests say what
require_role does whatever the review, video and fleet pages are; test_portal_server.py checks
those real routes."""

from __future__ import annotations

import re

import flask
import pytest

from appliance.gateway.state import GatewayState
from appliance.portal.auth import current_user, require_role
from tests.gatewaying import clinic_keys  # noqa: F401 (fixture)
from tests.portaling import (CLINICIAN, IT, Account, ManualClock, close_app, csrf_token_of, in_process_app,
                             log_in_test_client, write_portal_config)

IDLE_MINUTES = 10
FAILURES, LOCKOUT_MINUTES = 3, 5
GUARDED = flask.Blueprint("guarded", __name__)


@GUARDED.get("/api/probe")
@require_role("clinician")
def api_probe():
    return {"user": current_user().name}


@GUARDED.get("/recordings/<uid>/video")
@require_role("clinician")
def video_probe(uid):
    return b"video bytes", 200, {"Content-Type": "video/mp4"}


@GUARDED.get("/probe-page")
@require_role("it")
def page_probe():
    return flask.render_template_string('{% extends "base.html" %}{% block content %}<p>for it</p>{% endblock %}')


@pytest.fixture
def settings_file(tmp_path, clinic_keys):  # noqa: F811
    return write_portal_config(tmp_path / "gateway.toml", clinic_keys, tmp_path / "data", port=8443,
                               portal_extra=f"idle_minutes = {IDLE_MINUTES}\nlockout_failures = {FAILURES}\n"
                                            f"lockout_minutes = {LOCKOUT_MINUTES}")


@pytest.fixture
def clock():
    return ManualClock()


@pytest.fixture
def app(settings_file, clock):
    app = in_process_app(settings_file, clock)
    app.register_blueprint(GUARDED)
    yield app
    close_app(app)


@pytest.fixture
def client(app):
    return app.test_client()


def without_token(page: bytes) -> bytes:
    return re.sub(rb'name="csrf_token" value="[^"]+"', b"", page)


def audit_tail(app, count: int) -> list[tuple]:
    state = GatewayState(app.extensions["portal"].config.gateway.data)
    try:
        entries = state.audit_entries()[-count:]
    finally:
        state.close()
    return [(e.event, e.actor, e.details) for e in entries]


def test_a_clinician_logs_in_and_the_session_cookie_is_host_only_secure_httponly_strict(client, app):
    response = log_in_test_client(client, CLINICIAN)
    assert (response.status_code, response.headers["Location"]) == (303, "/")
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("__Host-portal=")
    assert {"Secure", "HttpOnly", "SameSite=Strict", "Path=/"} <= {part.strip() for part in cookie.split(";")}
    assert "Domain" not in cookie
    assert client.get("/api/probe").get_json() == {"user": CLINICIAN.name}
    assert audit_tail(app, 1) == [("portal_login", CLINICIAN.name, {"role": "clinician"})]


def test_a_wrong_password_and_an_unknown_name_get_the_same_answer_and_only_a_real_account_is_named(client, app):
    wrong = log_in_test_client(client, CLINICIAN, password="not the password at all")
    unknown = log_in_test_client(client, Account("lidocaine-and-lasers-42", "clinician", "whatever it is"))
    assert wrong.status_code == unknown.status_code == 401
    assert b"Wrong name or password" in wrong.data
    assert without_token(wrong.data) == without_token(unknown.data)
    assert client.get("/api/probe").status_code == 401
    # The unknown "name" was a password typed in the wrong field: it must not reach the audit trail.
    assert audit_tail(app, 3)[:2] == [
        ("portal_login_failed", "anonymous", {"account": CLINICIAN.name, "reason": "wrong password"}),
        ("portal_login_failed", "anonymous", {"reason": "no such account"})]


def test_repeated_failures_lock_the_account_even_for_the_right_password_until_the_lockout_ends(client, app, clock):
    for _ in range(FAILURES):
        assert log_in_test_client(client, IT, password="guess guess guess").status_code == 401
    assert ("portal_lockout", "anonymous", {"account": IT.name, "minutes": LOCKOUT_MINUTES}) in audit_tail(app, 2)
    locked = log_in_test_client(client, IT)
    assert locked.status_code == 401 and b"Wrong name or password" in locked.data
    assert audit_tail(app, 1) == [("portal_login_failed", "anonymous", {"account": IT.name, "reason": "account locked"})]
    clock.advance(LOCKOUT_MINUTES * 60 + 1)
    assert log_in_test_client(client, IT).status_code == 303


def test_a_session_idle_longer_than_idle_minutes_ends_and_activity_keeps_it(client, app, clock):
    log_in_test_client(client, CLINICIAN)
    for _ in range(3):   # each request renews the idle time
        clock.advance(IDLE_MINUTES * 60 - 5)
        assert client.get("/api/probe").status_code == 200
    clock.advance(IDLE_MINUTES * 60 + 1)
    response = client.get("/api/probe?patient=none")
    assert (response.status_code, response.get_json()) == (401, {"error": "log in first"})
    assert audit_tail(app, 2) == [("portal_session_expired", CLINICIAN.name, {}),
                                  ("portal_refused", "anonymous", {"path": "/api/probe", "status": 401})]


def test_removing_an_account_ends_its_sessions_at_once(client, app):
    extra = Account("locum", "clinician", "a temporary password")
    app.extensions["portal_accounts"].add(extra.name, extra.role, extra.password)
    log_in_test_client(client, extra)
    assert client.get("/api/probe").status_code == 200
    app.extensions["portal_accounts"].remove(extra.name)
    assert client.get("/api/probe").status_code == 401


def test_refusals_401_for_video_and_api_a_login_redirect_for_pages_403_for_another_role(client, app):
    assert client.get("/recordings/abc123/video").status_code == 401
    page = client.get("/probe-page")
    assert (page.status_code, page.headers["Location"]) == (303, "/login")
    log_in_test_client(client, CLINICIAN)
    forbidden = client.get("/probe-page")
    assert forbidden.status_code == 403 and b"Not allowed" in forbidden.data
    assert audit_tail(app, 4) == [
        ("portal_refused", "anonymous", {"path": "/recordings/abc123/video", "status": 401}),
        ("portal_refused", "anonymous", {"path": "/probe-page", "status": 401}),
        ("portal_login", CLINICIAN.name, {"role": "clinician"}),
        ("portal_refused", CLINICIAN.name, {"path": "/probe-page", "status": 403})]


def test_log_out_ends_the_session_and_needs_the_csrf_token(client, app):
    log_in_test_client(client, IT)
    assert client.post("/logout").status_code == 400     # a cross-site form cannot log anyone out
    response = client.post("/logout", data={"csrf_token": csrf_token_of(client, "/probe-page")})
    assert (response.status_code, response.headers["Location"]) == (303, "/login")
    assert client.get("/probe-page").status_code == 303
    assert ("portal_logout", IT.name, {}) in audit_tail(app, 2)


@pytest.mark.parametrize("token", [None, "forged-token"])
def test_a_login_post_without_the_forms_csrf_token_is_refused(client, app, token):
    csrf_token_of(client)   # the browser has a session and a token, the attacker's form not
    form = {"username": CLINICIAN.name, "password": CLINICIAN.password} | ({"csrf_token": token} if token else {})
    response = client.post("/login", data=form)
    assert response.status_code == 400 and b"CSRF check failed" in response.data
    assert client.get("/api/probe").status_code == 401


def test_security_headers_on_pages_and_api_and_static_files_cacheable(client):
    for response in (client.get("/login"), client.get("/api/probe")):
        assert response.headers["Content-Security-Policy"].startswith("default-src 'self'")
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert response.headers["Strict-Transport-Security"].startswith("max-age=")
        assert response.headers["Cache-Control"] == "no-store"
    assert "no-store" not in client.get("/static/portal.css").headers.get("Cache-Control", "")
