"""The screenshots in docs/ (tools/screenshots.py) depend only on the screens, not on when or
where they are rendered (date, free disk, how fast the machine is), so a regeneration shows only
real changes; and the fault screens say what the code says."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.faults import FAULT_TEXT, FaultKind
from appliance.ui import theme
from appliance.ui.presentation import Screen
from tools import scenes, screenshots

TIME_SENSITIVE = ("review-playing", "service-status", "service-tests", "service-locked-out")
SOURCE_TREE = Path(__file__).resolve().parent.parent


def scene_named(name: str, size: str = "1280x800") -> scenes.Scene:
    return next(scene for scene in scenes.scenes() if scene.name == name and scene.size == size)


@pytest.fixture
def shown(qtbot, qapp, tmp_path):
    """A scene's window as the renderer prepares it, to read what it shows."""
    theme.apply(qapp)
    opened = []

    def show(name: str):
        scene = scene_named(name)
        (tmp_path / name).mkdir()
        kiosk = screenshots.ExampleKiosk(tmp_path / name, scene)
        qtbot.addWidget(kiosk.window)    # deleted after the test, while the QApplication exists
        opened.append(kiosk)
        kiosk.show(scene)
        return kiosk.window
    yield show
    for kiosk in opened:
        kiosk.close()


def test_the_scenes_show_example_figures_not_the_rendering_machines(shown):
    review = shown("review-playing").screens[Screen.REVIEW]
    assert review.recordings.item(0).text().startswith("2026-11-24 08:14 · Subject PT-0042")
    status = shown("service-status").screens[Screen.SERVICE]
    assert status.disk.text().startswith("412.3 GB free")
    assert status.camera.text().startswith("vimba (VimbaCamera) 1920x1200 @ 30 fps")
    tests = shown("service-tests").screens[Screen.SERVICE]
    assert tests.result.text() == "Encryption self-test passed: round trip and tamper detection (18 ms)"
    locked_out = shown("service-locked-out").screens[Screen.SERVICE]
    assert locked_out.message.text() == "Too many wrong PINs. Service mode is locked for 5 min."


def test_there_is_one_error_screen_per_fault_kind_in_the_faults_own_words(shown):
    names = {scene.name for scene in scenes.scenes() if scene.name.startswith("error-")}
    assert names == {f"error-{kind.value.replace('_', '-')}" for kind in FaultKind}
    error = shown("error-storage-critical").error_screen
    what, todo = FAULT_TEXT[FaultKind.STORAGE_CRITICAL]
    assert error.what_happened.text() == what.format(reason="4 s of recording time left")
    assert error.what_to_do.text() == todo


@pytest.mark.parametrize("name", TIME_SENSITIVE)
def test_rendering_a_scene_twice_gives_the_same_bytes(qapp, tmp_path, name):
    theme.apply(qapp)
    screenshots.render(scene_named(name), tmp_path / "first.png")
    screenshots.render(scene_named(name), tmp_path / "second.png")
    assert (tmp_path / "first.png").read_bytes() == (tmp_path / "second.png").read_bytes()


def test_the_tool_writes_one_png_per_screen_and_state(tmp_path):
    result = subprocess.run([sys.executable, "-m", "tools.screenshots", str(tmp_path / "shots")], cwd=SOURCE_TREE,
                            capture_output=True, timeout=300, env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert result.returncode == 0, result.stderr.decode()
    expected = {f"{scene.name}-{scene.size}.png": scenes.SIZES[scene.size] for scene in scenes.scenes()}
    assert sorted(path.name for path in (tmp_path / "shots").iterdir()) == sorted(expected)
    assert {"error-camera-lost-1280x800.png", "live-recording-1280x800.png", "session-entry-1280x800.png"} <= set(expected)
    for name, (width, height) in expected.items():
        header = (tmp_path / "shots" / name).read_bytes()[:24]
        assert header[:8] == b"\x89PNG\r\n\x1a\n"
        assert (int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")) == (width, height)


def test_the_docs_show_the_screens_as_the_tool_renders_them(qapp, tmp_path):
    """docs/screens is regenerated whenever a screen changes (python -m tools.screenshots docs/screens)."""
    theme.apply(qapp)
    for scene in (scene_named("start-idle"), scene_named("error-link-lost"), scene_named("service-locked-out")):
        name = f"{scene.name}-{scene.size}.png"
        screenshots.render(scene, tmp_path / name)
        assert (tmp_path / name).read_bytes() == (SOURCE_TREE / "docs" / "screens" / name).read_bytes(), name
