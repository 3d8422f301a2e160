"""Logging in and out, who is asking, and who may see what.

A session is a server-side row (accounts.py); the browser holds its token in Flask's signed
cookie (`__Host-portal`: Secure, HttpOnly, SameSite=Strict). Every request looks the token up:
an idle session ends there (audited), a removed account's sessions are already gone. Every
refusal is audited with the path only (never the query string) and the client's address. Login
answers are the same for an unknown name, a wrong password and a locked account, so they tell an
attacker nothing. Anonymous refusals, throttled and busy logins go through a RefusalGate (at
most one entry per address and kind a minute, saying how many were held back): an anonymous
flood cannot fill the disk with audit rows.
"""

from __future__ import annotations

import functools
import math

from flask import Blueprint, current_app, g, jsonify, redirect, render_template, request, session

from appliance.portal.accounts import Accounts, PortalBusy, User
from appliance.portal.context import portal
from appliance.portal.flood import RefusalGate

blueprint = Blueprint("auth", __name__)

__all__ = ["User", "blueprint", "current_user", "require_role"]

LOGIN_REFUSED = ("Wrong name or password. After {failures} failures in a row an account is locked "
                 "for {minutes:g} minutes.")
THROTTLED = "Too many failed logins from this computer: try again in {minutes} minutes."
BUSY = "The portal is busy checking other logins: try again in a moment."
ANONYMOUS_AUDIT_INTERVAL_S = 60.0


def refusal_gate() -> RefusalGate:
    return current_app.extensions["portal_refusals"]


def audit_anonymous(event: str, kind: str, **details) -> None:
    """An anonymous refusal, unless this address already had one of this kind this minute."""
    held_back = refusal_gate().admit(request.remote_addr, kind, portal().clock())
    if held_back is not None:
        portal().audit(event, "anonymous", client=request.remote_addr, **details,
                       **({"held_back": held_back} if held_back else {}))


def accounts() -> Accounts:
    return current_app.extensions["portal_accounts"]


def current_user() -> User | None:
    """The logged-in user of this request (None when anonymous)."""
    return g.get("user")


def require_role(*roles: str):
    """Only these roles. Anonymous: 401 JSON for the API and video, a redirect to /login for
    pages; another role: 403. Both audited."""
    def decorate(view):
        @functools.wraps(view)
        def guarded(*args, **kwargs):
            user = current_user()
            if user is not None and user.role in roles:
                return view(*args, **kwargs)
            status = 401 if user is None else 403
            if user is None:
                audit_anonymous("portal_refused", "refused", path=request.path, status=status)
            else:
                portal().audit("portal_refused", user.name, path=request.path, status=status,
                               client=request.remote_addr)
            if _machine_facing():
                return jsonify(error="log in first" if user is None else "not allowed for your role"), status
            if user is None:
                return redirect("/login", code=303)
            return render_template("message.html", title="Not allowed",
                                   message="Your account's role may not open this page."), 403
        return guarded
    return decorate


def _machine_facing() -> bool:
    path = request.path
    return path.startswith("/api/") or (path.startswith("/recordings/") and path.endswith("/video"))


@blueprint.before_app_request
def _load_user() -> None:
    g.user = None
    token = session.get("token")
    if token is None or request.endpoint == "static":
        return
    settings = portal().config.portal
    found = accounts().session(token, idle_s=settings.idle_minutes * 60)
    if found.expired:
        portal().audit("portal_session_expired", found.expired)
    if found.user is None:
        session.pop("token", None)
    g.user = found.user


@blueprint.get("/login")
def login_page():
    if current_user() is not None:
        return redirect("/", code=303)
    return render_template("login.html")


@blueprint.post("/login")
def log_in():
    settings, client = portal().config.portal, request.remote_addr
    name, password = request.form.get("username", ""), request.form.get("password", "")
    try:
        result = accounts().log_in(name, password, client=client, failures_allowed=settings.lockout_failures,
                                   lockout_s=settings.lockout_minutes * 60)
    except PortalBusy:
        audit_anonymous("portal_login_failed", "busy", reason="busy")
        return render_template("login.html", message=BUSY), 503, {"Retry-After": "5"}
    if result.retry_after_s:
        audit_anonymous("portal_login_failed", "throttled", reason="too many failures from this address")
        minutes = math.ceil(result.retry_after_s / 60)
        return (render_template("login.html", message=THROTTLED.format(minutes=minutes)), 429,
                {"Retry-After": str(math.ceil(result.retry_after_s))})
    if result.user is not None:
        idle_s = settings.idle_minutes * 60
        for expired in accounts().purge_idle(idle_s=idle_s):
            portal().audit("portal_session_expired", expired)
        if (earlier := session.get("token")) is not None:
            accounts().end_session(earlier)
        session.clear()   # a fresh cookie: nothing from before the login carries over
        session["token"] = accounts().open_session(result.user)
        portal().audit("portal_login", result.user.name, role=result.user.role, client=client)
        return redirect("/", code=303)
    # A name that is no account may be a password typed in the wrong field: not recorded.
    account = {"account": name} if result.known else {}
    reason = ("account locked" if result.locked and not result.locked_now
              else "wrong password" if result.known else "no such account")
    portal().audit("portal_login_failed", "anonymous", reason=reason, client=client, **account)
    if result.locked_now:
        portal().audit("portal_lockout", "anonymous", minutes=settings.lockout_minutes, client=client, **account)
    message = LOGIN_REFUSED.format(failures=settings.lockout_failures, minutes=settings.lockout_minutes)
    return render_template("login.html", message=message), 401


@blueprint.post("/logout")
def log_out():
    user, token = current_user(), session.get("token")
    if user is not None and token is not None:
        accounts().end_session(token)
        portal().audit("portal_logout", user.name)
    session.clear()
    return redirect("/login", code=303)
