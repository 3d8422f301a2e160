"""Clip sealing: finalize, seal, or salvage a clip off the event thread, and report back.

Each step runs in the background (it flushes the encoder, fsyncs, reads the whole file back)
and reports exactly one command to the event thread: what it produced, or SealFailed with the
fault it becomes. Every step goes through the one path in `_attempt`. The database is written
only through the DatabaseWriter, so a sealing commit happens on its thread and never holds
anything the kiosk waits on.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Callable

from appliance import __version__
from appliance.control import commands
from appliance.control.keys import Keys
from appliance.control.identity import discard_card
from appliance.control.recovery import keep_what_was_written
from appliance.errors import ApplianceError
from appliance.faults import FaultKind
from appliance.storage.database import Recording

log = logging.getLogger("appliance.controller")

RunInBackground = Callable[[Callable[[], None], str], None]


@dataclass(frozen=True)
class OpenClip:
    """A clip between its start and its seal (or salvage)."""

    recording: Recording
    keys: Keys             # loaded when the clip started: sealing never depends on a later read
    started_ns: int        # monotonic ns the machine entered Recording
    press_ns: int | None   # the footswitch edge as the host decoded it
    card: str | None = None   # the session's identity card sealed for this recording (identity.py)


@dataclass(frozen=True)
class ClipTiming:
    """When a clip's trigger arrived and which capture times the sealed clip covers (monotonic ns)."""

    recording_uid: str
    press_ns: int | None        # the footswitch edge as the host decoded it
    recording_ns: int           # the machine entered Recording
    first_frame_ns: int | None
    last_frame_ns: int | None


class Workers:
    """Runs each sealing step on its own thread; `join` waits for all of them at shutdown."""

    def __init__(self):
        self._threads: list[threading.Thread] = []

    def __call__(self, body: Callable[[], None], name: str) -> None:
        self._threads = [thread for thread in self._threads if thread.is_alive()]
        thread = threading.Thread(target=body, name=f"controller-{name}")
        self._threads.append(thread)
        thread.start()

    def join(self, timeout: float) -> None:
        for thread in self._threads:
            thread.join(timeout)


class ClipSealer:
    """`report(command)` posts to the event thread; `run_in_background(body, name)` runs a step
    (Workers on the appliance, the calling thread in tests)."""

    def __init__(self, database, report: Callable[[object], None], run_in_background: RunInBackground):
        self._database = database
        self._report = report
        self._run_in_background = run_in_background

    def finalize(self, clip: OpenClip | None, recorder, timeline: Callable[[int | None, float], dict]) -> None:
        """Flushes the encoder and closes the clip's file with its signed manifest, whose
        metadata carries the clip's treatment timeline (`timeline(first_frame_ns, duration_s)`)."""
        if clip is None:  # the clip never started (its start failed): nothing to finalize
            self._report(commands.SealFailed(FaultKind.ENCODER_FAILURE, "the recording could not be started"))
            return
        names = {"session": clip.recording.session_uid, "recording": clip.recording.uid,
                 "appliance_version": __version__, **({"identity_card": clip.card} if clip.card else {})}

        def metadata(first_frame_ns: int | None, duration_s: float) -> dict:
            return {**names, **timeline(first_frame_ns, duration_s)}

        def stop_clip():
            result = recorder.stop_clip(device_key=clip.keys.device_key, metadata=metadata)
            discard_card(clip.recording.path)   # the signed manifest carries it now
            return commands.Finalized(result)
        self._attempt("finalize", FaultKind.ENCODER_FAILURE, stop_clip)

    def seal(self, clip: OpenClip, result) -> None:
        """Verifies the finished file against its manifest, then commits it as sealed."""
        device_public = clip.keys.device_key.public_key()

        def verify_and_commit():
            from appliance import vault
            verification = vault.verify(clip.recording.path, device_public)
            if not verification.ok or verification.state != "sealed":
                raise ApplianceError(f"the sealed recording failed verification: {verification.problem}")
            manifest = {"state": verification.state, "segments": verification.segments,
                        "ciphertext_length": verification.ciphertext_length,
                        "device_key_id": verification.device_key_id, **verification.metadata}
            manifest.pop("identity_card", None)   # sealed in the manifest; the database keeps no copy
            sealed = self._database.call(lambda store: store.seal_recording(
                clip.recording.uid, bytes=result.bytes, duration_s=result.duration_s, frames=result.frames,
                dropped=result.dropped, sha256=result.file_digest, manifest=manifest))
            return commands.Sealed(sealed)
        self._attempt("seal", FaultKind.STORAGE_ERROR, verify_and_commit)

    def salvage(self, clip: OpenClip | None) -> None:
        """Keeps the complete segments of a clip that could not be finalized, as interrupted."""
        if clip is None:
            return

        def keep_and_commit():
            reason, figures = keep_what_was_written(clip.recording, clip.keys.device_key,
                                                    "finalizing the recording failed")
            return commands.ClipSalvaged(self._database.call(
                lambda store: store.interrupt_recording(clip.recording.uid, reason=reason, **figures)))
        self._attempt("salvage", FaultKind.STORAGE_ERROR, keep_and_commit)

    def _attempt(self, step: str, failure: FaultKind, body: Callable[[], object]) -> None:
        """The one worker path: run `body` in the background and report its command, or log the
        failure and report SealFailed(failure) so the machine salvages the clip and shows Error."""
        def run() -> None:
            try:
                outcome = body()
            except Exception as error:
                log.exception("%s of the clip failed", step)
                self._report(commands.SealFailed(failure, str(error) or type(error).__name__))
                return
            self._report(outcome)
        self._run_in_background(run, step)
