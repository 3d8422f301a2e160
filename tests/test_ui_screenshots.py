"""The screenshots in docs/ depend only on the screens, not on when or where they are rendered
(date, free disk, how fast the machine is), so a regeneration shows only real changes."""

from __future__ import annotations

import pytest

from appliance.ui import screenshots, theme
from appliance.ui.presentation import Screen

TIME_SENSITIVE = ("review-playing", "service-status", "service-tests", "service-locked-out")


def scene_named(name: str) -> screenshots.Scene:
    return next(scene for scene in screenshots.scenes() if scene.name == name)


@pytest.fixture
def shown(qtbot, qapp, tmp_path):
    """A scene's window as the renderer prepares it, to read what it shows."""
    theme.apply(qapp)
    opened = []

    def show(name: str):
        scene = scene_named(name)
        window, store = screenshots._window(tmp_path / name, scene.size)
        qtbot.addWidget(window)          # deleted after the test, while the QApplication exists
        opened.append((window, store))
        window.show()
        window.show_status(scene.status)
        scene.prepare(window)
        qapp.processEvents()
        return window
    yield show
    for window, store in opened:
        window.screens[Screen.REVIEW].lock()
        window.close()
        store.close()


def test_the_scenes_show_example_figures_not_the_rendering_machines(shown):
    review = shown("review-playing").screens[Screen.REVIEW]
    assert review.recordings.item(0).text().startswith("2026-11-24 08:14 · Subject PT-0042")
    status = shown("service-status").screens[Screen.SERVICE]
    assert status.disk.text().startswith("412.3 GB free")
    tests = shown("service-tests").screens[Screen.SERVICE]
    assert tests.result.text() == "Encryption self-test passed: round trip and tamper detection (18 ms)"
    locked_out = shown("service-locked-out").screens[Screen.SERVICE]
    assert locked_out.message.text() == "Too many wrong PINs. Service mode is locked for 5 min."


@pytest.mark.parametrize("name", TIME_SENSITIVE)
def test_rendering_a_scene_twice_gives_the_same_bytes(qapp, tmp_path, name):
    theme.apply(qapp)
    screenshots.render(scene_named(name), tmp_path / "first.png")
    screenshots.render(scene_named(name), tmp_path / "second.png")
    assert (tmp_path / "first.png").read_bytes() == (tmp_path / "second.png").read_bytes()
