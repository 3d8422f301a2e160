"""Fleet health pages and their JSON API (role it): every treatment room on one page."""

from __future__ import annotations

import flask

blueprint = flask.Blueprint("fleet", __name__)
