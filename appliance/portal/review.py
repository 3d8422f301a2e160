"""Review pages and their JSON API (clinician only): sessions by patient and date, a session's
recordings, the player page with the treatment timeline."""

from __future__ import annotations

import flask

blueprint = flask.Blueprint("review", __name__)
