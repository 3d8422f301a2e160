"""The simulated treatment controller's inputs on screen: footswitch, laser, interlock.

Mounted only when the controller runs the firmware simulator (controller.port = "simulated",
as in `appliance demo`), so a desktop without the board can still record. The panel sets the
simulator's virtual pins as the board's wires would; everything the kiosk shows about them comes
back over the serial link, as with the real board. The space bar is the footswitch while it is
held, whichever screen has focus (treatment IDs never contain a space). Framed in amber dashes and
labelled SIMULATOR, so nobody takes it for a control of the appliance.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt, QTimer
from PySide6.QtWidgets import QApplication, QFrame, QHBoxLayout, QLabel, QPushButton, QVBoxLayout

OUTPUT_POLL_MS = 250        # the board's "recorder ready" output, read from its virtual pin
AMBER = "#ffb300"
STYLESHEET = f"""
QWidget {{ background: #2a2205; color: #fff3d6; font-size: 20px; }}
#simulatorPanel {{ border: 4px dashed {AMBER}; border-radius: 6px; }}
QLabel[role="badge"] {{ background: {AMBER}; color: #101214; font-weight: bold; padding: 2px 10px; }}
QPushButton {{ background: #3d3314; border: 2px solid {AMBER}; border-radius: 10px; min-height: 56px;
               padding: 4px 16px; font-size: 22px; }}
QPushButton:checked, QPushButton:pressed {{ background: {AMBER}; color: #101214; }}
"""


class SimulatorPanel(QFrame):
    """Drives a firmware_bridge.simulator.Simulator: press()/release(), laser(on), interlock(closed)."""

    def __init__(self, simulator) -> None:
        super().__init__()
        self.setObjectName("simulatorPanel")
        self.setStyleSheet(STYLESHEET)
        self._simulator = simulator
        self._held_by: set[str] = set()     # "pointer", "space": the footswitch is down while any holds it

        badge = QLabel("SIMULATOR")
        badge.setProperty("role", "badge")
        explanation = QLabel("Stands in for the controller board; not a control of the appliance.")
        self.footswitch = QPushButton("Footswitch: hold (or Space)")
        self.footswitch.pressed.connect(lambda: self.hold_footswitch("pointer", True))
        self.footswitch.released.connect(lambda: self.hold_footswitch("pointer", False))
        self.laser = QPushButton()
        self.laser.setCheckable(True)
        self.laser.toggled.connect(self._laser_toggled)
        self.interlock_open = QPushButton()  # lit when opened: at rest the loop is closed, as the simulator starts
        self.interlock_open.setCheckable(True)
        self.interlock_open.toggled.connect(self._interlock_toggled)
        self.recorder_ready = QLabel()
        for button in (self.footswitch, self.laser, self.interlock_open):
            button.setFocusPolicy(Qt.FocusPolicy.NoFocus)   # the session screen's fields keep the focus

        heading = QHBoxLayout()
        heading.addWidget(badge)
        heading.addWidget(explanation, 1)
        heading.addSpacing(24)
        heading.addWidget(self.recorder_ready)
        controls = QHBoxLayout()
        controls.addWidget(self.footswitch, 2)
        controls.addWidget(self.laser, 1)
        controls.addWidget(self.interlock_open, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(14, 8, 14, 10)
        layout.addLayout(heading)
        layout.addLayout(controls)
        self._show_inputs()

        self._outputs = QTimer(self)
        self._outputs.setInterval(OUTPUT_POLL_MS)
        self._outputs.timeout.connect(self._show_outputs)
        self._outputs.start()
        self._show_outputs()
        QApplication.instance().installEventFilter(self)   # removed by Qt when the panel is deleted

    @property
    def footswitch_down(self) -> bool:
        return bool(self._held_by)

    def hold_footswitch(self, holder: str, held: bool) -> None:
        """Presses the simulated footswitch when the first holder takes it, releases it after the last."""
        was_down = self.footswitch_down
        if held:
            self._held_by.add(holder)
        else:
            self._held_by.discard(holder)
        if self.footswitch_down != was_down:
            if self.footswitch_down:
                self._simulator.press()
            else:
                self._simulator.release()
        self.footswitch.setDown(self.footswitch_down)   # also shows a press made with the space bar

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt name)
        kind = event.type()
        if kind in (QEvent.Type.KeyPress, QEvent.Type.KeyRelease) and event.key() == Qt.Key.Key_Space \
                and watched.isWidgetType() and watched.window() is self.window():
            if not event.isAutoRepeat():    # a held key repeats; the footswitch stays down
                self.hold_footswitch("space", kind == QEvent.Type.KeyPress)
            return True                     # never a click on whichever button has the focus
        if kind == QEvent.Type.WindowDeactivate and watched is self.window():
            self.hold_footswitch("space", False)    # the key's release goes to another window now
        return False

    def _laser_toggled(self, on: bool) -> None:
        self._simulator.laser(on)
        self._show_inputs()

    def _interlock_toggled(self, opened: bool) -> None:
        self._simulator.interlock(not opened)
        self._show_inputs()

    def _show_inputs(self) -> None:
        self.laser.setText("Laser: ON" if self.laser.isChecked() else "Laser: off")
        self.interlock_open.setText("Interlock: OPEN" if self.interlock_open.isChecked() else "Interlock: closed")

    def _show_outputs(self) -> None:
        ready = self._simulator.permissive
        text = "Board output: recorder ready" if ready else "Board output: not ready"
        if self.recorder_ready.text() != text:
            self.recorder_ready.setText(text)
