"""Review pages and their JSON API (clinician only): sessions by patient and date, a session's
recordings, the player page with the treatment timeline.

Sessions and recordings are addressed by their uids only; filtering by patient happens in the
page (static/review.js), so no name or ID ever travels in a URL. Opening a recording, as a page
or through the API, is audited with the user and the recording's uid (no PHI).
"""

from __future__ import annotations

from datetime import datetime

import flask
from flask import jsonify, redirect, render_template

from appliance.portal.auth import current_user, require_role
from appliance.portal.context import portal
from appliance.portal.session_index import recording_document
from appliance.ui.presentation import format_duration

blueprint = flask.Blueprint("review", __name__)


@blueprint.get("/")
@require_role("clinician", "it")
def home():
    if current_user().role == "it":
        return redirect("/fleet", code=303)
    library = portal().library
    return render_template("sessions.html", sessions=library.sessions(), archive_problem=library.problem)


@blueprint.get("/sessions/<session_uid>")
@require_role("clinician")
def session_page(session_uid: str):
    found = portal().library.session(session_uid)
    if found is None:
        return _not_found_page("No such session in the archive.")
    return render_template("session.html", treatment_session=found)


@blueprint.get("/recordings/<uid>")
@require_role("clinician")
def recording_page(uid: str):
    entry = portal().library.recording(uid)
    if entry is None:
        return _not_found_page("No such recording in the archive.")
    _viewed(uid)
    return render_template("recording.html", recording=recording_document(entry))


@blueprint.get("/api/sessions")
@require_role("clinician")
def api_sessions():
    library = portal().library
    return jsonify(sessions=library.sessions(), archive_problem=library.problem)


@blueprint.get("/api/recordings/<uid>")
@require_role("clinician")
def api_recording(uid: str):
    entry = portal().library.recording(uid)
    if entry is None:
        return jsonify(error="no such recording"), 404
    _viewed(uid)
    return jsonify(recording_document(entry))


def _viewed(uid: str) -> None:
    portal().audit("recording_viewed", current_user().name, recording=uid)


def _not_found_page(message: str):
    return render_template("message.html", title="Not found", message=message), 404


# -- how the pages write names, dates and times ------------------------------------------------

@blueprint.app_template_filter("person_name")
def person_name(name: str) -> str:
    """A DICOM person name (Family^Given^Middle^Prefix^Suffix) as people write it: 'Family, Given'."""
    family, _, given = (name or "").partition("^")
    given = " ".join(part for part in given.split("^") if part)
    return f"{family}, {given}" if family and given else family or given or "(no name)"


@blueprint.app_template_filter("dicom_date")
def dicom_date(value: str) -> str:
    """YYYYMMDD as YYYY-MM-DD; anything else as it is."""
    return f"{value[:4]}-{value[4:6]}-{value[6:]}" if value and len(value) == 8 and value.isdigit() else value or ""


@blueprint.app_template_filter("local_time")
def local_time(seconds: float | None) -> str:
    """Seconds since the epoch as the gateway's local date and time."""
    return datetime.fromtimestamp(seconds).strftime("%Y-%m-%d %H:%M:%S") if seconds is not None else "unknown"


@blueprint.app_template_filter("clip_time")
def clip_time(seconds: float | None) -> str:
    """A position or length within a clip, M:SS.s (a tenth: emissions are often short)."""
    if seconds is None:
        return "unknown"
    whole, tenths = divmod(round(max(seconds, 0.0) * 10), 10)
    return f"{format_duration(whole)}.{tenths}"
