"""When the uploader may send: exponential backoff with full jitter after a transient failure,
the bandwidth limit and the CPU budget. Clocks, sleep and randomness are injected so tests run in no time."""

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


# CPU seconds of credit an idle uploader may save up: one part's hashing, so hours of idling
# never buy a full-speed burst that would take a recording's cores.
BUDGET_BURST_CPU_S = 0.1


@dataclass(frozen=True)
class BudgetLedger:
    """Where a CPU budget stood at its last check."""
    cpu_s: float       # the process's CPU time then (all threads)
    wall_s: float      # the wall (monotonic) clock then
    credit_s: float    # CPU seconds still allowed before a pause; negative: owed


def budget_step(ledger: BudgetLedger, cpu_s: float, wall_s: float, share: float,
                burst_s: float = BUDGET_BURST_CPU_S) -> tuple[BudgetLedger, float]:
    """The ledger after a check at (`cpu_s`, `wall_s`) and the seconds to pause now, for a
    process allowed `share` cores (0.5: half of one core). Elapsed wall time earns `share` of
    itself as credit (at most `burst_s` saved), CPU time spent uses it up; a debt is paid by
    pausing debt/share seconds. The pause is not booked here: it is wall time the next check
    earns credit for, so several threads pausing for the same debt only pause longer."""
    if share <= 0 or burst_s < 0:
        raise ValueError(f"share {share} and burst {burst_s} must be positive")
    earned = max(0.0, wall_s - ledger.wall_s) * share
    spent = max(0.0, cpu_s - ledger.cpu_s)
    credit = min(burst_s, ledger.credit_s + earned - spent)
    return BudgetLedger(cpu_s, wall_s, credit), max(0.0, -credit / share)


class CpuBudget:
    """Keeps the process's CPU use at or under `cpu_percent` percent of one core (0: no limit)
    on average, by pausing the thread that checks when the process has used more. It holds
    wherever the uploader runs (a systemd CPUQuota only inside the unit). The uploader checks
    between chunks it hashes and before each request."""

    def __init__(self, cpu_percent: float, *, cpu_clock: Callable[[], float] = time.process_time,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep):
        if cpu_percent < 0:
            raise ValueError(f"cpu_percent must not be negative, got {cpu_percent}")
        self._share = cpu_percent / 100
        self._cpu_clock, self._clock, self._sleep = cpu_clock, clock, sleep
        self._ledger = BudgetLedger(cpu_clock(), clock(), 0.0)
        self._lock = threading.Lock()

    def check(self) -> None:
        """Pauses as long as the process is over its budget."""
        if self._share == 0:
            return
        with self._lock:
            self._ledger, pause = budget_step(self._ledger, self._cpu_clock(), self._clock(), self._share)
        if pause > 0:
            self._sleep(pause)
