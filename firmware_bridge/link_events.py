"""The typed events the controller link delivers (docs/controller-protocol.md, section 8)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from firmware_bridge import protocol


@dataclass(frozen=True)
class InputEdge:
    at_ns: int          # host monotonic time the edge was decoded
    edge_number: int
    board_ms: int       # board uptime at the debounced edge
    # board_ms on the host's monotonic clock (firmware_bridge/clock_sync.py), with the mapping's
    # uncertainty; None before the first heartbeat round trip of this board boot.
    host_ns: int | None = None
    uncertainty_ms: float | None = None


class FootswitchPressed(InputEdge): pass
class FootswitchReleased(InputEdge): pass
class InterlockClosed(InputEdge): pass
class InterlockOpened(InputEdge): pass
class LaserOn(InputEdge): pass
class LaserOff(InputEdge): pass


# (input, level) -> event class
EDGE_EVENTS = {
    (protocol.FOOTSWITCH, 1): FootswitchPressed, (protocol.FOOTSWITCH, 0): FootswitchReleased,
    (protocol.INTERLOCK, 1): InterlockClosed, (protocol.INTERLOCK, 0): InterlockOpened,
    (protocol.LASER, 1): LaserOn, (protocol.LASER, 0): LaserOff,
}


@dataclass(frozen=True)
class LinkUp:
    at_ns: int
    firmware_version: str
    board_id: str       # hex
    protocol_version: int


@dataclass(frozen=True)
class LinkDown:
    at_ns: int
    reason: str
    last_frame_ns: int | None = None   # when the last valid frame arrived, if any


@dataclass(frozen=True)
class ControllerFault:
    at_ns: int
    reason: str
    code: int | None = None            # FAULT code when the board reported it


def event_as_dict(event) -> dict:
    return {"event": type(event).__name__, **dataclasses.asdict(event)}
