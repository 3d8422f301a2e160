"""Portal logins, sessions, roles, CSRF and headers, in-process under a controllable clock
(the served portal over real HTTPS: test_portal_server.py).

The routes guarded here are a test blueprint of the test's own, so these tests say what
require_role does whatever the review, video and fleet pages are; test_portal_server.py checks
those real routes."""

from __future__ import annotations

import re
import sqlite3
import threading

import flask
import pytest
from argon2 import PasswordHasher

from appliance.portal.auth import ANONYMOUS_AUDIT_INTERVAL_S, current_user, require_role
from tests.gatewaying import clinic_keys  # noqa: F401 (fixture)
from appliance.portal.accounts import ADDRESS_FAILURES, ADDRESS_WINDOW_S, PASSWORD_CHECKS
from tests.portaling import (CLINICIAN, IT, Account, ManualClock, audit_tail, close_app, csrf_token_of,
                             in_process_app, log_in_test_client, write_portal_config)
from tests.waiting import wait_for

IDLE_MINUTES = 10
HERE = "127.0.0.1"   # werkzeug's test client's address
COOKIE = "__Host-portal"
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


def test_a_clinician_logs_in_and_the_session_cookie_is_host_only_secure_httponly_strict(client, app):
    response = log_in_test_client(client, CLINICIAN)
    assert (response.status_code, response.headers["Location"]) == (303, "/")
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("__Host-portal=")
    assert {"Secure", "HttpOnly", "SameSite=Strict", "Path=/"} <= {part.strip() for part in cookie.split(";")}
    assert "Domain" not in cookie
    assert client.get("/api/probe").get_json() == {"user": CLINICIAN.name}
    assert audit_tail(app, 1) == [("portal_login", CLINICIAN.name, {"role": "clinician", "client": HERE})]


def test_a_wrong_password_and_an_unknown_name_get_the_same_answer_and_only_a_real_account_is_named(client, app):
    wrong = log_in_test_client(client, CLINICIAN, password="not the password at all")
    unknown = log_in_test_client(client, Account("lidocaine-and-lasers-42", "clinician", "whatever it is"))
    assert wrong.status_code == unknown.status_code == 401
    assert b"Wrong name or password" in wrong.data
    assert without_token(wrong.data) == without_token(unknown.data)
    assert client.get("/api/probe").status_code == 401
    # The unknown "name" was a password typed in the wrong field: it must not reach the audit trail.
    assert audit_tail(app, 3)[:2] == [
        ("portal_login_failed", "anonymous", {"account": CLINICIAN.name, "reason": "wrong password", "client": HERE}),
        ("portal_login_failed", "anonymous", {"reason": "no such account", "client": HERE})]


def test_repeated_failures_lock_the_account_even_for_the_right_password_until_the_lockout_ends(client, app, clock):
    for _ in range(FAILURES):
        assert log_in_test_client(client, IT, password="guess guess guess").status_code == 401
    assert ("portal_lockout", "anonymous", {"account": IT.name, "minutes": LOCKOUT_MINUTES,
                                             "client": HERE}) in audit_tail(app, 2)
    locked = log_in_test_client(client, IT)
    assert locked.status_code == 401 and b"Wrong name or password" in locked.data
    assert audit_tail(app, 1) == [("portal_login_failed", "anonymous", {"account": IT.name, "reason": "account locked",
                                                                     "client": HERE})]
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
                                  ("portal_refused", "anonymous", {"path": "/api/probe", "status": 401,
                                                                   "client": HERE})]


def test_removing_an_account_ends_its_sessions_at_once(client, app):
    extra = Account("locum", "clinician", "a temporary password")
    app.extensions["portal_accounts"].add(extra.name, extra.role, extra.password)
    log_in_test_client(client, extra)
    assert client.get("/api/probe").status_code == 200
    app.extensions["portal_accounts"].remove(extra.name)
    assert client.get("/api/probe").status_code == 401


def test_refusals_401_for_video_and_api_a_login_redirect_for_pages_403_for_another_role(client, app, clock):
    assert client.get("/recordings/abc123/video").status_code == 401
    clock.advance(ANONYMOUS_AUDIT_INTERVAL_S)   # else this address's second refusal is only counted
    page = client.get("/probe-page")
    assert (page.status_code, page.headers["Location"]) == (303, "/login")
    log_in_test_client(client, CLINICIAN)
    forbidden = client.get("/probe-page")
    assert forbidden.status_code == 403 and b"Not allowed" in forbidden.data
    assert audit_tail(app, 4) == [
        ("portal_refused", "anonymous", {"path": "/recordings/abc123/video", "status": 401, "client": HERE}),
        ("portal_refused", "anonymous", {"path": "/probe-page", "status": 401, "client": HERE}),
        ("portal_login", CLINICIAN.name, {"role": "clinician", "client": HERE}),
        ("portal_refused", CLINICIAN.name, {"path": "/probe-page", "status": 403, "client": HERE})]


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
        policy = {part.strip() for part in response.headers["Content-Security-Policy"].split(";")}
        assert policy == {"default-src 'self'", "base-uri 'none'", "object-src 'none'", "frame-ancestors 'none'",
                          "form-action 'self'"}
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert response.headers["Strict-Transport-Security"].startswith("max-age=")
        assert response.headers["Cache-Control"] == "no-store"
    assert "no-store" not in client.get("/static/portal.css").headers.get("Cache-Control", "")


def client_at(app, address: str):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def refusals_from(app, address: str) -> list[dict]:
    return [details for event, _, details in audit_tail(app, 100)
            if event in ("portal_refused", "portal_login_failed") and details.get("client") == address]


def test_logging_in_gives_a_fresh_cookie_and_a_planted_pre_login_cookie_gains_nothing(app):
    attacker = app.test_client()
    attacker.get("/login")   # an anonymous session (with its CSRF token), planted in the victim's browser
    planted = attacker.get_cookie(COOKIE).value
    victim = app.test_client()
    victim.set_cookie(COOKIE, planted)
    assert log_in_test_client(victim, CLINICIAN).status_code == 303
    assert victim.get_cookie(COOKIE).value != planted
    assert victim.get("/api/probe").get_json() == {"user": CLINICIAN.name}
    assert attacker.get("/api/probe").status_code == 401


def test_logging_in_over_a_planted_logged_in_session_ends_that_session(app):
    attacker = app.test_client()
    log_in_test_client(attacker, IT)
    planted = attacker.get_cookie(COOKIE).value
    victim = app.test_client()
    victim.set_cookie(COOKIE, planted)
    response = victim.post("/login", data={"username": CLINICIAN.name, "password": CLINICIAN.password,
                                           "csrf_token": csrf_token_of(victim, "/probe-page")})
    assert response.status_code == 303 and victim.get_cookie(COOKIE).value != planted
    assert victim.get("/api/probe").get_json() == {"user": CLINICIAN.name}
    assert attacker.get("/probe-page").status_code == 303   # the planted session is over


def test_a_login_purges_sessions_left_idle_and_audits_their_end(app, clock):
    log_in_test_client(app.test_client(), IT)                # a browser that never comes back
    clock.advance(IDLE_MINUTES * 60 + 1)
    log_in_test_client(app.test_client(), CLINICIAN)
    database = sqlite3.connect(app.extensions["portal"].config.database_path)
    try:
        accounts = [row[0] for row in database.execute("SELECT account FROM portal_sessions")]
    finally:
        database.close()
    assert accounts == [CLINICIAN.name]
    assert ("portal_session_expired", IT.name, {}) in audit_tail(app, 2)


class GatedHasher(PasswordHasher):
    """Cheap Argon2 whose checks wait at a gate the test opens, counting how many wait at once."""

    def __init__(self):
        super().__init__(time_cost=1, memory_cost=8 * 1024, parallelism=1)
        self.gate, self.inside, self.most = threading.Event(), 0, 0
        self._count = threading.Lock()

    def verify(self, password_hash, password):
        with self._count:
            self.inside += 1
            self.most = max(self.most, self.inside)
        try:
            assert self.gate.wait(60), "the test never opened the gate"
            return super().verify(password_hash, password)
        finally:
            with self._count:
                self.inside -= 1


def test_at_most_two_password_checks_run_at_once_and_a_login_finding_no_turn_hears_busy(settings_file, clock):
    hasher = GatedHasher()
    app = in_process_app(settings_file, clock, hasher=hasher, busy_wait_s=0)
    try:
        answers = {}
        waiting = [threading.Thread(target=lambda who=who, password=password: answers.__setitem__(
                       who, log_in_test_client(app.test_client(), CLINICIAN, password).status_code))
                   for who, password in (("right", CLINICIAN.password), ("wrong", "not the password at all"))]
        for thread in waiting:
            thread.start()
        wait_for(lambda: hasher.inside == PASSWORD_CHECKS, 30, "two logins checking passwords")
        busy = log_in_test_client(app.test_client(), CLINICIAN)
        assert busy.status_code == 503 and b"busy" in busy.data and busy.headers["Retry-After"]
        hasher.gate.set()
        for thread in waiting:
            thread.join(60)
        assert answers == {"right": 303, "wrong": 401} and hasher.most == PASSWORD_CHECKS
        assert log_in_test_client(app.test_client(), IT).status_code == 303   # the turns came back
        assert ("portal_login_failed", "anonymous", {"reason": "busy", "client": HERE}) in audit_tail(app, 10)
    finally:
        close_app(app)


def test_failed_logins_from_one_address_across_many_names_are_throttled_there_only(app, clock):
    attacker = client_at(app, "10.0.0.7")
    for attempt in range(ADDRESS_FAILURES):   # unknown names: no account's lockout stops this
        assert log_in_test_client(attacker, Account(f"guess{attempt}", "it", "password guess")).status_code == 401
    for _ in range(3):   # even the right password is not checked now
        throttled = log_in_test_client(attacker, CLINICIAN)
        assert throttled.status_code == 429 and b"Too many failed logins from this computer" in throttled.data
    assert 0 < int(throttled.headers["Retry-After"]) <= ADDRESS_WINDOW_S
    assert log_in_test_client(client_at(app, "10.0.0.8"), CLINICIAN).status_code == 303
    assert refusals_from(app, "10.0.0.7")[-1:] == [{"reason": "too many failures from this address",
                                                    "client": "10.0.0.7"}]   # three refusals, one entry
    clock.advance(ADDRESS_WINDOW_S)
    assert log_in_test_client(attacker, CLINICIAN).status_code == 303


def test_an_anonymous_flood_from_one_address_leaves_one_audit_entry_a_minute_saying_how_many(app, clock):
    flood, other = client_at(app, "10.0.0.9"), client_at(app, "10.0.0.10")
    for _ in range(50):
        assert flood.get("/api/probe").status_code == 401
    assert other.get("/probe-page").status_code == 303
    clock.advance(ANONYMOUS_AUDIT_INTERVAL_S)
    assert flood.get("/recordings/abc123/video").status_code == 401
    assert refusals_from(app, "10.0.0.9") == [
        {"path": "/api/probe", "status": 401, "client": "10.0.0.9"},
        {"path": "/recordings/abc123/video", "status": 401, "client": "10.0.0.9", "held_back": 49}]
    assert refusals_from(app, "10.0.0.10") == [{"path": "/probe-page", "status": 401, "client": "10.0.0.10"}]
