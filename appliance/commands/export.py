"""`appliance export (--recording UID | --session UID) --to DIR [--config F]`: verified export.

Each recording (vault + signed manifest) is copied to DIR, synced, read back and hashed; only a
copy whose SHA-256 equals the recorded one is kept and reported, and each export is an entry in
the audit trail. A recording whose local copy the clinic archive freed is in the archive only:
one line each, and a session's other recordings are exported. Exit 1 when a copy fails
verification or a session's recording is in the archive only, 2 for bad input (also a single
recording that is in the archive only).
"""

from __future__ import annotations

import sys
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser("export", help="copy recordings to a directory or USB stick, verified")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--recording", help="one recording's uid")
    which.add_argument("--session", help="every finished recording of a session")
    parser.add_argument("--to", type=Path, required=True, help="destination directory")
    parser.add_argument("--actor", default="service", help="who exports, for the audit trail (default: service)")
    parser.add_argument("--config", type=Path, help="settings file (TOML); embedded defaults without it")
    parser.set_defaults(func=export)


def export(args) -> int:
    from appliance import config
    from appliance.errors import BadInput
    from appliance.storage.export import export_recording, in_archive_only
    from appliance.storage.identifiers import validated_id
    from appliance.storage.writer import DatabaseWriter

    actor = validated_id("actor", args.actor)
    settings = config.load(args.config)
    if not settings.database_path.is_file():
        raise BadInput(f"no appliance database in {settings.data.dir}")
    # Run with the appliance stopped: this command is then the database's one writer.
    database = DatabaseWriter(settings.data.dir).start()
    try:
        if args.recording:
            uids, archive_only = [database.call(lambda store: store.recording(args.recording)).uid], []
        else:
            uids, archive_only = database.call(lambda store: _session_plan(store, args.session))
        # Said before anything is copied: what this export will not hold, and where it is.
        for uid, key in archive_only:
            print(in_archive_only(uid, key), file=sys.stderr)
        for uid in uids:
            result = database.call(lambda store: export_recording(store, uid, args.to, actor=actor), timeout=None)
            print(f"{result.path}: {result.bytes} bytes, file digest {result.digest} verified")
    finally:
        database.close()
    return 1 if archive_only else 0


def _session_plan(store, session: str) -> tuple[list[str], list[tuple[str, str]]]:
    """(the session's finished recordings held locally, (uid, archive key) of those freed locally)."""
    from appliance.errors import BadInput

    finished = [r.uid for r in store.recordings(store.session(session).uid) if r.state != "recording"]
    if not finished:
        raise BadInput(f"session {session} has no finished recording to export")
    freed = store.reclaimed_recordings()
    return ([uid for uid in finished if uid not in freed],
            [(uid, store.archived_recording(uid).vault_key) for uid in finished if uid in freed])
