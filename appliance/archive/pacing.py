"""When the uploader may send: exponential backoff with full jitter after a transient failure,
and the bandwidth limit. Clock, sleep and randomness are injected so tests run in no time."""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

BACKOFF_BASE_S = 1.0
BACKOFF_CAP_S = 300.0     # a server down for hours is retried every ~2.5 min on average


def backoff_delay(attempt: int, unit: float, *, base: float = BACKOFF_BASE_S,
                  cap: float = BACKOFF_CAP_S) -> float:
    """Seconds to wait after failed attempt number `attempt` (0-based), given `unit`, a uniform
    random number in [0, 1): anywhere up to base * 2**attempt, never above `cap`. Full jitter,
    so many appliances that lost the server together do not come back in step."""
    if attempt < 0 or not 0.0 <= unit < 1.0:
        raise ValueError(f"attempt {attempt} and unit {unit} out of range")
    ceiling = cap if attempt >= 64 else min(cap, base * 2.0 ** attempt)
    return unit * ceiling


@dataclass
class Backoff:
    """Retries transient failures; `max_attempts` None: for ever (the archive service),
    a number: give up after that many attempts (one `push` pass)."""

    max_attempts: int | None = None
    base: float = BACKOFF_BASE_S
    cap: float = BACKOFF_CAP_S
    sleep: Callable[[float], None] = time.sleep
    random: Callable[[], float] = field(default_factory=lambda: random.SystemRandom().random)

    def gives_up_after(self, attempt: int) -> bool:
        """True when failed attempt number `attempt` (0-based) was the last allowed."""
        return self.max_attempts is not None and attempt + 1 >= self.max_attempts

    def wait(self, attempt: int) -> None:
        self.sleep(backoff_delay(attempt, self.random(), base=self.base, cap=self.cap))


class Pacer:
    """Keeps the average upload rate at or under `max_mbps` megabits per second (0: no limit):
    each send of n bytes books n*8/rate seconds of the link, and a send waits until the link
    is free. The unit is one request (a part of 8-16 MiB): within it the bytes go at line speed."""

    def __init__(self, max_mbps: float, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        if max_mbps < 0:
            raise ValueError(f"max_mbps must not be negative, got {max_mbps}")
        self._bytes_per_s = max_mbps * 1e6 / 8
        self._clock, self._sleep = clock, sleep
        self._free_at: float | None = None
        self._lock = threading.Lock()

    def pace(self, size: int) -> None:
        """Returns when `size` bytes may go (several threads may ask: each books its own slot)."""
        if self._bytes_per_s == 0:
            return
        with self._lock:
            now = self._clock()
            start = now if self._free_at is None else max(now, self._free_at)
            self._free_at = start + size / self._bytes_per_s
        if start > now:
            self._sleep(start - now)
