"""Entry point on the RP2040: binds Board to the real pins, the USB CDC port and the watchdog.

Runs only under MicroPython (imports `machine`); `appliance controller sim --engine micropython`
runs this very file under MicroPython's unix port with a stand-in `machine`
(firmware_bridge/board_standin). Pin map, reset causes and the update jumper:
docs/controller-protocol.md, sections 10 and 11.
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
UPDATE_JUMPER_GPIO = 14
PERMISSIVE_GPIO = 15
LED_GPIO = 16
ALIVE_LED = "LED"          # GP25 on a Pico, the wireless chip's GPIO on a Pico W (GP25 is its SPI select)
MAX_READ_PER_PASS = 128
OUT_CAPACITY = 1024        # frames waiting for the host; beyond it whole frames are dropped
WRITE_CHUNK = 64           # one USB full-speed packet: what a ready CDC port takes at once
# pico-sdk: watchdog_enable() writes this to scratch register 4, watchdog_reboot() (which
# machine.reset() uses) writes 0. reset_cause() says WDT_RESET for both.
WATCHDOG_SCRATCH4 = 0x4005801C
WATCHDOG_NON_REBOOT_MAGIC = 0x6AB73121


class UsbCdc:
    """The USB CDC port MicroPython exposes as stdin/stdout, used without ever blocking the loop.

    Reads go into a buffer allocated once. Writes queue; flush() hands the port only what it
    reports ready for and keeps what it did not take, so a host that holds the port open without
    reading costs dropped frames (edges are resent until acknowledged), never a stalled loop.
    """

    def __init__(self):
        self._in_poller = select.poll()
        self._in_poller.register(sys.stdin, select.POLLIN)
        self._out_poller = select.poll()
        self._out_poller.register(sys.stdout, select.POLLOUT)
        self._stdin = sys.stdin.buffer
        self._stdout = sys.stdout.buffer
        self.received = bytearray(MAX_READ_PER_PASS)
        self._byte = bytearray(1)
        self._out = bytearray()
        # ipoll allocates its result tuple once, on its first call: not in the loop.
        _ready(self._in_poller)
        _ready(self._out_poller)

    def read_available(self):
        """Reads what is waiting (up to MAX_READ_PER_PASS) into self.received; the count."""
        count = 0
        # One byte per read: a read of more waits for all of them on the RP2040's stdin.
        while count < MAX_READ_PER_PASS and _ready(self._in_poller):
            if not self._stdin.readinto(self._byte):
                break
            self.received[count] = self._byte[0]
            count += 1
        return count

    def write(self, frame):
        if len(self._out) + len(frame) <= OUT_CAPACITY:   # else the frame is dropped whole
            self._out.extend(frame)

    def flush(self):
        if not self._out or not _ready(self._out_poller):
            return
        written = self._stdout.write(self._out[:WRITE_CHUNK])
        if written:
            self._out = self._out[written:]


def _ready(poller):
    for _stream in poller.ipoll(0):   # ipoll, unlike poll, allocates nothing
        return True
    return False


def reset_cause():
    """Power on, the watchdog, or other (machine.reset(), a debugger): read before WDT() runs."""
    cause = machine.reset_cause()
    if cause == machine.PWRON_RESET:
        return protocol.RESET_POWER_ON
    if cause == machine.WDT_RESET and machine.mem32[WATCHDOG_SCRATCH4] == WATCHDOG_NON_REBOOT_MAGIC:
        return protocol.RESET_WATCHDOG
    return protocol.RESET_OTHER


def update_jumper_fitted():
    """GP14 strapped to ground at boot: leave the REPL to mpremote (docs: updating the firmware)."""
    return machine.Pin(UPDATE_JUMPER_GPIO, machine.Pin.IN, machine.Pin.PULL_UP).value() == 0


def main():
    cause = reset_cause()
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
    alive = machine.Pin(ALIVE_LED, machine.Pin.OUT, value=0)
    port = UsbCdc()
    received = memoryview(port.received)
    board_id = bytes(machine.unique_id())[:8]
    boot_id = random.getrandbits(32)   # seeded from the RP2040's ring oscillator at boot
    # ticks_ms wraps at 2**30 and stays a small int; Board's arithmetic is modular.
    board = Board(pins, port, board_id, boot_id, time.ticks_ms(), cause)
    while True:
        watchdog.feed()
        now_ms = time.ticks_ms()
        count = port.read_available()
        if count:
            board.receive(received[:count], now_ms)
        board.step(now_ms)
        port.flush()
        alive.value((now_ms // 1000) & 1)


if __name__ == "__main__":
    if update_jumper_fitted():
        print("update jumper fitted: main loop not started, watchdog off, REPL free for mpremote")
    else:
        main()
