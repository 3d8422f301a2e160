"""The machine's effects, carried out: the session and its clips, from opening to sealing.

The controller's table maps each effect the machine names (appliance/machine.py) to a method
here and calls it on the event thread. This object owns what the effects leave behind: the open
session, the clip being recorded or sealed, and the post-roll deadline. Database writes go
through the DatabaseWriter; the slow sealing steps through the ClipSealer's background path.
An effect that cannot be carried out raises EffectFailed with the fault it becomes.
"""

from __future__ import annotations

import os
import time

from appliance.camera import CameraUnavailable
from appliance.config import Settings
from appliance.control.health import Health
from appliance.control.identity import SessionIdentity, discard_card, seal_beside
from appliance.control.keys import KeyRing
from appliance.control.parts import Parts
from appliance.control.sealing import ClipSealer, OpenClip
from appliance.control.treatment_log import TreatmentLog
from appliance.errors import ApplianceError, BadInput
from appliance.faults import FaultKind
from appliance.status import SessionView


class EffectFailed(ApplianceError):
    """An effect could not be carried out; `kind` names the fault it becomes."""

    def __init__(self, kind: FaultKind, reason: str):
        super().__init__(reason)
        self.kind = kind


class Effects:
    def __init__(self, settings: Settings, machine, parts: Parts, keys: KeyRing, health: Health,
                 database, sealer: ClipSealer):
        self._settings = settings
        self._machine = machine
        self._parts = parts
        self._keys = keys
        self._health = health
        self._database = database
        self._sealer = sealer
        self.treatment = TreatmentLog(database, settings.recording.pre_roll_s)
        self.last_emission_report: str | None = None     # the last closed session's
        self.session = None
        self.pending_identity: SessionIdentity | None = None   # set by begin_session for open_session
        self.identity: SessionIdentity | None = None   # the open session's; in memory only
        self.press_ns: int | None = None                  # the latest footswitch press, for the clip
        self.clip: OpenClip | None = None
        self.finalized = None                             # the clip's ClipResult, for seal
        self.clip_count = 0
        self.post_roll_deadline: float | None = None      # monotonic s

    # -- the effects ------------------------------------------------------------------------

    def open_session(self) -> None:
        identity, self.pending_identity = self.pending_identity, None
        self.session = self._database.call(lambda store: store.open_session(
            identity.subject_id, identity.operator_id, accession_number=identity.accession_number,
            study_instance_uid=identity.study_instance_uid))
        self.identity = identity
        self.clip_count = 0

    def close_session(self) -> None:
        if self.session is not None:
            uid = self.session.uid
            self._database.call(lambda store: store.close_session(uid))
            self.last_emission_report = self._view(*self.treatment.close_session(uid)).emission_report
            self.session = self.identity = None

    def start_preroll(self) -> None:
        self._health.camera_started()
        try:
            self._parts.start_recorder()
        except CameraUnavailable as error:
            raise EffectFailed(FaultKind.CAMERA_LOST, str(error)) from None
        except Exception as error:   # the encoder would not open (codec, size): not the camera
            raise EffectFailed(FaultKind.ENCODER_FAILURE, str(error) or type(error).__name__) from None

    def stop_preroll(self) -> None:
        self._parts.stop_recorder()

    def start_clip(self) -> None:
        started_ns = time.monotonic_ns()
        try:
            keys = self._keys.load(reload=True)
        except BadInput as error:
            raise EffectFailed(FaultKind.KEY_MISSING, str(error)) from None
        session_uid = self.session.uid
        recording = self._database.call(lambda store: store.start_recording(session_uid))
        recording_id = os.urandom(16)
        try:
            # Sealed before the first frame, so even a clip cut short by a crash carries it.
            card = seal_beside(recording.path, self.identity, keys.recipients, recording_id)
            self._parts.recorder.start_clip(recording.path, keys.recipients, recording_id=recording_id)
        except Exception as error:
            # Nothing was recorded: the row says so, and there is no clip to finalize.
            discard_card(recording.path)
            reason = str(error) or type(error).__name__
            self._database.call(lambda store: store.interrupt_recording(
                recording.uid, reason=f"the recording could not start: {reason}"))
            kind = FaultKind.STORAGE_ERROR if isinstance(error, (OSError, BadInput)) else FaultKind.ENCODER_FAILURE
            raise EffectFailed(kind, reason) from None
        self.clip = OpenClip(recording, keys, started_ns, self.press_ns, card)

    def start_post_roll(self) -> None:
        self.post_roll_deadline = time.monotonic() + self._settings.recording.post_roll_s

    def cancel_post_roll(self) -> None:
        self.post_roll_deadline = None

    def finalize(self) -> None:
        self._sealer.finalize(self.clip, self._parts.recorder, self.treatment.clip_metadata)

    def seal(self) -> None:
        self._sealer.seal(self.clip, self.finalized)

    def salvage_clip(self) -> None:
        clip, self.clip = self.clip, None
        self._sealer.salvage(clip)

    def show_fault(self) -> None:
        fault = self._machine.active_fault
        self._database.audit("fault", kind=fault.kind, what_happened=fault.what_happened)

    def clear_fault(self) -> None:
        self._database.audit("fault_acknowledged")

    # -- what the sealing steps report back ---------------------------------------------------

    def record_edge(self, edge) -> None:
        """An input edge from the controller link, for the treatment timeline."""
        session_uid = self.session.uid if self.session is not None else None
        self.treatment.edge(edge, self._machine.state_name, session_uid)

    def emissions_overdue(self) -> None:
        self.treatment.overdue(time.monotonic_ns(), clip_open=self.clip is not None)

    def clip_finalized(self, result) -> OpenClip:
        self.treatment.clip_covered(result.first_frame_ns, result.last_frame_ns)
        self.finalized = result
        return self.clip

    def clip_sealed(self) -> None:
        self.clip = self.finalized = None
        self.clip_count += 1

    def clip_salvaged(self) -> None:
        self.clip_count += 1

    # -- for the status -----------------------------------------------------------------------

    def session_view(self) -> SessionView | None:
        if self.session is None:
            return None
        return self._view(*self.treatment.session_counts(self.session.uid))

    def _view(self, recorded: int, unrecorded_board_ms: tuple[int, ...]) -> SessionView:
        return SessionView(self.session.uid, self.session.subject_id, self.session.operator_id,
                           self.session.opened_at, self.clip_count, recorded, unrecorded_board_ms)

    def recording_elapsed_s(self) -> float | None:
        return (time.monotonic_ns() - self.clip.started_ns) / 1e9 if self.clip else None

    def post_roll_remaining_s(self) -> float | None:
        if self.post_roll_deadline is None:
            return None
        return max(0.0, self.post_roll_deadline - time.monotonic())
