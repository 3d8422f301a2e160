"""The kiosk's and the headless unit's side of the worklist channel (docs/worklist.md).

Every call returns an answer, never raises: a service that is not running, stalls or talks
nonsense is status unreachable or error with one line, so the caller can offer manual entry.
Calls block up to their timeout: the kiosk makes them off the GUI thread.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

from appliance.worklist.entries import WorklistEntry
from appliance.worklist.protocol import MAX_LINE_BYTES, ChannelError, WorklistAnswer, decode_answer, encode_request

ANSWER_TIMEOUT_S = 5.0   # the service answers from memory


class WorklistClient:
    def __init__(self, socket_path: Path, *, query_timeout_s: float = 10.0,
                 answer_timeout_s: float = ANSWER_TIMEOUT_S):
        self.socket_path = Path(socket_path)
        self.answer_timeout_s = answer_timeout_s
        # A refresh may wait for a query in progress and then its own; each has three network
        # waits (connect, association, answer) bounded by the RIS timeout.
        self.refresh_timeout_s = 2 * 3 * query_timeout_s + answer_timeout_s

    @classmethod
    def from_settings(cls, settings) -> "WorklistClient":
        """From the appliance's Settings (appliance/config.py)."""
        return cls(settings.worklist_socket, query_timeout_s=settings.worklist.timeout_s)

    def fetch(self, *, refresh: bool = False) -> WorklistAnswer:
        """Today's worklist: the service's last answer, or a new query when `refresh`."""
        timeout_s = self.refresh_timeout_s if refresh else self.answer_timeout_s
        try:
            return decode_answer(self._exchange(encode_request(refresh=refresh), timeout_s))
        except (FileNotFoundError, ConnectionRefusedError):
            return WorklistAnswer("unreachable", "the worklist service is not running")
        except TimeoutError:
            return WorklistAnswer("unreachable", f"the worklist service did not answer within {timeout_s:g} s")
        except ChannelError:
            return WorklistAnswer("error", "the worklist service sent an answer this appliance does not understand")
        except OSError as error:
            return WorklistAnswer("unreachable", f"cannot reach the worklist service: {error.strerror or error}")

    def find_accession(self, accession: str) -> tuple[WorklistEntry | None, str]:
        """The step scheduled today with this accession number (asking the RIS now: a barcode
        scanned at the door may be newer than the last query; if the RIS fails, today's last
        list still counts), or None and one line why not."""
        answer = self.fetch(refresh=True)
        for entry in answer.entries:
            if entry.accession_number == accession:
                return entry, answer.line
        if answer.status not in ("ok", "empty"):
            return None, f"worklist {answer.status}: {answer.line}"
        return None, "no step with that accession number is scheduled today for this station"

    def _exchange(self, request: bytes, timeout_s: float) -> bytes:
        deadline = time.monotonic() + timeout_s
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as channel:
            channel.settimeout(timeout_s)
            channel.connect(str(self.socket_path))
            channel.sendall(request)
            received = bytearray()
            while not received.endswith(b"\n"):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                channel.settimeout(remaining)
                chunk = channel.recv(65536)
                if not chunk:
                    raise ChannelError("the service closed the channel mid-answer")
                received += chunk
                if len(received) > MAX_LINE_BYTES:
                    raise ChannelError("answer too long")
            return bytes(received)
