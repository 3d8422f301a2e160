"""The windowed demo on a real X server (Debian's Xvfb) through PySide6's own xcb platform plugin,
so the libraries the set-up installs for a desktop are proven enough: a session recorded with the
simulator panel's footswitch, and no panel on a kiosk wired to a board.

Qt picks its platform once per process, so the sessions run in a child pytest
(tests/demo_window_under_xcb.py) with QT_QPA_PLATFORM=xcb and DISPLAY naming this Xvfb."""

from __future__ import annotations

import os
import select
import shutil
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.waiting import wait_for

HERE = Path(__file__).resolve().parent
XVFB_START_S = 20


def _read_display_number(pipe: int, timeout: float) -> str:
    """Xvfb -displayfd writes the display number it could lock, then a newline, once it listens."""
    deadline, text = time.monotonic() + timeout, b""
    while not text.endswith(b"\n"):
        readable, _, _ = select.select([pipe], [], [], max(0.0, deadline - time.monotonic()))
        chunk = os.read(pipe, 16) if readable else b""
        if not chunk:
            raise AssertionError("Xvfb named no display (it exited or took too long)")
        text += chunk
    return text.decode().strip()


def _x_server_answers(number: str) -> bool:
    """An X11 connection set-up (no authorization; Xvfb grants local clients) that succeeds."""
    try:
        with socket.socket(socket.AF_UNIX) as connection:
            connection.settimeout(2)
            connection.connect(f"/tmp/.X11-unix/X{number}")
            connection.sendall(struct.pack("<cxHHHHxx", b"l", 11, 0, 0, 0))   # little-endian, X11.0
            return connection.recv(1) == b"\x01"
    except OSError:
        return False


@pytest.fixture
def x_display(tmp_path):
    if shutil.which("Xvfb") is None:
        missing = "Xvfb is not installed (`make test` installs Debian's xvfb)"
        if os.environ.get("CI") == "true":
            pytest.fail("the windowed demo cannot be checked: " + missing, pytrace=False)
        pytest.skip(missing)
    read_end, write_end = os.pipe()
    log = (tmp_path / "xvfb.log").open("wb")
    server = subprocess.Popen(["Xvfb", "-displayfd", str(write_end), "-screen", "0", "1280x1024x24",
                               "-nolisten", "tcp"], pass_fds=(write_end,), stdout=log, stderr=log)
    os.close(write_end)
    try:
        number = _read_display_number(read_end, XVFB_START_S)
        wait_for(lambda: _x_server_answers(number), XVFB_START_S, f"Xvfb on :{number} to answer")
        yield f":{number}"
    finally:
        os.close(read_end)
        server.terminate()
        server.wait(timeout=10)
        log.close()


def test_the_windowed_demo_records_with_its_simulator_panel_on_xcb(x_display, tmp_path):
    child = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--basetemp={tmp_path / 'child'}",
         str(HERE / "demo_window_under_xcb.py")],
        cwd=HERE.parent, capture_output=True, text=True, timeout=180,
        env={**os.environ, "QT_QPA_PLATFORM": "xcb", "DISPLAY": x_display, "WAYLAND_DISPLAY": ""})
    report = child.stdout[-6000:] + child.stderr[-3000:]
    assert child.returncode == 0, report
    assert "2 passed" in child.stdout, report
