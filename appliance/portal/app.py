"""The portal's Flask application: blueprints, CSRF, cookies and security headers.

Every form is CSRF-protected (Flask-WTF's token, bound to the session). Its HTTPS Referer check
is off: the portal sends `Referrer-Policy: no-referrer`, so browsers send no Referer to check;
the token plus the SameSite=Strict cookie already refuse a cross-site form.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from flask import Flask, jsonify, render_template, request
from flask_wtf.csrf import CSRFError, CSRFProtect

from appliance.atomic import write_atomically
from appliance.errors import BadInput
from appliance.portal.accounts import Accounts
from appliance.portal.context import PortalContext
from appliance.portal.flood import RefusalGate
from appliance.storage.database import make_private_dir

SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'self'; base-uri 'none'; object-src 'none'; "
                                "frame-ancestors 'none'; form-action 'self'"),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Strict-Transport-Security": "max-age=31536000",
    "X-Content-Type-Options": "nosniff",
}


def create_app(context: PortalContext, *, accounts: Accounts | None = None) -> Flask:
    """`accounts`: the portal's accounts store; by default the gateway database's."""
    from appliance.portal import auth, fleet_pages, review, video

    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=secret_key(context.config.gateway.data / "portal"),
        SESSION_COOKIE_NAME="__Host-portal",   # __Host-: Secure, Path=/, no Domain, or browsers drop it
        SESSION_COOKIE_SECURE=True, SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_PATH="/",
        WTF_CSRF_SSL_STRICT=False,
        WTF_CSRF_TIME_LIMIT=None,   # the token lives as long as the session; sessions expire here
        MAX_CONTENT_LENGTH=64 * 1024,   # the portal takes login forms, nothing big
        PREFERRED_URL_SCHEME="https",
    )
    app.extensions["portal"] = context
    app.extensions["portal_accounts"] = accounts or Accounts(context.config.database_path, context.clock)
    app.extensions["portal_refusals"] = RefusalGate(auth.ANONYMOUS_AUDIT_INTERVAL_S)
    CSRFProtect(app)
    for module in (auth, review, video, fleet_pages):
        app.register_blueprint(module.blueprint)
    app.register_error_handler(CSRFError, _csrf_refused)
    app.after_request(_security_headers)
    return app


def secret_key(directory: Path) -> bytes:
    """The key signing session cookies: made on first start, 0600, kept (restarts keep sessions)."""
    make_private_dir(directory)
    path = directory / "secret_key"
    if not path.exists():
        try:
            write_atomically(path, secrets.token_bytes(32))
        except BadInput:   # another process made it meanwhile: use theirs
            pass
    key = path.read_bytes()
    if len(key) < 32:
        raise BadInput(f"portal: {path} is damaged (shorter than 32 bytes); remove it to make a new one")
    return key


def _csrf_refused(error: CSRFError):
    message = "The form was stale or not from this portal (CSRF check failed): load the page again."
    if request.path.startswith("/api/"):
        return jsonify(error=message), 400
    template = "login.html" if request.path == "/login" else "message.html"
    return render_template(template, title="Refused", message=message), 400


def _security_headers(response):
    response.headers.update(SECURITY_HEADERS)
    if request.endpoint != "static":   # pages, the API and video carry PHI; browser caches are disk
        response.headers["Cache-Control"] = "no-store"
    return response
