"""The recording's video (clinician only): the vault decrypted on the fly, Range requests
answered by werkzeug from a seekable view (indexed_view.py) over the vault reader over ranged
GETs of the archive object (remote_object.py). No plaintext on disk; per request, memory holds
a few vault segments and fetched spans (bounded whatever the recording's length).

Fetching the video is audited (`recording_viewed`, part "video") once per portal session and
recording: a script that downloads it without opening the player page leaves its entry too,
and a browser's many range requests for one play leave one entry, not hundreds."""

from __future__ import annotations

import threading
from collections import OrderedDict

import flask
from flask import Response, current_app, jsonify, request, session
from werkzeug.wsgi import wrap_file

from appliance import vault
from appliance.archive.s3 import ArchiveError
from appliance.errors import IntegrityError
from appliance.portal.auth import current_user, require_role
from appliance.portal.context import portal
from appliance.portal.indexed_view import IndexCache, NotPlayable, view
from appliance.portal.remote_object import RemoteObject

blueprint = flask.Blueprint("video", __name__)
CHUNK = 64 << 10      # what the server writes at a time: one vault segment
REMEMBERED_VIEWS = 4096   # (session, recording) pairs audited already; the oldest forgotten first


class ViewsAudited:
    """Which (session token, recording) pairs have their `recording_viewed` entry. Memory only:
    after a restart (or past REMEMBERED_VIEWS) a view is audited once more, never less."""

    def __init__(self, capacity: int = REMEMBERED_VIEWS):
        self._capacity, self._seen, self._lock = capacity, OrderedDict(), threading.Lock()

    def first_time(self, token: str, uid: str) -> bool:
        with self._lock:
            if (token, uid) in self._seen:
                self._seen.move_to_end((token, uid))
                return False
            self._seen[(token, uid)] = True
            while len(self._seen) > self._capacity:
                self._seen.popitem(last=False)
            return True


def _indexes() -> IndexCache:
    return current_app.extensions.setdefault("portal_video_indexes", IndexCache())


def _audit_view(uid: str) -> None:
    views = current_app.extensions.setdefault("portal_video_views", ViewsAudited())
    if views.first_time(session["token"], uid):
        portal().audit("recording_viewed", current_user().name, recording=uid, part="video")


@blueprint.get("/recordings/<uid>/video")
@require_role("clinician")
def video(uid: str):
    context = portal()
    entry = context.library.recording(uid)
    if entry is None:
        return _refused("no such recording", 404)
    if entry.problem:
        return _refused(entry.problem, 409)
    bucket = context.config.archive.bucket

    def open_reader():
        remote = RemoteObject(context.archive_client(), bucket, entry.vault_key, entry.size)
        return vault.open_reader(remote, context.identity, torn_tail_ok=entry.interrupted)

    try:
        reader = open_reader()
    except (IntegrityError, ArchiveError) as error:
        return _refused(str(error), 503 if isinstance(error, ArchiveError) else 409)
    try:
        index = _indexes().index((bucket, entry.vault_key, entry.etag), reader, open_reader)
        _audit_view(uid)      # only a recording actually served counts as viewed
    except (IntegrityError, ArchiveError, NotPlayable) as error:
        reader.close()
        return _refused(str(error), 503 if isinstance(error, ArchiveError) else 409)
    except BaseException:
        reader.close()
        raise
    response = Response(wrap_file(request.environ, view(reader, index), CHUNK), mimetype="video/mp4",
                        direct_passthrough=True)
    response.call_on_close(reader.close)
    response.content_length = index.length     # werkzeug sets a range's own length
    response.headers["Cache-Control"] = "no-store"
    return response.make_conditional(request, accept_ranges=True, complete_length=index.length)


def _refused(message: str, status: int):
    response = jsonify(error=message)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response
