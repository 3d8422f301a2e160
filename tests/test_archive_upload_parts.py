"""The upload engine's pure parts: the part plan, the resume-state codec and store, backoff and
the bandwidth pacer (injected clock and sleep: no real waiting)."""

import dataclasses
import datetime
import hashlib
import json
import os
import stat

import pytest
from hypothesis import given, strategies as st

from appliance.archive.pacing import BACKOFF_CAP_S, Backoff, Pacer, backoff_delay
from appliance.archive.retention import hold_missing, lock_arguments, retention_needed
from appliance.archive.resume import MAX_PARTS, PartRecord, ResumeState, StateStore, decode, encode, plan_parts
from appliance.archive.settings import ArchiveSettings

MIB = 1024 * 1024


@given(size=st.integers(1, 10**12), part_size=st.integers(5 * MIB, 16 * MIB))
def test_the_parts_cover_the_file_once_in_order_all_full_but_the_last(size, part_size):
    if -(-size // part_size) > MAX_PARTS:
        with pytest.raises(ValueError, match="more than S3's"):
            plan_parts(size, part_size)
        return
    parts = plan_parts(size, part_size)
    assert [p.number for p in parts] == list(range(1, len(parts) + 1))
    assert parts[0].offset == 0
    assert all(a.offset + a.length == b.offset for a, b in zip(parts, parts[1:]))
    assert parts[-1].offset + parts[-1].length == size
    assert all(p.length == part_size for p in parts[:-1]) and 0 < parts[-1].length <= part_size


def test_a_file_of_exactly_n_parts_has_no_empty_tail_and_an_empty_file_has_no_plan():
    assert [p.length for p in plan_parts(3 * 8 * MIB, 8 * MIB)] == [8 * MIB] * 3
    assert [p.length for p in plan_parts(3 * 8 * MIB + 1, 8 * MIB)] == [8 * MIB] * 3 + [1]
    with pytest.raises(ValueError):
        plan_parts(0, 8 * MIB)
    with pytest.raises(ValueError):
        plan_parts(10, 0)


def _state(**parts):
    return ResumeState("dev/session/rec.mp4.vault", 20 * MIB, "ab" * 32, 8 * MIB, "upload-1",
                       {int(n[1:]): record for n, record in parts.items()})


RECORD = PartRecord(8 * MIB, "0f" * 16, "1e" * 32)


@given(numbers=st.sets(st.integers(1, 2)), upload_id=st.text(min_size=1), key=st.text(min_size=1))
def test_a_resume_state_reads_back_as_written(numbers, upload_id, key):
    state = ResumeState(key, 20 * MIB, "cd" * 32, 8 * MIB, upload_id, {n: RECORD for n in numbers})
    assert decode(encode(state)) == state
    tail = PartRecord(4 * MIB, "aa" * 16, "bb" * 32)
    assert decode(encode(state.with_part(3, tail))).parts[3] == tail


@pytest.mark.parametrize("change", [
    lambda d: d.update(format="archive-upload/0"),
    lambda d: d.pop("upload_id"),
    lambda d: d.update(upload_id=""),
    lambda d: d.update(size=-1),
    lambda d: d.update(size=True),
    lambda d: d.update(sha256="AB" * 32),
    lambda d: d.update(sha256="ab" * 31),
    lambda d: d["parts"]["1"].update(md5="zz" * 16),
    lambda d: d["parts"]["1"].update(length=8 * MIB - 1),     # not the plan's length for part 1
    lambda d: d["parts"].update({"4": d["parts"]["1"]}),      # a 20 MiB file has 3 parts
    lambda d: d.update(parts=[]),
])
def test_a_damaged_or_foreign_resume_state_is_refused(change):
    document = json.loads(encode(_state(p1=RECORD)))
    change(document)
    with pytest.raises(ValueError):
        decode(json.dumps(document).encode())


def test_not_json_is_refused():
    for data in (b"", b"\xff\xfe", b"[1, 2]", b"{}"):
        with pytest.raises(ValueError):
            decode(data)


def test_the_store_writes_private_files_named_without_the_key_and_forgets_them(tmp_path):
    store = StateStore(tmp_path / "uploads")
    state = _state(p1=RECORD)
    assert store.load(state.key) is None
    store.save(state)
    (path,) = (tmp_path / "uploads").iterdir()
    assert "rec" not in path.name and "session" not in path.name
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "uploads").stat().st_mode) == 0o700
    assert store.load(state.key) == state
    assert store.load("another/key") is None
    (tmp_path / "uploads" / f".{path.name}.k1ll3d.partial").write_bytes(b"{half")   # a kill mid-save
    store.forget(state.key)
    store.forget(state.key)
    assert store.load(state.key) is None and list((tmp_path / "uploads").iterdir()) == []


def test_an_unreadable_state_file_means_start_over(tmp_path):
    store = StateStore(tmp_path)
    store.save(_state())
    store.path(_state().key).write_bytes(b"{half a file")
    assert store.load(_state().key) is None


def test_a_state_matches_only_the_same_key_file_and_part_size():
    state = _state()
    assert state.matches(state.key, 20 * MIB, "ab" * 32, 8 * MIB)
    assert not state.matches(state.key, 20 * MIB, "ab" * 32, 16 * MIB)
    assert not state.matches(state.key, 20 * MIB, "cd" * 32, 8 * MIB)
    assert not state.matches(state.key, 21 * MIB, "ab" * 32, 8 * MIB)
    assert not state.matches("other", 20 * MIB, "ab" * 32, 8 * MIB)


@given(attempt=st.integers(0, 200), unit=st.floats(0, 1, exclude_max=True))
def test_backoff_waits_at_most_twice_as_long_each_time_and_never_past_the_cap(attempt, unit):
    delay = backoff_delay(attempt, unit)
    assert 0 <= delay <= min(BACKOFF_CAP_S, 2.0 ** attempt)
    assert backoff_delay(attempt, 0.0) == 0.0


def test_backoff_grows_exponentially_then_stays_at_the_cap():
    ceilings = [backoff_delay(n, 0.999999) for n in range(12)]
    assert [round(c) for c in ceilings[:6]] == [1, 2, 4, 8, 16, 32]
    assert max(ceilings) == pytest.approx(BACKOFF_CAP_S, rel=1e-5)
    assert ceilings[-1] == ceilings[-2]
    for bad in ((-1, 0.5), (0, 1.0), (0, -0.1)):
        with pytest.raises(ValueError):
            backoff_delay(*bad)


def test_backoff_for_ever_or_for_a_number_of_attempts():
    slept = []
    forever = Backoff(sleep=slept.append, random=lambda: 0.5)
    assert not any(forever.gives_up_after(n) for n in range(10_000))
    for attempt in range(3):
        forever.wait(attempt)
    assert slept == [0.5, 1.0, 2.0]
    three = Backoff(max_attempts=3)
    assert [three.gives_up_after(n) for n in range(4)] == [False, False, True, True]


class FakeTime:
    def __init__(self):
        self.now = 100.0
        self.slept = []

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += seconds


def test_the_pacer_keeps_the_average_rate_under_the_limit():
    clock = FakeTime()
    pacer = Pacer(80, clock=lambda: clock.now, sleep=clock.sleep)   # 80 Mbit/s = 10 MB/s
    start = clock.now
    for _ in range(5):
        pacer.pace(10_000_000)
    # five 10 MB sends at 10 MB/s: the fifth may start once four seconds are booked
    assert clock.now - start == pytest.approx(4.0)
    clock.now += 60    # idle: no credit saved up beyond the next send
    before = clock.now
    pacer.pace(10_000_000)
    pacer.pace(10_000_000)
    assert clock.now - before == pytest.approx(1.0)


def test_no_limit_never_waits():
    clock = FakeTime()
    pacer = Pacer(0, clock=lambda: clock.now, sleep=clock.sleep)
    for _ in range(100):
        pacer.pace(16 * MIB)
    assert clock.slept == []
    with pytest.raises(ValueError):
        Pacer(-1)


@pytest.mark.parametrize("changes, message", [
    ({"part_mib": 7}, "part_mib must be between 8 and 16"),
    ({"part_mib": 17}, "part_mib must be between 8 and 16"),
    ({"retention_mode": "compliance"}, "retention_mode must be one of"),
    ({"retention_days": -1}, "retention_days must not be negative"),
    ({"max_mbps": -0.5}, "max_mbps must not be negative"),
    ({"keep_local_days": -1}, "keep_local_days must not be negative"),
    ({"warn_after_hours": 0}, "warn_after_hours must be greater than 0"),
    ({"endpoint": "s3.example:9000", "bucket": "b"}, "endpoint must start with http"),
    ({"endpoint": "https://s3.example"}, "bucket must be set"),
])
def test_settings_refuse_what_cannot_work_naming_the_key(changes, message):
    with pytest.raises(ValueError, match=message):
        ArchiveSettings(**changes)


def test_default_settings_mean_no_archive_and_parts_of_8_mib():
    assert not ArchiveSettings().configured
    assert ArchiveSettings().part_size == 8 * MIB
    assert ArchiveSettings(endpoint="https://s3.example", bucket="b", part_mib=16).part_size == 16 * MIB


def test_state_files_hold_no_more_than_digests_sizes_and_ids(tmp_path):
    store = StateStore(tmp_path)
    store.save(_state(p1=RECORD))
    document = json.loads(store.path(_state().key).read_bytes())
    assert set(document) == {"format", "key", "size", "sha256", "part_size", "upload_id", "parts"}
    assert hashlib.sha256(_state().key.encode()).hexdigest()[:32] in os.listdir(tmp_path)[0]


NOW = datetime.datetime(2026, 12, 1, 9, 30, 15, 123456, tzinfo=datetime.timezone.utc)
LOCKED = ArchiveSettings(endpoint="https://s3.example", bucket="b", retention_days=10)


def test_new_objects_carry_the_retention_and_hold_the_settings_ask():
    assert lock_arguments(LOCKED, NOW) == {
        "ObjectLockMode": "COMPLIANCE",
        "ObjectLockRetainUntilDate": datetime.datetime(2026, 12, 11, 9, 30, 15, tzinfo=datetime.timezone.utc)}
    held = dataclasses.replace(LOCKED, retention_mode="GOVERNANCE", legal_hold=True)
    assert lock_arguments(held, NOW)["ObjectLockLegalHoldStatus"] == "ON"
    assert lock_arguments(held, NOW)["ObjectLockMode"] == "GOVERNANCE"
    assert lock_arguments(dataclasses.replace(LOCKED, retention_days=0), NOW) == {}


def _head(days: float | None, mode="COMPLIANCE", hold="OFF"):
    head = {"LastModified": NOW, "ObjectLockLegalHoldStatus": hold}
    if days is not None:
        head |= {"ObjectLockMode": mode, "ObjectLockRetainUntilDate": NOW + datetime.timedelta(days=days)}
    return head


def test_an_object_retained_as_long_as_asked_needs_nothing_and_a_shorter_one_is_extended():
    assert retention_needed(LOCKED, _head(10)) is None
    assert retention_needed(LOCKED, _head(10 - 0.5 / 24)) is None     # within the clock slack
    wanted = NOW + datetime.timedelta(days=10)
    assert retention_needed(LOCKED, _head(9)) == wanted
    assert retention_needed(LOCKED, _head(None)) == wanted             # the server dropped it
    assert retention_needed(LOCKED, _head(30, mode="GOVERNANCE")) == wanted
    assert retention_needed(dataclasses.replace(LOCKED, retention_days=0), _head(None)) is None


def test_a_legal_hold_is_missing_only_when_asked_for_and_off():
    held = dataclasses.replace(LOCKED, legal_hold=True)
    assert hold_missing(held, _head(10)) and not hold_missing(held, _head(10, hold="ON"))
    assert not hold_missing(LOCKED, _head(10))
