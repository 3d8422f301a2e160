"""The live snapshot: how the recording process (kiosk or headless) tells the archive uplink its
state. That process has no network and the uplink is another process, so the controller's
SnapshotWriter keeps a small file under the data directory current (atomic, 0600, no PHI: a
state, two flags, the disk time, a fault kind, a version) and the uplink reads it
(appliance/archive/uplink.py). A missing or old file means the recording software is not
running, or hangs: the uplink then reports "not reporting" (docs/fleet-status.md).

Rewritten soon after the state, camera, link or fault changes (a burst is one write), and every
HEARTBEAT_S anyway, so its age alone says whether the writer still runs. Written on its own
thread: the controller's event thread only sets a flag.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from appliance import __version__
from appliance.atomic import write_atomically
from appliance.faults import FaultKind
from appliance.status import ApplianceStatus
from appliance.storage.database import make_private_dir

log = logging.getLogger("appliance.controller")

SNAPSHOT_PATH = Path("run") / "live-status.json"   # under the data directory
HEARTBEAT_S = 15.0      # rewritten at least this often
MIN_SPACING_S = 2.0     # between two writes: Recording publishes four times a second
FRESH_S = 60.0          # an older snapshot: its writer stopped or hangs


@dataclass(frozen=True)
class LiveSnapshot:
    written_at: float              # the appliance's clock
    state: str                     # the controller's state
    camera_up: bool
    link_up: bool
    disk_seconds_left: float | None
    fault: str | None              # the active fault's kind
    software_version: str


def snapshot_of(status: ApplianceStatus, now: float, version: str = __version__) -> LiveSnapshot:
    fault = None if status.fault is None else FaultKind(status.fault.kind).value
    camera_up = status.camera is not None and fault != FaultKind.CAMERA_LOST.value
    seconds = status.storage_seconds_left
    return LiveSnapshot(round(now, 3), status.state, camera_up, status.link.up,
                        None if seconds is None else round(seconds, 1), fault, version)


def encode(snapshot: LiveSnapshot) -> bytes:
    return json.dumps(asdict(snapshot), sort_keys=True).encode() + b"\n"


def read_fresh(path: Path, now: float) -> LiveSnapshot | None:
    """The snapshot at `path` when it is readable and at most FRESH_S old (by `now`), else None."""
    try:
        snapshot = LiveSnapshot(**json.loads(path.read_bytes()))
    except (OSError, ValueError, TypeError):
        return None
    if not all(_typed(getattr(snapshot, name), types) for name, types in _TYPES.items()):
        return None
    return snapshot if abs(now - snapshot.written_at) <= FRESH_S else None


_TYPES = {"written_at": (int, float), "state": (str,), "camera_up": (bool,), "link_up": (bool,),
          "disk_seconds_left": (int, float, type(None)), "fault": (str, type(None)), "software_version": (str,)}


def _typed(value, types: tuple) -> bool:
    return isinstance(value, types) and (bool in types or not isinstance(value, bool))


def _what_matters(status: ApplianceStatus) -> tuple:
    """What makes a prompt rewrite worth it; the disk time changes slowly and waits for the heartbeat."""
    return status.state, status.camera is None, status.link.up, status.fault


class SnapshotWriter:
    """Keeps `path` current with `status()` from start() to stop(); stop() removes it, so the
    uplink says "not reporting" at once instead of after FRESH_S."""

    def __init__(self, path: Path, status: Callable[[], ApplianceStatus], *, clock: Callable[[], float] = time.time,
                 heartbeat_s: float = HEARTBEAT_S, min_spacing_s: float = MIN_SPACING_S):
        self.path, self._status, self._clock = Path(path), status, clock
        self._heartbeat_s, self._min_spacing_s = heartbeat_s, min_spacing_s
        self._changed, self._stop = threading.Event(), threading.Event()
        self._last: tuple | None = None
        self._failing = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        make_private_dir(self.path.parent)
        self._thread = threading.Thread(target=self._run, name="live-snapshot", daemon=True)
        self._thread.start()

    def changed(self, status: ApplianceStatus) -> None:
        """A StatusPublisher subscriber: quick, it only wakes the writer on a change that matters."""
        if _what_matters(status) != self._last:
            self._last = _what_matters(status)
            self._changed.set()

    def stop(self) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._changed.set()
        self._thread.join(10)
        self._thread = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._write()
            self._changed.wait(self._heartbeat_s)
            self._changed.clear()
            self._stop.wait(self._min_spacing_s)

    def _write(self) -> None:
        try:
            write_atomically(self.path, encode(snapshot_of(self._status(), self._clock())), overwrite=True)
        except Exception as error:   # a full disk must not end the heartbeat: it retries, said once
            if not self._failing:
                log.warning("cannot write the live snapshot %s for the archive uplink: %s", self.path, error)
            self._failing = True
        else:
            self._failing = False
