"""The worklist screens fit a gloved hand and both kiosk screens, also with the longest names a
RIS sends, and the pictures in docs/ are the screens as they are now. The screen is fed the
example answers the screenshot tool uses (tools/worklist_scenes.py); the real service is
tests/test_ui_worklist.py's."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from PySide6.QtCore import QPoint
from PySide6.QtWidgets import QAbstractButton

from appliance.ui import theme
from appliance.ui.keypad import KeypadField
from appliance.ui.presentation import Screen
from appliance.ui.window import KioskOptions, KioskWindow
from appliance.ui.worklist_screen import WorklistScreen
from appliance.worklist.protocol import WorklistAnswer
from tools import scenes, screenshots
from tools.worklist_scenes import EXAMPLE_STEPS

SOURCE_TREE = Path(__file__).resolve().parent.parent
MIN_TOUCH = 48
# 64 characters each way, as a RIS may fill Patient's Name, with an ideographic form beside it.
LONGEST = replace(EXAMPLE_STEPS[0], patient_name="Papadopoulou-Konstantinidou^Alexandra-Evangelia^Maria^Dr.^PhD"
                                                  "=山田^太郎", requested_procedure="Laser, " + "x" * 57)


@pytest.fixture
def worklist_window(qtbot, qapp):
    theme.apply(qapp)

    def make(fetch, size):
        window = KioskWindow(scenes.SceneController(None), KioskOptions(fullscreen=False, hide_cursor=False))
        qtbot.addWidget(window)
        window.use_worklist(WorklistScreen(window.controller, window.calls, fetch))
        window.resize(*size)
        window.show()
        window.show_status(scenes.IDLE)
        qtbot.waitExposed(window)
        window.start_screen.new_session.click()
        scenes.settle(window)
        return window
    return make


def assert_touchable_and_inside(window, page: str, size) -> None:
    window.grab()                       # painted: the layout has taken the texts' sizes
    frame = window.rect()
    assert (window.width(), window.height()) == size, f"{page} does not fit {size}"
    assert window.minimumSizeHint().width() <= size[0] and window.minimumSizeHint().height() <= size[1], page
    controls = [w for w in window.findChildren(QAbstractButton) + window.findChildren(KeypadField) if w.isVisible()]
    assert controls, page
    for control in controls:
        where = control.rect().translated(control.mapTo(window, QPoint(0, 0)))
        label = f"{page}: {control.__class__.__name__} {getattr(control, 'text', lambda: '')()!r}"
        assert control.height() >= MIN_TOUCH and control.width() >= MIN_TOUCH, label
        assert frame.contains(where), f"{label} is cut off at {size}"


@pytest.mark.parametrize("size", [(1280, 800), (1920, 1080)], ids=["1280x800", "1920x1080"])
def test_every_row_and_control_is_a_touch_target_inside_the_screen(worklist_window, qapp, size):
    answer = WorklistAnswer("ok", "6 steps", (LONGEST, *EXAMPLE_STEPS))
    window = worklist_window(lambda refresh: answer, size)
    screen = window.worklist_screen
    assert window.current_screen is Screen.WORKLIST and screen.entry_list.count() == 6
    assert_touchable_and_inside(window, "list", size)
    for row in range(screen.entry_list.count()):
        assert screen.entry_list.visualItemRect(screen.entry_list.item(row)).height() >= MIN_TOUCH, row

    screen.select(LONGEST)
    qapp.processEvents()
    assert screen.name.text().startswith("Papadopoulou-Konstantinidou, Dr. Alexandra-Evangelia Maria PhD (山田 太郎)")
    assert_touchable_and_inside(window, "confirmation", size)
    for label in (screen.name, screen.birth_date, screen.patient_id):
        where = label.rect().translated(label.mapTo(window, QPoint(0, 0)))
        assert window.rect().contains(where), f"{label.text()!r} is cut off at {size}"


@pytest.mark.parametrize("name", ["worklist", "worklist-confirm", "worklist-unreachable"])
def test_the_docs_show_the_worklist_screens_as_the_tool_renders_them(qapp, tmp_path, name):
    """docs/screens is regenerated whenever a screen changes (python -m tools.screenshots docs/screens)."""
    theme.apply(qapp)
    [scene] = [scene for scene in scenes.scenes() if scene.name == name]
    screenshots.render(scene, tmp_path / "rendered.png")
    assert (tmp_path / "rendered.png").read_bytes() == (SOURCE_TREE / "docs" / "screens" / f"{name}-1280x800.png").read_bytes()


def test_a_client_that_raises_is_one_line_on_screen_and_a_traceback_in_the_log(worklist_window, caplog):
    def broken(refresh):
        raise RuntimeError("socket object has no attribute 'recv_into'")
    window = worklist_window(broken, (1280, 800))
    screen = window.worklist_screen
    assert screen.status_line.text() == ("The worklist could not be read because of an internal error. "
                                         "Use Manual entry.")
    assert screen.refresh_button.isEnabled() and screen.manual_button.isVisible()
    assert any("recv_into" in (record.exc_text or "") for record in caplog.records)


@pytest.mark.parametrize("takes_over", [scenes.ARMED, replace(scenes.ARMED, state="Error", fault=scenes.EXAMPLE_FAULTS[0])],
                         ids=["session", "fault"])
def test_names_leave_the_screen_when_a_session_or_a_fault_takes_over(worklist_window, takes_over):
    answer = WorklistAnswer("ok", "5 steps", EXAMPLE_STEPS)
    window = worklist_window(lambda refresh: answer, (1280, 800))
    screen = window.worklist_screen
    screen.select(screen.entries[0])
    assert screen.entry_list.count() == 5 and screen.name.text() == "Müller, Zoë"
    window.show_status(takes_over)          # e.g. a session opened by manual entry from the list
    assert window.current_screen in (Screen.LIVE, Screen.ERROR)
    assert screen.entry_list.count() == 0 and screen.entries == [] and screen.name.text() == ""
