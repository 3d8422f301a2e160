"""`appliance gateway run|sync|status`: the clinic gateway (docs/gateway.md), on a clinic server.

    appliance gateway run --config G            the service: a pass every refresh_s, until SIGTERM
    appliance gateway sync --config G [--from DIR]   one pass; one line per recording handled;
                                                exit 0 when everything is delivered, 1 when not
    appliance gateway status --config G [--json]     deliveries and the audit trail's state
    appliance gateway serve [--config G]        the clinic portal over HTTPS (docs/portal.md), until SIGTERM
    appliance gateway user add NAME --role ROLE --password-file F [--config G]
    appliance gateway user remove NAME [--config G]   portal accounts; their sessions end at once

Exit 2 for bad settings or a wrong passphrase (one line).
"""

from __future__ import annotations

import json
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser("gateway", help="clinic gateway: verified recordings into PACS as DICOM video")
    actions = parser.add_subparsers(dest="gateway_action", metavar="ACTION", parser_class=type(parser))
    actions.required = True
    run = actions.add_parser("run", help="the service loop")
    run.add_argument("--config", type=Path, required=True, help="the gateway's settings file (TOML)")
    run.set_defaults(func=_run)
    sync = actions.add_parser("sync", help="one pass; exit 0 when everything is delivered, 1 when not")
    sync.add_argument("--config", type=Path, required=True, help="the gateway's settings file (TOML)")
    sync.add_argument("--from", dest="directories", type=Path, action="append", default=[], metavar="DIR",
                      help="also take recordings from this export directory, e.g. a USB stick (repeatable)")
    sync.set_defaults(func=_sync)
    status = actions.add_parser("status", help="what was delivered, failed or refused")
    status.add_argument("--config", type=Path, required=True, help="the gateway's settings file (TOML)")
    status.add_argument("--json", action="store_true", help="print one JSON document")
    status.set_defaults(func=_status)
    from appliance.commands import portal
    portal.register(actions)


def _gateway(config_path: Path, extra_directories=()):
    from appliance.commands import passphrase
    from appliance.errors import BadInput
    from appliance.gateway import settings as gateway_settings
    from appliance.gateway.service import Gateway
    from appliance.gateway.sources import ArchiveSource, DirectorySource
    from appliance.gateway.state import GatewayState
    from appliance.vault import keys

    settings = gateway_settings.load(config_path)
    for directory in extra_directories:
        if not directory.is_dir():
            raise BadInput(f"--from {directory}: not a directory")
    identity = keys.load_identity(settings.gateway.identity, passphrase.obtain(settings.gateway.passphrase_file))
    sources = [DirectorySource(d) for d in (*settings.gateway.directories, *extra_directories)]
    if settings.archive.configured:
        sources.insert(0, ArchiveSource(settings.archive, settings.gateway.data / "incoming"))
    return Gateway(settings, identity, GatewayState(settings.gateway.data), sources)


def _sync(args) -> int:
    gateway = _gateway(args.config, args.directories)
    try:
        outcomes = gateway.sync(report=lambda outcome: print(outcome.line, flush=True))
        undelivered = [d for d in gateway.state.deliveries() if d.state != "delivered"]
    finally:
        gateway.state.close()
    print(f"{sum(o.state == 'delivered' for o in outcomes)} delivered in this pass, "
          f"{len(undelivered)} not delivered")
    return 1 if undelivered or any(o.state != "delivered" for o in outcomes) else 0


def _run(args) -> int:
    import logging
    import signal
    import threading

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    gateway = _gateway(args.config)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        gateway.run(stop)
    finally:
        gateway.state.close()
    return 0


def _status(args) -> int:
    from appliance.gateway import settings as gateway_settings
    from appliance.gateway.state import GatewayState

    settings = gateway_settings.load(args.config)
    state = GatewayState(settings.gateway.data)
    try:
        deliveries, chain = state.deliveries(), state.verify_audit()
    finally:
        state.close()
    counts = {name: sum(d.state == name for d in deliveries) for name in ("delivered", "failed", "refused")}
    if args.json:
        print(json.dumps({
            "counts": counts,
            "deliveries": [{"location": d.location, "recording_id": d.recording_id, "state": d.state,
                            "reason": d.reason, "attempts": d.attempts, "next_attempt_at": d.next_attempt_at,
                            "instances": list(d.instances), "updated_at": d.updated_at,
                            "awaits_enrolment": d.enrolment is not None} for d in deliveries],
            "audit": {"entries": chain.entries, "ok": chain.ok, "problem": chain.problem, "head": chain.head},
        }, indent=2))
    else:
        print(", ".join(f"{count} {name}" for name, count in counts.items()))
        for d in deliveries:
            if d.state != "delivered":
                print(f"{d.location}: {d.state}: {d.reason}")
        print("audit trail intact" if chain.ok else f"audit trail BROKEN: {chain.problem}")
    return 0 if chain.ok else 1
