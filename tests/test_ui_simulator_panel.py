"""The demo's simulator panel (offscreen): its controls set the firmware simulator's input pins,
the space bar is the footswitch only in the panel's own window, and it never clicks a button."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QApplication, QPushButton, QVBoxLayout, QWidget

from appliance.ui import theme
from appliance.ui.simulator_panel import SimulatorPanel
from firmware_bridge.simulator import Simulator
from tests.taps import tap

ACTIVE = 0      # the board's inputs are active low


@pytest.fixture
def simulator(tmp_path):
    board = Simulator(str(tmp_path / "treatment-controller"))   # its pins, without a pty behind them
    yield board
    board.stop()


@pytest.fixture
def window_with_panel(qtbot, qapp, simulator):
    """A window holding the panel and another button, which has the keyboard focus."""
    theme.apply(qapp)
    window = QWidget()
    qtbot.addWidget(window)
    panel = SimulatorPanel(simulator)
    focused = QPushButton("Continue")
    layout = QVBoxLayout(window)
    layout.addWidget(focused)
    layout.addWidget(panel)
    window.show()
    qtbot.waitExposed(window)
    return window, panel, focused


def space(widget, kind, autorepeat=False):
    QApplication.sendEvent(widget, QKeyEvent(kind, Qt.Key.Key_Space, Qt.KeyboardModifier.NoModifier, " ", autorepeat))


def footswitch(simulator):
    return "pressed" if simulator.pins["footswitch"].value() == ACTIVE else "released"


def test_the_footswitch_is_down_while_the_pointer_or_the_space_bar_holds_it(window_with_panel, simulator, qtbot):
    _, panel, focused = window_with_panel
    clicks = []
    focused.clicked.connect(lambda: clicks.append("Continue"))
    qtbot.mousePress(panel.footswitch, Qt.MouseButton.LeftButton, pos=panel.footswitch.rect().center())
    assert footswitch(simulator) == "pressed"
    space(focused, QEvent.Type.KeyPress)
    qtbot.mouseRelease(panel.footswitch, Qt.MouseButton.LeftButton, pos=panel.footswitch.rect().center())
    assert footswitch(simulator) == "pressed" and panel.footswitch.isDown()    # the space bar still holds it
    for kind in (QEvent.Type.KeyRelease, QEvent.Type.KeyPress):             # a held key repeating
        space(focused, kind, autorepeat=True)
        assert footswitch(simulator) == "pressed"
    space(focused, QEvent.Type.KeyRelease)
    assert footswitch(simulator) == "released" and not panel.footswitch.isDown()
    assert clicks == []                                 # the space bar never clicked the focused button


def test_leaving_the_window_releases_a_footswitch_held_by_the_space_bar(window_with_panel, simulator, qtbot):
    window, _, focused = window_with_panel
    space(focused, QEvent.Type.KeyPress)
    assert footswitch(simulator) == "pressed"
    QApplication.sendEvent(window, QEvent(QEvent.Type.WindowDeactivate))     # its key release goes elsewhere now
    assert footswitch(simulator) == "released"


def test_the_space_bar_in_another_window_is_not_the_footswitch(window_with_panel, simulator, qtbot):
    other = QPushButton("Another window")
    qtbot.addWidget(other)
    other.show()
    qtbot.waitExposed(other)
    with qtbot.waitSignal(other.clicked, timeout=1000):     # Qt's own space-bar click, untouched
        space(other, QEvent.Type.KeyPress)
        space(other, QEvent.Type.KeyRelease)
    assert footswitch(simulator) == "released"


def test_laser_and_interlock_switch_the_simulators_inputs(window_with_panel, simulator, qtbot):
    _, panel, _ = window_with_panel
    assert (panel.laser.text(), panel.interlock_open.text()) == ("Laser: off", "Interlock: closed")
    tap(qtbot, panel.laser)
    tap(qtbot, panel.interlock_open)
    assert (panel.laser.text(), panel.interlock_open.text()) == ("Laser: ON", "Interlock: OPEN")
    assert simulator.pins["laser"].value() == ACTIVE and simulator.pins["interlock"].value() != ACTIVE
    tap(qtbot, panel.laser)
    tap(qtbot, panel.interlock_open)
    assert simulator.pins["laser"].value() != ACTIVE and simulator.pins["interlock"].value() == ACTIVE
