"""The worklist service (`appliance worklist run`): asks the RIS every refresh_s, keeps the last
answer in memory and serves it over the Unix socket (docs/worklist.md). When a query fails, the
answer keeps today's last list, so a RIS going down does not empty the kiosk's screen. It runs in its own
process with network access, so the kiosk needs none. Nothing is written to disk but the socket
(0600, in a 0700 directory); what it logs is the status line, which names no patient.
"""

from __future__ import annotations

import datetime
import os
import socket
import socketserver
import stat
import sys
import threading
import time
from pathlib import Path
from typing import Callable

from appliance.errors import BadInput
from appliance.worklist.protocol import (MAX_LINE_BYTES, ChannelError, WorklistAnswer, decode_request,
                                         encode_answer, with_last_list)
from appliance.worklist.query import query_worklist
from appliance.worklist.settings import SOCKET_PATH_MAX, WorklistSettings


class WorklistService:
    def __init__(self, settings: WorklistSettings, socket_path: Path, *,
                 query: Callable[[WorklistSettings, datetime.date], WorklistAnswer] | None = None,
                 log: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True),
                 today: Callable[[], datetime.date] = datetime.date.today):
        self.settings = settings
        self.socket_path = Path(socket_path)
        # query(settings, day): the RIS's steps for that day (the day also dates the kept list).
        self._query = query or (lambda settings, day: query_worklist(settings, today=day))
        self._log = log
        self._today = today
        self._answer: WorklistAnswer | None = None   # None until the RIS was first asked
        self._last_list: tuple[datetime.date, WorklistAnswer] | None = None   # the last success, and its day
        self._answer_lock = threading.Lock()
        self._query_lock = threading.Lock()          # one query at a time
        self._last_query_started = float("-inf")
        self._stopping = threading.Event()
        self._server: socketserver.ThreadingUnixStreamServer | None = None

    def answer(self, *, refresh: bool = False) -> WorklistAnswer:
        """The last answer; a fresh one (from a query started after this call) when asked to
        refresh or before the first query has answered."""
        with self._answer_lock:
            if self._answer is not None and not refresh:
                return self._answer
        # Before the first answer, the first query's will do (the kiosk starting with the service).
        return self.refresh(begun_after=None if refresh else float("-inf"))

    def refresh(self, *, begun_after: float | None = None) -> WorklistAnswer:
        """A query's answer: one begun after `begun_after` (default: now) if one has answered
        while this call waited for the query in progress, else a new one."""
        asked = time.monotonic() if begun_after is None else begun_after
        with self._query_lock:
            with self._answer_lock:
                if self._last_query_started > asked and self._answer is not None:
                    return self._answer
            self._last_query_started = time.monotonic()
            day = self._today()
            try:
                answer = self._query(self.settings, day)
            except Exception as error:   # a defect in the query must not end the service
                answer = WorklistAnswer("error", f"the worklist query failed: {type(error).__name__}")
            if answer.status in ("ok", "empty"):
                self._last_list = (day, answer)
            elif self._last_list is not None and self._last_list[0] == day:   # yesterday's list is no list
                answer = with_last_list(answer, self._last_list[1])
            with self._answer_lock:
                previous, self._answer = self._answer, answer
        if previous is None or (previous.status, previous.line) != (answer.status, answer.line):
            self._log(f"worklist: {answer.status}: {answer.line}")
        return answer

    def serve(self) -> None:
        """Binds the socket and serves it from a background thread."""
        self._server = _ChannelServer(bind_socket(self.socket_path), self)
        threading.Thread(target=self._server.serve_forever, name="worklist-channel", daemon=True).start()

    def run(self) -> None:
        """Serves and queries every refresh_s until stop()."""
        self.serve()
        self._log(f"worklist: serving {self.socket_path}, asking RIS {self.settings.called_ae} at "
                  f"{self.settings.host}:{self.settings.port} every {self.settings.refresh_s:g} s")
        try:
            while not self._stopping.is_set():
                self.refresh()
                self._stopping.wait(self.settings.refresh_s)
        finally:
            self.close()

    def stop(self) -> None:
        self._stopping.set()

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
            self.socket_path.unlink(missing_ok=True)


def bind_socket(path: Path) -> socket.socket:
    """A listening Unix socket at `path`, 0600 in a 0700 directory. A stale socket left by a
    crash is replaced; one a running service answers on is not. It is bound and listening under
    a temporary name, then renamed into place: a client never finds it before it accepts."""
    binding = path.with_name(f".{os.getpid()}.sock")
    if max(len(os.fsencode(path)), len(os.fsencode(binding))) > SOCKET_PATH_MAX:
        raise BadInput(f"worklist: socket path is longer than {SOCKET_PATH_MAX} bytes: {path}")
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True)
    if stat.S_IMODE(path.parent.stat().st_mode) & 0o077:
        raise BadInput(f"worklist: the socket directory {path.parent} must be accessible to its owner "
                       f"only (0700)")
    if path.exists():
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            if probe.connect_ex(str(path)) == 0:
                raise BadInput(f"worklist: another worklist service already serves {path}")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        binding.unlink(missing_ok=True)
        listener.bind(str(binding))
        os.chmod(binding, 0o600)
        listener.listen(16)
        os.rename(binding, path)
    except OSError as error:
        listener.close()
        binding.unlink(missing_ok=True)
        raise BadInput(f"worklist: cannot serve {path}: {error.strerror}") from None
    return listener


class _ChannelServer(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True

    def __init__(self, listener: socket.socket, service: WorklistService):
        # The socket is bound already (with its checks and mode); the server only accepts on it.
        super().__init__(str(service.socket_path), _ChannelHandler, bind_and_activate=False)
        self.socket.close()
        self.socket = listener
        self.service = service


class _ChannelHandler(socketserver.StreamRequestHandler):
    timeout = 30   # a peer that connects and never sends its request is dropped

    def handle(self):
        try:
            refresh = decode_request(self.rfile.readline(MAX_LINE_BYTES + 1))
        except ChannelError:
            answer = WorklistAnswer("error", "the worklist service did not understand the request")
        except OSError:
            return
        else:
            answer = self.server.service.answer(refresh=refresh)
        try:
            self.wfile.write(encode_answer(answer))
        except OSError:
            pass   # the kiosk gave up waiting; it will ask again
