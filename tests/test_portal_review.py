"""The review's pages and JSON API, in-process over the real library reading recordings from the
demo in SeaweedFS: what a clinician sees, what others are refused, what the audit trail keeps,
and that no patient data ever goes into a URL."""

from __future__ import annotations

import re

import pytest

from appliance.portal.review import clip_time, dicom_date, person_name
from tests.gatewaying import A_CARD, clinic_keys  # noqa: F401 (fixture)
from tests.portal_recordings import YAMADA_CARD, portal_recordings, recordings_app  # noqa: F401 (fixtures)
from tests.portaling import CLINICIAN, IT, audit_tail, log_in_test_client

PHI = [value for card in (A_CARD, YAMADA_CARD) for name, value in card.items()
       if name in ("patient_name", "patient_id", "birth_date")]


@pytest.fixture(scope="module")
def app(recordings_app):  # noqa: F811
    return recordings_app


def client_as(app, account):
    client = app.test_client()
    if account is not None:
        assert log_in_test_client(client, account).status_code == 303
    return client


def links(page: bytes) -> list[str]:
    return [match.decode() for match in re.findall(rb'(?:href|src|action)="([^"]*)"', page)]


def test_the_api_lists_sessions_by_patient_with_their_recordings(app, portal_recordings):  # noqa: F811
    response = client_as(app, CLINICIAN).get("/api/sessions")
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    document = response.get_json()
    clips = portal_recordings.clips
    assert document["archive_problem"] is None
    by_session = {session["session"]: session for session in document["sessions"]}
    mueller = by_session[clips["treatment"].session]
    assert mueller["patient"]["patient_name"] == "Müller^Zoë" and mueller["patient"]["birth_date"] == "19761105"
    assert {r["uid"]: (r["state"], r["emissions"]) for r in mueller["recordings"]} == {
        clips["treatment"].uid: ("sealed", 2), clips["interrupted"].uid: ("interrupted", 0)}
    assert by_session[clips["follow_up"].session]["patient"]["patient_id"] == "PID-0077"
    assert by_session[clips["stranger"].session]["recordings"][0]["state"] == "refused"


def test_opening_a_recording_through_the_api_gives_its_timeline_and_is_audited(app, portal_recordings):  # noqa: F811
    treatment = portal_recordings.clips["treatment"]
    response = client_as(app, CLINICIAN).get(f"/api/recordings/{treatment.uid}")
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    document = response.get_json()
    assert document["state"] == "sealed" and document["video"] == f"/recordings/{treatment.uid}/video"
    assert document["emission_intervals"] == [[1.0, 1.5], [2.5, 3.0]]
    assert [(e["t"], e["level"]) for e in document["events"]] == [(1.0, 1), (1.5, 0), (2.5, 1), (3.0, 0)]
    assert document["duration_s"] == pytest.approx(4.0) and document["patient"]["patient_name"] == "Müller^Zoë"
    assert audit_tail(app, 1) == [("recording_viewed", CLINICIAN.name, {"recording": treatment.uid})]


def test_an_unknown_recording_is_not_found_and_not_audited_as_viewed(app):
    client = client_as(app, CLINICIAN)
    before = audit_tail(app, 1)
    response = client.get("/api/recordings/" + "0" * 32)
    assert response.status_code == 404 and response.get_json() == {"error": "no such recording"}
    assert client.get("/recordings/" + "0" * 32).status_code == 404
    assert client.get("/sessions/" + "0" * 32).status_code == 404
    assert audit_tail(app, 1) == before


@pytest.mark.parametrize("path", ["/api/sessions", "/api/recordings/{uid}", "/recordings/{uid}", "/sessions/{session}"])
def test_the_review_is_for_clinicians_only(app, portal_recordings, path):  # noqa: F811
    treatment = portal_recordings.clips["treatment"]
    path = path.format(uid=treatment.uid, session=treatment.session)
    anonymous = client_as(app, None).get(path)
    if path.startswith("/api/"):
        assert anonymous.status_code == 401 and anonymous.get_json()["error"]
    else:
        assert (anonymous.status_code, anonymous.headers["Location"]) == (303, "/login")
    assert client_as(app, IT).get(path).status_code == 403
    [(event, actor, details)] = audit_tail(app, 1)   # details may carry more (the client address)
    assert (event, actor, details["path"], details["status"]) == ("portal_refused", IT.name, path, 403)


def test_home_is_the_sessions_page_for_a_clinician_and_the_fleet_for_it(app, portal_recordings):  # noqa: F811
    it_home = client_as(app, IT).get("/")
    assert (it_home.status_code, it_home.headers["Location"]) == (303, "/fleet")
    page = client_as(app, CLINICIAN).get("/")
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    text = page.get_data(as_text=True)
    assert "Müller, Zoë" in text and "山田, 太郎" in text and "1976-11-05" in text
    assert 'id="session-filter"' in text and "/static/review.js" in text
    for clip in portal_recordings.clips.values():
        assert f'href="/sessions/{clip.session}"' in text
    assert "1 interrupted" in text and "1 not shown" in text


def test_a_session_page_lists_its_recordings_marking_the_interrupted_one(app, portal_recordings):  # noqa: F811
    clips = portal_recordings.clips
    page = client_as(app, CLINICIAN).get(f"/sessions/{clips['treatment'].session}").get_data(as_text=True)
    assert "<h1>Müller, Zoë</h1>" in page and "PID-0042" in page and "Laser treatment" in page
    assert f'href="/recordings/{clips["treatment"].uid}"' in page and f'href="/recordings/{clips["interrupted"].uid}"' in page
    assert "Interrupted" in page and "2 emissions, 1.0 s" in page and "no timeline kept" in page


def test_the_player_page_has_the_video_and_a_jump_to_each_emission_and_is_audited(app, portal_recordings):  # noqa: F811
    treatment = portal_recordings.clips["treatment"]
    response = client_as(app, CLINICIAN).get(f"/recordings/{treatment.uid}")
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    assert f'<video id="player" controls preload="metadata" src="/recordings/{treatment.uid}/video">' in page
    assert re.findall(r'class="jump" data-start="([\d.]+)" data-end="([\d.]+)"', page) == [("1.0", "1.5"), ("2.5", "3.0")]
    assert 'data-duration="4.0"' in page and "Interrupted" not in page
    assert "<h1>Müller, Zoë</h1>" in page and "PID-0042" in page and "1976-11-05" in page
    assert audit_tail(app, 1) == [("recording_viewed", CLINICIAN.name, {"recording": treatment.uid})]


def test_an_interrupted_recording_is_marked_on_its_player_page(app, portal_recordings):  # noqa: F811
    interrupted = portal_recordings.clips["interrupted"]
    page = client_as(app, CLINICIAN).get(f"/recordings/{interrupted.uid}").get_data(as_text=True)
    assert "This recording was cut short" in page and f'src="/recordings/{interrupted.uid}/video"' in page
    assert 'data-duration=""' in page and 'class="jump"' not in page and "No treatment timeline was kept" in page


def test_a_recording_nobody_can_vouch_for_shows_why_and_no_video_or_patient(app, portal_recordings):  # noqa: F811
    stranger = portal_recordings.clips["stranger"]
    page = client_as(app, CLINICIAN).get(f"/recordings/{stranger.uid}").get_data(as_text=True)
    assert "This recording is not shown: signed by device key" in page and "not enrolled" in page
    assert "<video" not in page and "Müller" not in page and "Patient unknown" in page


def test_no_page_puts_patient_data_into_a_url(app, portal_recordings):  # noqa: F811
    client = client_as(app, CLINICIAN)
    clips = portal_recordings.clips
    pages = ["/", *(f"/sessions/{clip.session}" for clip in clips.values()),
             *(f"/recordings/{clip.uid}" for clip in clips.values())]
    for path in pages:
        for url in links(client.get(path).get_data()):
            assert not any(value in url for value in PHI), (path, url)


@pytest.mark.parametrize("name, shown", [("Müller^Zoë", "Müller, Zoë"), ("Müller", "Müller"), ("^Zoë", "Zoë"),
                                         ("", "(no name)"), ("Doe^John^Q^Dr", "Doe, John Q Dr"),
                                         ("山田^太郎", "山田, 太郎"), ("Doe^^^^", "Doe")])
def test_person_names_are_written_family_comma_given(name, shown):
    assert person_name(name) == shown


@pytest.mark.parametrize("value, shown", [("19761105", "1976-11-05"), ("", ""), ("1976", "1976"), ("1976110x", "1976110x")])
def test_dicom_dates_are_written_with_dashes(value, shown):
    assert dicom_date(value) == shown


@pytest.mark.parametrize("seconds, shown", [(0.0, "0:00.0"), (1.96, "0:02.0"), (61.26, "1:01.3"), (3725.0, "1:02:05.0"),
                                            (-0.2, "0:00.0"), (None, "unknown")])
def test_clip_times_are_minutes_seconds_and_tenths(seconds, shown):
    assert clip_time(seconds) == shown
