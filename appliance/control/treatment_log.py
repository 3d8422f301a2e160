"""The treatment timeline as the controller sees it: every input edge on the host's clock,
which clip each laser emission landed in, and the emissions no clip recorded.

The event thread feeds it the link's edges (`edge`), the clips' coverage once finalized
(`clip_covered`) and the clock (`overdue`). A laser-on edge is *recorded* when its time lies
between a clip's first and last frame. In Idle and Error nothing can record it, so it is
unrecorded at once; in Armed, Recording and while sealing it waits, because a press within the
pre-roll puts it in the next clip, and a clip's coverage is known only when it is finalized.
One still waiting after the pre-roll (and a grace for the edge's latency) with no clip open,
or before the first frame of the clip that followed, is unrecorded. Each unrecorded emission
is audited as `emission_unrecorded` with its board time.

`clip_metadata` is called from the sealing worker (recorder.stop_clip), hence the lock.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field

from appliance import timeline
from appliance.control.commands import Edge

KEPT_EDGES = 20_000          # a long clip of a fast pulsing laser still fits
GRACE_NS = 1_000_000_000     # an edge reaches the host within this after it happened
IMMEDIATE = ("Idle", "Error")


@dataclass
class Emission:
    edge: Edge
    state: str                 # the machine's state when the edge arrived
    session_uid: str | None


@dataclass
class SessionEmissions:
    recorded: int = 0
    unrecorded_board_ms: list[int] = field(default_factory=list)


class TreatmentLog:
    def __init__(self, database, pre_roll_s: float):
        self._database = database
        self._wait_ns = int(pre_roll_s * 1e9) + GRACE_NS
        self._lock = threading.Lock()
        self._edges: deque[Edge] = deque(maxlen=KEPT_EDGES)
        self._waiting: list[Emission] = []
        self._sessions: dict[str, SessionEmissions] = {}
        self.unrecorded_total = 0
        self.last_unrecorded_board_ms: int | None = None

    # -- the event thread ---------------------------------------------------------------------

    def edge(self, edge: Edge | None, state: str, session_uid: str | None) -> None:
        if edge is None:
            return
        with self._lock:
            self._edges.append(edge)
        if session_uid is not None:
            self._sessions.setdefault(session_uid, SessionEmissions())
        if edge.input == "laser" and edge.level == 1:
            emission = Emission(edge, state, session_uid)
            if state in IMMEDIATE:
                self._unrecorded(emission)
            else:
                self._waiting.append(emission)

    def clip_covered(self, first_ns: int | None, last_ns: int | None) -> None:
        """A clip was finalized with frames from first_ns to last_ns (capture times)."""
        if first_ns is None or last_ns is None:
            return
        still_waiting = []
        for emission in self._waiting:
            if first_ns <= emission.edge.host_ns <= last_ns:
                self._session(emission).recorded += 1
            elif emission.edge.host_ns < first_ns:
                self._unrecorded(emission)
            else:
                still_waiting.append(emission)
        self._waiting = still_waiting

    def overdue(self, now_ns: int, clip_open: bool) -> None:
        """Emissions no clip can still take: pre-roll and grace passed, and no clip open."""
        if clip_open:
            return
        still_waiting = []
        for emission in self._waiting:
            if now_ns - emission.edge.host_ns > self._wait_ns:
                self._unrecorded(emission)
            else:
                still_waiting.append(emission)
        self._waiting = still_waiting

    def session_counts(self, session_uid: str) -> tuple[int, tuple[int, ...]]:
        """(emissions recorded, board times of those not recorded) of a session so far."""
        counts = self._sessions.get(session_uid, SessionEmissions())
        return counts.recorded, tuple(counts.unrecorded_board_ms)

    def close_session(self, session_uid: str) -> tuple[int, tuple[int, ...]]:
        """The session ends: what still waits can no longer be recorded; its final counts."""
        for emission in [emission for emission in self._waiting if emission.session_uid == session_uid]:
            self._waiting.remove(emission)
            self._unrecorded(emission)
        counts = self.session_counts(session_uid)
        self._sessions.pop(session_uid, None)
        return counts

    def _session(self, emission: Emission) -> SessionEmissions:
        return self._sessions.setdefault(emission.session_uid, SessionEmissions()) \
            if emission.session_uid is not None else SessionEmissions()

    def _unrecorded(self, emission: Emission) -> None:
        edge = emission.edge
        self.unrecorded_total += 1
        self.last_unrecorded_board_ms = edge.board_ms
        self._session(emission).unrecorded_board_ms.append(edge.board_ms)
        details = {"board_ms": edge.board_ms, "edge": edge.edge, "state": emission.state}
        if emission.session_uid is not None:
            details["session"] = emission.session_uid
        self._database.audit("emission_unrecorded", **details)

    # -- any thread ----------------------------------------------------------------------------

    def clip_metadata(self, first_ns: int | None, duration_s: float) -> dict:
        """The clip's "events" and "timeline" manifest keys (appliance/timeline.py): its edges
        from the first frame to its end, and a laser already on at the first frame."""
        if first_ns is None:
            return {}
        end_ns = first_ns + int(duration_s * 1e9)
        with self._lock:
            edges = list(self._edges)
        inside = [edge for edge in edges if first_ns <= edge.host_ns <= end_ns]
        laser_before = [edge for edge in edges if edge.input == "laser" and edge.host_ns < first_ns]
        if laser_before and laser_before[-1].level == 1:
            inside.insert(0, laser_before[-1])
        events = [timeline.ClipEvent((edge.host_ns - first_ns) / 1e9, edge.input, edge.level, edge.edge)
                  for edge in inside]
        known = [edge.uncertainty_ms for edge in inside]
        uncertainty = None if not known or None in known else max(known)
        return timeline.manifest_metadata(events, duration_s, uncertainty)
