"""`appliance archive run|push|status|verify`: the clinic archive (docs/archive.md).

run: the service loop (appliance-archive.service) and, beside it, the fleet status uplink
(appliance/archive/uplink.py); SIGTERM ends it between steps, an upload in flight resumes at the
next start. push: one pass; exit 0 when nothing is left to archive, 1
when something could not be archived (one line each on stderr). status: the backlog from the
records, no network (--json for machines). verify: every local recording against the archive
and every archived object against its manifest signature; exit 1 on any mismatch.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser("archive", help="copy sealed recordings to the clinic archive (S3)")
    actions = parser.add_subparsers(dest="archive_action", metavar="ACTION", parser_class=type(parser))
    actions.required = True
    for name, func, text in (("run", _run, "archive continuously (the service loop)"),
                             ("push", _push, "one pass: archive what is waiting, then exit"),
                             ("status", _status, "the backlog: recordings not archived yet"),
                             ("verify", _verify, "check local recordings and archived objects against each other")):
        action = actions.add_parser(name, help=text)
        action.add_argument("--config", type=Path, help="settings file (TOML); embedded defaults without it")
        if name == "status":
            action.add_argument("--json", action="store_true", help="one JSON object instead of lines")
        action.set_defaults(func=func)


def _settings(args):
    from appliance import config
    from appliance.errors import BadInput

    settings = config.load(args.config)
    if not settings.archive.configured:
        raise BadInput("archive: no archive configured (set [archive] endpoint, bucket and credentials)")
    return settings


def _run(args) -> int:
    import signal
    import threading

    import logging

    from appliance.archive.service import ArchiveService, lower_priority, run_forever
    from appliance.archive.uplink import StatusUplink
    from appliance.control.snapshot import SNAPSHOT_PATH
    from appliance.journal import send_logs_to
    from appliance.storage.reader import StoreReader
    from appliance.vault.keys import load_device_key

    settings = _settings(args)
    send_logs_to(logging.StreamHandler(sys.stderr))     # the journal, under systemd
    lower_priority()
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    with ArchiveService(settings, stop=stop) as service:
        records = StoreReader(settings.data.dir)
        try:
            uplink = StatusUplink(service.client, settings.archive.bucket, load_device_key(settings.device_key_path),
                                  records, settings.data.dir / SNAPSHOT_PATH).start(stop)
            run_forever(service.one_pass, stop)
            uplink.join(30)
        finally:
            records.close()
    return 0


def _push(args) -> int:
    from appliance.archive.service import ArchiveService

    settings = _settings(args)
    with ArchiveService(settings) as service:
        report = service.one_pass()
        left = service.store.archive_backlog().count
    for line in report.problems:
        print(line, file=sys.stderr)
    reclaimed = f", {len(report.reclaimed)} local copies reclaimed" if report.reclaimed else ""
    print(f"archived {len(report.archived)} recording(s){reclaimed}; {left} not archived")
    return 0 if report.ok and left == 0 else 1


def _status(args) -> int:
    from appliance import config
    from appliance.archive import backlog as words
    from appliance.storage.reader import StoreReader

    settings = config.load(args.config)
    archive = settings.archive
    now = time.time()
    if not settings.database_path.exists():
        backlog, archived = None, []
    else:
        reader = StoreReader(settings.data.dir)
        try:
            backlog, archived = reader.archive_backlog(), reader.archived_recordings()
        finally:
            reader.close()
    local = sum(1 for _, copy in archived if copy.reclaimed_at is None)
    if args.json:
        from appliance.storage.queries import ArchiveBacklog

        print(json.dumps({
            "configured": archive.configured, "endpoint": archive.endpoint, "bucket": archive.bucket,
            "backlog": words.as_json(backlog or ArchiveBacklog(0, 0, None), now, archive.warn_after_hours),
            "archived": len(archived), "archived_kept_locally": local,
            "reclaimed": len(archived) - local}, sort_keys=True))
        return 0
    print(f"archive: {archive.bucket} at {archive.endpoint}" if archive.configured else "archive: not configured")
    print(f"backlog: {words.backlog_line(backlog, now)}" if backlog else "backlog: no records yet")
    print(f"archived: {len(archived)} recording(s), {local} still kept locally")
    return 0


def _verify(args) -> int:
    from appliance.archive.service import ArchiveService

    settings = _settings(args)
    with ArchiveService(settings) as service:
        problems, checked = service.verify()
    for line in problems:
        print(line, file=sys.stderr)
    print(f"archive verify: {checked} checked, {len(problems)} problem(s)")
    return 1 if problems else 0
