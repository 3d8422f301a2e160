"""The review in Debian's chromium against `appliance gateway serve` over real HTTPS, reading
recordings from the demo in SeaweedFS: a clinician finds a patient's session, plays a clip,
seeks to the middle and to a laser marker through the page, and the frames shown are those
recorded then (the frame index stamped top-left; the laser spot on the emission's frames).
Afterwards, nothing of the patients is in the portal's log, config or data directory.

PORTAL_SCREENS=<directory> also saves the pages there (docs/screens/portal-*.png)."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from playwright.sync_api import expect

from appliance.camera.stamp import read_index
from appliance.camera.synthetic import spot_visible
from bench.sealed_recordings import FPS
from tests.browsing import chromium, log_in  # noqa: F401 (fixture)
from tests.gatewaying import A_CARD, clinic_keys  # noqa: F401 (fixture)
from tests.portal_recordings import YAMADA_CARD, portal_recordings  # noqa: F401 (fixture)
from tests.portaling import CLINICIAN, start_portal
from tests.test_session_identity import leaked_forms, plaintext_forms

FRAMES_OFF = 2      # a seek lands on the frame at or just before the time asked
GRAB = """video => { const canvas = document.createElement("canvas");
  canvas.width = video.videoWidth; canvas.height = video.videoHeight;
  canvas.getContext("2d").drawImage(video, 0, 0);
  return canvas.toDataURL("image/png"); }"""
SETTLED = "video => !video.seeking && video.readyState >= 2 && video.videoWidth > 0"


@pytest.fixture(scope="module")
def served(tmp_path_factory, clinic_keys, portal_recordings):  # noqa: F811
    server = start_portal(tmp_path_factory.mktemp("review-served"), clinic_keys, s3=portal_recordings.seaweedfs,
                          bucket=portal_recordings.bucket, accounts=(CLINICIAN,))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def tab(served, chromium):  # noqa: F811
    """One logged-in clinician's tab for the module (a login costs a second of Argon2). The
    browser is set up after the portal, so it closes first: its idle keep-alive connections
    would hold the portal's orderly stop for its full grace time."""
    page = chromium.new_page()
    log_in(page, served.base_url, CLINICIAN.name, CLINICIAN.password)
    yield page
    page.close()


def shown_frame(video) -> np.ndarray:
    """The frame the video element shows, as the page's own canvas draws it (BGR)."""
    data = video.evaluate(GRAB)
    return cv2.imdecode(np.frombuffer(base64.b64decode(data.split(",", 1)[1]), np.uint8), cv2.IMREAD_COLOR)


def settle(video) -> tuple[float, np.ndarray]:
    video.page.wait_for_function(SETTLED, arg=video.element_handle())
    return video.evaluate("video => video.currentTime"), shown_frame(video)


def play_a_while(video) -> tuple[float, np.ndarray]:
    """Plays (muted: no autoplay gesture needed) past half a second, pauses, and the frame shown."""
    video.evaluate("video => { video.muted = true; return video.play(); }")
    video.page.wait_for_function("video => video.currentTime > 0.5", arg=video.element_handle())
    video.evaluate("video => video.pause()")
    return settle(video)


def screenshot(page, name: str) -> None:
    directory = os.environ.get("PORTAL_SCREENS")
    if directory:
        page.screenshot(path=str(Path(directory) / f"portal-{name}.png"), full_page=True)


def test_a_clinician_finds_a_session_plays_a_clip_and_seeks_by_the_timeline(tab, served, portal_recordings):  # noqa: F811
    clip = portal_recordings.clips["treatment"]
    tab.goto(served.base_url + "/")
    rows = tab.locator("#sessions tbody tr")
    assert rows.count() == len(portal_recordings.clips) - 1   # Müller's two clips are one session
    tab.fill("#session-filter", "muller zoe")      # no accents, as typed on any keyboard
    expect(tab.locator("#sessions tbody tr:visible")).to_have_count(1)
    expect(tab.locator("#filter-count")).to_have_text(f"1 of {rows.count()} sessions")
    assert tab.url == served.base_url + "/"        # the filter never goes into the URL
    screenshot(tab, "sessions")
    tab.click("#sessions tbody tr:visible a")
    expect(tab).to_have_url(f"{served.base_url}/sessions/{clip.session}")
    expect(tab.locator("#recordings .badge.interrupted")).to_have_count(1)
    screenshot(tab, "session")
    tab.click(f'a[href="/recordings/{clip.uid}"]')
    video = tab.locator("#player")
    expect(tab.locator("#timeline .marker")).to_have_count(len(clip.emissions))   # drawn by review.js

    # Play: time moves and real frames render (a loaded machine may show a frame behind).
    at, frame = play_a_while(video)
    assert frame.shape[:2] == (288, 512) and 0 < read_index(frame) <= at * FPS + FRAMES_OFF

    # The middle, by a click on the timeline bar.
    bar = tab.locator("#timeline")
    box = bar.bounding_box()
    bar.click(position={"x": box["width"] / 2, "y": box["height"] / 2})
    at, frame = settle(video)
    assert at == pytest.approx(clip.duration_s / 2, abs=clip.duration_s / box["width"] * 2)
    assert abs(read_index(frame) - clip.duration_s / 2 * FPS) <= FRAMES_OFF and not spot_visible(frame)

    # The second emission's marker: the laser spot is on the frame shown.
    start, _ = clip.emissions[1]
    tab.locator("#timeline .marker").nth(1).click()
    at, frame = settle(video)
    assert at == pytest.approx(start, abs=0.001)
    assert abs(read_index(frame) - start * FPS) <= FRAMES_OFF and spot_visible(frame)

    # "Jump to emission 1" in the list.
    start, _ = clip.emissions[0]
    tab.click("text=Jump to emission 1")
    at, frame = settle(video)
    assert at == pytest.approx(start, abs=0.001) and spot_visible(frame)
    assert abs(read_index(frame) - start * FPS) <= FRAMES_OFF
    screenshot(tab, "player")


def test_an_interrupted_clip_is_marked_and_plays_what_was_kept(tab, served, portal_recordings):  # noqa: F811
    clip = portal_recordings.clips["interrupted"]
    tab.goto(f"{served.base_url}/recordings/{clip.uid}")
    expect(tab.locator(".interrupted-note")).to_be_visible()
    at, frame = play_a_while(tab.locator("#player"))
    assert 0 < read_index(frame) <= at * FPS + FRAMES_OFF


def test_after_the_review_nothing_of_the_patients_is_in_the_portals_log_config_or_data(tab, served):
    """Runs after the review above (same served portal): every page the clinician opened
    named the patients, yet no file the portal keeps does, in any encoding."""
    secrets = {value for card in (A_CARD, YAMADA_CARD) for value in
               (card["patient_id"], card["birth_date"], card["patient_name"], *card["patient_name"].split("^"))}
    forms = {form for secret in secrets for form in plaintext_forms(secret)}
    # The forms are the portal's own: its API answer to the browser names the patients in them.
    found = set(leaked_forms("answer", tab.request.get(served.base_url + "/api/sessions").body(), forms))
    for secret in ("Müller", "Zoë", "山田", "PID-0042", "19580314"):
        assert set(plaintext_forms(secret)) & found, secret
    # The portal did keep things: its log and the audit trail in its database.
    assert "portal_login" in {entry.event for entry in served.audit()}
    files = [path for path in served.config.parent.rglob("*") if path.is_file()]
    assert {served.log_path, served.data / "gateway.sqlite3"} <= set(files), files
    for path in files:
        assert not leaked_forms(path.name, path.read_bytes(), forms), path
