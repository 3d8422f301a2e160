"""The host session alone, driven with wire bytes and a fake clock: no thread, no port, no board.

The frames are the ones a board sends (protocol.encode_frame); what the session sends back is
decoded and read by field name. Times are exact, so the spec's figures are asserted to the
nanosecond.
"""

from __future__ import annotations

from firmware_bridge import protocol
from firmware_bridge.host_session import HostSession
from firmware_bridge.link_events import (ControllerFault, FootswitchPressed, FootswitchReleased, LaserOn, LinkDown,
                                         LinkUp)
from firmware_bridge.link_stats import InputLevels

MS = 1_000_000
BOARD_ID = b"TESTBORD"


def hello(boot_id=1, first_unacked_edge=0, version=protocol.PROTOCOL_VERSION, seq=0):
    fields = (version, 1, 2, 3, BOARD_ID, boot_id, 1234, first_unacked_edge, protocol.RESET_POWER_ON)
    return protocol.encode_frame(seq, protocol.HELLO, fields, version)


def edge(number, input_index=protocol.FOOTSWITCH, level=1, board_ms=0, seq=1):
    return protocol.encode_frame(seq, protocol.EDGE, (number, input_index, level, board_ms))


def sent(session):
    """What the session wants written, as (message name, {field: value}) in order."""
    decoder = protocol.Decoder()
    return [(protocol.LAYOUTS[msg_type][0], protocol.unpack_named(msg_type, payload))
            for _, _, msg_type, payload in decoder.feed(session.take_outgoing())]


def up_session(at_ns=0, **hello_fields):
    session = HostSession("/dev/test")
    session.connection_opened(at_ns)
    session.receive(hello(**hello_fields), at_ns)
    session.take_outgoing()
    return session


def test_handshake_sends_connect_and_a_hello_brings_the_link_up_with_a_heartbeat():
    session = HostSession("/dev/test")
    session.connection_opened(0)
    assert sent(session) == [("CONNECT", {"protocol_version": protocol.PROTOCOL_VERSION})]
    events = session.receive(hello(), 3 * MS)
    assert events == [LinkUp(3 * MS, "1.2.3", BOARD_ID.hex(), protocol.PROTOCOL_VERSION)]
    assert sent(session) == [("HEARTBEAT", {"token": 1, "flags": 0})]
    assert session.stats().up and session.stats().firmware_version == "1.2.3"


def test_connect_is_retried_every_250_ms_until_a_hello_arrives():
    session = HostSession("/dev/test")
    session.connection_opened(0)
    session.take_outgoing()
    assert session.tick((protocol.CONNECT_RETRY_MS - 1) * MS) == [] and sent(session) == []
    assert session.next_deadline_ns() == protocol.CONNECT_RETRY_MS * MS
    session.tick(protocol.CONNECT_RETRY_MS * MS)
    assert [name for name, _ in sent(session)] == ["CONNECT"]


def test_a_board_speaking_another_version_is_refused_once_and_never_heard():
    session = HostSession("/dev/test")
    session.connection_opened(0)
    [fault] = session.receive(hello(version=3), MS)
    assert isinstance(fault, ControllerFault) and fault.reason == (
        "protocol version mismatch: board speaks v3, host speaks v2; install matching firmware")
    assert session.state == "refused"
    session.take_outgoing()
    assert session.receive(edge(0), 2 * MS) == []
    assert sent(session) == []                     # no ACK, no heartbeat: the board stays unarmed
    session.connection_opened(3 * MS)              # the shell asks again later
    assert session.receive(hello(version=3), 4 * MS) == []   # same refusal: not news
    assert not session.stats().up


def test_each_edge_is_delivered_once_in_order_whatever_is_resent_or_skipped():
    session = up_session()
    assert session.receive(edge(0, level=1, board_ms=10), 10 * MS) == [FootswitchPressed(10 * MS, 0, 10)]
    assert sent(session) == [("ACK", {"edge_number": 0})]
    assert session.receive(edge(0, level=1, board_ms=10), 50 * MS) == []     # the resend of edge 0
    assert session.receive(edge(2, protocol.LASER, 1, board_ms=60), 60 * MS) == []   # after a gap
    assert sent(session) == [("ACK", {"edge_number": 0}), ("ACK", {"edge_number": 0})]
    both = session.receive(edge(1, level=0, board_ms=55) + edge(2, protocol.LASER, 1, board_ms=60), 90 * MS)
    assert both == [FootswitchReleased(90 * MS, 1, 55), LaserOn(90 * MS, 2, 60)]
    assert sent(session) == [("ACK", {"edge_number": 1}), ("ACK", {"edge_number": 2})]
    stats = session.stats()
    assert (stats.edges_delivered, stats.edge_duplicates) == (3, 2)


def test_after_a_reconnect_the_same_boot_continues_and_a_new_boot_starts_from_its_hello():
    session = up_session(boot_id=1)
    session.receive(edge(0), MS)
    session.connection_lost("cable out", 2 * MS)
    session.connection_opened(3 * MS)
    session.receive(hello(boot_id=1, first_unacked_edge=0), 4 * MS)
    assert session.receive(edge(0), 5 * MS) == []                        # already delivered
    assert session.receive(edge(1, level=0), 6 * MS) == [FootswitchReleased(6 * MS, 1, 0)]
    session.connection_lost("board reset", 7 * MS)
    session.connection_opened(8 * MS)
    session.receive(hello(boot_id=2, first_unacked_edge=0), 9 * MS)
    assert session.receive(edge(0), 10 * MS) == [FootswitchPressed(10 * MS, 0, 0)]
    assert session.stats().reconnects == 2


def test_the_link_goes_down_after_exactly_500_ms_without_a_valid_frame():
    session = up_session()
    state = protocol.encode_frame(1, protocol.STATE, (100, 0b010, 0b010, 0, 0, 0))
    session.receive(state, 200 * MS)
    session.receive(b"\x01\x02garbage\x00", 300 * MS)             # not a frame: does not count
    silence_ends = (200 + protocol.LINK_SILENCE_MS) * MS
    assert session.tick(silence_ends - 1) == []
    assert session.tick(silence_ends) == [
        LinkDown(silence_ends, "no frame from the controller for 500 ms", 200 * MS)]
    assert session.tick(silence_ends + MS) == [] and not session.stats().up


def test_link_down_is_reported_once_per_outage():
    session = up_session()
    assert len(session.connection_lost("controller port /dev/test disconnected", MS)) == 1
    assert session.port_failed("controller port /dev/test does not exist (board unplugged?)", 2 * MS) == []
    session.connection_opened(3 * MS)
    session.receive(hello(), 4 * MS)
    [down] = session.port_failed("controller link error: bug", 5 * MS)
    assert down.last_frame_ns == 4 * MS


def test_heartbeats_go_out_every_100_ms_and_a_changed_flag_at_once():
    session = up_session()
    schedule = []
    for ms in range(1, 351):
        if ms % 50 == 0:   # the board answers now and then, so the link stays up
            session.receive(protocol.encode_frame(ms, protocol.HEARTBEAT_REPLY, (1, 0, ms)), ms * MS)
        if ms == 250:
            session.set_ready(True)
        session.tick(ms * MS)
        schedule += [(ms, fields["token"], fields["flags"]) for _, fields in sent(session)]
    assert schedule == [(100, 2, 0), (200, 3, 0), (250, 4, protocol.FLAG_READY), (350, 5, protocol.FLAG_READY)]
    assert session.next_deadline_ns() == 450 * MS
    session.set_recording_led(True)
    assert session.next_deadline_ns() == 0     # the shell wakes at once to send it
    session.goodbye(351 * MS)
    assert sent(session) == [("HEARTBEAT", {"token": 6, "flags": 0})]   # ready and LED withdrawn


def test_a_heartbeat_reply_gives_the_round_trip_and_state_the_levels_by_name():
    session = up_session(at_ns=0)
    session.receive(protocol.encode_frame(1, protocol.HEARTBEAT_REPLY, (1, protocol.OUTPUT_PERMISSIVE, 1)), 2 * MS)
    levels = 1 << protocol.INTERLOCK | 1 << protocol.LASER
    session.receive(protocol.encode_frame(2, protocol.STATE, (100, levels, 1 << protocol.INTERLOCK,
                                                              protocol.OUTPUT_LED, 0, 0)), 3 * MS)
    stats = session.stats()
    assert stats.round_trip_ms == 2.0
    assert stats.raw_levels == InputLevels(footswitch=False, interlock=True, laser=True)
    assert stats.debounced_levels == InputLevels(footswitch=False, interlock=True, laser=False)
    assert (stats.permissive, stats.recording_led) == (False, True)   # the latest outputs: STATE's
    assert (stats.frames, stats.lost_frames) == (3, 0)


def test_a_board_fault_is_a_controller_fault_with_its_code_every_time():
    session = up_session()
    overflow = protocol.encode_frame(1, protocol.FAULT, (protocol.FAULT_EDGE_QUEUE_OVERFLOW, 3))
    [first] = session.receive(overflow, MS)
    assert first == ControllerFault(MS, "controller fault 4: board edge queue overflowed: input edges were lost "
                                        "(detail 3)", protocol.FAULT_EDGE_QUEUE_OVERFLOW)
    assert len(session.receive(protocol.encode_frame(2, protocol.FAULT, (4, 3)), 2 * MS)) == 1
    assert session.stats().faults == 2
