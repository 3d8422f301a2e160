"""The appliance's state machine: when to record, and what must happen first. Pure: no I/O.

The controller feeds it events from exactly one thread and executes the side effects it asks
for. A transition never performs an effect itself; it appends an `Effect` name to `effects`,
which the controller drains after each event (`RecorderMachine.handle`). Guards look only at
the event's arguments and at the machine's own flags, so every event in every state is
testable without a camera, a serial port or a disk (tests/test_machine.py).

Refinements of the design brief's table (docs/state-machine.md shows the generated diagram):

- Recording is a compound state: Capturing (the footswitch is held) and PostRoll (released, the
  post-roll timer runs). trigger_off enters PostRoll, whose entry starts the timer and whose
  exit, by whatever transition, cancels it; trigger_on during the post-roll returns to Capturing
  and the same recording continues. post_roll_elapsed exists only in PostRoll, so a timer that
  fired just before a cancel cannot end the recording.
- A fault while Recording does not jump to Error: the clip is finalized and sealed first (it is
  remembered as `pending_fault`), and Encrypting --sealed--> Error honours it. A fault while
  Finalizing or Encrypting is remembered the same way. In Idle or Armed it goes to Error at once.
  In Error, later faults are accepted but the first one (the cause) stays shown.
- end_session while Recording/Finalizing/Encrypting finishes the clip first, then closes the
  session (Encrypting --sealed--> Idle).
- seal_failed (finalize or seal could not complete, e.g. the encoder died) goes to Error and asks
  the controller to salvage the clip: its complete segments are kept and marked interrupted.
- acknowledge leaves Error only when the controller reports the fault cleared; an open session
  is closed on the way to Idle, so the technician starts a fresh one.
"""

from __future__ import annotations

from dataclasses import dataclass

from statemachine import State, StateChart
from statemachine.exceptions import TransitionNotAllowed

from appliance.status import Fault

# Effects the controller executes, in the order the machine lists them.
OPEN_SESSION = "open_session"          # DB row + audit "session opened"
CLOSE_SESSION = "close_session"        # DB row + audit "session closed"
START_PREROLL = "start_preroll"        # recorder starts encoding into its pre-roll ring
STOP_PREROLL = "stop_preroll"          # recorder stops
START_CLIP = "start_clip"              # new recording from the oldest pre-roll keyframe
START_POST_ROLL = "start_post_roll"    # arm the post-roll timer
CANCEL_POST_ROLL = "cancel_post_roll"  # disarm it; the same recording continues
FINALIZE = "finalize"                  # off-thread: flush encoder, close fMP4, seal the vault
SEAL = "seal"                          # off-thread: verify, signed manifest, DB + audit
SALVAGE_CLIP = "salvage_clip"          # keep complete segments, mark the recording interrupted
SHOW_FAULT = "show_fault"              # audit the fault, show what happened / what to do
CLEAR_FAULT = "clear_fault"            # the fault is gone from the status
EFFECTS = (OPEN_SESSION, CLOSE_SESSION, START_PREROLL, STOP_PREROLL, START_CLIP, START_POST_ROLL,
           CANCEL_POST_ROLL, FINALIZE, SEAL, SALVAGE_CLIP, SHOW_FAULT, CLEAR_FAULT)


@dataclass(frozen=True)
class Readiness:
    """What must hold before a session may arm; the controller measures it, the machine judges."""

    camera_ok: bool
    link_up: bool
    disk_ok: bool
    key_present: bool
    recovery_done: bool

    @property
    def ok(self) -> bool:
        return self.camera_ok and self.link_up and self.disk_ok and self.key_present and self.recovery_done

    def problems(self) -> list[str]:
        checks = (
            (self.camera_ok, "the camera is not delivering frames"),
            (self.link_up, "the treatment controller is not connected"),
            (self.disk_ok, "the disk cannot hold a full-length session"),
            (self.key_present, "the recipient key is missing"),
            (self.recovery_done, "start-up recovery has not finished"),
        )
        return [problem for passed, problem in checks if not passed]


@dataclass(frozen=True)
class Outcome:
    accepted: bool
    effects: tuple[str, ...]
    state: str


class RecorderMachine(StateChart):
    """Idle, Armed, Recording, Finalizing, Encrypting, Error (names as the UI shows them)."""

    allow_event_without_transition = False  # an event that does not apply is refused, visibly
    catch_errors_as_events = False          # a bug in a callback must raise, not become an event

    idle = State("Idle", initial=True)
    armed = State("Armed")

    class recording(State.Compound, name="Recording"):
        capturing = State("Capturing", initial=True)
        post_roll = State("PostRoll", enter="begin_post_roll", exit="end_post_roll")

        trigger_off = capturing.to(post_roll)

    finalizing = State("Finalizing")
    encrypting = State("Encrypting")
    error = State("Error")

    begin_session = idle.to(armed, cond="ready_to_arm", on="arm_session")
    end_session = (
        armed.to(idle, on="disarm_session")
        | recording.to(finalizing, on="finish_clip_then_close")
        | finalizing.to.itself(internal=True, on="close_after_seal")
        | encrypting.to.itself(internal=True, on="close_after_seal")
    )
    trigger_on = armed.to(recording, on="record_from_preroll") | recording.post_roll.to(recording.capturing)
    post_roll_elapsed = recording.post_roll.to(finalizing, on="finish_clip")
    finalized = finalizing.to(encrypting, on="request_seal")
    sealed = (
        encrypting.to(error, cond="has_pending_fault", on="raise_pending_fault")
        | encrypting.to(idle, cond="session_ending", on="close_session_after_seal")
        | encrypting.to(armed)
    )
    seal_failed = (
        finalizing.to(error, on="salvage_into_fault")
        | encrypting.to(error, on="salvage_into_fault")
    )
    fault = (
        idle.to(error, on="enter_fault")
        | armed.to(error, on="disarm_into_fault")
        | recording.to(finalizing, on="finish_clip_before_fault")
        | finalizing.to.itself(internal=True, on="remember_fault")
        | encrypting.to.itself(internal=True, on="remember_fault")
        | error.to.itself(internal=True)
    )
    acknowledge = error.to(idle, cond="fault_cleared", on="clear_fault_and_close")

    def __init__(self) -> None:
        self.session_open = False
        self.session_ending = False
        self.pending_fault: Fault | None = None
        self.active_fault: Fault | None = None
        self.effects: list[str] = []
        super().__init__()

    # -- the one entry point the controller uses ------------------------------------------

    def handle(self, event: str, **arguments) -> Outcome:
        """Sends `event`; returns whether it applied and the effects to execute, in order."""
        self.effects = []
        try:
            self.send(event, **arguments)
        except TransitionNotAllowed:
            return Outcome(False, (), self.state_name)
        return Outcome(True, tuple(self.effects), self.state_name)

    @property
    def state_name(self) -> str:
        """The top-level state (one of the six), whatever sub-state of Recording is active."""
        (state,) = [state for state in self.configuration if state.parent is None]
        return state.name

    @property
    def in_post_roll(self) -> bool:
        return self.recording.post_roll.is_active

    # -- guards (pure: event arguments and flags only) -------------------------------------

    def ready_to_arm(self, readiness: Readiness) -> bool:
        return readiness.ok

    def has_pending_fault(self) -> bool:
        return self.pending_fault is not None

    def fault_cleared(self, cleared: bool) -> bool:
        return cleared

    # -- actions: flags and requested effects only -----------------------------------------

    def arm_session(self) -> None:
        self.session_open, self.session_ending = True, False
        self.effects += [OPEN_SESSION, START_PREROLL]

    def disarm_session(self) -> None:
        self.session_open = False
        self.effects += [STOP_PREROLL, CLOSE_SESSION]

    def finish_clip_then_close(self) -> None:
        self.session_ending = True
        self._finalize_clip()

    def close_after_seal(self) -> None:
        self.session_ending = True

    def record_from_preroll(self) -> None:
        self.effects.append(START_CLIP)

    def begin_post_roll(self) -> None:
        self.effects.append(START_POST_ROLL)

    def end_post_roll(self) -> None:
        """Leaving PostRoll for any reason (a new press, the timer, a fault, end_session)."""
        self.effects.append(CANCEL_POST_ROLL)

    def finish_clip(self) -> None:
        self._finalize_clip()

    def request_seal(self) -> None:
        self.effects.append(SEAL)

    def raise_pending_fault(self) -> None:
        self.active_fault, self.pending_fault = self.pending_fault, None
        self.effects += [STOP_PREROLL, SHOW_FAULT]

    def close_session_after_seal(self) -> None:
        self.session_open = self.session_ending = False
        self.effects += [STOP_PREROLL, CLOSE_SESSION]

    def salvage_into_fault(self, reason: Fault) -> None:
        self.active_fault, self.pending_fault = self.pending_fault or reason, None
        self.effects += [SALVAGE_CLIP, STOP_PREROLL, SHOW_FAULT]

    def enter_fault(self, reason: Fault) -> None:
        self.active_fault = reason
        self.effects.append(SHOW_FAULT)

    def disarm_into_fault(self, reason: Fault) -> None:
        self.active_fault = reason
        self.effects += [STOP_PREROLL, SHOW_FAULT]

    def finish_clip_before_fault(self, reason: Fault) -> None:
        self.pending_fault = reason
        self._finalize_clip()

    def remember_fault(self, reason: Fault) -> None:
        self.pending_fault = self.pending_fault or reason

    def clear_fault_and_close(self) -> None:
        if self.session_open:
            self.effects.append(CLOSE_SESSION)
        self.session_open = self.session_ending = False
        self.active_fault = None
        self.effects.append(CLEAR_FAULT)

    def _finalize_clip(self) -> None:
        self.effects.append(FINALIZE)


def mermaid_diagram() -> str:
    """The state diagram as Mermaid, generated from RecorderMachine's own transitions.

    Every transition is drawn, internal ones as self-loops, labelled `event [guard] / action`
    (`!guard` when the transition requires it false); Recording's sub-states are drawn inside
    it, with their entry and exit actions. docs/state-machine.md embeds this text and
    tests/test_machine.py fails when the committed copy is stale.
    """
    lines = ["stateDiagram-v2", f"    [*] --> {RecorderMachine.initial_state.id}"]
    _draw(RecorderMachine.states, lines, indent="    ")
    return "\n".join(lines) + "\n"


def _draw(states, lines: list[str], indent: str) -> None:
    """Draws `states`; a transition leaving a compound state's children is drawn outside it."""
    for state in states:
        if state.states:
            lines.append(f"{indent}state {state.id} {{")
            (initial,) = [child for child in state.states if child.initial]
            lines.append(f"{indent}    [*] --> {initial.id}")
            _draw(state.states, lines, indent + "    ")
            lines.append(f"{indent}}}")
            lines += [f"{indent}{_edge(t)}" for child in state.states for t in child.transitions
                      if t.target.parent is not state]
        lines += [f"{indent}{_edge(t)}" for t in state.transitions
                  if not t.initial and (state.parent is None or t.target.parent is state.parent)]
    for state in states:
        lines.append(f"{indent}{state.id} : {state.name}")
        lines += [f"{indent}{state.id} : {group} / {spec.func}"
                  for group, specs in (("entry", state.enter), ("exit", state.exit))
                  for spec in specs if not spec.is_convention]


def _edge(transition) -> str:
    return f"{transition.source.id} --> {transition.target.id} : {_label(transition)}"


def _label(transition) -> str:
    guards = [spec.func if spec.expected_value else f"!{spec.func}" for spec in transition.cond
              if not spec.is_convention]
    actions = [spec.func for spec in transition.on if not spec.is_convention]
    label = " ".join(str(event) for event in transition.events)
    if guards:
        label += f" [{' and '.join(guards)}]"
    if actions:
        label += f" / {', '.join(actions)}"
    return label
