"""Fleet health shown: simulated appliances post their statuses with the real uplink code and
their own device keys into SeaweedFS (one healthy, one silent for 6 minutes, one whose archive
backlog grows, one whose clock runs 10 minutes fast, one whose status was forged, one not
enrolled), and `appliance gateway serve` shows each as it is, through /api/fleet and in Debian's
chromium on /fleet.

The silent one's clock is set 6 minutes back (its status was posted "6 minutes ago"; its
measured clock offset says so too). Before each look the genuine rooms post again, as their
uplinks do every minute, and the silent one's age is bounded by the time measured around that
post and the look: however slow a loaded machine is, the healthy room is fresh and the silent
one reads its 6 minutes plus what really passed. PORTAL_SCREENS=<directory> also saves the page
there (docs/screens/portal-fleet.png)."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import time
from pathlib import Path

import pytest

from appliance.archive.status_object import status_key
from appliance.archive.uplink import StatusUplink
from appliance.control.snapshot import SNAPSHOT_PATH, encode, snapshot_of
from appliance.status import ApplianceStatus, CameraView, LinkView
from appliance.storage.database import Store
from appliance.vault.signing import DeviceKey
from tests.browsing import chromium, log_in, page  # noqa: F401 (fixtures)
from tests.gatewaying import clinic_keys  # noqa: F401 (fixture)
from tests.portaling import IT, start_portal
from tests.servers.seaweedfs import unique_bucket

HOUR = 3600.0
SUBJECT = "PID-0042"       # in the appliances' own databases; never in a status
ENROLLED_AS = {"healthy": "room-1", "silent": "room-2", "backlog": "room-3", "forged": "room-4", "fast": "room-5"}


class Appliance:
    """One simulated room: its device key, database, live snapshot and the real uplink."""

    def __init__(self, directory: Path, client, bucket: str, *, clock_skew_s: float = 0.0):
        self.key = DeviceKey.generate()
        self.id = self.key.public_key().key_id
        self.clock = lambda: time.time() + clock_skew_s
        self.data = directory / self.id
        self.store = Store(self.data, clock=lambda: time.time() - 3 * HOUR)   # recordings made 3 h ago
        self.session = self.store.open_session(SUBJECT, "TECH-7")
        self.uplink = StatusUplink(client, bucket, self.key, self.store, self.data / SNAPSHOT_PATH, clock=self.clock)

    def record(self, count: int) -> None:
        for _ in range(count):
            recording = self.store.start_recording(self.session.uid)
            self.store.seal_recording(recording.uid, bytes=400_000_000, duration_s=600.0, frames=18_000, dropped=0,
                                      sha256="0" * 64, manifest={})

    def post(self, state: str = "Idle") -> None:
        self.state = state
        status = ApplianceStatus(state=state, link=LinkView(up=True), storage_seconds_left=30 * HOUR,
                                 camera=CameraView("vimba", "VimbaCamera", 1936, 1216, 30.0))
        (self.data / SNAPSHOT_PATH).parent.mkdir(mode=0o700, exist_ok=True)
        (self.data / SNAPSHOT_PATH).write_bytes(encode(snapshot_of(status, self.clock())))
        self.uplink.post()


@dataclasses.dataclass
class Fleet:
    rooms: dict
    server: object
    client: object                # an IT user's HTTPS client, logged in
    backlog_seen: list            # the backlog room's /api/fleet entry after each of its posts
    anonymous_status: int         # /api/fleet without logging in
    s3: object
    bucket: str

    def post_again(self) -> float:
        """The genuine rooms post their statuses again, as their uplinks would every minute (the
        forged one's rewrite stays); returns the time just before the first of these posts."""
        started = time.time()
        for name in ("healthy", "silent", "backlog", "fast"):
            self.rooms[name].post(self.rooms[name].state)
        return started


def silent_bounds(posted_from: float, looked_until: float) -> tuple[float, float]:
    """The silent room's age as the portal can show it: its 6 minutes, plus at most what passed
    between the start of its post and the end of the look (0.1 s for the rounding)."""
    return 360 - 0.1, 360 + (looked_until - posted_from) + 0.1


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, clinic_keys, seaweedfs):  # noqa: F811
    base = tmp_path_factory.mktemp("fleet")
    bucket = seaweedfs.create_bucket(unique_bucket("fleet"))
    s3 = seaweedfs.client()
    rooms = {"healthy": Appliance(base, s3, bucket), "silent": Appliance(base, s3, bucket, clock_skew_s=-360),
             "backlog": Appliance(base, s3, bucket), "forged": Appliance(base, s3, bucket),
             "fast": Appliance(base, s3, bucket, clock_skew_s=600), "stranger": Appliance(base, s3, bucket)}
    devices = base / "devices"
    devices.mkdir()
    for name in ENROLLED_AS:                                    # the stranger is not enrolled
        (devices / f"{ENROLLED_AS[name]}.pub").write_bytes(rooms[name].key.public_key().pem())
    server = start_portal(base / "portal", dataclasses.replace(clinic_keys, devices=devices), s3=seaweedfs,
                          bucket=bucket, accounts=())
    add_cheaply(server, IT)
    client = server.client()
    anonymous = client.get("/api/fleet")[0]
    assert client.log_in(IT) == 303
    for room in rooms.values():
        room.post()
    # The backlog grows over three posts: none, then two recordings, then five, made 3 h ago.
    backlog, seen = rooms["backlog"], []
    for count, state in ((0, "Idle"), (2, "Idle"), (3, "Recording")):
        backlog.record(count)
        backlog.post(state)
        seen.append(api_fleet(client)[backlog.id])
    # The forged room's real status shows a fault and a backlog; someone rewrites it to look healthy.
    forged = rooms["forged"]
    forged.record(1)
    forged.post("Error")
    key = status_key(forged.id)
    document = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    document["signed"] |= {"state": "Idle", "backlog_count": 0, "backlog_bytes": 0, "backlog_oldest_age_s": None}
    s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(document).encode())
    yield Fleet(rooms, server, client, seen, anonymous, s3, bucket)
    server.stop()
    for room in rooms.values():
        room.store.close()


def add_cheaply(server, account) -> None:
    """The account in the served portal's database, hashed with cheap Argon2 parameters (the CLI's
    production ones cost seconds here; tests/portaling.py's in-process app does the same)."""
    from argon2 import PasswordHasher

    from appliance.gateway import settings as gateway_settings
    from appliance.portal.accounts import Accounts

    accounts = Accounts(gateway_settings.load(server.config).database_path, time.time,
                        hasher=PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1))
    try:
        accounts.add(account.name, account.role, account.password)
    finally:
        accounts.close()


def api_fleet(client) -> dict:
    status, headers, body = client.get("/api/fleet")
    assert status == 200 and headers["Cache-Control"] == "no-store"
    return {room["device"]: room for room in json.loads(body)["rooms"]}


def test_each_room_is_shown_as_it_is_through_the_api(fleet):
    rooms = fleet.rooms
    assert fleet.anonymous_status == 401                          # not without logging in
    posted_from = fleet.post_again()
    shown = api_fleet(fleet.client)
    low, high = silent_bounds(posted_from, time.time())
    assert set(shown) == {room.id for room in rooms.values()}

    healthy = shown[rooms["healthy"].id]
    assert (healthy["health"], healthy["highlighted"], healthy["problems"]) == ("ok", False, [])
    assert healthy["status"]["state"] == "Idle" and abs(healthy["status"]["clock_offset_s"]) <= 5

    silent = shown[rooms["silent"].id]
    assert silent["health"] == "stale" and silent["highlighted"] and low <= silent["age_s"] <= high
    assert silent["problems"][0] == f"silent for {int(silent['age_s'] // 60)} min: these values are from then"

    fast = shown[rooms["fast"].id]         # aged by when the archive stored it: its posted_at is 10 min ahead
    passed = high - 360                     # at most this passed between its post and the look
    assert (fast["health"], fast["highlighted"]) == ("attention", True) and 0 <= fast["age_s"] <= passed + 1
    ahead = re.fullmatch(r"posted (\d+) min in the future by the portal's clock: a clock is wrong", fast["problems"][0])
    assert ahead and (600 - passed) // 60 <= int(ahead[1]) <= 10

    stranger = shown[rooms["stranger"].id]
    assert (stranger["health"], stranger["highlighted"], stranger["status"]) == ("unknown device", True, None)
    assert {name: shown[room.id]["name"] for name, room in rooms.items()} == ENROLLED_AS | {"stranger": None}

    forged = shown[rooms["forged"].id]
    assert (forged["health"], forged["highlighted"], forged["status"], forged["age_s"]) == ("forged", True, None, None)
    assert "signature is invalid" in forged["problems"][0]


def test_a_growing_backlog_is_highlighted_once_it_waits_too_long(fleet):
    counts = [(seen["health"], seen["status"]["backlog_count"]) for seen in fleet.backlog_seen]
    assert counts == [("ok", 0), ("attention", 2), ("attention", 5)]
    assert fleet.backlog_seen[-1]["problems"] == ["archive backlog: 5 recordings (2.00 GB), the oldest waiting 3 h"]
    assert fleet.backlog_seen[-1]["status"]["state"] == "Recording"


def test_no_status_in_the_bucket_carries_phi(fleet):
    for room in fleet.rooms.values():
        data = fleet.s3.get_object(Bucket=fleet.bucket, Key=status_key(room.id))["Body"].read()
        assert SUBJECT.encode() not in data and b"TECH-7" not in data


def test_the_fleet_page_in_chromium_highlights_each_room_as_it_is(fleet, page):  # noqa: F811
    rooms, server = fleet.rooms, fleet.server
    log_in(page, server.base_url, IT.name, IT.password)
    page.wait_for_url(f"{server.base_url}/fleet")
    posted_from = fleet.post_again()
    page.reload()
    low, high = silent_bounds(posted_from, time.time())

    def row(name):
        return page.locator(f"tr[data-device='{rooms[name].id}']")

    assert row("healthy").get_attribute("data-health") == "ok"
    assert "highlighted" not in row("healthy").get_attribute("class")
    for name, health, label in (("silent", "stale", "Silent"), ("backlog", "attention", "Needs attention"),
                                ("fast", "attention", "Needs attention"), ("forged", "forged", "FORGED status"),
                                ("stranger", "unknown device", "Unknown device")):
        assert row(name).get_attribute("data-health") == health
        assert "highlighted" in row(name).get_attribute("class")
        assert label in row(name).inner_text()
    minutes = int(re.search(r"silent for (\d+) min", row("silent").inner_text())[1])
    assert int(low // 60) <= minutes <= int(high // 60)
    assert "5 recordings (2.00 GB)" in row("backlog").inner_text()
    forged = row("forged").inner_text()
    assert "signature is invalid" in forged and "not shown" in forged and "Idle" not in forged
    colours = {name: row(name).evaluate("row => getComputedStyle(row).backgroundColor")
               for name in ("healthy", "silent", "forged")}
    assert len(set(colours.values())) == 3                     # ok, highlighted, forged: told apart at a glance
    if os.environ.get("PORTAL_SCREENS"):
        page.screenshot(path=str(Path(os.environ["PORTAL_SCREENS"]) / "portal-fleet.png"), full_page=True)
