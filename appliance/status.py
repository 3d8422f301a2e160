"""The appliance's status snapshot: what the UI shows and what logs record.

The controller publishes a new immutable snapshot on every change; the UI only renders
snapshots (it never asks the controller's parts directly), so nothing slow reaches the GUI
thread. Subject IDs appear here for display on the kiosk, never in logs or paths.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Fault:
    kind: str           # an appliance.faults.FaultKind value
    what_happened: str  # one sentence for the technician
    what_to_do: str     # one sentence: the next action


@dataclass(frozen=True)
class SessionView:
    session_uid: str
    subject_id: str
    operator_id: str
    opened_at: float          # wall clock, seconds since the epoch
    clip_count: int = 0
    emissions_recorded: int = 0    # laser emissions whose on edge fell inside one of the session's clips
    # Board times (ms) of laser-on edges while no recording ran during this session (Armed
    # without a press, Error): each is an `emission_unrecorded` audit entry too.
    emissions_unrecorded_board_ms: tuple[int, ...] = ()

    @property
    def emission_report(self) -> str:
        """The session's closing sentence: every emission on video, or the ones that were not."""
        if not self.emissions_unrecorded_board_ms:
            return f"all {self.emissions_recorded} emissions recorded"
        missed = ", ".join(f"board {board_ms} ms" for board_ms in self.emissions_unrecorded_board_ms)
        return (f"{self.emissions_recorded} emissions recorded, "
                f"{len(self.emissions_unrecorded_board_ms)} NOT recorded: {missed}")


@dataclass(frozen=True)
class Inputs:
    footswitch_pressed: bool = False
    interlock_closed: bool = False
    laser_on: bool = False


@dataclass(frozen=True)
class LinkView:
    up: bool = False
    firmware_version: str = ""
    frames: int = 0
    crc_errors: int = 0
    resyncs: int = 0
    round_trip_ms: float | None = None


@dataclass(frozen=True)
class CameraView:
    """The camera the controller has open, as the service screen describes it."""
    source: str               # the configured source: synthetic | vimba | opencv
    model: str                # the driver class that opened it
    width: int
    height: int
    nominal_fps: float
    delivered: int = 0        # frames put into the queue
    incomplete: int = 0       # frames the driver reported incomplete
    dropped: int = 0          # frames lost because the queue was full


@dataclass(frozen=True)
class ApplianceStatus:
    state: str = "Idle"       # Idle | Armed | Recording | Finalizing | Encrypting | Error
    session: SessionView | None = None
    recording_elapsed_s: float | None = None   # set while Recording
    post_roll_remaining_s: float | None = None  # set while the post-roll timer runs
    seal_progress: float | None = None          # 0..1 while Finalizing (0) / Encrypting (0.5)
    inputs: Inputs = field(default_factory=Inputs)
    link: LinkView = field(default_factory=LinkView)
    storage_seconds_left: float | None = None   # free disk as recording time at the measured bitrate
    storage_warning: bool = False
    fault: Fault | None = None
    # Laser-on edges while nothing recorded (Idle/no session, Armed without a press, Error)
    # since the appliance started; the UI shows a warning while this is > 0. Each one is an
    # `emission_unrecorded` audit entry with its board time; the last one's board time is here.
    unrecorded_emissions: int = 0
    last_unrecorded_emission_board_ms: int | None = None
    # The last closed session's SessionView.emission_report ("all N emissions recorded", or the
    # ones that were not), for the screen after End session; None before any session closed.
    last_session_emission_report: str | None = None
    # In Idle: what would keep a session from arming, in words, so the technician sees a missing
    # camera or controller before entering IDs, not after.
    not_ready: tuple[str, ...] = ()
    camera_fps: float | None = None
    dropped_frames: int = 0
    camera: CameraView | None = None            # None when the camera could not be opened
