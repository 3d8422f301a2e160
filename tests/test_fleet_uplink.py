"""The appliance side of fleet health: the recording process's live snapshot file (written by
the real controller), and the archive uplink posting signed status objects to a real SeaweedFS:
what it reads, what the portal's check makes of it, an outage said once, `archive verify`
unbothered by the overwritten key."""

from __future__ import annotations

import json
import logging
import stat
import re
import threading
import time
from dataclasses import asdict
from types import SimpleNamespace

import pytest

from appliance.archive.status_object import GENUINE, NOT_REPORTING, open_status, status_key
from appliance.archive.uplink import StatusUplink, clock_offset, compose_status
from appliance.archive.verify import verify_archive
from appliance.config import (CameraSettings, ControllerSettings, DataSettings, KeySettings, RecordingSettings,
                              Settings, StorageSettings)
from appliance.control.snapshot import (FRESH_S, SNAPSHOT_PATH, LiveSnapshot, SnapshotWriter, encode, read_fresh,
                                        snapshot_of)
from appliance.controller import Controller
from appliance.faults import FaultKind
from appliance.portal.fleet import FleetBoard
from appliance.status import ApplianceStatus, CameraView, Fault, LinkView
from appliance.storage.database import Store
from appliance.storage.queries import ArchiveBacklog
from appliance.storage.reader import StoreReader
from appliance.vault import keys
from tests.servers import free_ports
from tests.servers.seaweedfs import SeaweedFS, unique_bucket
from tests.waiting import wait_for

NOW = 1_764_581_400.0
CAMERA = CameraView("synthetic", "SyntheticCamera", 512, 288, 30.0)


class Clock:
    def __init__(self, now: float = NOW):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def key_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("keys")
    keys.generate_device(directory)
    return directory


@pytest.fixture(scope="module")
def device_key(key_dir):
    return keys.load_device_key(key_dir / keys.DEVICE_KEY)


def enrolled(device_key) -> dict:
    return {device_key.public_key().key_id: device_key.public_key()}


# -- the live snapshot ---------------------------------------------------------------------------

def test_the_snapshot_says_what_the_kiosk_shows_without_phi():
    status = ApplianceStatus(state="Recording", link=LinkView(up=True), camera=CAMERA, storage_seconds_left=7200.04)
    assert snapshot_of(status, NOW, "9.9") == LiveSnapshot(NOW, "Recording", True, True, 7200.0, None, "9.9")
    lost = ApplianceStatus(state="Error", camera=CAMERA, fault=Fault(FaultKind.CAMERA_LOST, "x", "y"))
    assert (snapshot_of(lost, NOW).camera_up, snapshot_of(lost, NOW).fault) == (False, "camera_lost")
    unopened = snapshot_of(ApplianceStatus(), NOW)
    assert (unopened.camera_up, unopened.link_up, unopened.disk_seconds_left) == (False, False, None)


def test_only_a_fresh_readable_snapshot_counts(tmp_path):
    path = tmp_path / "live-status.json"
    assert read_fresh(path, NOW) is None
    snapshot = LiveSnapshot(NOW, "Idle", True, True, 100.0, None, "0.1.0")
    path.write_bytes(encode(snapshot))
    assert read_fresh(path, NOW + FRESH_S) == snapshot
    assert read_fresh(path, NOW + FRESH_S + 1) is None          # its writer stopped or hangs
    wrong_type = json.dumps(asdict(snapshot) | {"camera_up": "yes"}).encode()
    for garbage in (b"", b"{", b'{"state": "Idle"}', b"[]", b'"Idle"', wrong_type):
        path.write_bytes(garbage)
        assert read_fresh(path, NOW) is None


def test_the_writer_rewrites_promptly_on_a_change_and_removes_the_file_when_stopped(tmp_path):
    current = [ApplianceStatus(state="Idle", link=LinkView(up=True), camera=CAMERA)]
    path = tmp_path / "data" / SNAPSHOT_PATH
    writer = SnapshotWriter(path, lambda: current[0], clock=Clock(), heartbeat_s=3600, min_spacing_s=0.01)
    writer.start()
    try:
        assert wait_for(lambda: read_fresh(path, NOW), 10, "the first snapshot").state == "Idle"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        current[0] = ApplianceStatus(state="Error", link=LinkView(up=False), camera=CAMERA)
        writer.changed(current[0])
        wait_for(lambda: (read_fresh(path, NOW) or snapshot_of(current[0], 0)).state == "Error", 10, "the rewrite")
        assert read_fresh(path, NOW).link_up is False
    finally:
        writer.stop()
    assert not path.exists()


def test_the_running_controller_keeps_the_snapshot_current(tmp_path, key_dir):
    settings = Settings(data=DataSettings(tmp_path / "data"), camera=CameraSettings(width=512, height=288, fps=15),
                        recording=RecordingSettings(pre_roll_s=0.5, post_roll_s=0.5, bitrate_estimate_bps=500_000),
                        controller=ControllerSettings(simulator_engine="python"),
                        storage=StorageSettings(max_session_minutes=1, reserve_mb=1),
                        keys=KeySettings(device_key=key_dir / keys.DEVICE_KEY))
    controller = Controller(settings)
    controller.start()
    path = settings.data.dir / SNAPSHOT_PATH
    try:
        controller.wait_for(lambda status: status.link.up, 10)
        snapshot = wait_for(lambda: (s := read_fresh(path, time.time())) and s.link_up and s, 10, "link up")
        assert snapshot.state == "Idle" and snapshot.camera_up and snapshot.disk_seconds_left > 0
    finally:
        controller.stop()
    assert not path.exists()


# -- the uplink ----------------------------------------------------------------------------------

def test_compose_without_a_snapshot_is_not_reporting_with_the_archive_s_own_figures():
    backlog = ArchiveBacklog(3, 3_000, NOW - 7200)
    status = compose_status("00112233aabbccdd", NOW, None, backlog, NOW - 60, 1.5, "0.1.0")
    assert (status.state, status.camera_up, status.link_up, status.disk_seconds_left) == (NOT_REPORTING, None, None, None)
    assert (status.backlog_count, status.backlog_bytes, status.backlog_oldest_age_s) == (3, 3_000, 7200.0)
    assert (status.last_recording_at, status.clock_offset_s, status.software_version) == (NOW - 60, 1.5, "0.1.0")


def test_the_clock_offset_is_the_local_clock_minus_the_server_date():
    assert clock_offset(NOW + 90.2, NOW + 90.4, "Mon, 01 Dec 2025 09:30:00 GMT") == 90.3
    assert clock_offset(NOW - 5, NOW - 5, "Mon, 01 Dec 2025 09:30:00 GMT") == -5.0


@pytest.fixture
def appliance(tmp_path, seaweedfs):  # noqa: F811 (fixture)
    """An appliance's database with two finished recordings not archived, and a fresh bucket."""
    clock = Clock(NOW - 3600)
    store = Store(tmp_path / "data", clock=clock)
    session = store.open_session("PAT-0001", "TECH-7")
    for _ in range(2):
        recording = store.start_recording(session.uid)
        clock.now += 600
        store.seal_recording(recording.uid, bytes=5_000_000, duration_s=10.0, frames=300, dropped=0,
                             sha256="0" * 64, manifest={})
    yield store, seaweedfs.create_bucket(unique_bucket())
    store.close()


def test_a_post_is_a_genuine_status_with_the_backlog_and_a_measured_offset(appliance, seaweedfs, device_key,  # noqa: F811
                                                                             tmp_path):
    store, bucket = appliance
    snapshot = tmp_path / "data" / SNAPSHOT_PATH
    snapshot.parent.mkdir(mode=0o700)
    snapshot.write_bytes(encode(LiveSnapshot(time.time(), "Armed", True, False, 4000.0, None, "0.1.0")))
    uplink = StatusUplink(seaweedfs.client(), bucket, device_key, store, snapshot)
    posted = uplink.post()
    key = status_key(device_key.public_key().key_id)
    data = seaweedfs.client().get_object(Bucket=bucket, Key=key)["Body"].read()
    opened = open_status(data, key, enrolled(device_key))
    assert opened.verdict == GENUINE and opened.status == posted
    assert (posted.state, posted.camera_up, posted.link_up, posted.disk_seconds_left) == ("Armed", True, False, 4000.0)
    assert (posted.backlog_count, posted.backlog_bytes) == (2, 10_000_000)
    assert posted.backlog_oldest_age_s > 3000 and posted.last_recording_at == NOW - 3000
    assert abs(posted.clock_offset_s) <= 5        # the same machine's clock; Date has whole seconds, a slow answer

    snapshot.unlink()                             # the kiosk stopped
    assert uplink.post().state == NOT_REPORTING
    versions = seaweedfs.client().list_object_versions(Bucket=bucket, Prefix=key)["Versions"]
    assert len(versions) == 2
    assert verify_archive(store, seaweedfs.client(), bucket, device_key_id=uplink.device_key_id).problems == ()


def test_the_board_ages_a_dead_fast_clocked_appliance_s_status_by_the_archive_s_time(appliance, seaweedfs,  # noqa: F811
                                                                                   device_key, tmp_path):
    store, bucket = appliance
    fast = 400.0                                  # the appliance's clock runs 400 s ahead
    uplink = StatusUplink(seaweedfs.client(), bucket, device_key, store, tmp_path / "no-snapshot.json",
                          clock=lambda: time.time() + fast)
    uplink.post()                                 # its last post: then it dies
    devices = tmp_path / "devices"
    devices.mkdir()
    (devices / "room-1.pub").write_bytes(device_key.public_key().pem())
    portal_clock = Clock(time.time())

    def room():
        config = SimpleNamespace(archive=SimpleNamespace(bucket=bucket), gateway=SimpleNamespace(devices=devices))
        context = SimpleNamespace(archive_client=seaweedfs.client, config=config, clock=portal_clock,
                                  devices=[device_key.public_key()])
        (shown,) = FleetBoard(context).rooms()
        return shown

    now_room = room()                             # at once: posted ~400 s "in the future"
    assert now_room.health == "attention" and now_room.age_s <= 5
    assert re.match(r"posted 6 min in the future by the portal's clock", now_room.problems[0])
    portal_clock.now += fast                      # 400 s on by the portal's clock: its posted_at is "now"
    later = room()
    assert later.health == "stale" and fast <= later.age_s <= fast + 5
    assert later.problems[0] == "silent for 6 min: these values are from then"


class SwitchableClient:
    """The real client, or one aimed at a port nothing listens on (the archive unreachable)."""

    def __init__(self, working, broken):
        self.working, self.broken, self.up, self.tries = working, broken, False, 0

    def __getattr__(self, name):
        if name == "head_bucket":
            self.tries += 1
        return getattr(self.working if self.up else self.broken, name)


def test_an_outage_is_logged_once_and_posting_resumes_after_it(appliance, seaweedfs, device_key, tmp_path,  # noqa: F811
                                                              caplog):
    store, bucket = appliance
    records = StoreReader(store.data_dir)          # the uplink's own connection, as in `archive run`
    dead = SeaweedFS()                            # never started: its port has no listener
    dead.ports = {"s3": free_ports(1)[0]}
    client = SwitchableClient(seaweedfs.client(), dead.client())
    uplink = StatusUplink(client, bucket, device_key, records, tmp_path / "no-snapshot.json")
    stop = threading.Event()
    caplog.set_level(logging.INFO, logger="appliance.archive")
    thread = threading.Thread(target=uplink.run, args=(stop,), kwargs={"interval_s": 0.01})
    thread.start()
    try:
        wait_for(lambda: client.tries >= 4, 30, "four failed posts")
        client.up = True
        key = status_key(uplink.device_key_id)
        wait_for(lambda: "posted again" in caplog.text, 30, "a post after the outage")
    finally:
        stop.set()
        thread.join(30)
        records.close()
    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1 and "cannot reach the server" in warnings[0].getMessage()
    assert seaweedfs.client().head_object(Bucket=bucket, Key=key)["ContentLength"] > 0
