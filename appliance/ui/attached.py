"""The kiosk attached to a running controller, offscreen, for a measured while: what the preview
benchmark (bench/kiosk_preview.py) runs beside the same recording without any UI. Here because
only appliance/ui imports Qt."""

from __future__ import annotations

import os
import time
from typing import Callable

from appliance.status import ApplianceStatus


class AttachedKiosk:
    def __init__(self, controller, settings) -> None:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        from PySide6.QtWidgets import QApplication

        from appliance.ui import theme
        from appliance.ui.app import build_window
        from appliance.ui.service_checks import RecentLogs
        from appliance.ui.window import KioskOptions

        self._app = QApplication.instance() or QApplication([])
        theme.apply(self._app)
        self.window = build_window(controller, settings, RecentLogs(), KioskOptions(fullscreen=False, hide_cursor=False))
        self.window.resize(1280, 800)
        self.window.connect_controller()
        self.window.show()
        self.renders = 0
        self.window.bridge.delivered.connect(self._count)

    def _count(self, status) -> None:
        self.renders += 1

    def spin(self, seconds: float) -> None:
        """Runs the GUI event loop (preview timer, status rendering) for `seconds`."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self._app.processEvents()
            time.sleep(0.002)

    def spin_until(self, condition: Callable[[ApplianceStatus], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not condition(self.window.status):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the kiosk did not show the expected state; last: {self.window.status.state}")
            self.spin(0.01)

    @property
    def preview_frames_shown(self) -> int:
        return self.window.live_screen.pump.frames_shown

    def close(self) -> None:
        self.window.close()
        self.window.deleteLater()
        self._app.processEvents()
