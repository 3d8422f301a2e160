"""The recording's video (clinician only): the vault decrypted on the fly, Range requests
answered from its seekable reader; no plaintext on disk."""

from __future__ import annotations

import flask

blueprint = flask.Blueprint("video", __name__)
