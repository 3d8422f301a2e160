"""Fleet health pages and their JSON API (role it): every treatment room on one page, read afresh
from the archive on each request (the page reloads itself every minute), a room that needs
someone highlighted and saying why. A forged or unknown status shows no values: only that it is
forged or unknown, and why (appliance/portal/fleet_health.py)."""

from __future__ import annotations

from datetime import datetime, timezone

import flask
from flask import jsonify, render_template

from appliance.archive.s3 import ArchiveError
from appliance.portal import fleet_health
from appliance.portal.auth import require_role
from appliance.portal.context import portal

blueprint = flask.Blueprint("fleet", __name__)

HEALTH_LABELS = {fleet_health.OK: "OK", fleet_health.STALE: "Silent", fleet_health.ATTENTION: "Needs attention",
                 fleet_health.NO_STATUS: "No status", "forged": "FORGED status", "unknown device": "Unknown device"}
THRESHOLDS = {"stale_after_s": fleet_health.STALE_AFTER_S, "backlog_age_limit_s": fleet_health.BACKLOG_AGE_LIMIT_S,
              "backlog_count_limit": fleet_health.BACKLOG_COUNT_LIMIT,
              "backlog_bytes_limit": fleet_health.BACKLOG_BYTES_LIMIT,
              "disk_limit_s": fleet_health.DISK_LIMIT_S, "clock_limit_s": fleet_health.CLOCK_LIMIT_S,
              "future_limit_s": fleet_health.FUTURE_LIMIT_S}


@blueprint.get("/fleet")
@require_role("it")
def fleet_page():
    now = portal().clock()
    rooms, problem = _rooms()
    return render_template("fleet.html", rows=[_row(room, now) for room in rooms], problem=problem,
                           checked=_utc(now))


@blueprint.get("/api/fleet")
@require_role("it")
def api_fleet():
    now = portal().clock()
    rooms, problem = _rooms()
    if problem is not None:
        return jsonify(error=problem), 503
    return jsonify(checked_at=now, thresholds=THRESHOLDS, rooms=[room.as_json() for room in rooms])


def _rooms() -> tuple[list, str | None]:
    try:
        return portal().fleet.rooms(), None
    except ArchiveError as error:
        return [], str(error)


def _row(room: fleet_health.Room, now: float) -> dict:
    """A room as the page's table shows it: values only for a genuine status."""
    row = {"device": room.device_key_id, "name": room.name, "health": room.health, "label": HEALTH_LABELS[room.health],
           "highlighted": room.highlighted, "problems": room.problems, "cells": None}
    status = room.status
    if status is None:
        return row
    words = fleet_health.in_words
    backlog = "none" if status["backlog_count"] == 0 else (
        f"{status['backlog_count']} ({status['backlog_bytes'] / 1e9:.2f} GB), oldest "
        f"{words(status['backlog_oldest_age_s'] or 0)}")
    row["cells"] = [
        f"{words(room.age_s)} ago",
        status["state"],
        _flag(status["camera_up"]),
        _flag(status["link_up"]),
        "—" if status["disk_seconds_left"] is None else words(status["disk_seconds_left"]),
        backlog,
        "never" if status["last_recording_at"] is None else f"{words(max(0.0, now - status['last_recording_at']))} ago",
        status["software_version"],
        "—" if status["clock_offset_s"] is None else f"{status['clock_offset_s']:+.1f} s",
    ]
    return row


def _flag(up: bool | None) -> str:
    return "—" if up is None else "up" if up else "DOWN"


def _utc(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
