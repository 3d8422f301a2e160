"""Real servers for the tests (SeaweedFS, Orthanc, dcmtk), one module each, started on 127.0.0.1
with a temporary config and explicit free ports, stopped by PID. Nothing here is a mock."""

from __future__ import annotations

import signal
import socket
import subprocess

import pytest


def free_ports(count: int) -> list[int]:
    """`count` distinct ports free on 127.0.0.1 right now (held together while picking, so they
    differ). Another process may still take one before the server binds it: callers retry."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def free_port() -> int:
    return free_ports(1)[0]


@pytest.fixture
def commitment_port():
    """A port for the gateway's storage-commitment listener, kept from other processes for the
    whole test: the gateway binds it only while committing, long after Orthanc was told it, so a
    port merely free when picked could be taken by then. Held by a bound, not listening socket
    with SO_REUSEADDR: the kernel hands it to no bind(0), and pynetdicom's listener (which sets
    SO_REUSEADDR too) may still listen on it."""
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind(("127.0.0.1", 0))
    try:
        yield holder.getsockname()[1]
    finally:
        holder.close()


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def end_process(process: subprocess.Popen | None, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
    """Sends `sig` to the server's PID and waits for it to exit (SIGKILL if it does not)."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout)
