"""The worklist channel between the worklist service and the kiosk (or the headless unit):
one request line, one answer line, UTF-8 JSON, over a Unix stream socket. Spec and test
vectors: docs/worklist.md. Pure: encoding and decoding only."""

from __future__ import annotations

import json
from dataclasses import dataclass

from appliance.worklist.entries import WorklistEntry, entry_from_json, entry_to_json

FORMAT = "worklist-channel/1"
STATUSES = ("ok", "empty", "unreachable", "error")
MAX_LINE_BYTES = 4 * 1024 * 1024   # far above a day's worklist; bounds what a peer can make us hold


class ChannelError(ValueError):
    """A line that is not this protocol."""


@dataclass(frozen=True)
class WorklistAnswer:
    """status and line: how the last query went. entries and queried_at: the list and when the
    RIS answered it; after a failed query (unreachable, error) they may be today's last list,
    still valid, which the kiosk shows marked with its time (`with_last_list`)."""
    status: str                  # ok | empty | unreachable | error
    line: str                    # one line for the screen / the log; never a patient name
    entries: tuple[WorklistEntry, ...] = ()
    queried_at: str = ""         # when the RIS answered (UTC, ISO 8601); "" before any answer

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}, got {self.status!r}")
        if "\n" in self.line or "\r" in self.line:
            raise ValueError("line must be one line")
        if self.status == "ok" and not self.entries:
            raise ValueError("status ok comes with entries")
        if self.status == "empty" and self.entries:
            raise ValueError("status empty comes without entries")


def with_last_list(failed: WorklistAnswer, last: WorklistAnswer) -> WorklistAnswer:
    """A failed query's status and line, with the list (and its time) of the last query that
    succeeded: a RIS that goes down does not take today's list from the kiosk."""
    return WorklistAnswer(failed.status, failed.line, last.entries, last.queried_at)


def encode_request(*, refresh: bool) -> bytes:
    """refresh: query the RIS now and answer with that, instead of the last answer."""
    return _line({"format": FORMAT, "request": "worklist", "refresh": refresh})


def decode_request(line: bytes) -> bool:
    """The request's refresh flag; ChannelError when the line is not a request."""
    message = _message(line)
    if message.get("request") != "worklist" or not isinstance(message.get("refresh"), bool):
        raise ChannelError("not a worklist request")
    return message["refresh"]


def encode_answer(answer: WorklistAnswer) -> bytes:
    return _line({"format": FORMAT, "status": answer.status, "line": answer.line,
                  "queried_at": answer.queried_at,
                  "entries": [entry_to_json(entry) for entry in answer.entries]})


def decode_answer(line: bytes) -> WorklistAnswer:
    message = _message(line)
    try:
        entries = message["entries"]
        if not isinstance(entries, list) or not all(isinstance(message[key], str)
                                                    for key in ("status", "line", "queried_at")):
            raise ValueError("wrong types")
        return WorklistAnswer(message["status"], message["line"],
                              tuple(entry_from_json(entry) for entry in entries), message["queried_at"])
    except (KeyError, ValueError) as error:
        raise ChannelError(f"not a worklist answer: {error}") from None


def _line(message: dict) -> bytes:
    # ensure_ascii: the line stays 7-bit, whatever the names; JSON's \u escapes carry them.
    return json.dumps(message, ensure_ascii=True, separators=(",", ":")).encode("ascii") + b"\n"


def _message(line: bytes) -> dict:
    if len(line) > MAX_LINE_BYTES or not line.endswith(b"\n"):
        raise ChannelError("not one complete line")
    try:
        message = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):   # nesting too deep for the parser
        raise ChannelError("not JSON") from None
    if not isinstance(message, dict) or message.get("format") != FORMAT:
        raise ChannelError(f"not {FORMAT}")
    return message
