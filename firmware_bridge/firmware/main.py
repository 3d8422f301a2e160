"""Entry point on the RP2040: binds Board to the real pins, the USB CDC port and the watchdog.

Runs only under MicroPython (imports `machine`); on the host, the simulator binds the same
Board to virtual pins instead. Pin map: docs/controller-protocol.md, section 10.
"""

import machine
import micropython
import random
import select
import sys
import time

import protocol
from board import Board

FOOTSWITCH_GPIO = 2
INTERLOCK_GPIO = 3
LASER_GPIO = 4
PERMISSIVE_GPIO = 15
LED_GPIO = 16
ALIVE_LED_GPIO = 25
MAX_READ_PER_PASS = 128


class UsbCdc:
    """The USB CDC port MicroPython exposes as stdin/stdout, made binary and non-blocking."""

    def __init__(self):
        self._poller = select.poll()
        self._poller.register(sys.stdin, select.POLLIN)
        self._stdin = sys.stdin.buffer
        self._stdout = sys.stdout.buffer

    def read_available(self):
        data = bytearray()
        while len(data) < MAX_READ_PER_PASS and self._poller.poll(0):
            byte = self._stdin.read(1)
            if not byte:
                break
            data.extend(byte)
        return data

    def write(self, data):
        self._stdout.write(data)


def reset_cause():
    cause = machine.reset_cause()
    if cause == machine.PWRON_RESET:
        return protocol.RESET_POWER_ON
    if cause == machine.WDT_RESET:
        return protocol.RESET_WATCHDOG
    return protocol.RESET_OTHER


def main():
    # Frames are binary: a 0x03 byte must not raise KeyboardInterrupt.
    micropython.kbd_intr(-1)
    watchdog = machine.WDT(timeout=protocol.WATCHDOG_MS)
    pull_up = machine.Pin.PULL_UP
    pins = {
        "footswitch": machine.Pin(FOOTSWITCH_GPIO, machine.Pin.IN, pull_up),
        "interlock": machine.Pin(INTERLOCK_GPIO, machine.Pin.IN, pull_up),
        "laser": machine.Pin(LASER_GPIO, machine.Pin.IN, pull_up),
        "permissive": machine.Pin(PERMISSIVE_GPIO, machine.Pin.OUT, value=0),
        "led": machine.Pin(LED_GPIO, machine.Pin.OUT, value=0),
    }
    alive = machine.Pin(ALIVE_LED_GPIO, machine.Pin.OUT, value=0)
    port = UsbCdc()
    board_id = bytes(machine.unique_id())[:8]
    boot_id = random.getrandbits(32)   # seeded from the RP2040's ring oscillator at boot
    # Board wants a non-wrapping millisecond count; ticks_ms wraps, ticks_diff does not mind.
    now_ms = 0
    last_ticks = time.ticks_ms()
    board = Board(pins, port, board_id, boot_id, now_ms, reset_cause())
    while True:
        watchdog.feed()
        ticks = time.ticks_ms()
        now_ms += time.ticks_diff(ticks, last_ticks)
        last_ticks = ticks
        data = port.read_available()
        if data:
            board.receive(data, now_ms)
        board.step(now_ms)
        alive.value((now_ms // 1000) & 1)


main()
