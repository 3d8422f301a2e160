"""Fleet health, pure: each treatment room's latest status object, as opened against the enrolled
device keys (appliance/archive/status_object.py), judged for the portal's fleet page and
/api/fleet: ok, or what needs someone, in words (docs/portal.md#fleet-health).

A room is highlighted when its status is older than five minutes by the portal's clock, when a
threshold is crossed (archive backlog waiting, growing, or large; disk time; clock; a posting
time in the future), when the appliance reports a fault or a part down, and always when its
status is forged, from a device not enrolled, or missing. A forged or unknown status carries no
values: what it claims is not a fact.

The age is the larger of two: since the signed `posted_at` (the appliance's clock) and since the
archive stored the object (its LastModified, the archive's clock). The second keeps a dead
appliance with a fast clock from looking fresh; the first keeps a replayed old status old.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from appliance.archive.status_object import FORGED, NOT_REPORTING, UNKNOWN_DEVICE, OpenedStatus

STALE_AFTER_S = 5 * 60.0           # the uplink posts every minute: five missed posts
BACKLOG_AGE_LIMIT_S = 60 * 60.0    # archiving takes minutes: an hour of waiting is an outage
DISK_LIMIT_S = 2 * 3600.0          # under two hours of recording left (a session needs one)
CLOCK_LIMIT_S = 60 * 60.0          # retention dates allow an hour of clock difference
# Archiving that moves but does not keep up never lets the oldest wait an hour: the pile says it.
BACKLOG_COUNT_LIMIT = 10           # more than a busy morning's recordings
BACKLOG_BYTES_LIMIT = 10_000_000_000  # about 3 h of video at the recorder's 8 Mbit/s estimate
FUTURE_LIMIT_S = 60.0              # posted further ahead of the portal's clock: a clock is wrong

OK, STALE, ATTENTION, NO_STATUS = "ok", "stale", "attention", "no status"
# The order of the page: what is worst first.
_RANK = {FORGED: 0, UNKNOWN_DEVICE: 1, NO_STATUS: 2, STALE: 3, ATTENTION: 4, OK: 5}


@dataclass(frozen=True)
class Room:
    device_key_id: str
    name: str | None               # the enrolled key's file name without .pub ("room-3"); None if not enrolled
    health: str                    # OK | STALE | ATTENTION | NO_STATUS | FORGED | UNKNOWN_DEVICE
    problems: tuple[str, ...]      # in words, worst first; empty when OK
    age_s: float | None            # since posted or stored, the longer (portal's clock); None without a genuine one
    status: dict | None            # the genuine status's fields; None otherwise

    @property
    def highlighted(self) -> bool:
        return self.health != OK

    def as_json(self) -> dict:
        return {"device": self.device_key_id, "name": self.name, "health": self.health, "highlighted": self.highlighted,
                "problems": list(self.problems), "age_s": self.age_s, "status": self.status}


def judge(device_key_id: str, opened: OpenedStatus | None, now: float, name: str | None = None,
          stored_at: float | None = None) -> Room:
    """The room of `device_key_id` (enrolled as `name`) from its opened status (None: no status
    object at all), stored by the archive at `stored_at` (its LastModified; None: not known)."""
    if opened is None:
        return Room(device_key_id, name, NO_STATUS,
                    ("no status posted: is its archive uplink running and configured?",), None, None)
    if opened.verdict in (FORGED, UNKNOWN_DEVICE):
        return Room(device_key_id, name, opened.verdict, (opened.problem,), None, None)
    status = opened.status
    age = max(0.0, now - status.posted_at, 0.0 if stored_at is None else now - stored_at)
    problems = [f"silent for {in_words(age)}: these values are from then"] if age > STALE_AFTER_S else []
    if status.posted_at - now > FUTURE_LIMIT_S:
        problems.append(f"posted {in_words(status.posted_at - now)} in the future by the portal's clock: "
                        f"a clock is wrong")
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
    backlog = _backlog_problem(status)
    if backlog:
        problems.append(backlog)
    if status.clock_offset_s is not None and abs(status.clock_offset_s) > CLOCK_LIMIT_S:
        direction = "ahead of" if status.clock_offset_s > 0 else "behind"
        problems.append(f"clock {in_words(abs(status.clock_offset_s))} {direction} the archive's")
    return problems


def _backlog_problem(status) -> str | None:
    """The backlog in words when the oldest waits too long or the pile is too big, else None."""
    waiting_long = (status.backlog_oldest_age_s or 0.0) > BACKLOG_AGE_LIMIT_S
    too_many = [f"{BACKLOG_COUNT_LIMIT} recordings"] if status.backlog_count > BACKLOG_COUNT_LIMIT else []
    too_many += [f"{BACKLOG_BYTES_LIMIT / 1e9:.0f} GB"] if status.backlog_bytes > BACKLOG_BYTES_LIMIT else []
    if not (waiting_long or too_many):
        return None
    count = "1 recording" if status.backlog_count == 1 else f"{status.backlog_count} recordings"
    line = (f"archive backlog: {count} ({status.backlog_bytes / 1e9:.2f} GB), the oldest waiting "
            f"{in_words(status.backlog_oldest_age_s or 0.0)}")
    return line + (f": more than {' and '.join(too_many)} waiting" if too_many else "")


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
