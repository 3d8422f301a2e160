"""`appliance run --headless [--config F]`: the production appliance without its kiosk.

The footswitch drives recording as on the kiosk. Sessions are opened and closed by commands on
standard input, one per line (for a service console, a test or a site integration):

    begin SUBJECT OPERATOR     open a session and arm
    begin --accession ACCESSION OPERATOR
                               open it for today's worklist step with that accession number (a
                               barcode scanner on the order): the worklist service is asked anew
    end                        close the session (a recording in progress is sealed first)
    ack                        acknowledge a fault
    status                     print the current status

Standard output carries one JSON object per line: {"status": ...} on every state change and
{"reply": COMMAND, "ok": bool, "error": ...} per command. Subject IDs never appear in them
(stdout may end up in a journal). SIGTERM or SIGINT seals an open recording, then exits 0.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser("run", help="run the appliance without its kiosk (commands on stdin)")
    parser.add_argument("--headless", action="store_true", required=True,
                        help="required: no kiosk window (use `appliance kiosk` for the touchscreen)")
    parser.add_argument("--config", type=Path, help="settings file (TOML); embedded defaults without it")
    parser.set_defaults(func=run)


def status_line(status) -> dict:
    """What may be logged of a status: everything but the subject and operator IDs."""
    return {
        "state": status.state,
        "session": status.session.session_uid if status.session else None,
        "clips": status.session.clip_count if status.session else None,
        "link_up": status.link.up,
        "footswitch": status.inputs.footswitch_pressed,
        "storage_seconds_left": round(status.storage_seconds_left) if status.storage_seconds_left is not None else None,
        "storage_warning": status.storage_warning,
        "fault": status.fault.kind if status.fault else None,
        "fault_text": f"{status.fault.what_happened} {status.fault.what_to_do}" if status.fault else None,
        "not_ready": list(status.not_ready),
    }


def run(args) -> int:
    import os

    from appliance import config
    from appliance.controller import Controller
    from appliance.journal import send_logs_to

    os.umask(0o077)   # everything the appliance creates is private to its user
    # The journal gets state changes and faults; messages never carry subject IDs.
    send_logs_to(logging.StreamHandler(sys.stderr))
    settings = config.load(args.config)
    controller = Controller(settings)
    printer = _LinePrinter()
    stop = threading.Event()

    def on_signal(signum, frame) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    controller.start()
    last_state = [None]

    def on_status(status) -> None:
        line = status_line(status)
        key = (line["state"], line["clips"], line["fault"], line["link_up"])
        if key != last_state[0]:
            last_state[0] = key
            printer.write({"status": line})

    controller.subscribe(on_status)
    reader = threading.Thread(target=_read_commands, args=(controller, printer, stop), daemon=True)
    reader.start()
    try:
        while not stop.wait(0.2):
            pass
    finally:
        controller.stop()
    return 0


def _read_commands(controller, printer: "_LinePrinter", stop: threading.Event) -> None:
    from appliance.errors import ApplianceError

    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        command, arguments = words[0], words[1:]
        try:
            if command == "begin" and len(arguments) == 3 and arguments[0] == "--accession":
                _begin_from_worklist(controller, *arguments[1:])
            elif command == "begin" and len(arguments) == 2:
                controller.begin_session(*arguments)
            elif command == "end" and not arguments:
                controller.end_session()
            elif command == "ack" and not arguments:
                controller.acknowledge()
            elif command == "status" and not arguments:
                printer.write({"status": status_line(controller.status)})
            elif command == "quit" and not arguments:
                stop.set()
            else:
                raise ApplianceError("unknown command; use: begin SUBJECT OPERATOR | begin --accession ACCESSION "
                                     "OPERATOR | end | ack | status | quit")
        except (ApplianceError, TimeoutError) as error:
            printer.write({"reply": command, "ok": False, "error": str(error)})
            continue
        printer.write({"reply": command, "ok": True, "error": None})


def _begin_from_worklist(controller, accession: str, operator_id: str) -> None:
    """Opens the session for the worklist entry with this accession number; BadInput with the
    worklist client's one line (never the accession number or the patient) when there is none."""
    from appliance.errors import BadInput
    from appliance.worklist.client import WorklistClient

    entry, line = WorklistClient.from_settings(controller.settings).find_accession(accession)
    if entry is None:
        raise BadInput(line)
    controller.begin_session(entry.patient_id, operator_id, entry=entry)


class _LinePrinter:
    """One JSON object per line, whole lines only, from any thread."""

    def __init__(self):
        self._lock = threading.Lock()

    def write(self, document: dict) -> None:
        with self._lock:
            sys.stdout.write(json.dumps(document) + "\n")
            sys.stdout.flush()
