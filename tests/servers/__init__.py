"""Real servers for the tests (Orthanc, dcmtk, SeaweedFS), one module each, started on 127.0.0.1
with a temporary config and explicit free ports, stopped by PID. Nothing here is a mock."""

from __future__ import annotations

import signal
import socket
import subprocess


def free_port() -> int:
    """A TCP port nobody listens on right now. Another process may take it before the server
    binds it; the servers here retry a start whose port was taken."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


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
