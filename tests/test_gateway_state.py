"""The gateway's state database and settings: retry timing, what is settled, the audit chain,
private files; settings errors one line naming the key."""

from __future__ import annotations

import sqlite3
import stat

import pytest

from appliance.errors import BadInput
from appliance.gateway import settings as gateway_settings
from appliance.gateway.state import GatewayState


class Clock:
    def __init__(self):
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def state(tmp_path, clock):
    opened = GatewayState(tmp_path / "state", clock)
    yield opened
    opened.close()


def test_a_failed_delivery_waits_twice_as_long_each_time_up_to_the_cap(state, clock):
    waits = []
    for _ in range(5):
        failed = state.fail("dir:/usb/a.mp4.vault", "ab" * 8, "the PACS does not answer", retry_s=30, retry_max_s=100)
        waits.append(failed.next_attempt_at - clock.now)
    assert waits == [30, 60, 100, 100, 100]
    assert failed.attempts == 5
    assert not state.due("dir:/usb/a.mp4.vault")
    assert state.due("dir:/usb/a.mp4.vault", ignore_backoff=True)   # `gateway sync`: an operator asked
    clock.now += 100
    assert state.due("dir:/usb/a.mp4.vault")


def test_delivered_and_refused_recordings_are_settled_and_a_new_one_is_due(state, clock):
    state.deliver("dir:/usb/a.mp4.vault", "aa" * 8, ("2.25.1",))
    state.refuse("dir:/usb/b.mp4.vault", "vault content does not match", "bb" * 8)
    clock.now += 10 ** 6
    assert not state.due("dir:/usb/a.mp4.vault", ignore_backoff=True)
    assert not state.due("dir:/usb/b.mp4.vault", ignore_backoff=True)
    assert state.due("dir:/usb/c.mp4.vault")
    assert state.delivered_elsewhere("aa" * 8).instances == ("2.25.1",)
    assert state.delivered_elsewhere("bb" * 8) is None


def test_a_recording_refused_for_its_signer_is_due_again_only_once_the_enrolled_keys_changed(state, clock):
    state.refuse("dir:/usb/a.mp4.vault", "signed by device key 00, which is not enrolled", "aa" * 8,
                 enrolment="keys-1")
    state.refuse("dir:/usb/b.mp4.vault", "vault content does not match", "bb" * 8)
    clock.now += 10 ** 6
    assert not state.due("dir:/usb/a.mp4.vault", ignore_backoff=True, enrolment="keys-1")
    assert state.due("dir:/usb/a.mp4.vault", enrolment="keys-2")
    assert not state.due("dir:/usb/b.mp4.vault", ignore_backoff=True, enrolment="keys-2")   # stays refused
    assert state.delivery("dir:/usb/a.mp4.vault").attempts == 0
    state.refuse("dir:/usb/a.mp4.vault", "signed by device key 00, which is not enrolled", "aa" * 8,
                 enrolment="keys-2")                 # looked at again: still not enrolled
    assert not state.due("dir:/usb/a.mp4.vault", enrolment="keys-2")
    state.deliver("dir:/usb/a.mp4.vault", "aa" * 8, ("2.25.1",))
    assert state.delivery("dir:/usb/a.mp4.vault").enrolment is None
    assert not state.due("dir:/usb/a.mp4.vault", enrolment="keys-3")


def test_a_database_from_before_refusals_were_rechecked_is_upgraded_in_place(tmp_path):
    (tmp_path / "old").mkdir(mode=0o700)
    raw = sqlite3.connect(tmp_path / "old" / "gateway.sqlite3")
    raw.execute("CREATE TABLE deliveries (location TEXT PRIMARY KEY, recording_id TEXT, state TEXT NOT NULL, "
                "reason TEXT, attempts INTEGER NOT NULL, next_attempt_at REAL NOT NULL, instances TEXT NOT NULL, "
                "updated_at REAL NOT NULL)")
    raw.execute("INSERT INTO deliveries VALUES "
                "('dir:/usb/a.mp4.vault', 'aa', 'refused', 'not enrolled', 0, 0, '[]', 0)")
    raw.commit()
    raw.close()
    state = GatewayState(tmp_path / "old")
    try:
        assert state.delivery("dir:/usb/a.mp4.vault").enrolment is None        # an old refusal stays refused
        assert not state.due("dir:/usb/a.mp4.vault", enrolment="keys-1")
        state.refuse("dir:/usb/b.mp4.vault", "not enrolled", "bb", enrolment="keys-1")
        assert state.delivery("dir:/usb/b.mp4.vault").enrolment == "keys-1"
    finally:
        state.close()


def test_every_outcome_is_a_chained_audit_entry_that_cannot_be_rewritten(state, tmp_path):
    state.fail("dir:/usb/a.mp4.vault", "aa" * 8, "the PACS does not answer", retry_s=1, retry_max_s=1)
    state.deliver("dir:/usb/a.mp4.vault", "aa" * 8, ("2.25.1",))
    state.refuse("dir:/usb/b.mp4.vault", "signed by device key 00, which is not enrolled")
    entries = state.audit_entries()
    assert [e.event for e in entries] == ["delivery_failed", "recording_delivered", "recording_refused"]
    assert entries[2].details == {"location": "dir:/usb/b.mp4.vault", "recording": None,
                                  "reason": "signed by device key 00, which is not enrolled"}
    assert state.verify_audit().ok
    raw = sqlite3.connect(state.path)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        raw.execute("UPDATE audit SET details = '{}' WHERE seq = 2")
    raw.execute("DROP TRIGGER audit_is_append_only_update")
    raw.execute("UPDATE audit SET details = '{}' WHERE seq = 2")
    raw.commit()
    raw.close()
    report = state.verify_audit()
    assert (report.ok, report.broken_at) == (False, 2)


def test_the_state_is_private(state, tmp_path):
    assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o700
    assert stat.S_IMODE(state.path.stat().st_mode) == 0o600


def settings_file(tmp_path, pacs: str, gateway: str = "") -> object:
    (tmp_path / "devices").mkdir(exist_ok=True)
    (tmp_path / "recipient.key").write_text("")
    path = tmp_path / "gateway.toml"
    path.write_text(f'[gateway]\nidentity = "recipient.key"\ndevices = "devices"\n{gateway}\n[pacs]\n{pacs}\n')
    return path


@pytest.mark.parametrize("pacs, gateway, message", [
    ('called_ae = "A_VERY_LONG_AE_TITLE"', "", "config: pacs.called_ae must be 1 to 16 ASCII characters"),
    ('transfer = "mpeg2"', "", "config: pacs.transfer must be one of h264, hevc, got 'mpeg2'"),
    ("port = 0", "", "config: pacs.port must be between 1 and 65535, got 0"),
    ("", "retry_s = 0", "config: gateway.retry_s must be greater than 0, got 0.0"),
    ("hostname = 'x'", "", "config: unknown key pacs.hostname"),
    ("", 'directories = ["nowhere"]', "config: gateway.directories[0] is not a directory"),
    ("", 'anatomic_region = ["39937001", "Skin structure"]',
     "config: gateway.anatomic_region must be [code value, coding scheme, code meaning]"),
])
def test_bad_settings_are_one_line_naming_the_key(tmp_path, pacs, gateway, message):
    with pytest.raises(BadInput) as raised:
        gateway_settings.load(settings_file(tmp_path, pacs, gateway))
    assert str(raised.value).startswith(message)
    assert "\n" not in str(raised.value)


def test_relative_paths_are_relative_to_the_settings_file(tmp_path, monkeypatch):
    monkeypatch.chdir("/")
    loaded = gateway_settings.load(settings_file(tmp_path, 'called_ae = "ORTHANC"'))
    assert loaded.gateway.identity == tmp_path / "recipient.key"
    assert loaded.gateway.devices == tmp_path / "devices"
    assert (loaded.pacs.called_ae, loaded.pacs.transfer, loaded.pacs.confirm) == ("ORTHANC", "h264", "auto")
    assert loaded.scratch_dir == tmp_path / "gateway-data" / "scratch"
    assert loaded.gateway.anatomic_region == ("39937001", "SCT", "Skin structure")
