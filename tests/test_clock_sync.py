"""Board time on the host's clock: an edge's board_ms lands where it happened on the video."""

import random

from firmware_bridge.clock_sync import ClockSync
from firmware_bridge.protocol import TICKS_MASK, TICKS_PERIOD

MS = 1_000_000
S = 1_000_000_000


class DriftingBoard:
    """A board whose crystal runs `ppm` fast and booted `boot_offset_ns` before host time 0."""

    def __init__(self, ppm: float, boot_offset_ns: int = 7_345 * MS):
        self.rate = 1 + ppm * 1e-6
        self.boot_offset_ns = boot_offset_ns

    def board_ms(self, host_ns: int) -> int:
        return int((host_ns + self.boot_offset_ns) * self.rate // MS)


def heartbeat(sync, board, sent_ns, rng, slow_link=False):
    up = rng.uniform(0.2, 1.5) * MS + (rng.expovariate(1 / (4 * MS)) if rng.random() < 0.3 else 0)
    down = rng.uniform(0.2, 1.5) * MS + (rng.expovariate(1 / (4 * MS)) if rng.random() < 0.3 else 0)
    if slow_link:
        up += 30 * MS
    answered_ns = sent_ns + int(up)
    sync.add_round_trip(sent_ns, answered_ns + int(down), board.board_ms(answered_ns))


def test_a_board_100_ppm_fast_over_jittered_link_maps_within_2_ms_for_an_hour():
    rng = random.Random(12)
    board, sync = DriftingBoard(ppm=100), ClockSync()
    sync.new_boot(("board", 1))
    worst_ms = 0.0
    for tick in range(60 * 60 * 10):               # a heartbeat every 100 ms for 60 minutes
        sent_ns = tick * 100 * MS
        heartbeat(sync, board, sent_ns, rng, slow_link=tick % 600 < 20)   # 2 s of congestion a minute
        if tick >= 20:
            edge_ns = sent_ns + rng.randrange(100 * MS)   # an edge before the next heartbeat
            error_ms = abs(sync.to_host_ns(board.board_ms(edge_ns)) - edge_ns) / MS
            worst_ms = max(worst_ms, error_ms)
            assert error_ms <= sync.uncertainty_ms()
    assert worst_ms < 2.0
    assert 80 < sync.drift_ppm < 120
    # Without tracking the drift, an hour at 100 ppm would be 360 ms off.


def test_a_new_boot_starts_the_mapping_over_and_the_same_boot_keeps_it():
    rng = random.Random(3)
    sync = ClockSync()
    sync.new_boot(("board", 1))
    first = DriftingBoard(ppm=0, boot_offset_ns=60 * S)
    for tick in range(50):
        heartbeat(sync, first, tick * 100 * MS, rng)
    sync.new_boot(("board", 1))                          # a reconnection: same clock
    assert abs(sync.to_host_ns(first.board_ms(5 * S)) - 5 * S) < 2 * MS
    sync.new_boot(("board", 2))                          # a reboot: board time restarted at 0
    assert sync.to_host_ns(1000) is None and sync.uncertainty_ms() is None
    rebooted = DriftingBoard(ppm=0, boot_offset_ns=-5 * S)
    for tick in range(50, 100):
        heartbeat(sync, rebooted, tick * 100 * MS, rng)
    assert abs(sync.to_host_ns(rebooted.board_ms(9 * S)) - 9 * S) < 2 * MS


def test_board_time_wrapping_like_ticks_ms_keeps_mapping():
    sync = ClockSync()
    sync.new_boot(("board", 1))
    board = DriftingBoard(ppm=0, boot_offset_ns=(TICKS_PERIOD - 3_000) * MS)   # wraps 3 s in
    for tick in range(100):
        sent_ns = tick * 100 * MS
        sync.add_round_trip(sent_ns, sent_ns + 2 * MS, board.board_ms(sent_ns + MS) & TICKS_MASK)
    for at_ns in (2_500 * MS, 9_000 * MS):
        assert abs(sync.to_host_ns(board.board_ms(at_ns) & TICKS_MASK) - at_ns) < 2 * MS
