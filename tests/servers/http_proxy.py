"""A loopback TCP proxy in front of an HTTP/1.1 server that sees each request the client sends:
it records the request line and headers, lets a test act before a request goes on (kill the
client, wait for an event) and change body bytes on the way (a flipped bit in transit).
Responses go back untouched. Bodies must carry Content-Length (boto3's do, with our checksums)."""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass
from typing import Callable

CHUNK = 64 * 1024


@dataclass
class Request:
    method: str
    target: str                      # path and query
    headers: dict[str, str]          # lower-case names
    body_length: int
    forwarded_body: int = 0          # bytes of the body that went on to the server
    tampered: bool = False


class HttpProxy:
    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.requests: list[Request] = []
        # Called with each request before its head goes on; may block, kill, raise to drop it.
        self.before_request: Callable[[Request], None] = lambda request: None
        # Called with each body chunk and its offset in the body; returns the bytes to forward.
        self.body_chunk: Callable[[Request, int, bytes], bytes] = lambda request, offset, chunk: chunk
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._stopping = False

    @property
    def port(self) -> int:
        return self._listener.getsockname()[1]

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def idle(self) -> bool:
        """True when no connection is open: whatever a dead client had sent has gone on."""
        return not any(thread.is_alive() for thread in self._threads[1:])

    def start(self) -> HttpProxy:
        self._spawn(self._accept)
        return self

    def stop(self) -> None:
        self._stopping = True
        _close(self._listener)   # shutdown wakes the thread blocked in accept()
        with self._lock:
            for sock in self._sockets:
                _close(sock)
        for thread in self._threads:
            thread.join(timeout=30)

    def _spawn(self, target, *args) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while not self._stopping:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=10)
                upstream.settimeout(None)
            except OSError:   # the server is down: the client sees its connection closed
                _close(client)
                continue
            with self._lock:
                self._sockets += [client, upstream]
            self._spawn(self._requests, client, upstream)
            self._spawn(self._responses, upstream, client)

    def _requests(self, client: socket.socket, upstream: socket.socket) -> None:
        buffer = b""
        try:
            while True:
                while b"\r\n\r\n" not in buffer:
                    data = client.recv(CHUNK)
                    if not data:
                        return
                    buffer += data
                head, buffer = buffer.split(b"\r\n\r\n", 1)
                request = _parse(head)
                if request.headers.get("transfer-encoding"):
                    raise ValueError("chunked request bodies are not supported by this proxy")
                with self._lock:
                    self.requests.append(request)
                self.before_request(request)
                upstream.sendall(head + b"\r\n\r\n")
                offset = 0
                while offset < request.body_length:
                    if not buffer:
                        buffer = client.recv(CHUNK)
                        if not buffer:
                            return
                    chunk, buffer = buffer[:request.body_length - offset], buffer[request.body_length - offset:]
                    upstream.sendall(self.body_chunk(request, offset, chunk))
                    offset += len(chunk)
                    request.forwarded_body = offset
        except (OSError, ValueError):
            pass
        finally:
            _close(client)
            _close(upstream)

    def _responses(self, upstream: socket.socket, client: socket.socket) -> None:
        try:
            while data := upstream.recv(CHUNK):
                client.sendall(data)
        except OSError:
            pass
        finally:
            _close(client)
            _close(upstream)


def _parse(head: bytes) -> Request:
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Request(method, target, headers, int(headers.get("content-length", "0")))


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
