"""Bookkeeping per client address against one client flooding the portal: a throttle on failed
logins, and a gate that lets an address's anonymous refusals into the audit trail at most once a
minute (the trail is synced and kept, so a flood must not fill the disk with rows).

The time is the caller's (the portal's clock); both are thread-safe (handlers run on many
threads) and bounded in memory (a flood from many addresses drops the stalest addresses first).
"""

from __future__ import annotations

import threading
from collections import OrderedDict

MAX_ADDRESSES = 10_000


class FailureThrottle:
    """At most `limit` failed logins per address in a window of `window_s` that starts with the
    address's first failure; beyond it the address is refused without a password check until
    the window ends. A success does not reset it: one valid account must not buy more guesses
    at the others."""

    def __init__(self, limit: int, window_s: float, *, max_addresses: int = MAX_ADDRESSES):
        self.limit, self.window_s, self._max = limit, window_s, max_addresses
        self._windows: OrderedDict[str, tuple[float, int]] = OrderedDict()   # address -> (start, failures)
        self._lock = threading.Lock()

    def retry_after(self, address: str, now: float) -> float:
        """Seconds until this address may try again; 0 when it may now."""
        with self._lock:
            start, failures = self._windows.get(address, (now, 0))
            if now - start >= self.window_s or failures < self.limit:
                return 0.0
            return start + self.window_s - now

    def failed(self, address: str, now: float) -> None:
        with self._lock:
            start, failures = self._windows.pop(address, (now, 0))
            if now - start >= self.window_s:
                start, failures = now, 0
            self._windows[address] = (start, failures + 1)
            _drop_stalest(self._windows, self._max)


class RefusalGate:
    """Lets one refusal per (address, kind) through every `interval_s`; the ones held back in
    between are counted, and the next one let through says how many (`held_back`)."""

    def __init__(self, interval_s: float, *, max_addresses: int = MAX_ADDRESSES):
        self.interval_s, self._max = interval_s, max_addresses
        self._last: OrderedDict[tuple[str, str], tuple[float, int]] = OrderedDict()   # -> (written at, held back)
        self._lock = threading.Lock()

    def admit(self, address: str, kind: str, now: float) -> int | None:
        """None: hold this one back (counted); else write it, noting this many held back before it."""
        key = (address, kind)
        with self._lock:
            written_at, held_back = self._last.pop(key, (None, 0))
            if written_at is not None and now - written_at < self.interval_s:
                self._last[key] = (written_at, held_back + 1)
                return None
            self._last[key] = (now, 0)
            _drop_stalest(self._last, self._max)
            return held_back


def _drop_stalest(entries: OrderedDict, limit: int) -> None:
    """Entries are re-inserted on every update, so the first ones are the stalest."""
    while len(entries) > limit:
        entries.popitem(last=False)
