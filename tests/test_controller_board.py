"""The firmware's Board and the host's HostSession, wired together in memory on a fake clock.

Timing here is exact (the clock is ours), so the spec's constants are asserted to the millisecond;
the pty tests (test_controller_link.py) then show the same behaviour through a real port.
"""

from __future__ import annotations

import random
import struct
import zlib

from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge import protocol
from firmware_bridge.firmware.board import Board
from firmware_bridge.host_session import HostSession
from firmware_bridge.link_events import (ControllerFault, FootswitchPressed, FootswitchReleased, InterlockOpened,
                                         LaserOn, LinkDown, LinkUp)
from firmware_bridge.simulator import VirtualPin

MS = 1_000_000


class Wire:
    """Collects what the board writes; optionally loses whole frames."""

    def __init__(self):
        self.data = bytearray()
        self.lose_next = 0

    def write(self, frame):
        if self.lose_next:
            self.lose_next -= 1
            return
        self.data += frame

    def take(self):
        data = bytes(self.data)
        self.data.clear()
        return data


class Bench:
    """A board and a host session on one fake millisecond clock."""

    def __init__(self, board_version=protocol.PROTOCOL_VERSION, boot_id=1, connect=True):
        self.now = 0
        self.pins = {"footswitch": VirtualPin(1), "interlock": VirtualPin(0), "laser": VirtualPin(1),
                     "permissive": VirtualPin(0), "led": VirtualPin(0)}
        self.wire = Wire()
        self.board = Board(self.pins, self.wire, b"TESTBORD", boot_id, self.now,
                           protocol_version=board_version)
        self.host = HostSession("/dev/test")
        self.events = []
        self.host_to_board_lost = 0
        if connect:
            self.host.connection_opened(self.now * MS)
            self.run(5)

    def exchange(self):
        out = self.host.take_outgoing()
        if out and not self.host_to_board_lost:
            self.board.receive(out, self.now)
        elif out:
            self.host_to_board_lost -= 1
        data = self.wire.take()
        if data:
            self.events += self.host.receive(data, self.now * MS)

    def run(self, ms, host_alive=True):
        for _ in range(ms):
            self.now += 1
            self.board.step(self.now)
            if host_alive:
                self.events += self.host.tick(self.now * MS)
                self.exchange()
            else:
                self.wire.take()

    def set_input(self, name, active):
        self.pins[name].value(0 if active else 1)

    def edges(self):
        return [e for e in self.events if hasattr(e, "edge_number")]


def test_handshake_brings_the_link_up_with_the_firmware_version():
    bench = Bench()
    [up] = [e for e in bench.events if isinstance(e, LinkUp)]
    assert (up.firmware_version, up.board_id, up.protocol_version) == ("2.0.0", b"TESTBORD".hex(), 2)
    assert bench.host.state == "up"


def test_version_mismatch_is_refused_with_a_clear_reason_and_no_link():
    bench = Bench(board_version=3)
    faults = [e for e in bench.events if isinstance(e, ControllerFault)]
    assert faults and faults[0].reason == (
        "protocol version mismatch: board speaks v3, host speaks v2; install matching firmware")
    assert not any(isinstance(e, LinkUp) for e in bench.events)
    bench.set_input("footswitch", True)
    bench.run(50)
    assert bench.edges() == []


def test_debounce_rejects_bounce_and_glitches_and_accepts_after_5_ms_stable():
    bench = Bench()
    for _ in range(3):                   # 3 ms glitches: never an edge
        bench.set_input("footswitch", True)
        bench.run(3)
        bench.set_input("footswitch", False)
        bench.run(10)
    assert bench.edges() == []
    bench.set_input("footswitch", True)   # bouncing contact, then stable
    for _ in range(4):
        bench.run(1)
        bench.set_input("footswitch", False)
        bench.run(1)
        bench.set_input("footswitch", True)
    first_sampled = bench.now + 1         # the board's next loop pass sees the stable level
    bench.run(protocol.DEBOUNCE_MS)
    assert bench.edges() == []
    bench.run(1)
    [edge] = bench.edges()
    assert isinstance(edge, FootswitchPressed) and edge.board_ms == first_sampled + protocol.DEBOUNCE_MS


def test_no_edges_are_queued_before_any_host_connected():
    bench = Bench(connect=False)
    bench.set_input("footswitch", True)
    bench.run(20)
    assert bench.board.pending_edges == 0
    bench.host.connection_opened(bench.now * MS)
    bench.run(20)
    assert bench.edges() == [] and bench.host.board_state["debounced_levels"] & 1   # STATE: pressed


def test_edges_are_resent_until_acknowledged_and_delivered_once():
    bench = Bench()
    bench.host_to_board_lost = 3       # the first ACKs do not reach the board
    bench.set_input("laser", True)
    bench.run(200)
    [edge] = bench.edges()
    assert isinstance(edge, LaserOn)
    assert bench.board.pending_edges == 0
    assert bench.host.counters.edge_duplicates >= 1


def test_permissive_lease_is_exactly_300_ms_and_ready_0_drops_it_at_once():
    bench = Bench()
    bench.host.set_ready(True)
    bench.events += bench.host.tick(bench.now * MS)   # a changed flag goes out at once
    bench.exchange()
    granted = bench.now
    assert bench.pins["permissive"].value() == 1
    bench.run(protocol.LEASE_MS - 1, host_alive=False)
    assert bench.pins["permissive"].value() == 1
    bench.run(1, host_alive=False)
    assert bench.now - granted == protocol.LEASE_MS and bench.pins["permissive"].value() == 0
    # A live host keeps it; withdrawing ready drops it in the same step.
    bench.run(1000)
    assert bench.pins["permissive"].value() == 1
    bench.host.set_ready(False)
    bench.events += bench.host.tick(bench.now * MS)
    bench.exchange()
    assert bench.pins["permissive"].value() == 0


def test_recording_led_follows_the_host_and_goes_dark_when_the_host_goes_silent():
    bench = Bench()
    bench.host.set_recording_led(True)
    bench.run(150)
    assert bench.pins["led"].value() == 1 and bench.pins["permissive"].value() == 0
    bench.run(protocol.LEASE_MS, host_alive=False)
    assert bench.pins["led"].value() == 0


def test_host_declares_the_link_down_after_exactly_500_ms_of_silence():
    bench = Bench()
    bench.run(100)
    last_frame_ns = bench.host.last_frame_ns
    for _ in range(1000):
        bench.now += 1
        events = bench.host.tick(bench.now * MS)
        if events:
            break
    [down] = events
    assert isinstance(down, LinkDown)
    assert down.at_ns - down.last_frame_ns == protocol.LINK_SILENCE_MS * MS
    assert down.last_frame_ns == last_frame_ns


def test_handshake_without_answer_is_reported_once_as_a_controller_fault():
    host = HostSession("/dev/ttyX")
    host.connection_opened(0)
    events = []
    for ms in range(1, 4000):
        events += host.tick(ms * MS)
    assert len(events) == 1 and "no answer from /dev/ttyX" in events[0].reason
    assert host.take_outgoing().count(b"\x00") > 10      # CONNECT keeps going out


def test_a_device_speaking_something_else_is_named_as_such():
    host = HostSession("/dev/ttyX")
    host.connection_opened(0)
    events = host.receive(b"AT\r\nOK\r\n\x00garbage\x00" * 20, MS)
    for ms in range(2, 1600):
        events += host.tick(ms * MS)
    [fault] = events
    assert isinstance(fault, ControllerFault)
    assert "does not speak the treatment controller protocol" in fault.reason


def test_board_faults_reach_the_host_and_overflow_never_loses_an_edge_silently():
    bench = Bench()
    bench.host_to_board_lost = 10 ** 6      # no ACK ever arrives: the queue fills
    for _ in range(protocol.EDGE_QUEUE_CAPACITY // 2 + 2):
        bench.set_input("interlock", False)
        bench.run(6)
        bench.set_input("interlock", True)
        bench.run(6)
    bench.run(protocol.STATE_PERIOD_MS)
    faults = [e for e in bench.events if isinstance(e, ControllerFault)]
    assert faults and faults[0].code == protocol.FAULT_EDGE_QUEUE_OVERFLOW
    assert "edge queue overflowed" in faults[0].reason
    assert bench.host.board_state["fault_flags"] & protocol.FAULT_FLAG_EDGE_OVERFLOW


def test_unknown_message_and_bad_payload_are_reported_by_the_board():
    bench = Bench()
    bench.board.receive(protocol.encode_frame(0, protocol.EDGE, (1, 0, 1, 0)), bench.now)
    body = bytes((protocol.PROTOCOL_VERSION, 0, protocol.ACK, 1))   # ACK needs 2 payload bytes
    bad = protocol.cobs_encode(body + struct.pack("<I", zlib.crc32(body))) + b"\x00"
    bench.board.receive(bad, bench.now)
    bench.run(1)
    codes = [e.code for e in bench.events if isinstance(e, ControllerFault)]
    assert codes == [protocol.FAULT_UNKNOWN_MESSAGE, protocol.FAULT_BAD_PAYLOAD]


def test_reconnect_to_the_same_boot_delivers_edges_from_the_outage_once():
    bench = Bench()
    bench.set_input("footswitch", True)
    bench.run(20)
    bench.host.connection_lost("cable out", bench.now * MS)
    bench.set_input("footswitch", False)
    bench.set_input("interlock", False)
    bench.run(50, host_alive=False)
    bench.host.connection_opened(bench.now * MS)
    bench.run(100)
    assert [type(e) for e in bench.edges()] == [FootswitchPressed, FootswitchReleased, InterlockOpened]


@settings(deadline=None, max_examples=40)
@given(st.lists(st.tuples(st.sampled_from(["footswitch", "interlock", "laser"]), st.integers(6, 40)),
                min_size=1, max_size=25),
       st.integers(0, 2 ** 32 - 1))
def test_every_edge_arrives_exactly_once_in_order_whatever_frames_are_lost(toggles, seed):
    rng = random.Random(seed)
    bench = Bench()
    levels = {"footswitch": False, "interlock": True, "laser": False}
    expected = []
    for name, hold_ms in toggles:
        levels[name] = not levels[name]
        bench.set_input(name, levels[name])
        expected.append((name, levels[name]))
        for _ in range(hold_ms):
            if rng.random() < 0.3:
                bench.wire.lose_next = 1          # board to host
            if rng.random() < 0.3:
                bench.host_to_board_lost = 1      # host to board (ACKs, heartbeats)
            bench.run(1)
    bench.run(400)
    delivered = [type(e).__name__ for e in bench.edges()]
    wanted = [{("footswitch", True): "FootswitchPressed", ("footswitch", False): "FootswitchReleased",
               ("interlock", True): "InterlockClosed", ("interlock", False): "InterlockOpened",
               ("laser", True): "LaserOn", ("laser", False): "LaserOff"}[edge] for edge in expected]
    assert delivered == wanted
    assert [e.edge_number for e in bench.edges()] == list(range(len(expected)))
    assert bench.board.pending_edges == 0


def test_an_edge_on_an_unknown_input_is_a_fault_and_does_not_block_later_edges():
    bench = Bench()
    unknown = protocol.encode_frame(50, protocol.EDGE, (0, 7, 1, bench.now))
    bench.events += bench.host.receive(unknown, bench.now * MS)
    [fault] = [e for e in bench.events if isinstance(e, ControllerFault)]
    assert fault.reason == "controller reported an edge on unknown input 7 (level 1)"
    bench.board._next_edge = 1      # the board numbered that edge 0; its next one is 1
    bench.set_input("footswitch", True)
    bench.run(50)
    assert [type(e) for e in bench.edges()] == [FootswitchPressed]


def test_a_board_no_host_has_connected_to_stays_silent():
    bench = Bench(connect=False)
    bench.set_input("footswitch", True)
    bench.run(500, host_alive=False)
    bench.board.step(bench.now)
    assert bench.wire.take() == b""


def test_a_watchdog_reset_is_reported_after_connect_and_flagged_in_state():
    now = 0
    pins = {"footswitch": VirtualPin(1), "interlock": VirtualPin(0), "laser": VirtualPin(1),
            "permissive": VirtualPin(0), "led": VirtualPin(0)}
    wire = Wire()
    board = Board(pins, wire, b"TESTBORD", 9, now, reset_cause=protocol.RESET_WATCHDOG)
    host = HostSession("/dev/test")
    host.connection_opened(0)
    board.receive(host.take_outgoing(), 1)
    events = host.receive(wire.take(), MS)
    assert [type(e) for e in events] == [LinkUp, ControllerFault]
    assert events[1].code == protocol.FAULT_WATCHDOG_RESET and "watchdog" in events[1].reason
    assert host.board_state["fault_flags"] & protocol.FAULT_FLAG_WATCHDOG_RESET


def test_a_rebooted_board_restarts_edge_numbering_without_losing_its_first_edge():
    bench = Bench(boot_id=1)
    bench.set_input("footswitch", True)
    bench.run(20)
    bench.set_input("footswitch", False)
    bench.run(20)
    assert [e.edge_number for e in bench.edges()] == [0, 1]
    bench.host.connection_lost("board reset", bench.now * MS)
    bench.board = Board(bench.pins, bench.wire, b"TESTBORD", 2, bench.now, reset_cause=protocol.RESET_WATCHDOG)
    bench.host.connection_opened(bench.now * MS)
    bench.run(20)
    bench.set_input("footswitch", True)
    bench.run(20)
    edges = bench.edges()
    assert [(type(e), e.edge_number) for e in edges[2:]] == [(FootswitchPressed, 0)]


def test_an_edge_carries_its_board_time_on_the_host_clock_from_heartbeat_round_trips():
    bench = Bench()
    bench.run(1500)                                             # 15 heartbeat round trips
    bench.set_input("laser", True)
    pressed_at_ms = bench.now
    bench.run(50)
    [laser] = [e for e in bench.edges() if isinstance(e, LaserOn)]
    # Debounced 5 ms after the pin moved; the host decoded it later still, in the same ms tick.
    assert abs(laser.host_ns - (pressed_at_ms + protocol.DEBOUNCE_MS) * MS) <= 2 * MS
    assert 1.0 <= laser.uncertainty_ms < 3.0


def test_a_board_clock_that_wraps_like_ticks_ms_keeps_timers_debounce_and_lease():
    """main.py passes time.ticks_ms(), which wraps at 2**30 on the RP2040 to stay a small int."""
    pins = {"footswitch": VirtualPin(1), "interlock": VirtualPin(0), "laser": VirtualPin(1),
            "permissive": VirtualPin(0), "led": VirtualPin(0)}
    wire = Wire()
    start = protocol.TICKS_PERIOD - 150
    board = Board(pins, wire, b"TICKWRAP", 1, start)
    board.receive(protocol.encode_frame(0, protocol.CONNECT, (protocol.PROTOCOL_VERSION,)), start)
    decoder = protocol.Decoder()
    frames = []
    for elapsed in range(1, 450):
        now = (start + elapsed) & protocol.TICKS_MASK
        if elapsed % 100 == 0:
            board.receive(protocol.encode_frame(elapsed // 100, protocol.HEARTBEAT, (elapsed, protocol.FLAG_READY)), now)
        if elapsed == 200:
            pins["footswitch"].value(0)
        board.step(now)
        assert elapsed < 100 or board.outputs & protocol.OUTPUT_PERMISSIVE, "lease lost at %d ms" % elapsed
        frames += [(msg_type, protocol.unpack(msg_type, payload), elapsed)
                   for _v, _s, msg_type, payload in decoder.feed(wire.take())]
    states = [elapsed for msg_type, _fields, elapsed in frames if msg_type == protocol.STATE]
    assert states == [1, 100, 200, 300, 400]   # the first with HELLO, taken after the first step
    edges = [(fields, elapsed) for msg_type, fields, elapsed in frames if msg_type == protocol.EDGE]
    assert edges[0] == ((0, protocol.FOOTSWITCH, 1, 200 + protocol.DEBOUNCE_MS - 150), 200 + protocol.DEBOUNCE_MS)
