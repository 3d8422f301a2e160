"""Where the appliance keeps its records under the data directory: the one place that names them.

    appliance.sqlite3                                   the database (sessions, recordings, audit)
    sessions/<session uid>/                             one directory per session
    sessions/<session uid>/<recording uid>.mp4.vault    one encrypted recording (+ .manifest)

Directories are 0700 and files 0600; no path carries a subject ID, only opaque uids.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

RECORDING_SUFFIX = ".mp4.vault"


@dataclass(frozen=True)
class DataLayout:
    root: Path

    @property
    def database(self) -> Path:
        return self.root / "appliance.sqlite3"

    @property
    def sessions(self) -> Path:
        return self.root / "sessions"

    def session_dir(self, session_uid: str) -> Path:
        return self.sessions / session_uid

    def recording_path(self, session_uid: str, recording_uid: str) -> Path:
        return self.session_dir(session_uid) / f"{recording_uid}{RECORDING_SUFFIX}"
