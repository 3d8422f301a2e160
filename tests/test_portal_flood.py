"""Per-address flood bookkeeping (appliance/portal/flood.py): pure, the time given."""

from __future__ import annotations

from appliance.portal.flood import FailureThrottle, RefusalGate


def test_an_address_is_refused_after_limit_failures_until_its_window_ends():
    throttle = FailureThrottle(3, 100.0)
    for now in (0.0, 10.0, 20.0):
        assert throttle.retry_after("a", now) == 0
        throttle.failed("a", now)
    assert throttle.retry_after("a", 30.0) == 70.0       # the window started at the first failure
    assert throttle.retry_after("b", 30.0) == 0          # another address is not affected
    assert throttle.retry_after("a", 100.0) == 0
    throttle.failed("a", 100.0)                           # a new window, one failure in it
    assert throttle.retry_after("a", 101.0) == 0


def test_the_throttle_forgets_the_stalest_addresses_first_beyond_its_bound():
    throttle = FailureThrottle(1, 100.0, max_addresses=2)
    for address in ("a", "b", "c"):
        throttle.failed(address, 0.0)
    assert [throttle.retry_after(address, 1.0) for address in ("a", "b", "c")] == [0, 99.0, 99.0]


def test_the_gate_lets_one_refusal_per_address_and_kind_through_per_interval_and_counts_the_rest():
    gate = RefusalGate(60.0)
    assert gate.admit("a", "refused", 0.0) == 0
    assert [gate.admit("a", "refused", now) for now in (1.0, 30.0, 59.9)] == [None, None, None]
    assert gate.admit("a", "busy", 1.0) == 0              # another kind has its own entry
    assert gate.admit("b", "refused", 1.0) == 0           # so has another address
    assert gate.admit("a", "refused", 60.0) == 3          # three held back since the last entry
    assert gate.admit("a", "refused", 120.0) == 0


def test_the_gate_stays_bounded_for_a_flood_from_many_addresses():
    gate = RefusalGate(60.0, max_addresses=100)
    for number in range(1000):
        assert gate.admit(f"10.0.{number // 256}.{number % 256}", "refused", 0.0) == 0
    assert gate.admit("10.0.3.231", "refused", 1.0) is None    # among the last 100: remembered
    assert gate.admit("10.0.0.0", "refused", 1.0) == 0         # the stalest: forgotten, written again
