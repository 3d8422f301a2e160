"""The pre-roll ring's rules, over arbitrary streams of packets."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from appliance.recording.preroll import Entry, PreRoll

MS = 1_000_000

streams = st.lists(st.tuples(st.integers(min_value=1, max_value=400), st.booleans()), min_size=1, max_size=200)


def as_entries(stream):
    entries, now = [], 0
    for step_ms, keyframe in stream:
        now += step_ms * MS
        entries.append(Entry(now, keyframe, len(entries)))
    return entries


@settings(deadline=None, max_examples=200)
@given(streams, st.sampled_from([0.0, 0.5, 1.0, 5.0]))
def test_ring_is_the_shortest_keyframe_aligned_suffix_covering_the_pre_roll(stream, seconds):
    ring, pushed = PreRoll(seconds), []
    span = int(seconds * 1e9)
    for entry in as_entries(stream):
        ring.push(entry)
        pushed.append(entry)
        kept = list(ring)
        decodable = pushed[next((i for i, e in enumerate(pushed) if e.keyframe), len(pushed)):]
        if not decodable:
            assert kept == []
            continue
        # a suffix of what was pushed, starting at a keyframe
        assert kept == decodable[len(decodable) - len(kept):]
        assert kept[0].keyframe
        newest = kept[-1].capture_ns
        # at least `seconds` of video before the newest packet, unless that much never existed
        assert newest - kept[0].capture_ns >= span or kept[0] is decodable[0]
        # and no whole GOP more than needed
        later_keyframes = [e for e in kept[1:] if e.keyframe]
        assert not later_keyframes or newest - later_keyframes[0].capture_ns < span


def test_a_trigger_finds_at_least_the_pre_roll_at_one_second_gops():
    ring = PreRoll(5.0)
    for frame in range(30 * 20):          # 20 s at 30 fps, a keyframe every second
        ring.push(Entry(frame * 33_333_333, frame % 30 == 0, frame))
    kept = [entry.payload for entry in ring]
    assert kept == list(range(kept[0], 600)) and kept[0] % 30 == 0
    assert 150 <= len(kept) <= 180
