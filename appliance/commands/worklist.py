"""`appliance worklist run|query [--config F]`: the DICOM Modality Worklist service and a one-off
query for service engineers checking the connection to the RIS (docs/worklist.md).

`query` prints to the terminal only (names included: it is for checking what the RIS sends);
exit 0 when the RIS answered (entries or none), 1 when it is unreachable or answered an error.
"""

from __future__ import annotations

from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser("worklist", help="the DICOM Modality Worklist service and a test query")
    commands = parser.add_subparsers(dest="worklist_command", metavar="COMMAND", required=True,
                                     parser_class=type(parser))
    run = commands.add_parser("run", help="query the RIS every refresh_s and serve the kiosk (the service)")
    run.add_argument("--config", type=Path, help="settings file (TOML); embedded defaults without it")
    run.set_defaults(func=run_service)
    query = commands.add_parser("query", help="ask the RIS once and print today's steps for this station")
    query.add_argument("--config", type=Path, help="settings file (TOML); embedded defaults without it")
    query.add_argument("--json", action="store_true", help="print the answer as the channel carries it")
    query.set_defaults(func=query_once)


def run_service(args) -> int:
    import signal

    from appliance.worklist.service import WorklistService

    settings = _configured(args.config)
    service = WorklistService(settings.worklist, settings.worklist_socket)
    signal.signal(signal.SIGTERM, lambda *_: service.stop())
    signal.signal(signal.SIGINT, lambda *_: service.stop())
    service.run()
    return 0


def query_once(args) -> int:
    from appliance.worklist.protocol import encode_answer
    from appliance.worklist.query import query_worklist

    answer = query_worklist(_configured(args.config).worklist)
    if args.json:
        print(encode_answer(answer).decode("ascii"), end="")
    else:
        print(f"{answer.status}: {answer.line}")
        for entry in answer.entries:
            start = f"{entry.scheduled_start[8:10]}:{entry.scheduled_start[10:12]}" if entry.scheduled_start else "--:--"
            print(f"{start}  {entry.accession_number or '-'}  {entry.patient_id or '-'}  {entry.patient_name}  "
                  f"{entry.birth_date or '-'}  {entry.sex or '-'}  {entry.requested_procedure}")
    return 0 if answer.status in ("ok", "empty") else 1


def _configured(config_path):
    from appliance import config
    from appliance.errors import BadInput

    settings = config.load(config_path)
    if not settings.worklist.host:
        raise BadInput("config: worklist.host is not set: no RIS to ask (see docs/worklist.md)")
    return settings
