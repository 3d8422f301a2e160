"""Status publishing: the newest ApplianceStatus, its subscribers, and waiting for a condition.

The event thread publishes; anyone reads `status` or waits. Subscribers are called on the
publishing thread only when the status changed (and once at once when they subscribe, on the
subscriber's thread), so they must be quick: the kiosk hands the snapshot to its GUI thread.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace
from typing import Callable

from appliance.status import ApplianceStatus, Inputs, LinkView

log = logging.getLogger("appliance.controller")

SEAL_STEPS = {"Finalizing": 0.0, "Encrypting": 0.5}   # sealing progress by step

Subscriber = Callable[[ApplianceStatus], None]


class StatusPublisher:
    def __init__(self):
        self._subscribers: list[Subscriber] = []
        self._subscribers_lock = threading.Lock()
        self._status = ApplianceStatus()
        self._changed = threading.Condition()

    @property
    def status(self) -> ApplianceStatus:
        with self._changed:
            return self._status

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """callback(status) at once with the current status, then on every change; returns the
        function that unsubscribes."""
        with self._subscribers_lock:
            self._subscribers.append(callback)
        callback(self.status)

        def unsubscribe() -> None:
            with self._subscribers_lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)
        return unsubscribe

    def publish(self, status: ApplianceStatus) -> None:
        with self._changed:
            changed = status != self._status
            self._status = status
            self._changed.notify_all()
        if not changed:
            return
        with self._subscribers_lock:
            subscribers = list(self._subscribers)
        for callback in subscribers:
            try:
                callback(status)
            except Exception:
                log.exception("status subscriber failed")

    def wait_for(self, predicate: Callable[[ApplianceStatus], bool], timeout: float) -> ApplianceStatus:
        """Blocks until a published status satisfies `predicate`; TimeoutError after `timeout` s."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(self._status):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    fault = self._status.fault.kind if self._status.fault else "none"
                    raise TimeoutError(f"the appliance did not reach the expected status in {timeout:g} s "
                                       f"(state {self._status.state}, fault {fault})")
                self._changed.wait(remaining)
            return self._status


def compose_status(machine, effects, health, parts, inputs: Inputs, link_view: LinkView,
                   not_ready: tuple[str, ...]) -> ApplianceStatus:
    """The snapshot of the appliance now, from what the event thread owns (called only there)."""
    state = machine.state_name
    stats = parts.recorder_stats()
    link_stats = parts.link.stats() if parts.link is not None else None
    disk = health.disk
    return ApplianceStatus(
        state=state,
        session=effects.session_view(),
        recording_elapsed_s=effects.recording_elapsed_s() if state == "Recording" else None,
        post_roll_remaining_s=effects.post_roll_remaining_s(),
        seal_progress=SEAL_STEPS.get(state),
        inputs=_displayed_inputs(inputs, link_stats.raw_levels if link_stats and health.link_up else None),
        link=link_view if link_stats is None else replace(
            link_view, frames=link_stats.frames, crc_errors=link_stats.crc_errors, resyncs=link_stats.resyncs,
            round_trip_ms=link_stats.round_trip_ms),
        storage_seconds_left=disk.seconds_left if disk else None,
        storage_warning=bool(disk and disk.warn),
        fault=machine.active_fault,
        not_ready=not_ready if state == "Idle" else (),
        camera_fps=stats.get("fps"),
        dropped_frames=int(stats.get("dropped", 0)),
        camera=parts.camera_view(),
        unrecorded_emissions=effects.treatment.unrecorded_total,
        last_unrecorded_emission_board_ms=effects.treatment.last_unrecorded_board_ms,
        last_session_emission_report=effects.last_emission_report,
    )


def _displayed_inputs(edges: Inputs, levels) -> Inputs:
    """The lamps show the board's levels (STATE, every 100 ms); the machine acts on edges, which
    are all there is before the first STATE."""
    if levels is None:
        return edges
    return Inputs(footswitch_pressed=levels.footswitch, interlock_closed=levels.interlock, laser_on=levels.laser)
