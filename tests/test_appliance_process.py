"""The appliance as operators run it, and what happens when things go badly: SIGKILL in the
middle of a recording, and a disk that runs out of space. Real processes, real pty, real tmpfs."""

from __future__ import annotations

import dataclasses
import json
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from appliance import vault
from appliance.controller import Controller
from appliance.storage import disk_guard
from appliance.storage.reader import StoreReader
from firmware_bridge.simulator import Simulator
from tests.test_controller_e2e import (PASSPHRASE, assert_complete, press_and_record,  # noqa: F401
                                      small_settings, stamps_of, key_dir, identity)
from tests.waiting import wait_for


class RunningAppliance:
    """`appliance run --headless` in a subprocess, its JSON lines read on a thread."""

    def __init__(self, config: Path):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "appliance.cli", "run", "--headless", "--config", str(config)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.lines: queue.Queue[dict] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.put(json.loads(line))

    def send(self, command: str) -> None:
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()

    def expect(self, predicate, timeout: float = 15.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError("the appliance did not report the expected line in time") from None
            if predicate(line):
                return line
            assert "reply" not in line or line["ok"], line

    def status(self, predicate, timeout: float = 15.0) -> dict:
        return self.expect(lambda line: "status" in line and predicate(line["status"]), timeout)["status"]


def write_config(path: Path, data_dir: Path, port: str, key_dir: Path) -> Path:
    path.write_text(f"""
[data]
dir = "{data_dir}"
[camera]
width = 512
height = 288
[controller]
port = "{port}"
[recording]
pre_roll_s = 1.0
post_roll_s = 0.5
[storage]
max_session_minutes = 1
reserve_mb = 1
[keys]
recipients = ["{key_dir / vault.keys.RECIPIENT_PUB}"]
device_key = "{key_dir / vault.keys.DEVICE_KEY}"
""")
    return path


def test_sigkill_mid_recording_leaves_an_interrupted_prefix_and_the_appliance_arms_again(
        tmp_path, key_dir, identity, appliance_cli):
    data_dir = tmp_path / "data"
    with Simulator(str(tmp_path / "controller")) as simulator:
        config = write_config(tmp_path / "appliance.toml", data_dir, simulator.link_path, key_dir)
        first = RunningAppliance(config)
        try:
            first.status(lambda status: status["link_up"])
            first.send("begin PAT-0001 TECH-1")
            first.status(lambda status: status["state"] == "Armed")
            simulator.press()
            first.status(lambda status: status["state"] == "Recording")
            wait_for(lambda: any(p.stat().st_size > 3 * 65536 for p in data_dir.glob("sessions/*/*.vault")), 20)
        finally:
            first.process.send_signal(signal.SIGKILL)
            first.process.wait(10)
        simulator.release()

        second = RunningAppliance(config)
        try:
            second.status(lambda status: status["link_up"] and status["state"] == "Idle")
            reader = StoreReader(data_dir)
            (summary,) = reader.sessions()
            (recording,) = reader.recordings(summary.session.uid)
            reader.close()
            assert recording.state == "interrupted" and recording.sha256
            verification = vault.verify(recording.path, vault.keys.load_device_public(key_dir / "device.pub"))
            assert verification.ok and verification.state == "interrupted"
            with vault.open_reader(recording.path, identity) as reader:
                assert not reader.finalized
            prefix = stamps_of(recording.path, identity, torn_ok=True)
            assert len(prefix) >= 30 and prefix == list(range(prefix[0], prefix[0] + len(prefix)))
            assert appliance_cli("audit", "verify", "--config", str(config)).returncode == 0
            second.send("begin PAT-0001 TECH-1")
            second.status(lambda status: status["state"] == "Armed")
            second.send("quit")
            assert second.process.wait(30) == 0
        finally:
            if second.process.poll() is None:
                second.process.kill()
    events = [e.event for e in StoreReader(data_dir).audit_entries()]
    assert events == ["appliance_started", "session_opened", "recording_started", "appliance_started",
                      "recording_interrupted", "session_closed", "session_opened", "session_closed"]


def test_sigterm_seals_the_recording_in_progress_and_closes_the_session(tmp_path, key_dir, identity):
    data_dir = tmp_path / "data"
    with Simulator(str(tmp_path / "controller")) as simulator:
        config = write_config(tmp_path / "appliance.toml", data_dir, simulator.link_path, key_dir)
        appliance = RunningAppliance(config)
        try:
            appliance.status(lambda status: status["link_up"])
            appliance.send("begin PAT-0001 TECH-1")
            appliance.status(lambda status: status["state"] == "Armed")
            simulator.press()
            appliance.status(lambda status: status["state"] == "Recording")
            appliance.process.send_signal(signal.SIGTERM)
            assert appliance.process.wait(30) == 0
        finally:
            if appliance.process.poll() is None:
                appliance.process.kill()
        simulator.release()
    reader = StoreReader(data_dir)
    (summary,) = reader.sessions()
    (recording,) = reader.recordings(summary.session.uid)
    assert recording.state == "sealed" and summary.session.closed_at is not None
    assert_complete(recording, stamps_of(recording.path, identity))
    assert [e.event for e in reader.audit_entries()][-3:] == ["recording_started", "recording_sealed", "session_closed"]


@pytest.fixture
def small_disk(tmp_path):
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", str(mount_point)],
                            capture_output=True)
    if result.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root): " + result.stderr.decode().strip())
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_a_filling_disk_stops_and_seals_before_the_reserve_and_shows_the_storage_fault(
        small_disk, key_dir, identity):
    settings = small_settings(small_disk / "data", key_dir, reserve_mb=2, max_session_minutes=0.05)
    # Close to what 512x288 synthetic video really needs, so the first projection is realistic.
    settings = dataclasses.replace(settings, recording=dataclasses.replace(settings.recording,
                                                                           bitrate_estimate_bps=500_000))
    controller = Controller(settings)
    controller.start()
    try:
        controller.wait_for(lambda status: status.link.up, 10)
        # Leave 600 kB above the reserve: about 10 s at the configured estimate, fewer at the real rate.
        ballast = small_disk / "ballast"
        spare = disk_guard.free_bytes(small_disk) - 2_000_000 - 600_000
        ballast.write_bytes(b"\0" * spare)
        # Checked every second, shown as recording time at the 0.5 Mbit/s estimate: about 9.6 s.
        low = controller.wait_for(lambda status: status.storage_seconds_left < 15, 5)
        assert low.storage_warning and low.storage_seconds_left > 5
        session = controller.begin_session("PAT-0001", "TECH-1")
        press_and_record(controller)
        status = controller.wait_for(lambda status: status.state == "Error", 30)
        assert status.fault.kind == "storage_critical" and "export" in status.fault.what_to_do
        assert disk_guard.free_bytes(small_disk) > 1_000_000
        (recording,) = controller.reader.recordings(session.session_uid)
        assert recording.state == "sealed"
        assert vault.verify(recording.path, controller.keys.load().device_key.public_key()).ok
        assert_complete(recording, stamps_of(recording.path, identity))
        with pytest.raises(Exception, match="almost full"):
            controller.acknowledge()
        ballast.unlink()
        controller.acknowledge()
        assert controller.status.state == "Idle"
    finally:
        controller.simulator.release()
        controller.stop()
