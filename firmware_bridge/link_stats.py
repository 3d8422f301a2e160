"""What the controller link has seen so far, as one immutable record (`ControllerLink.stats()`)."""

from __future__ import annotations

from dataclasses import dataclass

from firmware_bridge import protocol


@dataclass(frozen=True)
class InputLevels:
    """One level byte of STATE: bit n is input n of protocol.INPUT_NAMES, 1 = active."""
    footswitch: bool    # pressed
    interlock: bool     # closed
    laser: bool         # emitting

    @classmethod
    def from_bits(cls, bits: int) -> InputLevels:
        return cls(**{name: bool(bits >> bit & 1) for bit, name in enumerate(protocol.INPUT_NAMES)})


@dataclass
class LinkCounters:
    """Counted by the host session over the life of the link, across reconnections."""
    frames: int = 0            # valid frames from the board
    lost_frames: int = 0       # gaps in the board's sequence numbers
    edges_delivered: int = 0
    edge_duplicates: int = 0   # resent edges already delivered (or after a gap)
    reconnects: int = 0
    faults: int = 0            # FAULT frames


@dataclass(frozen=True)
class LinkStats:
    up: bool
    port: str
    firmware_version: str          # "" before the first HELLO
    board_id: str                  # hex; "" before the first HELLO
    frames: int
    lost_frames: int
    edges_delivered: int
    edge_duplicates: int
    reconnects: int
    faults: int
    crc_errors: int
    framing_errors: int
    resyncs: int                   # returns to valid frames after garbage
    round_trip_ms: float | None    # of the last answered heartbeat
    last_frame_ns: int | None
    raw_levels: InputLevels | None          # None before the first STATE
    debounced_levels: InputLevels | None
    permissive: bool | None        # None before the board first reported its outputs
    recording_led: bool | None
