"""What the controller's event thread is asked to do, and how part events become such commands.

Everything that reaches the event thread is one of these frozen records, posted to its queue:
the public verbs (the UI waits for their answer), the clock's wake-ups, the events of the
controller link, the recorder and the sealing workers. The controller handles them through one
table keyed by these types; the parts' events are translated here by their type, never by name.
`check_tables` is the start-up check that every command and every effect the machine names
(appliance/machine.py) has its handler.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from appliance import machine
from appliance.faults import FaultKind
from appliance.recording import recorder
from firmware_bridge import link


# -- public verbs and the controller's own ---------------------------------------------------

@dataclass(frozen=True)
class Refresh:
    """Drive the outputs from the current state (after start-up)."""


@dataclass(frozen=True)
class Wake:
    """Nothing to do: only ends the event loop's queue wait when it is stopping."""


@dataclass(frozen=True)
class BeginSession:
    subject_id: str
    operator_id: str
    entry: object = None      # the worklist.entries.WorklistEntry picked, or None for typed IDs


@dataclass(frozen=True)
class EndSession:
    pass


@dataclass(frozen=True)
class Acknowledge:
    pass


@dataclass(frozen=True)
class Shutdown:
    pass


# -- the controller link and the camera/recorder ---------------------------------------------

@dataclass(frozen=True)
class Edge:
    """An input edge as the treatment timeline keeps it (appliance/control/treatment_log.py)."""
    input: str                 # "laser" | "footswitch" | "interlock"
    level: int                 # 1: emitting / pressed / closed
    edge: int                  # the board's edge number
    board_ms: int
    host_ns: int               # board_ms on the host's monotonic clock, or when decoded if unmapped
    uncertainty_ms: float | None


@dataclass(frozen=True)
class Footswitch:
    pressed: bool
    at_ns: int
    edge: Edge | None = None


@dataclass(frozen=True)
class Interlock:
    closed: bool
    edge: Edge | None = None


@dataclass(frozen=True)
class Laser:
    on: bool
    edge: Edge | None = None


@dataclass(frozen=True)
class LinkUp:
    firmware_version: str


@dataclass(frozen=True)
class LinkDown:
    reason: str


@dataclass(frozen=True)
class BoardFault:
    """The board reported a fault: audited and logged; the board keeps the laser safe itself."""
    reason: str


@dataclass(frozen=True)
class CameraLost:
    reason: str


@dataclass(frozen=True)
class EncoderFailed:
    reason: str


# -- the sealing workers and failed effects --------------------------------------------------

@dataclass(frozen=True)
class RaiseFault:
    kind: FaultKind
    reason: str


@dataclass(frozen=True)
class Finalized:
    result: object            # recording.ClipResult


@dataclass(frozen=True)
class Sealed:
    recording: object         # storage.database.Recording


@dataclass(frozen=True)
class SealFailed:
    kind: FaultKind
    reason: str


@dataclass(frozen=True)
class ClipSalvaged:
    recording: object


# While shutting down, only these are still handled: they finish the clip being sealed.
SEALING = (Finalized, Sealed, SealFailed, ClipSalvaged, RaiseFault)

ALL = (Refresh, Wake, BeginSession, EndSession, Acknowledge, Shutdown, Footswitch, Interlock, Laser,
       LinkUp, LinkDown, BoardFault, CameraLost, EncoderFailed, *SEALING)


def edge_of(event, input_name: str, level: int) -> Edge:
    host_ns = event.host_ns if event.host_ns is not None else event.at_ns
    return Edge(input_name, level, event.edge_number, event.board_ms, host_ns, event.uncertainty_ms)


LINK_EVENTS: dict[type, Callable[[object], object]] = {
    link.FootswitchPressed: lambda event: Footswitch(True, event.at_ns, edge_of(event, "footswitch", 1)),
    link.FootswitchReleased: lambda event: Footswitch(False, event.at_ns, edge_of(event, "footswitch", 0)),
    link.InterlockClosed: lambda event: Interlock(closed=True, edge=edge_of(event, "interlock", 1)),
    link.InterlockOpened: lambda event: Interlock(closed=False, edge=edge_of(event, "interlock", 0)),
    link.LaserOn: lambda event: Laser(on=True, edge=edge_of(event, "laser", 1)),
    link.LaserOff: lambda event: Laser(on=False, edge=edge_of(event, "laser", 0)),
    link.LinkUp: lambda event: LinkUp(firmware_version=str(event.firmware_version)),
    link.LinkDown: lambda event: LinkDown(reason=event.reason),
    link.ControllerFault: lambda event: BoardFault(reason=event.reason),
}

RECORDER_EVENTS: dict[type, Callable[[object], object]] = {
    recorder.CameraLost: lambda event: CameraLost(reason=event.reason),
    recorder.ClipFault: lambda event: EncoderFailed(reason=event.reason),
}


def translate(event, table: dict[type, Callable[[object], object]]):
    """The command for a part's event; KeyError for an event the table does not know (a bug)."""
    return table[type(event)](event)


def machine_effects() -> set[str]:
    """Every effect the machine can request (machine.EFFECTS, checked against its transitions
    by tests/test_machine.py)."""
    return set(machine.EFFECTS)


def check_tables(handlers: dict, effects: dict) -> None:
    """Refuses to start with a command or an effect that nothing would carry out."""
    unhandled = [command.__name__ for command in ALL if command not in handlers]
    missing = sorted(machine_effects() - set(effects))
    if unhandled or missing:
        raise RuntimeError(f"the controller has no handler for commands {unhandled} or effects {missing}")
