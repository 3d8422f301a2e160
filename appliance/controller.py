"""The controller: owns the parts, feeds their events to the state machine, runs its effects.

Threads:
- one event thread (`_run`) is the only one that touches the machine, the session and the
  status; everything else posts to its queue: the controller link's reader (footswitch,
  interlock, link up/down), the camera and recorder (camera lost, encoder failure), the public
  calls the UI makes (begin_session, end_session, acknowledge: they wait for the answer), and
  the sealing worker.
- a sealing worker per clip runs the slow part (recorder.stop_clip = flush, final segment,
  fsync, signed manifest; then verification and the DB commit) and reports back as events.
The event thread also keeps the clock: the post-roll deadline, and once a second the disk
guard. Every change publishes a new ApplianceStatus to the subscribers (UI, logs).

Faults: a lost camera or link, a disk about to fill, an encoder failure or a missing key in any
state but Idle send `fault` to the machine (in Idle they only block arming, and begin_session
says why). A recording in progress is always finalized and sealed before Error shows; the
fault's sentence says what happened and what to do. acknowledge returns to Idle once the
condition has cleared.

Start-up recovery runs in `start()`, before the event thread accepts a session: recordings
left open by a crash are signed `interrupted` (their complete segments kept) and audited, and
sessions left open are closed.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, replace
from typing import Callable

from appliance import __version__, machine as m
from appliance.camera import CameraUnavailable
from appliance.config import SIMULATED_CONTROLLER, Settings
from appliance.errors import ApplianceError, BadInput
from appliance.machine import Readiness, RecorderMachine
from appliance.status import ApplianceStatus, Fault, Inputs, LinkView, SessionView
from appliance.storage import disk_guard
from appliance.storage.database import Recording, Store
from appliance.storage.identifiers import validated_id

log = logging.getLogger("appliance.controller")

DISK_CHECK_S = 1.0
STATUS_WHILE_RECORDING_S = 0.25   # elapsed time on the kiosk advances smoothly
CAMERA_STALE_S = 3.0              # no new frame for this long: the camera is not delivering
PREVIEW_WIDTH = 640
# Sealing has two steps (finalize + seal off-thread, then verify + commit): progress by step.
SEAL_STEPS = {"Finalizing": 0.0, "Encrypting": 0.5}
HISTORY = 1000                    # transitions and clip timings kept for diagnostics
# What the sealing workers post; while shutting down only these are still handled.
SEALING_EVENTS = ("finalized", "sealed", "seal_failed", "clip_salvaged", "fault")


class NotReady(ApplianceError):
    """A session cannot start now; the message lists every blocking problem."""

    exit_code = 1


FAULTS: dict[str, tuple[str, str]] = {
    "camera_lost": ("The camera stopped delivering video ({reason}).",
                    "Check the camera cable and power, then acknowledge."),
    "link_lost": ("The treatment controller stopped answering ({reason}).",
                  "Check the USB cable to the treatment controller, then acknowledge once it is connected."),
    "controller_fault": ("The treatment controller reported a fault ({reason}).",
                         "Restart the treatment controller; call service if this repeats."),
    "storage_critical": ("The disk is almost full; the recording was stopped and sealed ({reason}).",
                         "Ask clinic IT to export and remove old recordings, then acknowledge."),
    "storage_error": ("Recordings could not be written to the disk ({reason}).",
                      "Call service; do not treat until recording works again."),
    "encoder_failure": ("The video encoder failed ({reason}); everything captured until then was kept.",
                        "Acknowledge and open a new session; call service if this repeats."),
    "key_missing": ("The encryption key for recordings is missing or unreadable ({reason}).",
                    "Ask clinic IT to install the recipient key (appliance doctor shows where), then acknowledge."),
}


def make_fault(kind: str, reason: str) -> Fault:
    what, action = FAULTS[kind]
    return Fault(kind, what.format(reason=reason), action)


@dataclass
class _Command:
    name: str
    arguments: dict
    reply: Future | None = None


@dataclass(frozen=True)
class ClipTiming:
    """When a clip's trigger arrived and which capture times the sealed clip covers (monotonic ns)."""

    recording_uid: str
    press_ns: int | None        # the footswitch edge as the host decoded it
    recording_ns: int           # the machine entered Recording
    first_frame_ns: int | None
    last_frame_ns: int | None


@dataclass
class _OpenClip:
    recording: Recording
    keys: "Keys"           # loaded before the clip starts: sealing never depends on a later read
    started_ns: int
    press_ns: int | None


class _EffectFailed(ApplianceError):
    """An effect could not be carried out; `kind` names the fault it becomes."""

    def __init__(self, kind: str, reason: str):
        super().__init__(reason)
        self.kind = kind


class Controller:
    """The appliance without its UI. `start()`, then the UI's calls; `stop()` at the end."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.machine = RecorderMachine()
        self.store: Store | None = None
        self.camera = None
        self.recorder = None
        self.link = None
        self.simulator = None
        self._queue: queue.Queue[_Command] = queue.Queue()
        self._subscribers: list[Callable[[ApplianceStatus], None]] = []
        self._subscribers_lock = threading.Lock()
        self._status = ApplianceStatus()
        self._status_lock = threading.Lock()
        self._status_changed = threading.Condition(self._status_lock)
        self._thread: threading.Thread | None = None
        self._workers: list[threading.Thread] = []
        self._running = False
        # Owned by the event thread from start() on:
        self._session = None
        self._clip: _OpenClip | None = None
        self._clip_count = 0
        self._post_roll_deadline: float | None = None
        self._inputs = Inputs()
        self._link_view = LinkView()
        self._link_up = False
        self._camera_lost: str | None = None
        self._disk = None
        self._not_ready: tuple[str, ...] = ()
        self._recovery_done = False
        # The most recent transitions and clip timings, for diagnostics and benchmarks.
        self._transitions: deque[tuple[str, str, int]] = deque(maxlen=HISTORY)
        self._clip_timings: deque[ClipTiming] = deque(maxlen=HISTORY)
        self._keys = None
        self._pending_ids: tuple[str, str] | None = None
        self._press_ns: int | None = None
        self._finalized = None
        self._camera_progress = (-1, 0.0)   # (frames seen, monotonic time it last changed)

    # -- public API (any thread) ------------------------------------------------------------

    def start(self) -> None:
        """Opens storage, recovers, starts camera, recorder and link, then the event thread."""
        self.store = Store(self.settings.data.dir)
        self.store.audit("appliance_started", version=__version__)
        self._recover()
        self._start_parts()
        self._running = True
        self._thread = threading.Thread(target=self._run, name="controller", daemon=True)
        self._thread.start()
        self._post("refresh")

    def stop(self) -> None:
        """Seals an open recording, stops the parts and the event thread."""
        if self._thread is None:
            return
        try:
            self._call("shutdown", timeout=30)
        finally:
            self._running = False
            self._queue.put(_Command("wake", {}))
            self._thread.join(30)
            self._thread = None
            for worker in self._workers:
                worker.join(30)
            self._stop_parts()
            self.store.close()

    def subscribe(self, callback: Callable[[ApplianceStatus], None]) -> Callable[[], None]:
        """callback(status) at once with the current status (on the caller's thread), then from
        the controller thread on every change; returns the function that unsubscribes."""
        with self._subscribers_lock:
            self._subscribers.append(callback)
        callback(self.status)

        def unsubscribe() -> None:
            with self._subscribers_lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)
        return unsubscribe

    @property
    def status(self) -> ApplianceStatus:
        with self._status_lock:
            return self._status

    def wait_for(self, predicate: Callable[[ApplianceStatus], bool], timeout: float) -> ApplianceStatus:
        """Blocks until a published status satisfies `predicate`; TimeoutError after `timeout` s."""
        deadline = time.monotonic() + timeout
        with self._status_changed:
            while not predicate(self._status):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    fault = self._status.fault.kind if self._status.fault else "none"
                    raise TimeoutError(f"the appliance did not reach the expected status in {timeout:g} s "
                                       f"(state {self._status.state}, fault {fault})")
                self._status_changed.wait(remaining)
            return self._status

    def begin_session(self, subject_id: str, operator_id: str) -> SessionView:
        """Opens a session and arms; BadInput for unusable IDs, NotReady with every blocking problem."""
        return self._call("begin_session", subject_id=subject_id, operator_id=operator_id)

    def end_session(self) -> None:
        """Closes the session; a clip in progress is finalized and sealed first."""
        self._call("end_session")

    def acknowledge(self) -> None:
        """Leaves Error for Idle; BadInput saying what is still wrong if the fault has not cleared."""
        self._call("acknowledge")

    def latest_preview(self):
        """The newest camera frame, downscaled for the kiosk (numpy BGR), or None when no
        session has the camera running. Called from the UI thread; costs one resize."""
        import cv2
        camera = self.camera
        frame = camera.frames.latest if camera is not None else None
        if frame is None:
            return None
        height, width = frame.image.shape[:2]
        scale = min(1.0, PREVIEW_WIDTH / width)
        if scale == 1.0:
            return frame.image.copy()   # the recorder is still encoding from this array
        return cv2.resize(frame.image, (PREVIEW_WIDTH, round(height * scale)), interpolation=cv2.INTER_AREA)

    def transitions(self) -> list[tuple[str, str, int]]:
        """The most recent (event, resulting state, monotonic ns) transitions, for benchmarks."""
        return list(self._transitions)

    def clip_timings(self) -> list[ClipTiming]:
        """Trigger and frame times of the most recent finalized clips (diagnostics, benchmarks)."""
        return list(self._clip_timings)

    # -- posting ----------------------------------------------------------------------------

    def _post(self, name: str, **arguments) -> None:
        self._queue.put(_Command(name, arguments))

    def _call(self, name: str, timeout: float = 10.0, **arguments):
        if self._thread is None:
            raise BadInput("the appliance is not running")
        reply: Future = Future()
        self._queue.put(_Command(name, arguments, reply))
        return reply.result(timeout)

    # -- event thread -----------------------------------------------------------------------

    def _run(self) -> None:
        next_disk_check = 0.0
        next_status = 0.0
        while self._running:
            now = time.monotonic()
            wakes = [next_disk_check, next_status]
            if self._post_roll_deadline is not None:
                wakes.append(self._post_roll_deadline)
            try:
                command = self._queue.get(timeout=max(0.0, min(wakes) - now))
            except queue.Empty:
                command = None
            if command is not None:
                self._dispatch(command)
            now = time.monotonic()
            try:
                if self._post_roll_deadline is not None and now >= self._post_roll_deadline:
                    self._post_roll_deadline = None
                    self._send("post_roll_elapsed")
                if now >= next_disk_check:
                    next_disk_check = now + DISK_CHECK_S
                    self._check_disk()
                    self._check_camera()
                    self._check_readiness()
                if now >= next_status:
                    next_status = now + (STATUS_WHILE_RECORDING_S if self.machine.state_name == "Recording" else 1.0)
                    self._publish()
            except Exception:  # the clock must keep running: a failed check is logged, retried next tick
                log.exception("periodic check failed")

    def _dispatch(self, command: _Command) -> None:
        """Runs one command; the new status is published before a caller gets its answer, so
        whoever called begin_session, end_session or acknowledge reads the state it caused."""
        handler = getattr(self, f"_on_{command.name}")
        try:
            result = handler(**command.arguments)
        except ApplianceError as error:
            self._publish()
            if command.reply is None:
                log.error("%s failed: %s", command.name, error)
            else:
                command.reply.set_exception(error)
            return
        except Exception as error:  # a bug must not kill the event thread silently
            log.exception("%s failed", command.name)
            self._publish()
            if command.reply is not None:
                command.reply.set_exception(error)
            return
        self._publish()
        if command.reply is not None:
            command.reply.set_result(result)

    def _send(self, event: str, **arguments) -> m.Outcome:
        """Sends one event to the machine and executes the effects it requests, in order."""
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
                getattr(self, f"_effect_{effect}")()
            except _EffectFailed as error:
                log.error("effect %s failed: %s", effect, error)
                self._post("fault", kind=error.kind, reason=str(error))
            except (OSError, sqlite3.Error, ApplianceError) as error:
                log.error("effect %s failed: %s", effect, error)
                self._post("fault", kind="storage_error", reason=getattr(error, "strerror", None) or str(error))
        self._drive_outputs()
        self._publish()
        if outcome.state == "Armed" and before != "Armed" and self._inputs.footswitch_pressed:
            # Pressed while not armed (the permissive was off, so no laser yet): the press still
            # counts, or the treatment would start unrecorded the moment ready comes on.
            return self._send("trigger_on")
        return outcome

    # -- commands and part events (event thread) --------------------------------------------

    def _on_wake(self) -> None:
        """Nothing to do: the command only ends the loop's queue wait (see stop())."""

    def _on_refresh(self) -> None:
        self._drive_outputs()

    def _on_begin_session(self, subject_id: str, operator_id: str) -> SessionView:
        validated_id("subject ID", subject_id)
        validated_id("operator ID", operator_id)
        if self.machine.state_name != "Idle":
            raise BadInput(f"a session cannot start while the appliance is {self.machine.state_name}")
        readiness = self._readiness()
        self._pending_ids = (subject_id, operator_id)
        outcome = self._send("begin_session", readiness=readiness)
        if not outcome.accepted:
            raise NotReady("cannot start the session: " + "; ".join(self._readiness_problems(readiness)))
        return self._session_view()

    def _readiness_problems(self, readiness: Readiness) -> list[str]:
        """Every problem that keeps a session from arming, with the measured details."""
        problems = readiness.problems()
        if not readiness.disk_ok:
            projection = self._disk_projection()
            problems.append(f"{projection.seconds_left / 60:.0f} min of recording time left above the reserve, "
                            f"{self.settings.storage.max_session_minutes:g} min needed")
        camera = self._camera_problem()
        if camera:
            problems.append(camera)
        return problems

    def _on_end_session(self) -> None:
        if not self.machine.session_open:
            raise BadInput("no session is open")
        if not self._send("end_session").accepted:
            raise BadInput(f"the session cannot end while the appliance is {self.machine.state_name}; "
                           "acknowledge the fault first")

    def _on_acknowledge(self) -> None:
        if self.machine.state_name != "Error":
            raise BadInput("there is no fault to acknowledge")
        still_wrong = self._fault_still_present(self.machine.active_fault)
        if not self._send("acknowledge", cleared=still_wrong is None).accepted:
            raise BadInput(f"the fault has not cleared: {still_wrong}")

    def _on_shutdown(self) -> None:
        """Stopping the appliance: a clip in progress is sealed first, then the session closed."""
        if self.machine.session_open and self.machine.state_name in ("Armed", "Recording"):
            self._send("end_session")
        deadline = time.monotonic() + 25
        while self.machine.state_name in ("Finalizing", "Encrypting") and time.monotonic() < deadline:
            try:
                command = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if command.name in SEALING_EVENTS:
                self._dispatch(command)
            elif command.reply is not None:
                command.reply.set_exception(BadInput("the appliance is shutting down"))
        if self.machine.state_name == "Error" and self.machine.session_open:
            self._close_session()

    def _on_footswitch(self, pressed: bool, at_ns: int) -> None:
        self._inputs = replace(self._inputs, footswitch_pressed=pressed)
        if pressed:
            self._press_ns = at_ns
        self._send("trigger_on" if pressed else "trigger_off")

    def _on_interlock(self, closed: bool) -> None:
        self._inputs = replace(self._inputs, interlock_closed=closed)

    def _on_laser(self, on: bool) -> None:
        self._inputs = replace(self._inputs, laser_on=on)

    def _on_link_up(self, firmware_version: str) -> None:
        self._link_up = True
        self._link_view = replace(self._link_view, up=True, firmware_version=firmware_version)
        self._drive_outputs()

    def _on_link_down(self, reason: str) -> None:
        self._link_up = False
        self._link_view = replace(self._link_view, up=False)
        # No edges arrive while the link is down: the footswitch level is unknown, not released.
        self._inputs = Inputs()
        self._raise_fault_unless_idle("link_lost", reason)

    def _on_controller_fault(self, reason: str) -> None:
        log.warning("treatment controller fault: %s", reason)
        self.store.audit("fault", kind="controller_fault", reason=reason)

    def _on_camera_lost(self, reason: str) -> None:
        self._camera_lost = reason
        self._raise_fault_unless_idle("camera_lost", reason)

    def _on_encoder_failed(self, reason: str) -> None:
        self._raise_fault_unless_idle("encoder_failure", reason)

    def _on_fault(self, kind: str, reason: str) -> None:
        self._send("fault", reason=make_fault(kind, reason))

    def _on_finalized(self, result) -> None:
        self._finalized = result
        clip = self._clip
        self._clip_timings.append(ClipTiming(clip.recording.uid, clip.press_ns, clip.started_ns,
                                             result.first_frame_ns, result.last_frame_ns))
        self._send("finalized")

    def _on_sealed(self, recording: Recording) -> None:
        self._clip = None
        self._clip_count += 1
        self._send("sealed")

    def _on_seal_failed(self, kind: str, reason: str) -> None:
        self._send("seal_failed", reason=make_fault(kind, reason))

    def _on_clip_salvaged(self, recording: Recording) -> None:
        self._clip_count += 1

    def _raise_fault_unless_idle(self, kind: str, reason: str) -> None:
        if self.machine.state_name == "Idle":
            log.warning("%s while idle: %s (blocks the next session)", kind, reason)
            return
        self._send("fault", reason=make_fault(kind, reason))

    # -- effects (event thread) -------------------------------------------------------------

    def _effect_open_session(self) -> None:
        subject_id, operator_id = self._pending_ids
        self._pending_ids = None
        self._session = self.store.open_session(subject_id, operator_id)
        self._clip_count = 0

    def _effect_close_session(self) -> None:
        self._close_session()

    def _effect_start_preroll(self) -> None:
        """A fresh recorder per session: its pre-roll never holds video from before the session."""
        from appliance.recording import Recorder, RecordingSettings
        recording = self.settings.recording
        self._camera_progress = (-1, time.monotonic())   # the camera gets CAMERA_STALE_S to deliver
        self.recorder = Recorder(self.camera, RecordingSettings(
            codec=recording.codec, preset=recording.preset, crf=recording.crf,
            pre_roll_seconds=recording.pre_roll_s), on_event=self._on_recorder_event)
        try:
            self.recorder.start()
        except CameraUnavailable as error:
            self.recorder = None
            raise _EffectFailed("camera_lost", str(error)) from None
        except Exception as error:   # the encoder would not open (codec, size): not the camera
            self.recorder = None
            raise _EffectFailed("encoder_failure", str(error) or type(error).__name__) from None

    def _effect_stop_preroll(self) -> None:
        recorder, self.recorder = self.recorder, None
        if recorder is not None:
            recorder.stop()
        if self.camera is not None:
            self.camera.frames.latest = None

    def _effect_start_clip(self) -> None:
        try:
            keys = self._load_keys(reload=True)
        except BadInput as error:
            raise _EffectFailed("key_missing", str(error)) from None
        recording = self.store.start_recording(self._session.uid)
        try:
            self.recorder.start_clip(recording.path, keys.recipients)
        except Exception as error:
            # Nothing was recorded: the row says so, and there is no clip to finalize.
            reason = str(error) or type(error).__name__
            self.store.interrupt_recording(recording.uid, reason=f"the recording could not start: {reason}")
            kind = "storage_error" if isinstance(error, (OSError, BadInput)) else "encoder_failure"
            raise _EffectFailed(kind, reason) from None
        entered_recording_ns = self._transitions[-1][2]
        self._clip = _OpenClip(recording, keys, entered_recording_ns, self._press_ns)

    def _effect_start_post_roll(self) -> None:
        self._post_roll_deadline = time.monotonic() + self.settings.recording.post_roll_s

    def _effect_cancel_post_roll(self) -> None:
        self._post_roll_deadline = None

    def _effect_finalize(self) -> None:
        clip = self._clip
        if clip is None:  # the clip never started (its start failed): nothing to finalize
            self._post("seal_failed", kind="encoder_failure", reason="the recording could not be started")
            return
        device_key = clip.keys.device_key
        metadata = {"session": clip.recording.session_uid, "recording": clip.recording.uid,
                    "appliance_version": __version__}

        def finalize() -> None:
            try:
                result = self.recorder.stop_clip(device_key=device_key, metadata=metadata)
            except Exception as error:  # reported as an event: the clip is salvaged, then Error
                log.exception("finalizing the clip failed")
                self._post("seal_failed", kind="encoder_failure", reason=str(error) or type(error).__name__)
                return
            self._post("finalized", result=result)
        self._start_worker(finalize, "finalize")

    def _effect_seal(self) -> None:
        clip, result = self._clip, self._finalized
        device_public = clip.keys.device_key.public_key()

        def seal() -> None:
            from appliance import vault
            try:
                verification = vault.verify(clip.recording.path, device_public)
                if not verification.ok or verification.state != "sealed":
                    raise ApplianceError(f"the sealed recording failed verification: {verification.problem}")
                sealed = self.store.seal_recording(
                    clip.recording.uid, bytes=result.bytes, duration_s=result.duration_s, frames=result.frames,
                    dropped=result.dropped, sha256=result.ciphertext_sha256,
                    manifest={"state": verification.state, "segments": verification.segments,
                              "ciphertext_length": verification.ciphertext_length,
                              "device_key_id": verification.device_key_id, **verification.metadata})
            except Exception as error:
                log.exception("sealing the clip failed")
                self._post("seal_failed", kind="storage_error", reason=str(error) or type(error).__name__)
                return
            self._post("sealed", recording=sealed)
        self._start_worker(seal, "seal")

    def _effect_salvage_clip(self) -> None:
        clip = self._clip
        self._clip = None
        if clip is None:
            return
        device_key = clip.keys.device_key

        def salvage() -> None:
            salvaged = self._mark_interrupted(clip.recording, device_key, "finalizing the recording failed")
            self._post("clip_salvaged", recording=salvaged)
        self._start_worker(salvage, "salvage")

    def _effect_show_fault(self) -> None:
        fault = self.machine.active_fault
        self.store.audit("fault", kind=fault.kind, what_happened=fault.what_happened)

    def _effect_clear_fault(self) -> None:
        self.store.audit("fault_acknowledged")

    # -- helpers (event thread) -------------------------------------------------------------

    def _close_session(self) -> None:
        if self._session is not None:
            self.store.close_session(self._session.uid)
            self._session = None

    def _start_worker(self, body: Callable[[], None], name: str) -> None:
        self._workers = [w for w in self._workers if w.is_alive()]
        worker = threading.Thread(target=body, name=f"controller-{name}")
        self._workers.append(worker)
        worker.start()

    def _drive_outputs(self) -> None:
        """The permissive follows the state: the laser may fire only while a press records."""
        if self.link is None:
            return
        state = self.machine.state_name
        self.link.set_ready(state in ("Armed", "Recording"))
        self.link.set_recording_led(state == "Recording")

    def _readiness(self) -> Readiness:
        return Readiness(
            camera_ok=self._camera_problem() is None,
            link_up=self._link_up,
            disk_ok=self._disk_projection().can_arm,
            key_present=self._key_problem() is None,
            recovery_done=self._recovery_done,
        )

    def _fault_still_present(self, fault: Fault | None) -> str | None:
        """None when the condition behind `fault` is gone, else what is still wrong."""
        kind = fault.kind if fault else ""
        if kind == "camera_lost" or self._camera_lost is not None:
            problem = self._reopen_camera_if_lost()
            if problem:
                return f"the camera is still unavailable ({problem})"
        if kind == "link_lost" and not self._link_up:
            return "the treatment controller is not connected"
        if kind == "storage_critical" and self._disk_projection().must_stop:
            return "the disk is still almost full"
        if kind == "key_missing":
            return self._key_problem()
        return None

    def _camera_problem(self) -> str | None:
        """What keeps the camera from recording, or None. Outside a session the camera is off, so
        only a known loss counts; with a session, frames must keep arriving."""
        if self._camera_lost is not None:
            return f"the camera is not delivering frames ({self._camera_lost})"
        if self.camera is None:
            return "the camera could not be opened"
        if self.recorder is not None and time.monotonic() - self._camera_progress[1] > CAMERA_STALE_S:
            return f"the camera has delivered no frame for {CAMERA_STALE_S:.0f} s"
        return None

    def _check_readiness(self) -> None:
        """In Idle, keeps the published list of what would refuse a session current."""
        if self.machine.state_name != "Idle":
            self._not_ready = ()
            return
        readiness = self._readiness()
        self._not_ready = () if readiness.ok else tuple(self._readiness_problems(readiness))

    def _check_camera(self) -> None:
        if self.camera is None or self.recorder is None:
            return
        counters = self.camera.counters_snapshot()
        seen = counters.delivered + counters.dropped + counters.incomplete
        if seen != self._camera_progress[0]:
            self._camera_progress = (seen, time.monotonic())
        problem = self._camera_problem()
        if problem and self._camera_lost is None:
            self._on_camera_lost(problem)

    def _reopen_camera_if_lost(self) -> str | None:
        if self._camera_lost is None and self.camera is not None:
            return None
        if self.recorder is not None:
            return "the camera is still in use"
        return self._open_camera()

    def _key_problem(self) -> str | None:
        try:
            self._load_keys(reload=True)
        except BadInput as error:
            return str(error)
        return None

    def _load_keys(self, reload: bool = False):
        if self._keys is None or reload:
            self._keys = load_keys(self.settings)
        return self._keys

    def _bitrate(self) -> float:
        measured = self.recorder.stats().get("bitrate_bps") if self.recorder else None
        return float(measured) if measured else float(self.settings.recording.bitrate_estimate_bps)

    def _disk_projection(self) -> disk_guard.DiskProjection:
        storage = self.settings.storage
        return disk_guard.project(
            free_bytes=disk_guard.free_bytes(self.settings.data.dir), bitrate_bps=self._bitrate(),
            reserve_bytes=storage.reserve_mb * 1_000_000, max_session_s=storage.max_session_minutes * 60,
            warn_s=storage.warn_minutes * 60)

    def _check_disk(self) -> None:
        self._disk = self._disk_projection()
        if self._disk.must_stop and self.machine.state_name in ("Armed", "Recording"):
            self._send("fault", reason=make_fault(
                "storage_critical", f"{self._disk.seconds_left:.0f} s of recording time left"))

    def _displayed_inputs(self, link_stats: dict) -> Inputs:
        """The lamps show the board's levels (STATE, every 100 ms); the machine acts on edges."""
        levels = link_stats.get("raw_levels") if self._link_up else None
        if not levels:
            return self._inputs
        return Inputs(footswitch_pressed=levels.get("footswitch", False),
                      interlock_closed=levels.get("interlock", False), laser_on=levels.get("laser", False))

    def _session_view(self) -> SessionView | None:
        if self._session is None:
            return None
        return SessionView(self._session.uid, self._session.subject_id, self._session.operator_id,
                           self._session.opened_at, self._clip_count)

    def _publish(self) -> None:
        recording = self.machine.state_name == "Recording"
        now_ns = time.monotonic_ns()
        stats = self.recorder.stats() if self.recorder is not None else {}
        link_stats = self.link.stats() if self.link is not None else {}
        link_view = replace(self._link_view, frames=link_stats.get("frames", 0),
                            crc_errors=link_stats.get("crc_errors", 0), resyncs=link_stats.get("resyncs", 0),
                            round_trip_ms=link_stats.get("round_trip_ms"))
        status = ApplianceStatus(
            state=self.machine.state_name,
            session=self._session_view(),
            recording_elapsed_s=(now_ns - self._clip.started_ns) / 1e9 if recording and self._clip else None,
            post_roll_remaining_s=(max(0.0, self._post_roll_deadline - time.monotonic())
                                   if self._post_roll_deadline is not None else None),
            seal_progress=SEAL_STEPS.get(self.machine.state_name),
            inputs=self._displayed_inputs(link_stats),
            link=link_view,
            storage_seconds_left=self._disk.seconds_left if self._disk else None,
            storage_warning=bool(self._disk and self._disk.warn),
            fault=self.machine.active_fault,
            not_ready=self._not_ready if self.machine.state_name == "Idle" else (),
            camera_fps=stats.get("fps"),
            dropped_frames=int(stats.get("dropped", 0)),
        )
        with self._status_changed:
            changed = status != self._status
            self._status = status
            self._status_changed.notify_all()
        if changed:
            with self._subscribers_lock:
                subscribers = list(self._subscribers)
            for callback in subscribers:
                try:
                    callback(status)
                except Exception:
                    log.exception("status subscriber failed")

    # -- start-up recovery and parts --------------------------------------------------------

    def _recover(self) -> None:
        for recording in self.store.open_recordings():
            try:
                device_key = self._load_keys().device_key
            except BadInput as error:
                log.error("recovery needs the device key: %s", error)
                return  # recovery_done stays False: no session can arm until the key is back
            self._mark_interrupted(recording, device_key, "the appliance stopped while recording")
        for session in self.store.open_sessions():
            self.store.close_session(session.uid)
        self._recovery_done = True

    def _mark_interrupted(self, recording: Recording, device_key, reason: str) -> Recording:
        """Keeps a recording whose writer never closed: signed `interrupted`, DB row, audit entry."""
        from appliance import vault
        metadata = {"session": recording.session_uid, "recording": recording.uid, "reason": reason}
        figures: dict = {}
        try:
            if vault.manifest.manifest_path(recording.path).exists():
                # Signed but never committed (stopped between manifest and database): keep it
                # as interrupted; its manifest still proves what the file holds.
                verification = vault.verify(recording.path, device_key.public_key())
                reason = f"{reason}; manifest check: {verification.problem or 'intact'}"
            else:
                verification = vault.mark_interrupted(recording.path, device_key, metadata)
            figures = dict(bytes=verification.ciphertext_length,
                           manifest={"state": "interrupted", "segments": verification.segments})
            signed, _ = vault.manifest.read_signed(recording.path)
            figures["sha256"] = signed["ciphertext_sha256"]
        except (BadInput, FileNotFoundError) as error:
            reason = f"{reason}; no recoverable data ({error})"
        return self.store.interrupt_recording(recording.uid, reason=reason, **figures)

    def _open_camera(self) -> str | None:
        """Opens the configured camera (it runs only while a session is armed); None or the problem."""
        from appliance.camera import open_camera
        camera_settings = self.settings.camera
        options = {}
        if camera_settings.source == "synthetic":  # real cameras report their own size and rate
            options = dict(width=camera_settings.width, height=camera_settings.height, fps=camera_settings.fps)
        try:
            camera = open_camera(camera_settings.source, **options)
        except ApplianceError as error:
            self.camera = None
            return str(error)
        camera.frames = _LatestFrameQueue(camera.frames.maxsize)
        self.camera, self._camera_lost = camera, None
        return None

    def _start_parts(self) -> None:
        problem = self._open_camera()
        if problem:
            log.error("camera unavailable: %s", problem)
        port = self.settings.controller.port
        if port == SIMULATED_CONTROLLER:
            from firmware_bridge.simulator import Simulator
            port = str(self.settings.data.dir / "simulated-controller")
            self.simulator = Simulator(port).start()
        from firmware_bridge.link import ControllerLink
        self.link = ControllerLink(port, on_event=self._on_link_event)
        self.link.start()

    def _stop_parts(self) -> None:
        for part in (self.link, self.simulator, self.recorder):
            if part is not None:
                try:
                    part.stop()
                except Exception:
                    log.exception("stopping %s failed", type(part).__name__)

    def _on_recorder_event(self, event) -> None:
        kind = type(event).__name__
        if kind == "CameraLost":
            self._post("camera_lost", reason=event.reason)
        elif kind == "ClipFault":
            self._post("encoder_failed", reason=event.reason)

    def _on_link_event(self, event) -> None:
        kind = type(event).__name__
        if kind in ("FootswitchPressed", "FootswitchReleased"):
            self._post("footswitch", pressed=kind == "FootswitchPressed", at_ns=event.at_ns)
        elif kind in ("InterlockClosed", "InterlockOpened"):
            self._post("interlock", closed=kind == "InterlockClosed")
        elif kind in ("LaserOn", "LaserOff"):
            self._post("laser", on=kind == "LaserOn")
        elif kind == "LinkUp":
            self._post("link_up", firmware_version=str(event.firmware_version))
        elif kind == "LinkDown":
            self._post("link_down", reason=event.reason)
        elif kind == "ControllerFault":
            self._post("controller_fault", reason=event.reason)


class _LatestFrameQueue(queue.Queue):
    """The camera's bounded frame queue, remembering the newest frame put for the preview.

    The recorder consumes the queue; the kiosk only ever wants the latest frame, so keeping a
    reference costs nothing and never slows the camera or the recorder."""

    latest = None

    def _put(self, item) -> None:
        super()._put(item)
        self.latest = item


@dataclass(frozen=True)
class Keys:
    recipients: list
    device_key: object


def load_keys(settings: Settings) -> Keys:
    """The recipients' public keys (to encrypt to) and the device key (to sign manifests)."""
    from appliance.vault import keys
    return Keys([keys.load_recipient_public(path) for path in settings.recipient_paths],
                keys.load_device_key(settings.device_key_path))

