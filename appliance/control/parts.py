"""The appliance's parts: the camera with its preview tap, the controller link (or the simulated
board in front of it), and a fresh recorder per session.

The event thread owns this object: it opens and closes the parts and reads them. The link's and
the recorder's events arrive on their own threads and are handed to `post` as commands
(commands.translate). `camera_view()` is what the status shows of the camera, so the kiosk
never reads the camera object itself.
"""

from __future__ import annotations

import logging
import queue
from typing import Callable

from appliance.config import SIMULATED_CONTROLLER, Settings
from appliance.control import commands
from appliance.errors import ApplianceError, BadInput
from appliance.status import CameraView

log = logging.getLogger("appliance.controller")

PREVIEW_WIDTH = 640


class LatestFrameQueue(queue.Queue):
    """The camera's bounded frame queue, remembering the newest frame put for the preview.

    The recorder consumes the queue; the kiosk only ever wants the latest frame, so keeping a
    reference costs nothing and never slows the camera or the recorder."""

    latest = None

    def _put(self, item) -> None:
        super()._put(item)
        self.latest = item


class Parts:
    def __init__(self, settings: Settings, post: Callable[[object], None]):
        self.settings = settings
        self._post = post
        self.camera = None
        self.recorder = None
        self.link = None
        self.simulator = None

    def start(self) -> str | None:
        """Opens the camera and starts the link; returns the camera's problem, if any."""
        problem = self.open_camera()
        port = self.settings.controller.port
        if port == SIMULATED_CONTROLLER:
            from firmware_bridge.micropython_board import MicroPythonMissing
            from firmware_bridge.simulator import Simulator
            port = str(self.settings.data.dir / "simulated-controller")
            engine = self.settings.controller.simulator_engine
            try:
                self.simulator = Simulator(port, engine=engine).start()
            except MicroPythonMissing as error:
                raise BadInput(f"[controller] simulator_engine = {engine}: {error}") from None
            self._show_simulated_laser()
        from firmware_bridge.link import ControllerLink
        self.link = ControllerLink(port, on_event=self._on_link_event)
        self.link.start()
        return problem

    def stop(self) -> None:
        for part in (self.link, self.simulator, self.recorder):
            if part is not None:
                try:
                    part.stop()
                except Exception:
                    log.exception("stopping %s failed", type(part).__name__)

    def open_camera(self) -> str | None:
        """Opens the configured camera (it runs only while a session is armed); None or the problem."""
        from appliance.camera import open_configured_camera
        try:
            camera = open_configured_camera(self.settings.camera)
        except ApplianceError as error:
            self.camera = None
            return str(error)
        camera.frames = LatestFrameQueue(camera.frames.maxsize)
        self.camera = camera
        self._show_simulated_laser()
        return None

    def _show_simulated_laser(self) -> None:
        """The synthetic camera draws the simulated board's laser (both live in this process)."""
        if self.simulator is not None and hasattr(self.camera, "laser"):
            self.camera.laser = self.simulator.laser_on

    def start_recorder(self) -> None:
        """A fresh recorder per session: its pre-roll never holds video from before the session.
        Raises what the recorder's start raised (CameraUnavailable, or the encoder's error)."""
        from appliance.recording.recorder import Recorder
        self.recorder = Recorder(self.camera, self.settings.recording, on_event=self._on_recorder_event)
        try:
            self.recorder.start()
        except BaseException:
            self.recorder = None
            raise

    def stop_recorder(self) -> None:
        recorder, self.recorder = self.recorder, None
        if recorder is not None:
            recorder.stop()
        if self.camera is not None:
            self.camera.frames.latest = None

    def recorder_stats(self) -> dict:
        return self.recorder.stats() if self.recorder is not None else {}

    def frames_seen(self) -> int | None:
        """Whole frames the camera has produced (delivered or dropped), or None while no session
        runs it. Incomplete frames are not progress: a camera sending only those is stale."""
        if self.camera is None or self.recorder is None:
            return None
        counters = self.camera.counters_snapshot()
        return counters.delivered + counters.dropped

    def drive_outputs(self, state: str) -> None:
        """The permissive follows the state: the laser may fire only while a press records."""
        if self.link is None:
            return
        self.link.set_ready(state in ("Armed", "Recording"))
        self.link.set_recording_led(state == "Recording")

    def latest_preview(self):
        """The newest camera frame downscaled for the kiosk (numpy BGR), or None when no
        session has the camera running. Any thread; costs one resize."""
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

    def camera_view(self) -> CameraView | None:
        camera = self.camera
        if camera is None:
            return None
        counters = camera.counters_snapshot()
        return CameraView(source=self.settings.camera.source, model=type(camera).__name__,
                          width=camera.width, height=camera.height, nominal_fps=camera.nominal_fps,
                          delivered=counters.delivered, incomplete=counters.incomplete, dropped=counters.dropped)

    def _on_link_event(self, event) -> None:
        self._post(commands.translate(event, commands.LINK_EVENTS))

    def _on_recorder_event(self, event) -> None:
        self._post(commands.translate(event, commands.RECORDER_EVENTS))
