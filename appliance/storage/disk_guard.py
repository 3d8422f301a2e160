"""The disk guard: free space as recording time, and when to refuse, warn or stop.

`project` is pure (tests/test_storage.py covers its edges); `free_bytes` is the thin statvfs
adapter. The reserve is never written into: a recording is stopped and sealed while the space
left above the reserve still holds `stop_margin_s` of video, so sealing always has room. The
guard never deletes anything itself: the only automatic deletion is the archive's reclaim of
recordings the clinic archive confirmed (appliance/archive/reclaim.py); otherwise clinical
video is removed only by people, after export.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DiskProjection:
    seconds_left: float   # recording time that fits above the reserve at the given bitrate
    can_arm: bool         # a full-length session fits
    warn: bool            # less than the warning threshold is left
    must_stop: bool       # stop and seal now, before the reserve is reached


def project(*, free_bytes: int, bitrate_bps: float, reserve_bytes: int, max_session_s: float,
            warn_s: float, stop_margin_s: float = 5.0) -> DiskProjection:
    if bitrate_bps <= 0:
        raise ValueError("bitrate must be positive")
    usable = max(0, free_bytes - reserve_bytes)
    seconds_left = usable * 8 / bitrate_bps
    return DiskProjection(
        seconds_left=seconds_left,
        can_arm=seconds_left >= max_session_s,
        warn=seconds_left < warn_s,
        must_stop=seconds_left <= stop_margin_s,
    )


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged writer may still use on the filesystem holding `path`."""
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize
