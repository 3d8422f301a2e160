"""The real firmware main.py under MicroPython's unix port (`controller sim --engine micropython`).

What only main.py does is tested here: USB writes that never stall the loop, reset causes, the
update jumper, the Pico W's LED, allocation-free reads. The stand-in `machine` reports the
longest gap between watchdog feeds every 100 ms; the simulator is the watchdog timer.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import time

import pytest
import serial

from firmware_bridge import micropython_board, protocol
from firmware_bridge.link import ControllerLink, FootswitchPressed, FootswitchReleased
from firmware_bridge.simulator import HOST_BUFFER_BYTES, Simulator
from tests.waiting import wait_for

DEADLINE_S = 10


@pytest.fixture
def link_path(tmp_path):
    return str(tmp_path / "treatment-controller")


@pytest.fixture
def sim(link_path):
    simulator = Simulator(link_path, engine="micropython").start()
    yield simulator
    simulator.stop()


def board_loop_runs(sim, windows=2):
    """Waits until main.py's loop has reported `windows` more 100 ms windows of feeds.

    The first report may come before the loop took a pin change; the second comes at least
    100 ms after it did, so an input held this long is held well past the 5 ms debounce."""
    seen = sim.micropython.loop_reports
    wait_for(lambda: sim.micropython.loop_reports >= seen + windows, DEADLINE_S, "the board's main loop")


def frames_until(port: serial.Serial, decoder: protocol.Decoder, wanted, timeout=DEADLINE_S) -> list[tuple]:
    """(type, fields) of every frame read until one satisfies `wanted`."""
    frames = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for _version, _seq, msg_type, payload in decoder.feed(port.read(port.in_waiting or 1)):
            frames.append((msg_type, protocol.unpack(msg_type, payload)))
            if wanted(msg_type):
                return frames
    raise AssertionError("no wanted frame within %d s; got %r" % (timeout, frames))


def hello_and_faults(link_path) -> tuple[tuple, list[int]]:
    """CONNECT on a fresh port: the HELLO's fields and the FAULT codes before the first STATE."""
    with serial.Serial(link_path, timeout=0.05) as port:
        port.write(protocol.encode_frame(0, protocol.CONNECT, (protocol.PROTOCOL_VERSION,)))
        frames = frames_until(port, protocol.Decoder(), lambda msg_type: msg_type == protocol.STATE)
    hello = [fields for msg_type, fields in frames if msg_type == protocol.HELLO][-1]
    return hello, [fields[0] for msg_type, fields in frames if msg_type == protocol.FAULT]


def repl(port: serial.Serial, line: str, answer: str) -> bytes:
    """Types `line` at the REPL; everything read until `answer` showed up."""
    port.write(line.encode() + b"\n")
    seen = b""
    deadline = time.monotonic() + DEADLINE_S
    while answer.encode() not in seen:
        assert time.monotonic() < deadline, "REPL did not answer %r: %r" % (answer, seen)
        seen += port.read(port.in_waiting or 1)
    return seen


def test_a_host_that_holds_the_port_without_reading_stalls_no_feed_and_misses_no_press(sim, link_path):
    with serial.Serial(link_path, timeout=0.05) as port:
        port.write(protocol.encode_frame(0, protocol.CONNECT, (protocol.PROTOCOL_VERSION,)))
        frames_until(port, protocol.Decoder(), lambda msg_type: msg_type == protocol.HELLO)
        # From here the host writes (heartbeats) but never reads: the board's replies back up.
        heartbeats = b"".join(protocol.encode_frame(seq, protocol.HEARTBEAT, (seq, 0)) for seq in range(200))
        deadline = time.monotonic() + DEADLINE_S
        while sim.host_unread_bytes() < HOST_BUFFER_BYTES:
            assert time.monotonic() < deadline, "the host side never filled"
            port.write(heartbeats)   # 2.4 kB: less than the board's USB input takes in 100 ms
            board_loop_runs(sim)
        sim.micropython.longest_feed_gap_us = 0
        for _ in range(3):   # the host's writer keeps heartbeating: the board's replies have nowhere to go
            for press in (sim.press, sim.release):
                press()
                port.write(heartbeats)
                board_loop_runs(sim)
        port.write(heartbeats)
        board_loop_runs(sim, 3)
        assert sim.host_unread_bytes() >= HOST_BUFFER_BYTES   # still not read
        port.reset_input_buffer()
    assert sim.micropython.boots == ["power"]
    assert 0 < sim.micropython.longest_feed_gap_us < 100_000
    events = queue.Queue()
    link = ControllerLink(link_path, events=events)
    link.start()
    try:
        edges = []
        while len(edges) < 6:
            event = events.get(timeout=DEADLINE_S)
            if isinstance(event, (FootswitchPressed, FootswitchReleased)):
                edges.append(type(event))
    finally:
        link.stop()
    assert edges == [FootswitchPressed, FootswitchReleased] * 3


def test_machine_reset_is_not_reported_as_a_watchdog_reset_and_a_hang_is(sim, link_path):
    hello, faults = hello_and_faults(link_path)
    assert hello[-1] == protocol.RESET_POWER_ON and faults == []
    # machine.reset(), as `mpremote reset` does it, from the update jumper's REPL.
    sim.update_jumper(True)
    sim.power_cycle()
    sim.update_jumper(False)
    with serial.Serial(link_path, timeout=0.05) as port:
        repl(port, "print('answer', 6 * 7)", "answer 42")
        port.write(b"import machine; machine.reset()\n")
    wait_for(lambda: sim.micropython.boots[-1] == "reset" and sim.micropython.watchdog_started, DEADLINE_S)
    hello, faults = hello_and_faults(link_path)
    assert hello[-1] == protocol.RESET_OTHER and faults == []
    # A hung board: the watchdog reboots it and the host hears why.
    os.kill(sim.micropython.pid, signal.SIGSTOP)
    wait_for(lambda: sim.micropython.boots[-1] == "watchdog" and sim.micropython.watchdog_started, DEADLINE_S)
    hello, faults = hello_and_faults(link_path)
    assert hello[-1] == protocol.RESET_WATCHDOG and faults == [protocol.FAULT_WATCHDOG_RESET]


def test_the_update_jumper_at_boot_leaves_the_repl_free_and_the_watchdog_off(sim, link_path):
    sim.update_jumper(True)
    sim.power_cycle()
    with serial.Serial(link_path, timeout=0.05) as port:
        repl(port, "import protocol; print('version', protocol.PROTOCOL_VERSION * 7)",
             f"version {protocol.PROTOCOL_VERSION * 7}")
        # A host's CONNECT is only keystrokes to the REPL (control characters among them, which
        # depend on the frame's bytes): no HELLO comes. Ctrl-C clears the line they left and
        # Ctrl-B leaves the raw REPL should they have entered it (Ctrl-A).
        port.write(protocol.encode_frame(0, protocol.CONNECT, (protocol.PROTOCOL_VERSION,)) + b"\x03\x02")
        answered = repl(port, "print('still', 'the', 'REPL')", "still the REPL")
        assert protocol.DELIMITER not in answered
    assert not sim.micropython.watchdog_started and sim.micropython.boots == ["power", "power"]


def test_the_alive_led_is_the_pico_w_led_pin_and_the_link_works(sim, link_path):
    events = queue.Queue()
    link = ControllerLink(link_path, events=events)
    link.start()
    try:
        wait_for(lambda: link.is_up, DEADLINE_S, "link up")
    finally:
        link.stop()
    assert "alive" in sim.micropython.outputs   # Pin("LED"); Pin(25) raises on the stand-in Pico W


def test_reading_the_usb_port_allocates_nothing(tmp_path):
    """main.py's read loop under micropython.heap_lock(): any allocation raises MemoryError."""
    control_r, control_w = os.pipe()
    status_r, status_w = os.pipe()
    os.set_blocking(control_r, False)
    script = tmp_path / "read_locked.py"
    script.write_text("import micropython\nimport main\nport = main.UsbCdc()\n"
                      "micropython.heap_lock()\ncount = port.read_available()\nmicropython.heap_unlock()\n"
                      "print(count, bytes(port.received[:count]))\n")
    environment = {**os.environ, "MICROPYPATH": micropython_board.MODULE_PATH,
                   "STANDIN_CONTROL_FD": str(control_r), "STANDIN_STATUS_FD": str(status_w),
                   "STANDIN_LEVELS": "2=1,3=0,4=1,14=1", "STANDIN_BOOT": "power", "STANDIN_ID": "00" * 8}
    try:
        result = subprocess.run([micropython_board.micropython_executable(), str(script)], input=bytes(range(1, 101)),
                                capture_output=True, env=environment, pass_fds=(control_r, status_w), timeout=20)
    finally:
        for descriptor in (control_r, control_w, status_r, status_w):
            os.close(descriptor)
    assert result.stdout.decode().strip() == "100 %r" % bytes(range(1, 101)), result.stdout + result.stderr
