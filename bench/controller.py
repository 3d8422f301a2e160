"""Controller link: footswitch edge to host callback latency, link-loss detection time.

Runs the simulated board behind a real pty and the host link over pyserial, once per engine:
"python" (the firmware's Board in a thread of this process) and "micropython" (the real main.py
in a MicroPython unix-port process, whose loop waits up to 1 ms for input at each watchdog feed). The old design had no controller link at all (nothing watched the
footswitch), so the figures are reported against the budget (p99 <= 10 ms, loss <= 500 ms),
side by side with the raw primitive: one frame's trip through the same pty, no protocol.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import threading
import time

import serial

from firmware_bridge import protocol
from firmware_bridge.link import ControllerLink, FootswitchPressed, FootswitchReleased, LinkDown, LinkUp
from firmware_bridge.simulator import ENGINES, Simulator

MS = 1_000_000
BUDGET_P99_MS = 10.0
BUDGET_LOSS_MS = float(protocol.LINK_SILENCE_MS)
WAIT_S = 10.0


def add_arguments(parser) -> None:
    parser.add_argument("--presses", type=int, default=1000, help="footswitch presses (default 1000)")
    parser.add_argument("--stalls", type=int, default=5, help="link stalls to detect (default 5)")


def run(args) -> dict:
    raw_summary = _summary(_raw_pty_latencies(args.presses))
    engines = {engine: _run_engine(engine, args) for engine in ENGINES}
    python, micropython = engines["python"], engines["micropython"]
    return {
        "benchmark": "controller",
        "note": "shared 2-core machine: figures are noisy; rerun with `appliance bench controller`",
        "baseline": "old design: no controller link; figures compared with the budget, the raw pty "
                    "and the python engine",
        "presses": args.presses,
        "raw_pty_frame_one_way_ms": raw_summary,
        "engines": engines,
        "budget": {"edge_p99_ms": BUDGET_P99_MS, "link_loss_ms": BUDGET_LOSS_MS},
        "ratios": {
            "micropython_over_python_press_p50": _ratio(micropython, python, "p50"),
            "micropython_over_python_press_p99": _ratio(micropython, python, "p99"),
        },
    }


def _ratio(engine, baseline, key):
    return round(engine["press_to_host_callback_ms"][key] / baseline["press_to_host_callback_ms"][key], 3)


def _run_engine(engine, args) -> dict:
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "treatment-controller")
        with Simulator(path, engine=engine) as simulator:
            catcher = _Catcher()
            link = ControllerLink(path, on_event=catcher)
            link.start()
            try:
                catcher.wait(LinkUp)
                edges = _press_latencies(simulator, catcher, args.presses)
                loss = _stall_detection(simulator, catcher, args.stalls)
                unplug = _unplug_detection(simulator, catcher)
                stats = link.stats()
            finally:
                link.stop()
    press_to_callback = _summary(edges["press_to_callback"])
    edge_to_callback = _summary(edges["board_edge_to_callback"])
    silence = _summary(loss["silence_to_down"])
    return {
        "press_to_host_callback_ms": press_to_callback,
        "board_edge_to_host_callback_ms": edge_to_callback,
        "debounce_ms": protocol.DEBOUNCE_MS,
        "board_clock_note": "board_ms has 1 ms resolution: board-edge figures read up to 1 ms high",
        "link_loss_detection_ms": {
            "from_last_frame": silence,
            "from_stall_start": _summary(loss["stall_to_down"]),
            "reconnect_after_stall_end": _summary(loss["stall_end_to_up"]),
            "unplug_to_down": round(unplug["unplug_to_down"], 3),
            "replug_to_up": round(unplug["replug_to_up"], 3),
        },
        "ratios": {
            "press_p99_over_budget": round(press_to_callback["p99"] / BUDGET_P99_MS, 3),
            "loss_max_over_budget": round(_summary(loss["stall_to_down"])["max"] / BUDGET_LOSS_MS, 3),
        },
        "edges_delivered": stats.edges_delivered,
        "edge_duplicates": stats.edge_duplicates,
        "crc_errors": stats.crc_errors,
        "round_trip_ms": stats.round_trip_ms,
    }


class _Catcher:
    """The link's on_event callback: stamps each event when the callback runs."""

    def __init__(self):
        self._condition = threading.Condition()
        self._events = []

    def __call__(self, event) -> None:
        stamped = (time.monotonic_ns(), event)
        with self._condition:
            self._events.append(stamped)
            self._condition.notify_all()

    def wait(self, kind):
        deadline = time.monotonic() + WAIT_S
        with self._condition:
            while True:
                for index, (stamp, event) in enumerate(self._events):
                    if isinstance(event, kind):
                        del self._events[:index + 1]
                        return stamp, event
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise RuntimeError("benchmark: no %s within %.0f s" % (kind.__name__, WAIT_S))
                self._condition.wait(remaining)


def _press_latencies(simulator, catcher, presses):
    press_to_callback, board_edge_to_callback = [], []
    for _ in range(presses):
        pressed_ns = simulator.press()
        stamp, event = catcher.wait(FootswitchPressed)
        press_to_callback.append((stamp - pressed_ns) / MS)
        board_edge_to_callback.append((stamp - simulator.board_time_ns(event.board_ms)) / MS)
        simulator.release()
        catcher.wait(FootswitchReleased)
    return {"press_to_callback": press_to_callback, "board_edge_to_callback": board_edge_to_callback}


def _stall_detection(simulator, catcher, stalls):
    stall_ms = protocol.LINK_SILENCE_MS * 2
    figures = {"silence_to_down": [], "stall_to_down": [], "stall_end_to_up": []}
    for _ in range(stalls):
        started = time.monotonic_ns()
        simulator.stall(stall_ms)
        _, down = catcher.wait(LinkDown)
        up_stamp, _ = catcher.wait(LinkUp)
        figures["silence_to_down"].append((down.at_ns - down.last_frame_ns) / MS)
        figures["stall_to_down"].append((down.at_ns - started) / MS)
        figures["stall_end_to_up"].append((up_stamp - started) / MS - stall_ms)
    return figures


def _unplug_detection(simulator, catcher):
    unplugged = time.monotonic_ns()
    simulator.unplug()
    _, down = catcher.wait(LinkDown)
    replugged = time.monotonic_ns()
    simulator.replug()
    up_stamp, _ = catcher.wait(LinkUp)
    return {"unplug_to_down": (down.at_ns - unplugged) / MS, "replug_to_up": (up_stamp - replugged) / MS}


def _raw_pty_latencies(count):
    """One EDGE-sized frame written to a pty master and read back with pyserial: the transport floor."""
    master, slave = os.openpty()
    frame = protocol.encode_frame(0, protocol.EDGE, (0, 0, 1, 0))
    latencies = []
    try:
        with serial.Serial(os.ttyname(slave), timeout=WAIT_S) as port:
            for _ in range(count):
                sent = time.monotonic_ns()
                os.write(master, frame)
                received = port.read_until(b"\x00")
                latencies.append((time.monotonic_ns() - sent) / MS)
                if received != frame:
                    raise RuntimeError("benchmark: the pty returned %r" % received)
    finally:
        os.close(master)
        os.close(slave)
    return latencies


def _summary(samples):
    ordered = sorted(samples)
    return {
        "p50": round(statistics.median(ordered), 3),
        "p99": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 3),
        "max": round(ordered[-1], 3),
    }
