"""dcmtk's servers (Debian's /usr/bin, by absolute path: pynetdicom puts its own findscu and
storescp into the venv) for the tests: `Wlmscpfs`, the file-based worklist SCP, and `StoreSCP`,
a second PACS that stores what it receives into a directory (no commitment, no query)."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.servers import accepts_connections, end_process, free_port

WLMSCPFS = "/usr/bin/wlmscpfs"
START_TIMEOUT_S = 30.0
START_ATTEMPTS = 3      # a start whose free port was taken meanwhile is retried on a new port


class DcmtkServer:
    """What both dcmtk servers share: one single-process PID on `.dicom_port`, started on a free
    port (retried when it was taken meanwhile), stopped, killed and restarted by that PID.
    Subclasses name themselves and give their command line."""

    NAME = ""
    dicom_port = 0
    process: subprocess.Popen | None = None
    _dir: Path | None = None

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _start_on_a_free_port(self) -> None:
        for _ in range(START_ATTEMPTS):
            self.dicom_port = free_port()
            if self._launch():
                return
        raise RuntimeError(f"{self.NAME} did not start; see {self._dir / (self.NAME + '.log')}")

    def stop(self) -> None:
        end_process(self.process)

    def kill(self) -> None:
        end_process(self.process, signal.SIGKILL)

    def restart(self) -> None:
        end_process(self.process)
        if not self._launch():
            raise RuntimeError(f"{self.NAME} did not restart; see {self._dir / (self.NAME + '.log')}")

    def _launch(self) -> bool:
        with open(self._dir / f"{self.NAME}.log", "ab") as log:
            self.process = subprocess.Popen(self._command(), stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            if accepts_connections(self.dicom_port):
                return True
            time.sleep(0.02)   # polling a starting server, bounded by the deadline
        end_process(self.process, signal.SIGKILL)
        raise RuntimeError(f"{self.NAME} did not listen within {START_TIMEOUT_S:.0f} s")


class Wlmscpfs(DcmtkServer):
    """wlmscpfs serving the .wl files in `.worklists_dir` (= DIR/<AET>, with the lockfile it
    needs) to callers that address it as `.aet`. `-csk` returns the files' own Specific
    Character Set, so UTF-8 and ISO 2022 names arrive as written. `extra_args` passes further
    wlmscpfs options, e.g. ["--refuse"] or ["--sleep-during", "5"]."""

    NAME = "wlmscpfs"

    def __init__(self, aet: str = "WLMSCP"):
        self.aet = aet
        self.worklists_dir: Path | None = None
        self._extra_args: list[str] = []

    def start(self, tmp_dir: Path, *, extra_args: list[str] | tuple = ()) -> "Wlmscpfs":
        self._dir = Path(tmp_dir) / "wlmscpfs"
        self.worklists_dir = self._dir / "data" / self.aet
        self.worklists_dir.mkdir(parents=True, exist_ok=False)
        (self.worklists_dir / "lockfile").touch()
        self._extra_args = list(extra_args)
        self._start_on_a_free_port()
        return self

    def _command(self) -> list[str]:
        # Single process: one PID to stop, no forked children outliving it.
        return [WLMSCPFS, "--single-process", "-csk", "-dfp", str(self.worklists_dir.parent),
                *self._extra_args, str(self.dicom_port)]


@pytest.fixture
def wlmscpfs(tmp_path_factory):
    server = Wlmscpfs().start(tmp_path_factory.mktemp("wlmscpfs"))
    yield server
    server.stop()


STORESCP = "/usr/bin/storescp"


class StoreSCP(DcmtkServer):
    """storescp +xa: accepts every transfer syntax it knows and writes each received instance,
    bit for bit (+B), as a file into `.received_dir`. It answers neither storage commitment nor
    C-FIND, so a sender can only trust its C-STORE status."""

    NAME = "storescp"

    def __init__(self, aet: str = "STORESCP"):
        self.aet = aet
        self.received_dir: Path | None = None

    def start(self, tmp_dir: Path) -> "StoreSCP":
        self._dir = Path(tmp_dir) / "storescp"
        self.received_dir = self._dir / "received"
        self.received_dir.mkdir(parents=True, exist_ok=False)
        self._start_on_a_free_port()
        return self

    def received(self) -> list[Path]:
        return sorted(path for path in self.received_dir.iterdir() if path.is_file())

    def _command(self) -> list[str]:
        return [STORESCP, "--single-process", "+xa", "+B", "-aet", self.aet, "-od", str(self.received_dir),
                str(self.dicom_port)]


@pytest.fixture
def storescp(tmp_path_factory):
    server = StoreSCP().start(tmp_path_factory.mktemp("storescp"))
    yield server
    server.stop()
