"""`appliance audit verify`: checks the audit trail's hash chain; exit 1 at the first broken link."""

from __future__ import annotations

from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser("audit", help="check the audit trail")
    actions = parser.add_subparsers(dest="audit_action", metavar="ACTION", parser_class=type(parser))
    actions.required = True
    verify = actions.add_parser("verify", help="verify the audit trail's hash chain")
    verify.add_argument("--config", type=Path, help="settings file (default: embedded defaults)")
    verify.add_argument("--data", type=Path, help="data directory (overrides the settings)")
    verify.set_defaults(func=_verify)


def _verify(args) -> int:
    from appliance import config
    from appliance.errors import IntegrityError
    from appliance.storage.reader import StoreReader

    data_dir = args.data or config.load(args.config).data.dir
    reader = StoreReader(data_dir)   # BadInput when there is no database
    try:
        report = reader.verify_audit()
    finally:
        reader.close()
    if not report.ok:
        raise IntegrityError(f"audit trail broken at entry {report.broken_at}: {report.problem}")
    print(f"audit trail intact: {report.entries} entries, head {report.head}")
    return 0
