"""Board time -> host monotonic time, from heartbeat round trips (sans-IO).

Each HEARTBEAT_REPLY carries the board's uptime (`board_ms`) when it answered; the host knows
when it sent the HEARTBEAT and when the reply arrived. The board read its clock somewhere in
that window, so a sample says: host time (sent + received) / 2 <-> board_ms, give or take half
the round trip. As Klipper's clocksync does, only the fastest round trips are trusted: a slow
one (a busy USB bus, a scheduling hiccup) widens the window without telling us where in it the
board was. Of each second's ten heartbeats the fastest is kept, for the last minute; offset and
drift come from a least-squares line through those whose round trip is near the fastest. The
line is re-fitted whenever a sample is kept, so a board crystal running fast or slow (typically
+-100 ppm: 6 ms per minute) is tracked. A new boot_id
means a new clock: the mapping starts over. docs/controller-protocol.md, section 7.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from firmware_bridge.protocol import TICKS_PERIOD

MS = 1_000_000  # nanoseconds
BUCKET_NS = 1_000_000_000     # of each second's heartbeats, only the fastest round trip is kept
WINDOW = 60                   # seconds of those kept for the fit
FAST_FACTOR = 1.5             # a sample is trusted when its round trip <= fastest * this (+ slack)
FAST_SLACK_NS = MS // 2
BOARD_TICK_MS = 1.0           # board_ms counts whole milliseconds


@dataclass(frozen=True)
class ClockSample:
    host_mid_ns: int          # half-way between the HEARTBEAT going out and its reply arriving
    board_ms: int             # board uptime in the reply, unwrapped
    round_trip_ns: int


class ClockSync:
    """Maps a board_ms to host monotonic ns for one board boot, with an uncertainty."""

    def __init__(self):
        self.boot: tuple | None = None
        self._samples: deque[ClockSample] = deque(maxlen=WINDOW)
        self._unwrap_base = 0
        self._last_raw_ms: int | None = None
        # The fitted line: host_ns = host_at_ref + (board_ms - board_ref) * ns_per_board_ms.
        self._board_ref = 0.0
        self._host_at_ref = 0.0
        self._ns_per_board_ms = float(MS)
        self._fit_residual_ns = 0.0
        self._fastest_trusted_ns = 0

    def new_boot(self, boot) -> None:
        """The board announced its boot (board id, boot id): a different one restarts the mapping."""
        if boot != self.boot:
            self.boot = boot
            self._samples.clear()
            self._last_raw_ms = None
            self._unwrap_base = 0

    @property
    def ready(self) -> bool:
        return bool(self._samples)

    def add_round_trip(self, sent_ns: int, received_ns: int, board_ms: int) -> None:
        round_trip_ns = received_ns - sent_ns
        if round_trip_ns < 0:
            return
        sample = ClockSample((sent_ns + received_ns) // 2, self._unwrap(board_ms), round_trip_ns)
        last = self._samples[-1] if self._samples else None
        if last is None or sample.host_mid_ns // BUCKET_NS != last.host_mid_ns // BUCKET_NS:
            self._samples.append(sample)
        elif sample.round_trip_ns < last.round_trip_ns:
            self._samples[-1] = sample
        else:
            return
        self._fit()

    def to_host_ns(self, board_ms: int) -> int | None:
        """The host monotonic time at which the board's clock read board_ms; None before any sample."""
        if not self._samples:
            return None
        board = self._unwrap_near(board_ms)
        return round(self._host_at_ref + (board - self._board_ref) * self._ns_per_board_ms)

    def uncertainty_ms(self) -> float | None:
        """A bound on the mapping's error: half the fastest trusted round trip, the board's
        millisecond tick, and how far the trusted samples stray from the fitted line."""
        if not self._samples:
            return None
        return (self._fastest_trusted_ns / 2 + self._fit_residual_ns) / MS + BOARD_TICK_MS

    @property
    def drift_ppm(self) -> float:
        """How fast the board's clock runs against the host's (positive: board fast)."""
        return (MS / self._ns_per_board_ms - 1) * 1e6

    # Fitting.

    def _fit(self) -> None:
        fastest = min(sample.round_trip_ns for sample in self._samples)
        limit = fastest * FAST_FACTOR + FAST_SLACK_NS
        trusted = [sample for sample in self._samples if sample.round_trip_ns <= limit]
        self._fastest_trusted_ns = fastest
        board_mean = sum(sample.board_ms for sample in trusted) / len(trusted)
        host_mean = sum(sample.host_mid_ns for sample in trusted) / len(trusted)
        spread = sum((sample.board_ms - board_mean) ** 2 for sample in trusted)
        if spread > 0 and trusted[-1].board_ms - trusted[0].board_ms >= 1000:
            # Over less than a second the drift is below the noise; keep the nominal rate.
            self._ns_per_board_ms = sum((sample.board_ms - board_mean) * (sample.host_mid_ns - host_mean)
                                        for sample in trusted) / spread
        self._board_ref, self._host_at_ref = board_mean, host_mean
        self._fit_residual_ns = max(abs(sample.host_mid_ns - self._host_at_ref
                                        - (sample.board_ms - self._board_ref) * self._ns_per_board_ms)
                                    for sample in trusted)

    # board_ms is the board's ticks_ms: it wraps at TICKS_PERIOD (2**30 ms, about 12.4 days).

    def _unwrap(self, raw_ms: int) -> int:
        if self._last_raw_ms is not None and raw_ms < self._last_raw_ms - TICKS_PERIOD // 2:
            self._unwrap_base += TICKS_PERIOD
        self._last_raw_ms = raw_ms
        return self._unwrap_base + raw_ms

    def _unwrap_near(self, raw_ms: int) -> int:
        """An edge's board_ms, unwrapped to the sample closest to it (edges may arrive late)."""
        if self._last_raw_ms is None:
            return raw_ms
        candidate = self._unwrap_base + raw_ms
        latest = self._unwrap_base + self._last_raw_ms
        if candidate - latest > TICKS_PERIOD // 2:
            candidate -= TICKS_PERIOD
        elif latest - candidate > TICKS_PERIOD // 2:
            candidate += TICKS_PERIOD
        return candidate
