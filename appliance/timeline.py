"""A clip's treatment timeline: the controller's input edges on the video's own clock.

Pure: no I/O. The signed manifest's metadata carries two keys (docs/vault-format.md):
  "events":   [{"t": seconds from the clip's first frame, "input": "laser" | "footswitch" |
               "interlock", "level": 0 | 1, "edge": the board's edge number}, ...] in time order
  "timeline": {"laser_on_s": total laser-on time within the clip,
               "emissions": [[start_s, end_s], ...] laser on -> off intervals,
               "clock_uncertainty_ms": the board-to-host clock mapping's uncertainty, or null}
Level 1 means laser emitting, footswitch pressed, interlock closed. An event may have t < 0:
the laser-on edge of an emission already under way at the first frame (kept so the clip says
when it began), or a mapped time a hair outside the clip; emissions clamp to the clip.
"""

from __future__ import annotations

from dataclasses import dataclass

INPUTS = ("laser", "footswitch", "interlock")
EVENTS_KEY = "events"
TIMELINE_KEY = "timeline"


@dataclass(frozen=True)
class ClipEvent:
    t: float        # seconds from the clip's first frame
    input: str      # "laser" | "footswitch" | "interlock"
    level: int      # 0 | 1
    edge: int       # the board's edge number (exactly-once, increasing per boot)

    def as_dict(self) -> dict:
        return {"t": round(self.t, 6), "input": self.input, "level": self.level, "edge": self.edge}


def event_from_dict(record: dict) -> ClipEvent:
    """One manifest event record; ValueError when it is not one."""
    try:
        event = ClipEvent(t=float(record["t"]), input=str(record["input"]),
                          level=int(record["level"]), edge=int(record["edge"]))
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"malformed event record {record!r}") from error
    if event.input not in INPUTS or event.level not in (0, 1):
        raise ValueError(f"malformed event record {record!r}")
    return event


def events_from_manifest(manifest_metadata: dict) -> list[ClipEvent]:
    """The events of a signed manifest's metadata, in time order; [] for a clip without any."""
    records = manifest_metadata.get(EVENTS_KEY) or []
    return sorted((event_from_dict(record) for record in records), key=lambda event: (event.t, event.edge))


def emissions(events: list[ClipEvent], clip_duration_s: float) -> list[tuple[float, float]]:
    """Laser on -> off intervals within [0, clip_duration_s].

    A laser still on at the clip's end ends there; one whose first edge in the clip is an off
    edge was already on at the first frame and begins at 0.
    """
    intervals: list[tuple[float, float]] = []
    on_since: float | None = None
    seen_laser_edge = False
    for event in sorted(events, key=lambda event: (event.t, event.edge)):
        if event.input != "laser":
            continue
        at = float(min(max(event.t, 0.0), clip_duration_s))
        if event.level == 1 and on_since is None:
            on_since = at
        elif event.level == 0:
            start = on_since if on_since is not None else (None if seen_laser_edge else 0.0)
            if start is not None:
                intervals.append((start, at))
            on_since = None
        seen_laser_edge = True
    if on_since is not None:
        intervals.append((on_since, max(on_since, clip_duration_s)))
    return intervals


def laser_on_total(events: list[ClipEvent], clip_duration_s: float) -> float:
    """Seconds the laser emitted within the clip."""
    return sum(end - start for start, end in emissions(events, clip_duration_s))


def manifest_metadata(events: list[ClipEvent], clip_duration_s: float,
                      clock_uncertainty_ms: float | None) -> dict:
    """The "events" and "timeline" keys a clip adds to its signed manifest's metadata."""
    ordered = sorted(events, key=lambda event: (event.t, event.edge))
    intervals = emissions(ordered, clip_duration_s)
    return {
        EVENTS_KEY: [event.as_dict() for event in ordered],
        TIMELINE_KEY: {
            "laser_on_s": round(sum(end - start for start, end in intervals), 6),
            "emissions": [[round(start, 6), round(end, 6)] for start, end in intervals],
            "clock_uncertainty_ms": None if clock_uncertainty_ms is None else round(clock_uncertainty_ms, 3),
        },
    }
