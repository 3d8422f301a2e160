"""Waiting on a condition with a deadline, instead of sleeping and counting."""

import time


def wait_for(condition, timeout: float = 30.0, what: str = "condition"):
    """Polls `condition` until it returns something truthy and returns that; AssertionError
    naming `what` after `timeout` seconds. The deadline only bounds a failure."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)
    return value
