"""Every kiosk screen and state rendered offscreen to PNG, from the status snapshots in
tools/scenes.py, for the docs and for review: `python -m tools.screenshots docs/screens` from
the source tree. The same widgets as the kiosk draw them, driven only through their public
methods, on a throwaway database read and written as the kiosk does.

Documentation tooling, so not part of the installed `appliance` package."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from appliance.errors import BadInput
from appliance.storage.database import Store
from appliance.timeline import manifest_metadata
from appliance.ui.presentation import Screen
from tools.scenes import (EXAMPLE_EVENTS, EXAMPLE_FREE_BYTES, EXAMPLE_LOG_LINES, EXAMPLE_NOW, SESSION, SIZES,
                          Scene, SceneController, example_preview, scenes, settle)


def _example_records(data_dir: Path, scene: Scene) -> None:
    """A throwaway database: one session with two sealed recordings (with the example laser
    emissions) and one interrupted recording (rows only), and what the scene adds to the trail."""
    store = Store(data_dir, clock=lambda: EXAMPLE_NOW)
    session = store.open_session(SESSION.subject_id, SESSION.operator_id)
    for number, interrupted in enumerate((False, False, True), start=1):
        recording = store.start_recording(session.uid)
        figures = dict(bytes=4_000_000 * number, duration_s=35.0 * number, frames=1050 * number, dropped=0,
                       sha256="0" * 64, manifest={"state": "interrupted" if interrupted else "sealed"})
        if not interrupted:          # what sealing commits: the clip's events and laser totals
            # Each clip has its own emissions: the board's edge numbers count on.
            events = [replace(event, edge=event.edge + 100 * number) for event in EXAMPLE_EVENTS]
            figures["manifest"].update(manifest_metadata(events, figures["duration_s"], 0.4))
        if interrupted:
            store.interrupt_recording(recording.uid, reason="power loss", **figures)
        else:
            store.seal_recording(recording.uid, **figures)
    store.close_session(session.uid)
    if scene.records:
        scene.records(store)
    store.close()


class ExampleKiosk:
    """The kiosk window on a throwaway database in `data_dir`, read and written as the real
    kiosk does (StoreReader, DatabaseWriter), with a fixed clock and free space."""

    def __init__(self, data_dir: Path, scene: Scene) -> None:
        from appliance.storage.reader import StoreReader
        from appliance.storage.writer import DatabaseWriter
        from appliance.ui.review import ReviewScreen
        from appliance.ui.service import ServiceContext, ServiceScreen
        from appliance.ui.service_checks import RecentLogs
        from appliance.ui.window import KioskOptions, KioskWindow
        from appliance.ui.worklist_screen import WorklistScreen

        _example_records(data_dir, scene)
        self.database = DatabaseWriter(data_dir, clock=lambda: EXAMPLE_NOW).start()
        self.reader = StoreReader(data_dir)
        logs = RecentLogs()
        logs.lines.extend(EXAMPLE_LOG_LINES)
        window = KioskWindow(SceneController(example_preview()), KioskOptions(fullscreen=False, hide_cursor=False))
        window.add_screen(Screen.REVIEW, ReviewScreen(self.reader, self.database, data_dir / "recipient.key"),
                          "Review recordings")
        context = ServiceContext(self.reader, self.database, data_dir, data_dir / "service-pin", logs,
                                 lambda: [data_dir / "exports"], measure_free=lambda _: EXAMPLE_FREE_BYTES)
        window.add_screen(Screen.SERVICE, ServiceScreen(context), "Service")
        if scene.worklist is not None:
            window.use_worklist(WorklistScreen(window.controller, window.calls, lambda refresh: scene.worklist))
        window.resize(*SIZES[scene.size])
        self.window = window

    def show(self, scene: Scene) -> None:
        """The window as the scene shows it, every background read answered."""
        self.window.show()
        self.window.show_status(scene.status)
        if scene.prepare:
            scene.prepare(self.window)
        settle(self.window)
        self.window.live_screen.pump.pull()

    def close(self) -> None:
        from PySide6.QtWidgets import QApplication

        settle(self.window)
        self.window.screens[Screen.REVIEW].lock()
        self.window.close()
        self.window.deleteLater()
        QApplication.instance().processEvents()
        self.reader.close()
        self.database.close()


def render_all(directory: Path) -> list[Path]:
    """Renders every scene to DIR/<name>-<size>.png; returns the paths written. Review and
    service screens show a throwaway database in a temporary directory, removed afterwards."""
    from PySide6.QtWidgets import QApplication

    from appliance.ui import theme

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    app = QApplication.instance() or QApplication([])
    theme.apply(app)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for scene in scenes():
        path = directory / f"{scene.name}-{scene.size}.png"
        render(scene, path)
        written.append(path)
    return written


def render(scene: Scene, path: Path) -> None:
    """One scene to one PNG (a QApplication must exist)."""
    with tempfile.TemporaryDirectory(prefix="kiosk-screens-") as scratch:
        kiosk = ExampleKiosk(Path(scratch), scene)
        try:
            kiosk.show(scene)
            saved = kiosk.window.grab().save(str(path))
        finally:
            kiosk.close()
    if not saved:
        raise BadInput(f"cannot write {path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.screenshots",
                                     description="render every kiosk screen and state offscreen to DIR/*.png")
    parser.add_argument("directory", type=Path, metavar="DIR")
    args = parser.parse_args(argv)
    try:
        written = render_all(args.directory)
    except (BadInput, OSError) as error:
        print(f"screenshots: {error}", file=sys.stderr)
        return 2
    print(f"{len(written)} screens written to {args.directory}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
