"""A stand-in for MicroPython's `machine` on a Raspberry Pi Pico W, for the unix port.

`appliance controller sim --engine micropython` runs the real firmware main.py under
MicroPython's unix port with this module first on its path (firmware_bridge/micropython_board.py
starts it). The simulator drives the input pins and reads the outputs through two pipes; the
USB CDC port is the process's stdin/stdout. MicroPython only: no CPython features here.

Environment: STANDIN_CONTROL_FD / STANDIN_STATUS_FD (the pipes' descriptors), STANDIN_LEVELS
("gpio=level,..." at boot), STANDIN_BOOT (power | watchdog | reset: what ended the last run),
STANDIN_ID (hex board id).
"""

import binascii
import os
import select
import sys
import time

PWRON_RESET = 1
WDT_RESET = 3
# pico-sdk's watchdog scratch register 4 and the value watchdog_enable() leaves in it.
_WATCHDOG_SCRATCH4 = 0x4005801C
_WATCHDOG_NON_REBOOT_MAGIC = 0x6AB73121
# On a Pico W these GPIOs belong to the wireless chip (GP25 is its SPI chip-select).
_WIRELESS_GPIOS = (23, 24, 25, 29)
_REPORT_PERIOD_US = 100000

_control = open(int(os.getenv("STANDIN_CONTROL_FD")), "rb")   # non-blocking: read() gives what is there
_status = open(int(os.getenv("STANDIN_STATUS_FD")), "wb")
_levels = {}
for _item in os.getenv("STANDIN_LEVELS").split(","):
    _gpio, _level = _item.split("=")
    _levels[int(_gpio)] = int(_level)
_boot = os.getenv("STANDIN_BOOT")
_poller = select.poll()
_poller.register(_control, select.POLLIN)
_poller.register(sys.stdin, select.POLLIN)
_pending_control = bytearray()


def _tell(line):
    _status.write(line.encode() + b"\n")


def _service():
    """Applies the simulator's pin changes; waits up to 1 ms for one or for a host byte.

    The waiting paces the firmware's loop at about the RP2040's rate without taking a core.
    """
    global _pending_control
    for stream, events in _poller.poll(1):
        if stream is _control and events & select.POLLIN:
            _pending_control.extend(_control.read(256) or b"")
    while b"\n" in _pending_control:
        end = _pending_control.index(b"\n")
        gpio, level = _pending_control[:end].split()
        _levels[int(gpio)] = int(level)
        _pending_control = _pending_control[end + 1:]


class _Memory:
    """machine.mem32: only the watchdog scratch register the firmware reads is modelled."""

    def __init__(self):
        self._words = {_WATCHDOG_SCRATCH4: _WATCHDOG_NON_REBOOT_MAGIC if _boot == "watchdog" else 0}

    def __getitem__(self, address):
        return self._words.get(address, 0)

    def __setitem__(self, address, value):
        self._words[address] = value


mem32 = _Memory()


def reset_cause():
    # As on the rp2 port: machine.reset() reboots through the watchdog, so it reads WDT_RESET too.
    return PWRON_RESET if _boot == "power" else WDT_RESET


def reset():
    mem32[_WATCHDOG_SCRATCH4] = 0   # pico-sdk's watchdog_reboot()
    _tell("reset")
    while True:   # the simulator ends this process and boots a new one, as the chip reboots
        time.sleep_ms(100)


def unique_id():
    return binascii.unhexlify(os.getenv("STANDIN_ID"))


class Pin:
    IN = 0
    OUT = 1
    PULL_UP = 1

    def __init__(self, id, mode=IN, pull=None, value=None):
        if id in _WIRELESS_GPIOS:
            raise ValueError("GP%d is wired to the Pico W's wireless chip" % id)
        self._id = id
        self._mode = mode
        self._level = None
        if mode == Pin.OUT:
            self.value(0 if value is None else value)

    def value(self, *level):
        if not level:
            return _levels.get(self._id, 1) if self._mode == Pin.IN else self._level
        if level[0] != self._level:
            self._level = level[0]
            _tell("out %s %d" % (self._id, level[0]))
        return None


class WDT:
    """Tells the simulator each 100 ms the longest gap between feeds; the simulator is the timer."""

    def __init__(self, id=0, timeout=5000):
        mem32[_WATCHDOG_SCRATCH4] = _WATCHDOG_NON_REBOOT_MAGIC   # pico-sdk's watchdog_enable()
        _tell("wdt %d" % timeout)
        self._last_us = time.ticks_us()
        self._window_start_us = self._last_us
        self._longest_us = 0

    def feed(self):
        now = time.ticks_us()
        self._longest_us = max(self._longest_us, time.ticks_diff(now, self._last_us))
        if time.ticks_diff(now, self._window_start_us) >= _REPORT_PERIOD_US:
            _tell("gap %d" % self._longest_us)
            self._window_start_us = now
            self._longest_us = 0
        _service()
        self._last_us = time.ticks_us()
