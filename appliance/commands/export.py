"""`appliance export (--recording UID | --session UID) --to DIR [--config F]`: verified export.

Each recording (vault + signed manifest) is copied to DIR, synced, read back and hashed; only a
copy whose SHA-256 equals the recorded one is kept and reported, and each export is an entry in
the audit trail. Exit 1 when a copy fails verification, 2 for bad input.
"""

from __future__ import annotations

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
    from appliance.storage.export import export_recording
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
            uids = [database.call(lambda store: store.recording(args.recording)).uid]
        else:
            recordings = database.call(lambda store: store.recordings(store.session(args.session).uid))
            uids = [r.uid for r in recordings if r.state != "recording"]
            if not uids:
                raise BadInput(f"session {args.session} has no finished recording to export")
        for uid in uids:
            result = database.call(lambda store: export_recording(store, uid, args.to, actor=actor), timeout=None)
            print(f"{result.path}: {result.bytes} bytes, file digest {result.digest} verified")
    finally:
        database.close()
    return 0
