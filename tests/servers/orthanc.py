"""Orthanc (Debian's /usr/sbin/Orthanc) as a worklist server or a PACS for the tests.

`Orthanc().start(tmp_dir, worklists_dir=..., extra_config={...})` runs it on free 127.0.0.1
ports with a fresh storage dir under tmp_dir; `extra_config` is merged over the top-level keys
(e.g. {"DicomModalities": {...}} for storage commitment). Orthanc has no bind-address option:
it listens on every interface, so the tests only ever connect to 127.0.0.1, and
RemoteAccessAllowed=false keeps its REST API local.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.servers import accepts_connections, end_process, free_ports

ORTHANC = "/usr/sbin/Orthanc"
WORKLISTS_PLUGIN = "/usr/share/orthanc/plugins/libModalityWorklists.so"
START_TIMEOUT_S = 60.0
START_ATTEMPTS = 3      # a start whose free port was taken meanwhile is retried on new ports


class Orthanc:
    def __init__(self, aet: str = "ORTHANC"):
        self.aet = aet
        self.dicom_port = 0
        self.http_port = 0
        self.worklists_dir: Path | None = None
        self.process: subprocess.Popen | None = None
        self._dir: Path | None = None
        self._extra_config: dict = {}
        self._name = f"appliance-tests-{os.getpid()}-{id(self):x}"

    def start(self, tmp_dir: Path, *, worklists_dir: Path | None = None,
              extra_config: dict | None = None) -> "Orthanc":
        self._dir = Path(tmp_dir) / "orthanc"
        self._dir.mkdir(parents=True, exist_ok=False)   # fresh storage per run
        self.worklists_dir = Path(worklists_dir) if worklists_dir is not None else None
        self._extra_config = dict(extra_config or {})
        for _ in range(START_ATTEMPTS):
            self.dicom_port, self.http_port = free_ports(2)   # distinct
            if self._launch():
                return self
        raise RuntimeError(f"Orthanc did not start; see {self._dir / 'orthanc.log'}")

    def rest(self, path: str, *, method: str = "GET", body: bytes | dict | None = None,
             timeout: float = 30):
        """The REST answer: parsed JSON when it is JSON, else the bytes. HTTP errors raise."""
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        request = urllib.request.Request(f"http://127.0.0.1:{self.http_port}{path}", data=data,
                                         method=method)
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            content = answer.read()
            if answer.headers.get_content_type() == "application/json":
                return json.loads(content)
            return content

    def stop(self) -> None:
        """Gone at once: a SIGKILL. Orthanc's orderly stop idles ~3.5 s in its HTTP and DICOM
        listeners' poll loops, and a test's Orthanc has nothing to flush that the test reads
        afterwards (its SQLite index survives a kill, as after a power cut)."""
        end_process(self.process, signal.SIGKILL)

    def restart(self) -> None:
        """Same storage, same ports (Orthanc must have exited before the dir is reused)."""
        self.stop()
        if not self._launch():
            raise RuntimeError(f"Orthanc did not restart; see {self._dir / 'orthanc.log'}")

    def _config(self) -> dict:
        storage = str(self._dir / "storage")
        config = {
            "Name": self._name, "StorageDirectory": storage, "IndexDirectory": storage,
            "DicomAet": self.aet, "DicomPort": self.dicom_port, "DicomServerEnabled": True,
            "HttpPort": self.http_port, "HttpServerEnabled": True, "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False, "DefaultEncoding": "Utf8",
            "DicomCheckCalledAet": False, "DicomAlwaysAllowEcho": True,
            "DicomAlwaysAllowFindWorklist": True, "DicomAlwaysAllowStore": True,
            "ConcurrentJobs": 1, "HttpThreadsCount": 4, "Plugins": [],
        }
        if self.worklists_dir is not None:
            config["Plugins"] = [WORKLISTS_PLUGIN]
            config["Worklists"] = {"Enable": True, "Database": str(self.worklists_dir)}
        return config | self._extra_config

    def _launch(self) -> bool:
        """Starts the process and waits until both ports answer; False when it exited instead."""
        config_path = self._dir / "orthanc.json"
        config_path.write_text(json.dumps(self._config(), indent=2))
        with open(self._dir / "orthanc.log", "ab") as log:
            self.process = subprocess.Popen([ORTHANC, str(config_path)], stdout=log,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            if accepts_connections(self.dicom_port) and self._rest_answers():
                return True
            time.sleep(0.05)   # polling a starting server, bounded by the deadline
        end_process(self.process, signal.SIGKILL)
        raise RuntimeError(f"Orthanc did not answer within {START_TIMEOUT_S:.0f} s")

    def _rest_answers(self) -> bool:
        try:
            # By name: an answer on the port from some other server does not count as ours.
            return self.rest("/system", timeout=2)["Name"] == self._config()["Name"]
        except OSError:
            return False


@pytest.fixture
def orthanc_worklists(tmp_path_factory):
    """Orthanc serving the .wl files the test writes into `.worklists_dir`."""
    base = tmp_path_factory.mktemp("orthanc-mwl")
    worklists = base / "worklists"
    worklists.mkdir(mode=0o700)
    server = Orthanc().start(base, worklists_dir=worklists)
    yield server
    server.stop()


@pytest.fixture
def orthanc(tmp_path_factory):
    """Orthanc as a PACS (no worklists)."""
    server = Orthanc().start(tmp_path_factory.mktemp("orthanc-pacs"))
    yield server
    server.stop()
