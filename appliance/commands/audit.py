"""`appliance audit verify [--archive]`: checks the audit trail's hash chain, and with --archive
against the signed anchors in the clinic archive (docs/archive.md#anchors); exit 1 at the first
broken link or the first anchor the local trail does not hold."""

from __future__ import annotations

from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser("audit", help="check the audit trail")
    actions = parser.add_subparsers(dest="audit_action", metavar="ACTION", parser_class=type(parser))
    actions.required = True
    verify = actions.add_parser("verify", help="verify the audit trail's hash chain")
    verify.add_argument("--config", type=Path, help="settings file (default: embedded defaults)")
    verify.add_argument("--data", type=Path, help="data directory (overrides the settings)")
    verify.add_argument("--archive", action="store_true",
                        help="also check the trail against the audit anchors in the archive ([archive] settings)")
    verify.add_argument("--device-pub", type=Path,
                        help="with --archive: the device public key the anchors must be signed with "
                             "(default: the appliance's device key)")
    verify.set_defaults(func=_verify)


def _verify(args) -> int:
    from appliance import config
    from appliance.errors import IntegrityError
    from appliance.storage.reader import StoreReader

    settings = config.load(args.config)
    reader = StoreReader(args.data or settings.data.dir)   # BadInput when there is no database
    try:
        if args.archive:
            return _verify_against_archive(settings, reader, args.device_pub)
        report = reader.verify_audit()
    finally:
        reader.close()
    if not report.ok:
        raise IntegrityError(f"audit trail broken at entry {report.broken_at}: {report.problem}")
    print(f"audit trail intact: {report.entries} entries, head {report.head}")
    return 0


def _verify_against_archive(settings, reader, device_pub: Path | None) -> int:
    from appliance.archive import s3
    from appliance.archive.anchoring import archived_anchors
    from appliance.archive.anchors import chain_problems
    from appliance.errors import BadInput, IntegrityError
    from appliance.vault import keys

    if not settings.archive.configured:
        raise BadInput("audit verify --archive: no archive configured ([archive] endpoint)")
    device = keys.load_device_public(device_pub) if device_pub else \
        keys.load_device_key(settings.device_key_path).public_key()
    entries = reader.audit_entries()
    anchors = archived_anchors(s3.connect(settings.archive), settings.archive.bucket, device)
    problems = chain_problems(entries, anchors)
    archived = sum(entry.event == "recording_archived" for entry in entries)
    if not anchors and archived:
        problems.append(f"the archive holds no audit anchors of device {device.key_id}, yet the trail "
                        f"records {archived} archived recordings")
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise IntegrityError(f"audit trail does not match the archive: {problems[0]}{more}")
    head = entries[-1].hash if entries else "none"
    newest = f"newest: entry {anchors[-1].seq}, signed {anchors[-1].anchored_at}" if anchors else "none yet"
    print(f"audit trail intact: {len(entries)} entries, head {head}; holds all {len(anchors)} anchors of "
          f"device {device.key_id} in the archive ({newest})")
    return 0
