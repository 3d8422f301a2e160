"""The worklist channel in process: the service's socket (stale, shared, private), its answers in
time (a refresh gets a query begun after it, the first answer is the first query's, a failed
query keeps today's list) and the client against every kind of peer (none, stalled, confused),
never raising."""

import datetime
import os
import socket
import sys
import threading

import pytest

from appliance.worklist.client import WorklistClient
from appliance.worklist.protocol import WorklistAnswer, decode_answer
from appliance.worklist.service import WorklistService
from appliance.worklist.settings import WorklistSettings
from tests.servers.dcmtk import Wlmscpfs
from tests.servers.worklist_files import JAPANESE, TODAY, write_worklist_file
from tests.test_worklist_query import MUELLER, ROOM, YAMADA
from tests.waiting import wait_for


def test_a_stale_socket_left_by_a_crash_is_replaced(tmp_path):
    socket_path = tmp_path / "run" / "worklist.sock"
    socket_path.parent.mkdir(mode=0o700)
    with socket.socket(socket.AF_UNIX) as crashed:
        crashed.bind(str(socket_path))   # bound, never listening: what a killed service leaves
    service = WorklistService(WorklistSettings(host="127.0.0.1"), socket_path,
                              query=lambda settings, day: decode_answer(
                                  b'{"format":"worklist-channel/1","status":"empty","line":"none",'
                                  b'"queried_at":"","entries":[]}\n'))
    service.serve()
    try:
        assert WorklistClient(socket_path).fetch().line == "none"
    finally:
        service.close()


def test_a_socket_directory_others_can_enter_is_refused(tmp_path):
    (tmp_path / "open").mkdir(mode=0o755)
    os.chmod(tmp_path / "open", 0o755)
    service = WorklistService(WorklistSettings(host="127.0.0.1"), tmp_path / "open" / "worklist.sock")
    with pytest.raises(Exception, match="must be accessible to its owner only"):
        service.serve()


# --- the client, whatever the peer ------------------------------------------------------------

def test_no_service_is_unreachable_in_one_line(tmp_path):
    answer = WorklistClient(tmp_path / "none.sock").fetch()
    assert (answer.status, answer.line) == ("unreachable", "the worklist service is not running")
    entry, line = WorklistClient(tmp_path / "none.sock").find_accession("ACC-1")
    assert (entry, line) == (None, "worklist unreachable: the worklist service is not running")


def serve_once(path, reply: bytes | None):
    """A peer that accepts one connection, reads the request and sends `reply` (None: stalls)."""
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))
    listener.listen()

    def answer():
        connection, _ = listener.accept()
        connection.recv(65536)
        if reply is not None:
            connection.sendall(reply)
            connection.close()
        else:
            stalled.append(connection)

    stalled = []
    threading.Thread(target=answer, daemon=True).start()
    return listener, stalled


@pytest.mark.parametrize("reply, status, line", [
    (None, "unreachable", "the worklist service did not answer within 0.5 s"),
    (b"HTTP/1.1 400 Bad Request\r\n\r\n", "error",
     "the worklist service sent an answer this appliance does not understand"),
    (b'{"format":"worklist-channel/1","status":"ok","line":"x","queried_at":"","entries":[]}\n', "error",
     "the worklist service sent an answer this appliance does not understand"),
    (b"", "error", "the worklist service sent an answer this appliance does not understand"),
])
def test_a_stalled_or_confused_peer_is_one_line_never_an_exception(tmp_path, reply, status, line):
    listener, stalled = serve_once(tmp_path / "peer.sock", reply)
    try:
        # Waiting for a stalled peer is the point, half a second of it; the others answer at once
        # but get a generous deadline on a busy machine.
        timeout_s = 0.5 if reply is None else 60
        answer = WorklistClient(tmp_path / "peer.sock", answer_timeout_s=timeout_s).fetch()
    finally:
        listener.close()
        for connection in stalled:
            connection.close()
    assert (answer.status, answer.line, answer.entries) == (status, line, ())


def test_the_service_answers_a_request_it_does_not_understand_with_one_line(tmp_path):
    service = WorklistService(WorklistSettings(host="127.0.0.1"), tmp_path / "run" / "w.sock",
                              query=lambda settings, day: pytest.fail("no query for a bad request"))
    service.serve()
    try:
        with socket.socket(socket.AF_UNIX) as peer:
            peer.connect(str(tmp_path / "run" / "w.sock"))
            peer.sendall(b"GET / HTTP/1.0\n")
            answer = decode_answer(peer.makefile("rb").readline())
    finally:
        service.close()
    assert (answer.status, answer.line) == ("error", "the worklist service did not understand the request")


def test_find_accession_finds_todays_step_or_says_why_not(tmp_path):
    ris = Wlmscpfs().start(tmp_path / "ris")
    write_worklist_file(ris.worklists_dir, MUELLER, station_ae=ROOM)
    write_worklist_file(ris.worklists_dir, YAMADA, station_ae=ROOM, character_set=JAPANESE)
    settings = WorklistSettings(host="127.0.0.1", port=ris.dicom_port, called_ae=ris.aet, station_ae=ROOM)
    service = WorklistService(settings, tmp_path / "run" / "w.sock", log=lambda line: None, today=lambda: TODAY)
    service.serve()
    try:
        client = WorklistClient(tmp_path / "run" / "w.sock")
        assert client.find_accession("ACC-2")[0] == YAMADA
        assert client.find_accession("ACC-9") == (
            None, "no step with that accession number is scheduled today for this station")
    finally:
        service.close()
        ris.stop()


# --- the service's answers in time --------------------------------------------------------------

def in_refresh(thread: threading.Thread) -> bool:
    """The thread waits inside WorklistService.refresh (for the query in progress)."""
    frame = sys._current_frames().get(thread.ident)
    return frame is not None and frame.f_code.co_name == "refresh"


def test_a_refresh_asked_during_a_query_gets_a_query_begun_after_it(tmp_path):
    """A patient added while a query runs must show after Refresh: the in-flight query may
    predate it, so the refresh waits for it and asks again."""
    release_first, calls = threading.Event(), []

    def query(settings, day):   # the RIS's answers, numbered; the first one is held back
        calls.append(len(calls) + 1)
        if len(calls) == 1:
            release_first.wait(30)
        return WorklistAnswer("empty", f"answer {len(calls)}")

    service = WorklistService(WorklistSettings(host="127.0.0.1"), tmp_path / "run" / "w.sock", query=query,
                              log=lambda line: None)
    periodic = threading.Thread(target=service.refresh)
    periodic.start()
    wait_for(lambda: calls == [1], 30, "the periodic query to start")
    results = []
    asked = threading.Thread(target=lambda: results.append(service.answer(refresh=True)))
    asked.start()
    wait_for(lambda: in_refresh(asked), 30, "the refresh to wait")   # for the query in flight
    release_first.set()
    asked.join(30)
    periodic.join(30)
    assert calls == [1, 2] and results[0].line == "answer 2"
    assert service.answer().line == "answer 2"   # and a plain request gets the last answer, no query
    assert calls == [1, 2]


def test_a_defect_in_the_query_is_an_error_line_and_the_service_goes_on(tmp_path):
    outcomes = iter([RuntimeError("boom Müller"), WorklistAnswer("empty", "nothing scheduled")])

    def query(settings, day):
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    logged = []
    service = WorklistService(WorklistSettings(host="127.0.0.1"), tmp_path / "w.sock", query=query,
                              log=logged.append)
    assert service.refresh().line == "the worklist query failed: RuntimeError"
    assert service.refresh().line == "nothing scheduled"
    assert logged == ["worklist: error: the worklist query failed: RuntimeError",
                      "worklist: empty: nothing scheduled"]   # the exception's text (may quote data) is not logged


def test_a_request_before_the_first_answer_waits_for_the_first_query_not_a_second(tmp_path):
    release_first, calls = threading.Event(), []

    def query(settings, day):
        calls.append(len(calls) + 1)
        release_first.wait(30)
        return WorklistAnswer("empty", f"answer {len(calls)}")

    service = WorklistService(WorklistSettings(host="127.0.0.1"), tmp_path / "w.sock", query=query,
                              log=lambda line: None)
    first = threading.Thread(target=service.refresh)
    first.start()
    wait_for(lambda: calls == [1], 30, "the first query to start")
    results = []
    kiosk = threading.Thread(target=lambda: results.append(service.answer()))
    kiosk.start()
    wait_for(lambda: in_refresh(kiosk), 30, "the kiosk's request to wait")
    release_first.set()
    kiosk.join(30)
    first.join(30)
    assert (calls, results[0].line) == ([1], "answer 1")


# --- a RIS going down does not take today's list ------------------------------------------------

def test_a_failed_query_keeps_todays_last_list_and_its_time_but_not_yesterdays(tmp_path):
    listed = WorklistAnswer("ok", "1 step scheduled today for ROOM1", (MUELLER,), "2026-12-01T08:00:00+00:00")
    down = WorklistAnswer("unreachable", "cannot reach the RIS")
    refused = WorklistAnswer("error", "RIS refused the association")
    nothing = WorklistAnswer("empty", "nothing scheduled today", (), "2026-12-01T09:00:00+00:00")
    answers, day = iter([listed, down, refused, nothing, down, listed, down]), [datetime.date(2026, 12, 1)]
    asked_for = []

    def query(settings, asked_day):
        asked_for.append(asked_day)
        return next(answers)

    service = WorklistService(WorklistSettings(host="127.0.0.1"), tmp_path / "w.sock", query=query,
                              log=lambda line: None, today=lambda: day[0])

    assert service.refresh() == listed
    assert service.refresh() == WorklistAnswer("unreachable", "cannot reach the RIS", (MUELLER,), listed.queried_at)
    assert service.refresh() == WorklistAnswer("error", "RIS refused the association", (MUELLER,), listed.queried_at)
    assert service.refresh() == nothing
    assert service.refresh() == WorklistAnswer(      # the last list was empty: no entry to keep
        "unreachable", "cannot reach the RIS", (), nothing.queried_at)
    assert service.refresh() == listed
    day[0] = datetime.date(2026, 12, 2)
    assert service.refresh() == down                 # yesterday's list is no list
    assert asked_for == [datetime.date(2026, 12, 1)] * 6 + [datetime.date(2026, 12, 2)]   # the RIS is asked for that day
