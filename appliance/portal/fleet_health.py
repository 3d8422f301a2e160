"""Fleet health, pure: each treatment room's latest status object, as opened against the enrolled
device keys (appliance/archive/status_object.py), judged for the portal's fleet page and
/api/fleet: ok, or what needs someone, in words (docs/portal.md#fleet-health).

A room is highlighted when its status is older than five minutes by the portal's clock, when a
threshold is crossed (archive backlog waiting, disk time, clock), when the appliance reports a
fault or a part down, and always when its status is forged, from a device not enrolled, or
missing. A forged or unknown status carries no values: what it claims is not a fact.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from appliance.archive.status_object import FORGED, NOT_REPORTING, UNKNOWN_DEVICE, OpenedStatus

STALE_AFTER_S = 5 * 60.0           # the uplink posts every minute: five missed posts
BACKLOG_AGE_LIMIT_S = 60 * 60.0    # archiving takes minutes: an hour of waiting is an outage
DISK_LIMIT_S = 2 * 3600.0          # under two hours of recording left (a session needs one)
CLOCK_LIMIT_S = 60 * 60.0          # retention dates allow an hour of clock difference

OK, STALE, ATTENTION, NO_STATUS = "ok", "stale", "attention", "no status"
# The order of the page: what is worst first.
_RANK = {FORGED: 0, UNKNOWN_DEVICE: 1, NO_STATUS: 2, STALE: 3, ATTENTION: 4, OK: 5}


@dataclass(frozen=True)
class Room:
    device_key_id: str
    name: str | None               # the enrolled key's file name without .pub ("room-3"); None if not enrolled
    health: str                    # OK | STALE | ATTENTION | NO_STATUS | FORGED | UNKNOWN_DEVICE
    problems: tuple[str, ...]      # in words, worst first; empty when OK
    age_s: float | None            # since the status was posted (portal's clock); None without a genuine one
    status: dict | None            # the genuine status's fields; None otherwise

    @property
    def highlighted(self) -> bool:
        return self.health != OK

    def as_json(self) -> dict:
        return {"device": self.device_key_id, "name": self.name, "health": self.health, "highlighted": self.highlighted,
                "problems": list(self.problems), "age_s": self.age_s, "status": self.status}


def judge(device_key_id: str, opened: OpenedStatus | None, now: float, name: str | None = None) -> Room:
    """The room of `device_key_id` (enrolled as `name`) from its opened status (None: no status
    object at all)."""
    if opened is None:
        return Room(device_key_id, name, NO_STATUS,
                    ("no status posted: is its archive uplink running and configured?",), None, None)
    if opened.verdict in (FORGED, UNKNOWN_DEVICE):
        return Room(device_key_id, name, opened.verdict, (opened.problem,), None, None)
    status = opened.status
    age = max(0.0, now - status.posted_at)
    problems = [f"silent for {in_words(age)}: these values are from then"] if age > STALE_AFTER_S else []
    problems += _problems(status)
    health = STALE if age > STALE_AFTER_S else ATTENTION if problems else OK
    return Room(device_key_id, name, health, tuple(problems), round(age, 1), asdict(status))


def _problems(status) -> list[str]:
    problems = []
    if status.state == NOT_REPORTING:
        problems.append("the recording software is not running (the uplink is)")
    elif status.state == "Error":
        problems.append(f"in Error: {status.fault or 'fault'}")
    if status.camera_up is False:
        problems.append("camera down")
    if status.link_up is False:
        problems.append("treatment controller link down")
    if status.disk_seconds_left is not None and status.disk_seconds_left < DISK_LIMIT_S:
        problems.append(f"disk: {in_words(status.disk_seconds_left)} of recording left")
    if status.backlog_oldest_age_s is not None and status.backlog_oldest_age_s > BACKLOG_AGE_LIMIT_S:
        count = "1 recording" if status.backlog_count == 1 else f"{status.backlog_count} recordings"
        problems.append(f"archive backlog: {count} ({status.backlog_bytes / 1e9:.2f} GB), the oldest waiting "
                        f"{in_words(status.backlog_oldest_age_s)}")
    if status.clock_offset_s is not None and abs(status.clock_offset_s) > CLOCK_LIMIT_S:
        direction = "ahead of" if status.clock_offset_s > 0 else "behind"
        problems.append(f"clock {in_words(abs(status.clock_offset_s))} {direction} the archive's")
    return problems


def in_words(seconds: float) -> str:
    """A duration as a person reads it: seconds under a minute, minutes under two hours, then
    hours under two days, then days."""
    if seconds < 60:
        return f"{int(seconds)} s"
    if seconds < 2 * 3600:
        return f"{int(seconds // 60)} min"
    if seconds < 48 * 3600:
        return f"{int(seconds // 3600)} h"
    return f"{int(seconds // 86400)} days"


def board(rooms: list[Room]) -> list[Room]:
    """The rooms in page order: worst first, then by name and device id."""
    return sorted(rooms, key=lambda room: (_RANK[room.health], room.name or "", room.device_key_id))
