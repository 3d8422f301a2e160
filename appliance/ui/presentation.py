"""What the kiosk shows for a status snapshot: pure projections, no Qt.

Widgets only paint what these functions return, so every state and fault is rendered by the
same tested rules, in the live kiosk and in the screenshots.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from appliance.status import ApplianceStatus, CameraView, SessionView

# High contrast pairs (WCAG AA or better for large text): background, text.
GREY = ("#4a4f55", "#ffffff")
AMBER = ("#ffb300", "#000000")
RED = ("#c62828", "#ffffff")
BLUE = ("#1552b0", "#ffffff")
ERROR_RED = ("#8e0000", "#ffffff")


@dataclass(frozen=True)
class BannerView:
    background: str
    foreground: str
    title: str
    detail: str
    progress: float | None = None  # 0..1 shows a progress bar


def format_duration(seconds: float) -> str:
    """Elapsed time as the clock a technician reads: M:SS, or H:MM:SS past an hour."""
    whole = max(0, int(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def format_time_left(seconds: float | None) -> str:
    """Free storage as recording time, rounded down so the kiosk never promises too much."""
    if seconds is None:
        return "Storage: measuring…"
    minutes = max(0, int(seconds // 60))
    if minutes >= 60:
        return f"Storage: {minutes // 60} h {minutes % 60:02d} min of recording left"
    if minutes >= 1:
        return f"Storage: {minutes} min of recording left"
    return "Storage: less than 1 min of recording left"


def describe_camera(camera: CameraView | None) -> str:
    """The camera the controller has open, for the service screen: source, driver, resolution,
    frame rate and the driver's counters."""
    if camera is None:
        return "the camera is not open"
    return (f"{camera.source} ({camera.model}) {camera.width}x{camera.height} @ {camera.nominal_fps:g} fps\n"
            f"driver: {camera.delivered} delivered, {camera.incomplete} incomplete, "
            f"{camera.dropped} dropped at the queue")


def banner_for(status: ApplianceStatus, elapsed_s: float | None = None) -> BannerView:
    """The large state banner. `elapsed_s` is the locally ticked recording time (see
    `recording_elapsed`), so the clock advances between snapshots."""
    state = status.state
    if state == "Error":
        fault = status.fault
        what = fault.what_happened if fault else "The appliance stopped because of a fault."
        todo = fault.what_to_do if fault else "Call service."
        return BannerView(*ERROR_RED, "ERROR", f"{what}  {todo}")
    if state == "Recording":
        elapsed = elapsed_s if elapsed_s is not None else (status.recording_elapsed_s or 0.0)
        detail = "Recording the treatment"
        if status.post_roll_remaining_s is not None:
            detail = f"Footswitch released: stopping in {max(0, round(status.post_roll_remaining_s))} s"
        return BannerView(*RED, f"● RECORDING  {format_duration(elapsed)}", detail)
    if state == "Armed":
        return BannerView(*AMBER, "ARMED", "Waiting for footswitch")
    if state == "Finalizing":
        return BannerView(*BLUE, f"FINALIZING  {_percent(status)}", "Closing the recording — keep the appliance on",
                          _progress(status))
    if state == "Encrypting":
        return BannerView(*BLUE, f"ENCRYPTING  {_percent(status)}",
                          "Sealing and signing the recording — keep the appliance on", _progress(status))
    if status.not_ready:
        return BannerView(*GREY, "IDLE", "Not ready: " + "; ".join(status.not_ready))
    detail = "Open a session to start" if status.session is None else "Session open"
    return BannerView(*GREY, "IDLE", detail)


def unrecorded_warning(status: ApplianceStatus) -> str | None:
    """The warning over every screen once the laser emitted while nothing recorded (since the
    appliance started; each one is an `emission_unrecorded` audit entry), else None."""
    count = status.unrecorded_emissions
    if count <= 0:
        return None
    what = "1 laser emission was" if count == 1 else f"{count} laser emissions were"
    last = status.last_unrecorded_emission_board_ms
    when = "" if last is None else f" (board time {last} ms)" if count == 1 else f" (the last at board time {last} ms)"
    return f"⚠ {what} NOT recorded{when}: see the audit trail"


def session_emission_line(session: SessionView | None) -> str:
    """The session's emission report on the live view, once the laser has emitted in it."""
    if session is None or not (session.emissions_recorded or session.emissions_unrecorded_board_ms):
        return ""
    return f"Laser: {session.emission_report}"


def last_session_line(status: ApplianceStatus) -> tuple[str, bool]:
    """The closed session's emission report on the start screen, and whether it is a warning."""
    report = status.last_session_emission_report
    if report is None:
        return "", False
    return f"Last session, laser: {report}", "NOT recorded" in report


def _progress(status: ApplianceStatus) -> float:
    return min(1.0, max(0.0, status.seal_progress or 0.0))


def _percent(status: ApplianceStatus) -> str:
    return f"{int(_progress(status) * 100)} %"


def recording_elapsed(status: ApplianceStatus, received_at: float, now: float) -> float | None:
    """Recording time now, from the snapshot's value plus the time since it arrived (monotonic
    seconds). The controller need not publish every second for the clock to run."""
    if status.state != "Recording" or status.recording_elapsed_s is None:
        return None
    return status.recording_elapsed_s + max(0.0, now - received_at)


class Screen(str, Enum):
    START = "start"
    SESSION_ENTRY = "session_entry"
    WORKLIST = "worklist"
    LIVE = "live"
    ERROR = "error"
    REVIEW = "review"
    SERVICE = "service"


# Screens a user may open on their own; the others follow the appliance's state.
USER_SCREENS = (Screen.START, Screen.SESSION_ENTRY, Screen.WORKLIST, Screen.REVIEW, Screen.SERVICE)


def screen_for(status: ApplianceStatus, requested: Screen) -> Screen:
    """Which screen is shown. A fault always takes over; an open session always shows the live
    view (no one can wander off into review while the footswitch is live); otherwise the screen
    the user asked for."""
    if status.state == "Error":
        return Screen.ERROR
    if status.session is not None or status.state in ("Armed", "Recording", "Finalizing", "Encrypting"):
        return Screen.LIVE
    return requested if requested in USER_SCREENS else Screen.START


@dataclass(frozen=True)
class LampView:
    label: str
    colour: str   # lamp fill
    lit: bool


LAMP_OFF = "#3a3f44"
LAMP_GREEN = "#2e9d44"
LAMP_AMBER = "#ffb300"
LAMP_RED = "#e53935"


def lamps_for(status: ApplianceStatus) -> tuple[LampView, ...]:
    """Footswitch, interlock, laser and controller link lamps. Unknown inputs (link down) are
    shown dark with a question mark rather than as a reassuring green."""
    inputs, link = status.inputs, status.link
    if not link.up:
        unknown = LAMP_OFF
        return (
            LampView("Footswitch ?", unknown, False),
            LampView("Interlock ?", unknown, False),
            LampView("Laser ?", unknown, False),
            LampView("Controller link lost", LAMP_RED, True),
        )
    link_label = f"Controller connected (fw {link.firmware_version})" if link.firmware_version else "Controller connected"
    return (
        LampView("Footswitch pressed" if inputs.footswitch_pressed else "Footswitch up",
                 LAMP_AMBER if inputs.footswitch_pressed else LAMP_OFF, inputs.footswitch_pressed),
        LampView("Interlock closed" if inputs.interlock_closed else "Interlock open",
                 LAMP_GREEN if inputs.interlock_closed else LAMP_RED, True),
        LampView("Laser ON" if inputs.laser_on else "Laser off",
                 LAMP_RED if inputs.laser_on else LAMP_OFF, inputs.laser_on),
        LampView(link_label, LAMP_GREEN, True),
    )
