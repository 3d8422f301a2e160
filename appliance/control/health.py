"""Health and readiness: can a session arm now, what would refuse it, has a fault cleared.

Measured from the parts (camera, link, disk, keys) by the event thread; the machine only judges
the resulting Readiness. `disk_projection` is the one place free disk becomes recording time,
for the controller and for `appliance doctor` alike.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from appliance.config import Settings
from appliance.control.keys import KeyRing
from appliance.faults import FaultKind
from appliance.machine import Readiness
from appliance.status import Fault
from appliance.storage import disk_guard

CAMERA_STALE_S = 3.0   # no new frame for this long while a session runs: the camera is not delivering


def disk_projection(settings: Settings, bitrate_bps: float | None = None,
                    free_bytes: Callable[[Path], int] = disk_guard.free_bytes) -> disk_guard.DiskProjection:
    """Free disk above the reserve as recording time at `bitrate_bps` (the configured estimate
    when not measured yet). Before the first start the data directory may not exist: its
    parent's filesystem is the one it will be on."""
    storage = settings.storage
    directory = settings.data.dir if settings.data.dir.exists() else settings.data.dir.absolute().parent
    return disk_guard.project(
        free_bytes=free_bytes(directory), bitrate_bps=bitrate_bps or settings.recording.bitrate_estimate_bps,
        reserve_bytes=storage.reserve_mb * 1_000_000, max_session_s=storage.max_session_minutes * 60,
        warn_s=storage.warn_minutes * 60)


class Health:
    """What the event thread knows about the parts' health, and the judgements built on it."""

    def __init__(self, settings: Settings, parts, keys: KeyRing, *,
                 clock: Callable[[], float] = time.monotonic,
                 free_bytes: Callable[[Path], int] = disk_guard.free_bytes):
        self._settings = settings
        self._parts = parts
        self._keys = keys
        self._clock = clock
        self._free_bytes = free_bytes
        self.link_up = False
        self.camera_lost: str | None = None   # the reason, from the moment a loss is reported
        self.recovery_done = False
        self.disk: disk_guard.DiskProjection | None = None   # the latest measurement
        self._progress = (-1, 0.0)            # (frames seen, when that count last changed)

    def camera_started(self) -> None:
        """A session started the camera: it gets CAMERA_STALE_S to deliver its first frame."""
        self._progress = (-1, self._clock())

    def camera_problem(self) -> str | None:
        """What keeps the camera from recording, or None. Outside a session the camera is off, so
        only a known loss counts; with a session, frames must keep arriving."""
        if self.camera_lost is not None:
            return f"the camera is not delivering frames ({self.camera_lost})"
        if self._parts.camera is None:
            return "the camera could not be opened"
        seen = self._parts.frames_seen()
        if seen is None:
            return None
        now = self._clock()
        if seen != self._progress[0]:
            self._progress = (seen, now)
        if now - self._progress[1] > CAMERA_STALE_S:
            return f"the camera has delivered no frame for {CAMERA_STALE_S:.0f} s"
        return None

    def measure_disk(self) -> disk_guard.DiskProjection:
        measured = self._parts.recorder_stats().get("bitrate_bps")
        self.disk = disk_projection(self._settings, float(measured) if measured else None, self._free_bytes)
        return self.disk

    def readiness(self) -> Readiness:
        return Readiness(
            camera_ok=self.camera_problem() is None,
            link_up=self.link_up,
            disk_ok=self.measure_disk().can_arm,
            key_present=self._keys.problem() is None,
            recovery_done=self.recovery_done,
        )

    def not_ready_reasons(self, readiness: Readiness) -> list[str]:
        """Every problem that keeps a session from arming, with the measured details."""
        problems = readiness.problems()
        if not readiness.disk_ok:
            problems.append(f"{self.measure_disk().seconds_left / 60:.0f} min of recording time left above "
                            f"the reserve, {self._settings.storage.max_session_minutes:g} min needed")
        camera = self.camera_problem()
        if camera:
            problems.append(camera)
        return problems

    def still_wrong(self, fault: Fault | None) -> str | None:
        """None when the condition behind `fault` is gone, else what is still wrong. A lost
        camera is opened again here, so acknowledging is what brings it back."""
        kind = fault.kind if fault else ""
        if kind == FaultKind.CAMERA_LOST or self.camera_lost is not None:
            problem = self._reopen_camera_if_lost()
            if problem:
                return f"the camera is still unavailable ({problem})"
        if kind == FaultKind.LINK_LOST and not self.link_up:
            return "the treatment controller is not connected"
        if kind == FaultKind.STORAGE_CRITICAL and self.measure_disk().must_stop:
            return "the disk is still almost full"
        if kind == FaultKind.KEY_MISSING:
            return self._keys.problem()
        return None

    def _reopen_camera_if_lost(self) -> str | None:
        if self.camera_lost is None and self._parts.camera is not None:
            return None
        if self._parts.recorder is not None:
            return "the camera is still in use"
        problem = self._parts.open_camera()
        if problem is None:
            self.camera_lost = None
        return problem
