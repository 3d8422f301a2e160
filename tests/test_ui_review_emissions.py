"""Laser emissions in review: the list counts them per session and totals them per clip, the seek
bar marks them, and "next/previous emission" land on the frame where the laser spot appears.

The clips are real H.264 in real vaults of the synthetic camera's frames, its laser spot drawn
on the frames captured while the laser was on; their events are what the controller would have
reported: the laser-on edge between the last frame without the spot and the first frame with
it. (How close the real pipeline puts that edge to the spot is `appliance bench e2e`'s figure.)"""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtGui import QColor, QImage

from appliance import vault
from appliance.camera.synthetic import SyntheticPattern, spot_visible
from appliance.storage.database import Store
from appliance.storage.reader import StoreReader
from appliance.timeline import ClipEvent, manifest_metadata
from appliance.ui import theme
from appliance.ui.review_listing import next_emission, previous_emission, recording_rows
from tests import clips
from tests.clips import FPS
from tests.reviewing import assert_fits_with_touch_targets, play, review_kiosk, unlock, wait_listed
from tests.taps import tap

PASSPHRASE = "clinic-Key9"
SPOT_FRAMES = (range(37, 60), range(85, 100))     # the frames that show the laser spot


def laser_events(spot_frames, first_edge: int = 1) -> list[ClipEvent]:
    """The edges as mapped to the video: on 0.4 frame before the first spot frame, off 0.6 after the last."""
    events, edge = [ClipEvent(1.0, "footswitch", 1, first_edge)], first_edge + 1
    for frames in spot_frames:
        events += [ClipEvent((frames.start - 0.4) / FPS, "laser", 1, edge),
                   ClipEvent((frames.stop - 0.4) / FPS, "laser", 0, edge + 1)]
        edge += 2
    return events


@pytest.fixture(scope="module")
def clinic(tmp_path_factory):
    """One session: a 4 s clip with two emissions whose events only its signed manifest holds (an
    interrupted clip's case), and a 2 s clip with one whose database row holds them (a sealed one's)."""
    root = tmp_path_factory.mktemp("clinic")
    vault.keys.generate_recipient(root / "keys", PASSPHRASE.encode())
    vault.keys.generate_device(root / "device")
    public = vault.keys.load_recipient_public(root / "keys" / "recipient.pub")
    device_key = vault.keys.load_device_key(root / "device" / "device.key")
    store = Store(root / "data")
    session = store.open_session("PT-0042", "OP-7")
    clips_made = ((4 * FPS, SPOT_FRAMES, False, 1), (2 * FPS, (range(10, 25),), True, 20))
    for frames, spots, in_database, first_edge in clips_made:
        row = store.start_recording(session.uid)
        with open(row.path, "wb") as destination:
            sealed = clips.write_clip(destination, public, frames, synthetic=SyntheticPattern(640, 400),
                                      laser_frames={index for spot in spots for index in spot})
        timeline = manifest_metadata(laser_events(spots, first_edge), frames / FPS, clock_uncertainty_ms=0.5)
        vault.write_manifest(row.path, device_key, metadata=None if in_database else timeline, sealed=sealed)
        store.seal_recording(row.uid, bytes=sealed.ciphertext_length, duration_s=frames / FPS, frames=frames,
                             dropped=0, sha256=sealed.file_digest,
                             manifest={"state": "sealed", **(timeline if in_database else {})})
    store.close_session(session.uid)
    store.close()
    return root / "data", root / "keys" / "recipient.key"


@pytest.fixture
def review(qtbot, qapp, clinic):
    yield from review_kiosk(qtbot, qapp, *clinic)


def test_the_list_counts_emissions_per_session_and_totals_laser_time_per_clip(clinic):
    reader = StoreReader(clinic[0])
    [(heading, rows)] = recording_rows(reader)
    reader.close()
    assert heading.endswith("2 clips · 3 emissions")
    # 23 + 15 frames of laser at 30 fps = 1.27 s; 15 frames = 0.5 s
    assert rows[0].label == "Clip 1 · 0:04 · sealed · 2 emissions, laser on 1.3 s"
    assert rows[1].label == "Clip 2 · 0:02 · sealed · 1 emission, laser on 0.5 s"


def test_an_emission_two_clips_share_counts_once_for_the_session(tmp_path):
    store = Store(tmp_path / "data")
    session = store.open_session("PT-0042", "OP-7")
    # The second clip's pre-roll reaches back into the first: both saw the laser-on edge 7.
    for events in ([ClipEvent(2.0, "laser", 1, 7)], [ClipEvent(0.5, "laser", 1, 7), ClipEvent(1.5, "laser", 0, 8)]):
        row = store.start_recording(session.uid)
        store.seal_recording(row.uid, bytes=1, duration_s=3.0, frames=90, dropped=0, sha256="0" * 64,
                             manifest={"state": "sealed", **manifest_metadata(events, 3.0, None)})
    store.close()
    reader = StoreReader(tmp_path / "data")
    [(heading, rows)] = recording_rows(reader)
    reader.close()
    assert heading.endswith("2 clips · 1 emission")
    assert [row.label.split(" · ")[-1] for row in rows] == ["1 emission, laser on 1.0 s"] * 2


def test_previous_and_next_emission_rules():
    intervals = [(1.0, 2.0), (3.0, 3.5)]
    assert next_emission(intervals, 0.0) == 1.0 and next_emission(intervals, 1.0) == 3.0
    assert next_emission(intervals, 3.0) is None
    assert previous_emission(intervals, 3.01) == 1.0     # just after a jump to 3.0: the one before
    assert previous_emission(intervals, 5.0) == 3.0 and previous_emission(intervals, 1.2) is None


def image_array(image: QImage) -> np.ndarray:
    image = image.convertToFormat(QImage.Format.Format_RGB888)
    rows = np.frombuffer(image.constBits(), np.uint8, image.sizeInBytes()).reshape(image.height(), -1)
    return rows[:, : image.width() * 3].reshape(image.height(), image.width(), 3)


def test_next_emission_lands_on_the_frame_where_the_spot_appears(qtbot, review):
    window, screen, _ = review
    unlock(qtbot, window, screen, PASSPHRASE)
    wait_listed(qtbot, screen)
    shown = []
    screen.player.frames.delivered.connect(shown.append)
    play(qtbot, screen, "Clip 1 ·")
    qtbot.waitUntil(lambda: screen.play_button.isEnabled() and bool(shown), timeout=10000)
    tap(qtbot, screen.play_button)                                  # pause on an early frame
    assert screen.emission_controls.summary.text() == "2 emissions, laser on 1.3 s"
    assert_fits_with_touch_targets(window)

    def jump(button, first_spot_frame: int) -> None:
        target = first_spot_frame / FPS
        tap(qtbot, button)
        # Paused: the seek shows one frame; one delivered late from before the pause is never this near.
        qtbot.waitUntil(lambda: bool(shown) and abs(shown[-1].position_s - target) <= 1 / FPS + 1e-6,
                        timeout=10000)
        assert spot_visible(image_array(shown[-1].image))
        assert screen.position.text() == ("0:01 / 0:04" if target < 2 else "0:02 / 0:04")

    jump(screen.emission_controls.next_button, SPOT_FRAMES[0].start)
    jump(screen.emission_controls.next_button, SPOT_FRAMES[1].start)
    jump(screen.emission_controls.previous_button, SPOT_FRAMES[0].start)


def test_the_seek_bar_marks_each_emission_in_laser_red(qtbot, review):
    window, screen, _ = review
    unlock(qtbot, window, screen, PASSPHRASE)
    wait_listed(qtbot, screen)
    play(qtbot, screen, "Clip 1 ·")
    qtbot.waitUntil(lambda: screen.play_button.isEnabled(), timeout=10000)
    tap(qtbot, screen.play_button)
    bar = screen.seek_bar
    picture = bar.grab().toImage()
    middle = bar.height() // 2

    def colour_at(seconds: float) -> str:
        return QColor(picture.pixel(bar.marker_x(seconds), middle)).name()

    assert len(bar.emissions) == 2
    assert colour_at(1.6) == theme.LASER and colour_at(3.1) == theme.LASER     # inside the emissions
    assert colour_at(2.4) != theme.LASER                                       # between them
