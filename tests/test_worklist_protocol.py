"""The worklist channel's lines (docs/worklist.md): the documented test vectors byte for byte,
and every malformed line refused."""

import json
import re
from pathlib import Path

import pytest

from appliance.worklist.entries import WorklistEntry, entry_to_json
from appliance.worklist.protocol import (MAX_LINE_BYTES, ChannelError, WorklistAnswer, decode_answer,
                                         decode_request, encode_answer, encode_request, with_last_list)

DOC = Path(__file__).parents[1] / "docs" / "worklist.md"
VECTORS = {name: line.encode("utf-8") + b"\n" for name, line in
           re.findall(r"<!-- vector: ([a-z-]+) -->\n```text\n(.*)\n```", DOC.read_text(encoding="utf-8"))}
MUELLER = WorklistEntry("Müller^Zoë", "P-0001", "19800102", "F", "ACC-1", "1.2.826.0.1.3680043.10.1.1",
                        "Laser, left forearm", "SPS-1", "20261201090000")
YAMADA = WorklistEntry("Yamada^Tarou=山田^太郎=やまだ^たろう", "P-0002", "19700101", "M", "ACC-2",
                       "1.2.826.0.1.3680043.10.1.2", "Laser, face", "SPS-2", "20261201101500")
AT = "2026-12-01T08:00:00+00:00"
DOWN = "cannot reach the RIS RIS1 at 10.0.0.5:104 (no answer within 10 s or connection refused)"
ANSWERS = {
    "answer-ok": WorklistAnswer("ok", "2 steps scheduled today for ROOM1", (MUELLER, YAMADA), AT),
    "answer-empty": WorklistAnswer("empty", "nothing scheduled today for ROOM1 (XC)", (), AT),
    "answer-unreachable": WorklistAnswer("unreachable", DOWN),
    "answer-unreachable-with-last-list": WorklistAnswer("unreachable", DOWN, (MUELLER,), AT),
}


def test_the_doc_has_every_vector():
    assert set(VECTORS) == {"request-last", "request-refresh", *ANSWERS}


@pytest.mark.parametrize("name, refresh", [("request-last", False), ("request-refresh", True)])
def test_request_vectors(name, refresh):
    assert encode_request(refresh=refresh) == VECTORS[name]
    assert decode_request(VECTORS[name]) is refresh


@pytest.mark.parametrize("name", sorted(ANSWERS))
def test_answer_vectors(name):
    assert encode_answer(ANSWERS[name]) == VECTORS[name]
    assert decode_answer(VECTORS[name]) == ANSWERS[name]


def test_a_failed_query_keeps_the_last_lists_entries_and_time_but_says_how_it_failed():
    last = WorklistAnswer("ok", "1 step scheduled today for ROOM1", (MUELLER,), AT)
    assert with_last_list(WorklistAnswer("unreachable", DOWN), last) == ANSWERS["answer-unreachable-with-last-list"]
    failed = with_last_list(WorklistAnswer("error", "refused"), last)
    assert (failed.status, failed.line, failed.entries, failed.queried_at) == ("error", "refused", (MUELLER,), AT)


def test_lines_are_seven_bit_whatever_the_names():
    assert max(encode_answer(ANSWERS["answer-ok"])) < 0x80


def _answer_with(**changes) -> bytes:
    message = {"format": "worklist-channel/1", "status": "ok", "line": "1 step", "queried_at": AT,
               "entries": [entry_to_json(MUELLER)], **changes}
    return json.dumps(message).encode() + b"\n"


@pytest.mark.parametrize("line", [
    _answer_with(entries=[]),                                                  # ok without entries
    _answer_with(status="empty"),                                              # empty with entries
    _answer_with(status="fine"),
    _answer_with(format="worklist-channel/2"),
    _answer_with(entries=[{**entry_to_json(MUELLER), "note": "x"}]),
    _answer_with(entries=[{k: v for k, v in entry_to_json(MUELLER).items() if k != "sex"}]),
    _answer_with(entries=[{**entry_to_json(MUELLER), "birth_date": "1980-01-02"}]),
    _answer_with(entries="Müller"),
    _answer_with(line=["x"]),
    _answer_with(line="two\nlines"),
    _answer_with()[:-1],                                                       # no final line feed
    b"\xff\xfe{}\n",
    b"[]\n",
    b'{"format":"worklist-channel/1"}\n',
    b"[" * 200_000 + b"]" * 200_000 + b"\n",                                   # nested beyond the parser
    b'{"format":"worklist-channel/1","status":"ok"' + b" " * MAX_LINE_BYTES + b"}\n",
])
def test_a_malformed_answer_is_refused(line):
    with pytest.raises(ChannelError):
        decode_answer(line)


@pytest.mark.parametrize("line", [
    b'{"format":"worklist-channel/1","request":"worklist","refresh":"yes"}\n',
    b'{"format":"worklist-channel/1","request":"delete","refresh":false}\n',
    b'{"request":"worklist","refresh":false}\n',
    b"GET / HTTP/1.0\r\n",
    b"",
])
def test_a_malformed_request_is_refused(line):
    with pytest.raises(ChannelError):
        decode_request(line)
