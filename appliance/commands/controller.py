"""`appliance controller sim|monitor`: the simulated treatment controller and a link monitor.

sim: runs the board firmware on virtual pins behind a pseudo-terminal at --link PATH and reads
commands on stdin, one per line (press, release, interlock open|closed, laser on|off, noise N,
drop N, stall MS, wait MS, unplug, replug, power-cycle, update-jumper on|off, quit; the last two
with --engine micropython). monitor: opens --port PATH like the appliance
does and prints every decoded event as one JSON line, flushed.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import sys
import time


def register(subparsers) -> None:
    parser = subparsers.add_parser("controller", help="treatment controller: simulator and link monitor")
    actions = parser.add_subparsers(dest="controller_action", metavar="ACTION", parser_class=type(parser))
    actions.required = True
    sim = actions.add_parser("sim", help="simulate the controller board on a pseudo-terminal")
    sim.add_argument("--link", required=True, help="path of the symlink to create (e.g. ./controller)")
    sim.add_argument("--engine", choices=("python", "micropython"), default="python",
                     help="python: the firmware's Board in this process (default); micropython: the real "
                          "firmware main.py under MicroPython's unix port, with a stand-in machine module")
    sim.set_defaults(func=_sim)
    monitor = actions.add_parser("monitor", help="print the controller's events as JSON lines")
    monitor.add_argument("--port", required=True, help="serial port (e.g. /dev/treatment-controller)")
    monitor.add_argument("--seconds", type=float, help="stop after this long (default: until Ctrl-C)")
    monitor.add_argument("--connect-timeout", type=float, default=3.0,
                         help="seconds to wait for the board's HELLO before giving up (default 3)")
    monitor.set_defaults(func=_monitor)


def _sim(args) -> int:
    from appliance.errors import BadInput
    from firmware_bridge.micropython_board import MicroPythonMissing
    from firmware_bridge.simulator import Simulator
    from firmware_bridge.simulator_script import run_line

    directory = os.path.dirname(os.path.abspath(args.link))
    if not os.path.isdir(directory):
        raise BadInput(f"cannot create the link {args.link}: directory {directory} does not exist")
    try:
        simulator = Simulator(args.link, engine=args.engine)
    except MicroPythonMissing as error:
        raise BadInput(str(error)) from None
    _exit_cleanly_on_sigterm()
    try:
        simulator.start()
    except FileExistsError as error:
        raise BadInput(str(error)) from None
    except PermissionError:
        raise BadInput(f"cannot create the link {args.link}: permission denied") from None
    try:
        print(f"simulator ready: {simulator.link_path} -> {os.path.realpath(simulator.link_path)}", flush=True)
        for line in sys.stdin:
            try:
                if not run_line(simulator, line):
                    break
            except ValueError as error:
                print(f"appliance: {error}", file=sys.stderr, flush=True)
    finally:
        simulator.stop()
    return 0


def _monitor(args) -> int:
    from appliance.errors import BadInput
    from firmware_bridge.link import ControllerLink, LinkError, LinkUp, event_as_dict, open_port

    try:
        open_port(args.port).close()
    except LinkError as error:
        raise BadInput(str(error)) from None
    events: queue.Queue = queue.Queue()
    link = ControllerLink(args.port, events=events)
    _exit_cleanly_on_sigterm()
    link.start()
    try:
        first = _first_event(events, args.connect_timeout)
        if not isinstance(first, LinkUp):
            reason = first.reason if first is not None else (
                f"no answer from {args.port} within {args.connect_timeout:g} s")
            raise BadInput(reason)
        _print_event(event_as_dict(first))
        deadline = None if args.seconds is None else time.monotonic() + args.seconds
        while deadline is None or time.monotonic() < deadline:
            timeout = 0.5 if deadline is None else max(0.0, min(0.5, deadline - time.monotonic()))
            try:
                _print_event(event_as_dict(events.get(timeout=timeout)))
            except queue.Empty:
                pass
    except KeyboardInterrupt:
        pass   # Ctrl-C is how an operator ends monitoring
    finally:
        link.stop()
    return 0


def _exit_cleanly_on_sigterm() -> None:
    """SIGTERM (systemd, a script's kill) ends the command through its `finally`: the simulator
    removes its link, the monitor releases the port."""
    def terminate(signum, frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, terminate)


def _first_event(events: queue.Queue, timeout: float):
    try:
        return events.get(timeout=timeout)
    except queue.Empty:
        return None


def _print_event(record: dict) -> None:
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()
