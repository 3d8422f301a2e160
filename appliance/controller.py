"""The controller: feeds the parts' events to the state machine and carries out its effects.

Threads:
- one event thread (`_run`) is the only one that touches the machine, the session and the
  status; everything else posts a command (appliance/control/commands.py) to its queue: the
  controller link's reader, the camera and recorder, the public verbs the UI calls (they wait
  for the answer), and the sealing workers (appliance/control/sealing.py).
- the database writer (controller.database) is the only thread that writes the database; the
  kiosk reads through controller.reader, a read-only connection.
The event thread also keeps the clock: the post-roll deadline, and once a second the disk, the
camera and the readiness (appliance/control/health.py). Every change publishes a new
ApplianceStatus (appliance/control/publisher.py).

Faults: a lost camera or link, a disk about to fill, an encoder failure or a missing key in any state
but Idle send `fault` to the machine (in Idle they only block arming, and begin_session says why).
A recording in progress is always finalized and sealed before Error shows. acknowledge returns to
Idle once the condition has cleared. Start-up recovery (appliance/control/recovery.py) runs in
`start()`, before a session can arm. The session's identity: appliance/control/identity.py.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from collections import deque
from concurrent.futures import Future

from appliance import __version__, machine as m
from appliance.config import Settings
from appliance.control import commands as c
from appliance.control.commands import check_tables
from appliance.control.health import Health
from appliance.control.identity import SessionIdentity
from appliance.control.keys import KeyRing
from appliance.control.part_events import PartEvents
from appliance.control.parts import Parts
from appliance.control.publisher import StatusPublisher, compose_status
from appliance.control.recovery import recover
from appliance.control.effects import EffectFailed, Effects
from appliance.control.sealing import ClipSealer, ClipTiming, Workers
from appliance.control.snapshot import SNAPSHOT_PATH, SnapshotWriter
from appliance.errors import ApplianceError, BadInput
from appliance.faults import FaultKind, make_fault
from appliance.machine import RecorderMachine
from appliance.status import ApplianceStatus, SessionView
from appliance.storage.reader import StoreReader
from appliance.storage.writer import DatabaseWriter
from appliance.vault.capabilities import missing_algorithms, unsupported_line

log = logging.getLogger("appliance.controller")

CHECK_S = 1.0                     # disk, camera and readiness
STATUS_WHILE_RECORDING_S = 0.25   # elapsed time on the kiosk advances smoothly
HISTORY = 1000                    # transitions and clip timings kept for diagnostics
SHUTDOWN_SEAL_S = 25
RECOVERY_S = 300                  # signing what a crash left open reads each file once


class NotReady(ApplianceError):
    """A session cannot start now; the message lists every blocking problem."""

    exit_code = 1


class Controller:
    """The appliance without its UI. `start()`, then the UI's calls; `stop()` at the end."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.machine = RecorderMachine()
        self.database = DatabaseWriter(settings.data.dir)   # started by start()
        self.reader: StoreReader | None = None
        self.parts = Parts(settings, self._post)
        self.keys = KeyRing(settings)
        self.health = Health(settings, self.parts, self.keys)
        self._workers = Workers()
        self.effects = Effects(settings, self.machine, self.parts, self.keys, self.health, self.database,
                               ClipSealer(self.database, self._post, self._workers))
        self._publisher = StatusPublisher()
        self._snapshot = SnapshotWriter(settings.data.dir / SNAPSHOT_PATH, lambda: self.status)   # for the uplink
        self._queue: queue.Queue[tuple[object, Future | None]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._running = False
        # Owned by the event thread from start() on:
        self.part_events = PartEvents(self.machine, self.effects, self.health, self.parts, self.database, self._send)
        self._not_ready: tuple[str, ...] = ()
        self._transitions: deque[tuple[str, str, int]] = deque(maxlen=HISTORY)
        self._clip_timings: deque[ClipTiming] = deque(maxlen=HISTORY)
        part_events = self.part_events
        self._handlers = {
            c.Refresh: self._refresh, c.Wake: lambda command: None, c.BeginSession: self._begin_session,
            c.EndSession: self._end_session, c.Acknowledge: self._acknowledge, c.Shutdown: self._shutdown,
            c.Footswitch: part_events.footswitch, c.Interlock: part_events.interlock, c.Laser: part_events.laser,
            c.LinkUp: part_events.link_up, c.LinkDown: part_events.link_down, c.BoardFault: part_events.board_fault,
            c.CameraLost: part_events.camera_lost, c.EncoderFailed: part_events.encoder_failed,
            c.RaiseFault: self._raise_fault, c.Finalized: self._finalized_clip, c.Sealed: self._sealed,
            c.SealFailed: self._seal_failed, c.ClipSalvaged: lambda command: self.effects.clip_salvaged(),
        }
        effects = self.effects
        self._effects = {
            m.OPEN_SESSION: effects.open_session, m.CLOSE_SESSION: effects.close_session,
            m.START_PREROLL: effects.start_preroll, m.STOP_PREROLL: effects.stop_preroll,
            m.START_CLIP: effects.start_clip, m.START_POST_ROLL: effects.start_post_roll,
            m.CANCEL_POST_ROLL: effects.cancel_post_roll, m.FINALIZE: effects.finalize, m.SEAL: effects.seal,
            m.SALVAGE_CLIP: effects.salvage_clip, m.SHOW_FAULT: effects.show_fault, m.CLEAR_FAULT: effects.clear_fault,
        }
        check_tables(self._handlers, self._effects)

    # -- public API (any thread) ------------------------------------------------------------

    @property
    def simulator(self):
        """The simulated treatment controller's board (demo and tests), or None."""
        return self.parts.simulator

    @property
    def status(self) -> ApplianceStatus:
        return self._publisher.status

    def start(self) -> None:
        """Opens the database, recovers, starts the parts, then the event thread."""
        self.database.start()
        self.database.audit("appliance_started", version=__version__)
        if missing := missing_algorithms():   # vault v2 would fail only at the first seal
            log.error(unsupported_line(missing))
        self.health.recovery_done = self.database.call(
            lambda store: recover(store, lambda: self.keys.load().device_key), timeout=RECOVERY_S)
        self.reader = StoreReader(self.settings.data.dir)
        try:
            problem = self.parts.start()
        except ApplianceError:   # a setting the parts refuse: nothing is left running
            self.parts.stop()
            self.reader.close()
            self.database.close()
            raise
        if problem:
            log.error("camera unavailable: %s", problem)
        self._running = True
        self._thread = threading.Thread(target=self._run, name="controller", daemon=True)
        self._thread.start()
        self._snapshot.start()
        self.subscribe(self._snapshot.changed)
        self._post(c.Refresh())

    def stop(self) -> None:
        """Seals an open recording, stops the parts, the event thread and the database writer."""
        if self._thread is None:
            return
        try:
            self._call(c.Shutdown(), timeout=30)
        finally:
            self._running = False
            self._post(c.Wake())
            self._thread.join(30)
            self._thread = None
            self._snapshot.stop()
            self._workers.join(30)
            self.parts.stop()
            self.reader.close()
            self.database.close()

    def subscribe(self, callback):
        """callback(status) now and on every change; returns the function that unsubscribes."""
        return self._publisher.subscribe(callback)

    def wait_for(self, predicate, timeout: float) -> ApplianceStatus:
        """Blocks until a published status satisfies `predicate`; TimeoutError after `timeout` s."""
        return self._publisher.wait_for(predicate, timeout)

    def begin_session(self, subject_id: str, operator_id: str, entry=None) -> SessionView:
        """Opens a session and arms; BadInput for unusable IDs, NotReady with every blocking problem.
        `entry`: the WorklistEntry picked (subject_id = its patient ID), sealed into each recording."""
        return self._call(c.BeginSession(subject_id, operator_id, entry))

    def end_session(self) -> None:
        """Closes the session; a clip in progress is finalized and sealed first."""
        self._call(c.EndSession())

    def acknowledge(self) -> None:
        """Leaves Error for Idle; BadInput saying what is still wrong if the fault has not cleared."""
        self._call(c.Acknowledge())

    def latest_preview(self):
        """The newest camera frame, downscaled for the kiosk, or None outside a session."""
        return self.parts.latest_preview()

    def transitions(self) -> list[tuple[str, str, int]]:
        """The most recent (event, resulting state, monotonic ns) transitions, for benchmarks."""
        return list(self._transitions)

    def clip_timings(self) -> list[ClipTiming]:
        """Trigger and frame times of the most recent finalized clips (diagnostics, benchmarks)."""
        return list(self._clip_timings)

    def _post(self, command) -> None:
        self._queue.put((command, None))

    def _call(self, command, timeout: float = 10.0):
        if self._thread is None:
            raise BadInput("the appliance is not running")
        reply: Future = Future()
        self._queue.put((command, reply))
        return reply.result(timeout)

    # -- event thread -----------------------------------------------------------------------

    def _run(self) -> None:
        next_check = next_status = 0.0
        while self._running:
            wakes = [next_check, next_status]
            if self.effects.post_roll_deadline is not None:
                wakes.append(self.effects.post_roll_deadline)
            try:
                self._dispatch(*self._queue.get(timeout=max(0.0, min(wakes) - time.monotonic())))
            except queue.Empty:
                pass
            now = time.monotonic()
            try:
                if self.effects.post_roll_deadline is not None and now >= self.effects.post_roll_deadline:
                    self.effects.post_roll_deadline = None
                    self._send("post_roll_elapsed")
                if now >= next_check:
                    next_check = now + CHECK_S
                    self._check_health()
                if now >= next_status:
                    next_status = now + (STATUS_WHILE_RECORDING_S if self.machine.state_name == "Recording" else 1.0)
                    self._publish()
            except Exception:  # the clock must keep running: a failed check is logged, retried next tick
                log.exception("periodic check failed")

    def _dispatch(self, command, reply: Future | None) -> None:
        """Runs one command; the new status is published before a caller gets its answer, so
        whoever called begin_session, end_session or acknowledge reads the state it caused."""
        try:
            result = self._handlers[type(command)](command)
        except Exception as error:
            if not isinstance(error, ApplianceError):  # a bug must not kill the event thread silently
                log.exception("%s failed", type(command).__name__)
            elif reply is None:
                log.error("%s failed: %s", type(command).__name__, error)
            self._publish()
            if reply is not None:
                reply.set_exception(error)
            return
        self._publish()
        if reply is not None:
            reply.set_result(result)

    def _send(self, event: str, **arguments) -> m.Outcome:
        """Sends one event to the machine and carries out the effects it requests, in order."""
        before = self.machine.state_name
        outcome = self.machine.handle(event, **arguments)
        if not outcome.accepted:
            log.info("event %s ignored in %s", event, before)
            return outcome
        self._transitions.append((event, outcome.state, time.monotonic_ns()))
        if outcome.state != before:
            log.info("%s --%s--> %s", before, event, outcome.state)
        for effect in outcome.effects:
            try:
                self._effects[effect]()
            except EffectFailed as error:
                log.error("effect %s failed: %s", effect, error)
                self._post(c.RaiseFault(error.kind, str(error)))
            except (OSError, sqlite3.Error, ApplianceError) as error:
                log.error("effect %s failed: %s", effect, error)
                self._post(c.RaiseFault(FaultKind.STORAGE_ERROR, getattr(error, "strerror", None) or str(error)))
        self.parts.drive_outputs(self.machine.state_name)
        self._publish()
        if outcome.state == "Armed" and before != "Armed" and self.part_events.inputs.footswitch_pressed:
            # Pressed while not armed (the permissive was off, so no laser yet): the press still
            # counts, or the treatment would start unrecorded the moment ready comes on.
            return self._send("trigger_on")
        return outcome

    # -- commands (event thread) ------------------------------------------------------------

    def _refresh(self, command: c.Refresh) -> None:
        self.parts.drive_outputs(self.machine.state_name)

    def _begin_session(self, command: c.BeginSession) -> SessionView:
        identity = SessionIdentity(command.subject_id, command.operator_id, command.entry)
        if self.machine.state_name != "Idle":
            raise BadInput(f"a session cannot start while the appliance is {self.machine.state_name}")
        readiness = self.health.readiness()
        self.effects.pending_identity = identity
        if not self._send("begin_session", readiness=readiness).accepted:
            raise NotReady("cannot start the session: " + "; ".join(self.health.not_ready_reasons(readiness)))
        return self.effects.session_view()

    def _end_session(self, command: c.EndSession) -> None:
        if not self.machine.session_open:
            raise BadInput("no session is open")
        if not self._send("end_session").accepted:
            raise BadInput(f"the session cannot end while the appliance is {self.machine.state_name}; "
                           "acknowledge the fault first")

    def _acknowledge(self, command: c.Acknowledge) -> None:
        if self.machine.state_name != "Error":
            raise BadInput("there is no fault to acknowledge")
        still_wrong = self.health.still_wrong(self.machine.active_fault)
        if not self._send("acknowledge", cleared=still_wrong is None).accepted:
            raise BadInput(f"the fault has not cleared: {still_wrong}")

    def _shutdown(self, command: c.Shutdown) -> None:
        """Stopping the appliance: a clip in progress is sealed first, then the session closed."""
        if self.machine.session_open and self.machine.state_name in ("Armed", "Recording"):
            self._send("end_session")
        deadline = time.monotonic() + SHUTDOWN_SEAL_S
        while self.machine.state_name in ("Finalizing", "Encrypting") and time.monotonic() < deadline:
            try:
                pending, reply = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if isinstance(pending, c.SEALING):
                self._dispatch(pending, reply)
            elif reply is not None:
                reply.set_exception(BadInput("the appliance is shutting down"))
        if self.machine.state_name == "Error" and self.machine.session_open:
            self.effects.close_session()

    def _raise_fault(self, command: c.RaiseFault) -> None:
        self._send("fault", reason=make_fault(command.kind, command.reason))

    def _finalized_clip(self, command: c.Finalized) -> None:
        clip, result = self.effects.clip_finalized(command.result), command.result
        self._clip_timings.append(ClipTiming(clip.recording.uid, clip.press_ns, clip.started_ns,
                                             result.first_frame_ns, result.last_frame_ns))
        self._send("finalized")

    def _sealed(self, command: c.Sealed) -> None:
        self.effects.clip_sealed()
        self._send("sealed")

    def _seal_failed(self, command: c.SealFailed) -> None:
        self._send("seal_failed", reason=make_fault(command.kind, command.reason))

    # -- the clock (event thread) -----------------------------------------------------------

    def _check_health(self) -> None:
        """Once a second: the disk and the camera raise their faults; in Idle, the published
        list of what would refuse a session is kept current."""
        state = self.machine.state_name
        disk = self.health.measure_disk()
        if disk.must_stop and state in ("Armed", "Recording"):
            self._send("fault", reason=make_fault(FaultKind.STORAGE_CRITICAL,
                                                  f"{disk.seconds_left:.0f} s of recording time left"))
        if self.parts.recorder is not None and self.health.camera_lost is None:
            problem = self.health.camera_problem()
            if problem:
                self.part_events.camera_lost(c.CameraLost(problem))
        self.effects.emissions_overdue()
        self._not_ready = ()
        if self.machine.state_name == "Idle":
            readiness = self.health.readiness()
            self._not_ready = () if readiness.ok else tuple(self.health.not_ready_reasons(readiness))

    def _publish(self) -> None:
        self._publisher.publish(compose_status(self.machine, self.effects, self.health, self.parts,
                                               self.part_events.inputs, self.part_events.link_view, self._not_ready))
