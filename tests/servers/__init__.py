"""Real servers for tests (SeaweedFS, Orthanc, dcmtk), one module each: started on 127.0.0.1
with a temporary config and explicit free ports, stopped by PID. Shared by every team."""

import socket


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


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True
