"""The host link against the simulated board over a real pseudo-terminal, opened with pyserial.

Waits are on conditions with deadlines. Intervals are measured with the link's and the
simulator's own monotonic timestamps, never with sleeps. Where a real-time bound is asserted,
the margin above the spec's figure is SCHEDULING_MARGIN_MS: the link's reader thread wakes at
least every 10 ms and the board loop every 1 ms, but on a loaded 2-core machine a ready thread
can wait tens of milliseconds for a core; the exact figures are asserted on a fake clock in
test_controller_board.py.
"""

from __future__ import annotations

import os
import queue
import threading
import time

import pytest
import serial

from firmware_bridge import protocol
from firmware_bridge.host_session import HostSession
from firmware_bridge.link import (ControllerFault, ControllerLink, FootswitchPressed, FootswitchReleased,
                                  InputEdge, LinkDown, LinkUp)
from firmware_bridge.link_stats import InputLevels
from firmware_bridge.simulator import Simulator
from tests.waiting import wait_for

MS = 1_000_000
SCHEDULING_MARGIN_MS = 150
DEADLINE_S = 10


class Events:
    def __init__(self):
        self.queue = queue.Queue()
        self.seen = []

    def wait_for(self, kind, timeout=DEADLINE_S, where=lambda event: True):
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError("no %s within %.1f s; saw %r" % (kind.__name__, timeout, self.seen))
            try:
                event = self.queue.get(timeout=remaining)
            except queue.Empty:
                continue
            self.seen.append(event)
            if isinstance(event, kind) and where(event):
                return event

    def drain(self, seconds):
        """Collects whatever arrives for `seconds` (for asserting that nothing else happens)."""
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                self.seen.append(self.queue.get(timeout=remaining))
            except queue.Empty:
                pass
        return self.seen

    def edges(self):
        return [e for e in self.seen if isinstance(e, InputEdge)]


@pytest.fixture
def link_path(tmp_path):
    return str(tmp_path / "treatment-controller")


@pytest.fixture(params=["python", "micropython"])
def sim(link_path, request):
    """The simulated board on both engines: firmware/board.py in a thread, or main.py under MicroPython."""
    simulator = Simulator(link_path, seed=7, engine=request.param).start()
    yield simulator
    simulator.stop()


@pytest.fixture
def events():
    return Events()


@pytest.fixture
def link(link_path, events):
    controller_link = ControllerLink(link_path, events=events.queue)
    yield controller_link
    controller_link.stop()


def wait_for_board_to_sample(sim, queued, what):
    """Python engine: until the board's queue shows it. MicroPython: its queue is inside the
    process, so until main.py's loop has run two more 100 ms windows (well past the debounce)."""
    if sim.board is not None:
        wait_for(queued, what=what)
        return
    seen = sim.micropython.loop_reports
    wait_for(lambda: sim.micropython.loop_reports >= seen + 2, what=what)


def test_link_comes_up_and_reports_firmware_levels_and_round_trip(sim, link, events, link_path):
    link.start()
    up = events.wait_for(LinkUp)
    assert up.firmware_version == "2.0.0" and up.board_id == b"SIMBOARD".hex()
    wait_for(lambda: link.stats().round_trip_ms is not None and link.stats().raw_levels,
             what="heartbeat reply and STATE")
    stats = link.stats()
    assert stats.up and stats.raw_levels == InputLevels(footswitch=False, interlock=True, laser=False)
    assert stats.debounced_levels == stats.raw_levels
    assert (stats.firmware_version, stats.board_id, stats.port) == ("2.0.0", b"SIMBOARD".hex(), link_path)
    sim.laser(True)
    wait_for(lambda: link.stats().debounced_levels.laser, what="STATE with the laser on")
    assert stats.crc_errors == 0 and stats.frames > 0


def test_each_footswitch_edge_arrives_exactly_once_despite_dropped_frames_and_noise(sim, link, events):
    link.start()
    events.wait_for(LinkUp)
    for cycle in range(15):
        sim.drop(2)                       # the edge frame and the next one are corrupted
        sim.press()
        events.wait_for(FootswitchPressed)
        if cycle % 3 == 0:
            sim.noise(40)
        sim.release()
        events.wait_for(FootswitchReleased)
    events.drain(0.2)
    edges = events.edges()
    assert [type(e) for e in edges] == [FootswitchPressed, FootswitchReleased] * 15
    assert [e.edge_number for e in edges] == list(range(30))
    stats = link.stats()
    assert sim.counters["frames_dropped"] == 30
    assert stats.crc_errors + stats.framing_errors >= 30 and stats.resyncs >= 1
    assert stats.edge_duplicates >= 1 or stats.lost_frames >= 1
    assert stats.edges_delivered == 30


def test_link_down_within_500_ms_of_a_stall_then_back_up_by_itself(sim, link, events):
    link.start()
    events.wait_for(LinkUp)
    stall_ns = time.monotonic_ns()
    sim.stall(1200)
    down = events.wait_for(LinkDown)
    silent_ms = (down.at_ns - down.last_frame_ns) / MS
    assert protocol.LINK_SILENCE_MS <= silent_ms <= protocol.LINK_SILENCE_MS + SCHEDULING_MARGIN_MS
    assert down.last_frame_ns <= stall_ns + SCHEDULING_MARGIN_MS * MS
    assert "no frame from the controller" in down.reason
    up = events.wait_for(LinkUp)
    assert up.at_ns >= stall_ns + 1200 * MS
    assert events.edges() == []


def test_reconnects_after_unplug_and_replug_and_delivers_outage_edges_once(sim, link, events):
    link.start()
    events.wait_for(LinkUp)
    sim.unplug()
    down = events.wait_for(LinkDown)
    assert "disconnected" in down.reason
    sim.press()
    wait_for_board_to_sample(sim, lambda: sim.board.pending_edges == 1, what="press queued on the board")
    sim.release()
    wait_for_board_to_sample(sim, lambda: sim.board.pending_edges == 2, what="release queued on the board")
    sim.replug()
    events.wait_for(LinkUp)
    events.wait_for(FootswitchReleased)
    events.drain(0.2)
    assert [type(e) for e in events.edges()] == [FootswitchPressed, FootswitchReleased]
    assert sum(isinstance(e, LinkDown) for e in events.seen) == 1
    assert link.stats().reconnects == 1


def test_permissive_is_held_while_the_host_heartbeats_and_dropped_on_stop(sim, link, events):
    link.start()
    events.wait_for(LinkUp)
    link.set_ready(True)
    wait_for(lambda: sim.permissive, what="permissive energised")
    held_from = time.monotonic_ns()
    events.drain(1.0)
    assert [change for change in sim.output_history if change[0] > held_from] == []
    assert link.stats().permissive is True
    link.set_ready(False)
    wait_for(lambda: not sim.permissive, timeout=1, what="ready withdrawn")
    link.set_ready(True)
    wait_for(lambda: sim.permissive, what="permissive again")
    link.stop()
    wait_for(lambda: not sim.permissive, timeout=1, what="permissive dropped after goodbye")


def test_permissive_opens_within_300_ms_after_host_heartbeats_stop(sim, link_path):
    """A host that sends one ready heartbeat and then nothing (crashed, hung, cable out)."""
    with serial.Serial(link_path, timeout=0.05) as port:
        port.write(protocol.encode_frame(0, protocol.CONNECT, (protocol.PROTOCOL_VERSION,)))
        decoder = protocol.Decoder()
        deadline = time.monotonic() + DEADLINE_S
        while not any(t == protocol.HELLO for _, _, t, _ in decoder.feed(port.read(64))):
            assert time.monotonic() < deadline, "no HELLO"
        port.write(protocol.encode_frame(1, protocol.HEARTBEAT, (1, protocol.FLAG_READY)))
        wait_for(lambda: sim.permissive, what="permissive energised")
        last_heartbeat_ns = sim.last_host_bytes_ns
        wait_for(lambda: not sim.permissive, timeout=2, what="lease expiry")
    dropped_ns = [at for at, name, level in sim.output_history if name == "permissive" and level == 0][-1]
    held_ms = (dropped_ns - last_heartbeat_ns) / MS
    # The board counts whole milliseconds, so the lease can end up to 1 ms short in real time.
    assert protocol.LEASE_MS - 1 <= held_ms <= protocol.LEASE_MS + SCHEDULING_MARGIN_MS


def test_protocol_version_mismatch_is_refused_with_a_clear_message(link_path, link, events):
    with Simulator(link_path, protocol_version=3) as sim:
        link.set_ready(True)
        link.start()
        fault = events.wait_for(ControllerFault)
        assert fault.reason == ("protocol version mismatch: board speaks v3, host speaks v2; "
                                "install matching firmware")
        sim.press()
        events.drain(1.0)
        assert not any(isinstance(e, (LinkUp, InputEdge)) for e in events.seen)
        assert sum(isinstance(e, ControllerFault) for e in events.seen) == 1   # not on every retry
        assert not sim.permissive and sim.output_history == []


def test_a_missing_port_is_reported_once_and_picked_up_when_it_appears(link_path, link, events):
    link.start()
    down = events.wait_for(LinkDown)
    assert down.reason == "controller port %s does not exist (board unplugged?)" % link_path
    events.drain(0.6)
    assert len(events.seen) == 1
    with Simulator(link_path):
        events.wait_for(LinkUp)


def test_a_port_that_dies_while_opening_is_link_down_and_the_link_keeps_trying(link_path, link, events,
                                                                               monkeypatch):
    """The board vanishing between open and the first flush raises termios.error (not an
    OSError) from pyserial; the reader thread must report it and retry, never die."""
    import firmware_bridge.link as link_module
    real_open_port = link_module.open_port

    def open_then_lose_the_board(path):
        master, slave = os.openpty()
        port = serial.Serial(os.ttyname(slave), timeout=0)
        os.close(master)          # the other end is gone: the port's next flush fails with EIO
        os.close(slave)
        monkeypatch.setattr(link_module, "open_port", real_open_port)   # the board comes back
        return port

    monkeypatch.setattr(link_module, "open_port", open_then_lose_the_board)
    link.start()
    down = events.wait_for(LinkDown)
    assert "disconnected" in down.reason
    with Simulator(link_path):
        events.wait_for(LinkUp)


def test_an_unexpected_error_in_the_reader_is_link_down_then_the_link_recovers(sim, link, events, monkeypatch):
    real_receive = HostSession.receive
    failures = []

    def receive_failing_once(self, data, now_ns):
        if not failures:
            failures.append(now_ns)
            raise RuntimeError("decoder bug")
        return real_receive(self, data, now_ns)

    link.start()
    events.wait_for(LinkUp)
    monkeypatch.setattr(HostSession, "receive", receive_failing_once)
    down = events.wait_for(LinkDown)
    assert down.reason == "controller link error: decoder bug"
    events.wait_for(LinkUp)
    sim.press()
    events.wait_for(FootswitchPressed)


def test_a_busy_port_is_named_busy(sim, link_path, link, events):
    with serial.Serial(link_path, exclusive=True):
        link.start()
        down = events.wait_for(LinkDown)
    assert down.reason == "controller port %s is busy: another program has it open" % link_path
    events.wait_for(LinkUp)


def test_a_device_speaking_something_else_is_a_controller_fault_never_a_trigger(tmp_path, link, events,
                                                                                 link_path):
    master, slave = os.openpty()
    os.symlink(os.ttyname(slave), link_path)
    stop = threading.Event()

    def modem():   # answers everything like an AT modem
        while not stop.is_set():
            try:
                os.write(master, b"OK\r\n\x00ERROR\r\n")
            except OSError:
                return
            stop.wait(0.05)

    talker = threading.Thread(target=modem, daemon=True)
    talker.start()
    try:
        link.start()
        fault = events.wait_for(ControllerFault)
        assert "does not speak the treatment controller protocol" in fault.reason
        events.drain(0.5)
        assert not any(isinstance(e, (LinkUp, InputEdge)) for e in events.seen)
    finally:
        stop.set()
        talker.join()
        link.stop()
        os.close(master)
        os.close(slave)


def test_a_failing_event_consumer_does_not_stop_the_link(sim, link_path):
    delivered = []

    def consumer(event):
        delivered.append(event)
        if isinstance(event, FootswitchPressed):
            raise RuntimeError("consumer bug")

    failing = ControllerLink(link_path, on_event=consumer)
    failing.start()
    try:
        wait_for(lambda: any(isinstance(e, LinkUp) for e in delivered), what="link up")
        sim.press()
        wait_for(lambda: any(isinstance(e, FootswitchPressed) for e in delivered), what="press")
        sim.release()
        wait_for(lambda: any(isinstance(e, FootswitchReleased) for e in delivered), what="release")
        assert failing.is_up
    finally:
        failing.stop()
