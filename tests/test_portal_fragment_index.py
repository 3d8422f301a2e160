"""The recording index (sidx) on crafted boxes, and on a real fragmented MP4 read back by FFmpeg's
demuxer (Chromium's): duration known from the index, a seek landing on the asked second."""

from __future__ import annotations

import io
import struct
import threading

import av
import pytest

from appliance.portal import fragment_index
from appliance.portal.fragment_index import Fragment, Track
from appliance.portal.indexed_view import NotPlayable, scan, view
from tests.clips import FPS, frame


def box(kind: bytes, payload: bytes = b"") -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def full(kind: bytes, version: int, flags: int, payload: bytes) -> bytes:
    return box(kind, struct.pack(">I", version << 24 | flags) + payload)


def moov(timescale=30_000, default_duration=1000, default_flags=0x0101_0000, mdhd_version=0) -> bytes:
    mdhd = (struct.pack(">QQIQ", 0, 0, timescale, 0) if mdhd_version else struct.pack(">IIII", 0, 0, timescale, 0))
    trex = struct.pack(">5I", 1, 1, default_duration, 0, default_flags)
    track = box(b"trak", box(b"mdia", full(b"mdhd", mdhd_version, 0, mdhd + bytes(4))))
    return box(b"moov", box(b"mvhd", bytes(100)) + track + box(b"mvex", full(b"trex", 0, 0, trex)))


def moof(sequence=1, decode_time=0, *, tfdt_version=1, tfhd_flags=0x02_0000, tfhd_fields=b"", trun_flags=0x205,
         samples=((500, 0x0200_0000),), first_flags=0x0200_0000, track_id=1) -> bytes:
    run = struct.pack(">I", len(samples)) + struct.pack(">i", 0) * bool(trun_flags & 0x01)
    run += struct.pack(">I", first_flags) * bool(trun_flags & 0x04)
    for duration, flags in samples:
        run += struct.pack(">I", duration) * bool(trun_flags & 0x100)
        run += struct.pack(">I", 1000) * bool(trun_flags & 0x200) + struct.pack(">I", flags) * bool(trun_flags & 0x400)
    tfdt = struct.pack(">Q" if tfdt_version else ">I", decode_time)
    traf = box(b"traf", full(b"tfhd", 0, tfhd_flags, struct.pack(">I", track_id) + tfhd_fields)
               + full(b"tfdt", tfdt_version, 0, tfdt) + full(b"trun", 0, trun_flags, run))
    return box(b"moof", full(b"mfhd", 0, 0, struct.pack(">I", sequence)) + traf)


TRACK = Track(1, 30_000, 1000, 0x0101_0000)


def test_the_track_comes_from_trex_and_mdhd_of_either_version():
    assert fragment_index.track_of(moov()) == TRACK
    assert fragment_index.track_of(moov(timescale=15360, mdhd_version=1)).timescale == 15360


@pytest.mark.parametrize("broken", [
    box(b"moov", box(b"mvhd", bytes(100))),                                     # no trex, no mdhd
    moov()[:-4],                                                                # trex cut short
    moov(timescale=0),
    box(b"moov", moov()[8:] + box(b"mvex", full(b"trex", 0, 0, bytes(20)))),    # two tracks
])
def test_an_init_segment_without_one_usable_track_is_refused(broken):
    with pytest.raises(ValueError):
        fragment_index.track_of(broken)


def test_a_fragment_with_trex_defaults_lasts_its_samples_times_the_default_duration():
    fragment = fragment_index.fragment_of(moof(decode_time=60_000, trun_flags=0x205, samples=[(0, 0)] * 30,
                                               first_flags=0x0200_0000), 900, 5000, TRACK)
    assert fragment == Fragment(900, 5000, 60_000, 30 * 1000, True)


def test_tfhd_defaults_override_trex_and_sample_durations_override_both():
    # base data offset (8), description index (4), default duration 512 (4), default size (4)
    fields = struct.pack(">QIII", 0, 1, 512, 100)
    fragment = fragment_index.fragment_of(moof(tfhd_flags=0x0B | 0x10, tfhd_fields=fields, trun_flags=0x201,
                                               samples=[(0, 0)] * 3), 0, 1, TRACK)
    assert fragment.duration == 3 * 512
    fragment = fragment_index.fragment_of(moof(tfhd_flags=0x08, tfhd_fields=struct.pack(">I", 512), trun_flags=0x301,
                                               samples=[(10, 0), (20, 0), (30, 0)]), 0, 1, TRACK)
    assert fragment.duration == 60


@pytest.mark.parametrize("tfhd_flags, fields, trun_flags, samples, sync", [
    (0, b"", 0x205, [(0, 0)], False),                                   # first_sample_flags: non-sync
    (0, b"", 0x201, [(0, 0)], False),                                   # trex default flags: non-sync
    (0x20, struct.pack(">I", 0x0200_0000), 0x201, [(0, 0)], True),     # tfhd default flags: sync
    (0, b"", 0x601, [(0, 0x0200_0000), (0, 0x0101_0000)], True),      # per-sample flags: the first is sync
    (0, b"", 0x601, [(0, 0x0101_0000), (0, 0x0200_0000)], False),
])
def test_whether_a_fragment_starts_with_a_sync_sample(tfhd_flags, fields, trun_flags, samples, sync):
    first_flags = 0x0101_0000   # used only when the trun carries first_sample_flags (0x04)
    fragment = fragment_index.fragment_of(moof(tfhd_flags=tfhd_flags, tfhd_fields=fields, trun_flags=trun_flags,
                                               samples=samples, first_flags=first_flags), 0, 1, TRACK)
    assert fragment.starts_with_sync is sync


def test_version_0_tfdt_is_read():
    assert fragment_index.fragment_of(moof(decode_time=77, tfdt_version=0), 0, 1, TRACK).decode_time == 77


@pytest.mark.parametrize("broken", [
    moof(track_id=2),                                   # another track than the moov's
    box(b"moof", full(b"mfhd", 0, 0, bytes(4))),         # no traf
    moof()[:-4],                                         # trun cut: its box runs past the moof
    box(b"moof", moof()[8:] + moof()[16:]),              # two tfhd
])
def test_a_malformed_moof_is_refused(broken):
    with pytest.raises(ValueError):
        fragment_index.fragment_of(broken, 0, 1, TRACK)


def test_a_box_declaring_less_than_its_header_is_refused():
    with pytest.raises(ValueError):
        fragment_index.box_header(struct.pack(">I4s", 4, b"moof"))
    with pytest.raises(ValueError):
        fragment_index.box_header(struct.pack(">I4sQ", 1, b"mdat", 15))
    assert fragment_index.box_header(struct.pack(">I4sQ", 1, b"mdat", 1 << 33)) == (b"mdat", 1 << 33, 16)


# The test vector of docs/portal.md "## Video": two fragments of one second at 30 kHz.
VECTOR = bytes.fromhex("00000040" "73696478" "01000000" "00000001" "00007530" "0000000000000000" "0000000000000000"
                       "0000" "0002" "000003e8" "00007530" "90000000" "000007d0" "00007530" "00000000")


def test_the_sidx_matches_the_documented_vector():
    fragments = [Fragment(1200, 1000, 0, 30_000, True), Fragment(2200, 2000, 30_000, 30_000, False)]
    assert fragment_index.sidx(TRACK, fragments) == VECTOR


def test_more_fragments_than_sidx_can_count_share_references():
    count = fragment_index.MAX_REFERENCES + 2
    fragments = [Fragment(100 + 10 * n, 10, 1000 * n, 1000, True) for n in range(count)]
    index = fragment_index.sidx(TRACK, fragments)
    (references,) = struct.unpack_from(">H", index, 38)
    assert references == -(-count // 2)
    sizes = [struct.unpack_from(">I", index, 40 + 12 * n)[0] for n in range(references)]
    durations = [struct.unpack_from(">I", index, 44 + 12 * n)[0] for n in range(references)]
    assert sum(sizes) == 10 * count and sum(durations) == 1000 * count


@pytest.mark.parametrize("fragments", [
    [],
    [Fragment(0, 10, 0, 1, True), Fragment(11, 10, 1, 1, True)],          # a gap between them
    [Fragment(0, 1 << 31, 0, 1, True)],                                   # beyond 31 bits
])
def test_an_index_that_cannot_be_written_is_refused(fragments):
    with pytest.raises(ValueError):
        fragment_index.sidx(TRACK, fragments)


def test_renumbering_changes_only_the_sequence_number_and_decode_time():
    original = moof(sequence=1, decode_time=0)
    copy = fragment_index.renumbered(original, 3601, 3600 * 30_000)
    assert len(copy) == len(original)
    assert fragment_index.fragment_of(copy, 0, 1, TRACK).decode_time == 3600 * 30_000
    assert struct.unpack_from(">I", copy, 20)[0] == 3601
    differing = [n for n in range(len(copy)) if copy[n] != original[n]]
    assert differing and all(16 <= n < 24 or 40 <= n < 80 for n in differing)
    with pytest.raises(ValueError):
        fragment_index.renumbered(moof(tfdt_version=0), 2, 1 << 32)


# -- a real recording: what the browser's demuxer makes of the view ------------------------------

def encoded(seconds: int) -> bytes:
    """A fragmented MP4 as the recorder writes it (one fragment per second), in memory."""
    out = io.BytesIO()
    with av.open(out, "w", format="mp4", options={"movflags": "frag_keyframe+empty_moov+default_base_moof"}) as muxer:
        stream = muxer.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 320, 200, "yuv420p"
        stream.codec_context.gop_size = FPS
        stream.codec_context.options = {"preset": "ultrafast", "tune": "zerolatency"}
        for index in range(seconds * FPS):
            picture = av.VideoFrame.from_ndarray(frame(index, noisy=False), format="bgr24")
            picture.pts = index
            muxer.mux(stream.encode(picture))
        muxer.mux(stream.encode())
    return out.getvalue()


class Plaintext(io.BytesIO):
    """What the vault reader offers the scan: a seekable plaintext and its length."""

    @property
    def plaintext_length(self) -> int:
        return len(self.getbuffer())


@pytest.fixture(scope="module")
def recording() -> bytes:
    return encoded(4)


def test_the_view_is_the_recording_with_a_sidx_before_its_first_fragment(recording):
    index = scan(Plaintext(recording))
    served = view(Plaintext(recording), index).read()
    media_end = index.init_length + index.media_length
    assert len(served) == index.length
    assert served == recording[:index.init_length] + index.sidx + recording[index.init_length:media_end]
    assert recording[media_end + 4:media_end + 8] == b"mfra"       # FFmpeg's own index, which ours replaces
    assert struct.unpack_from(">H", index.sidx, 38)[0] == 4       # one reference per second


def test_ffmpeg_reads_the_duration_from_the_index_and_seeks_to_the_asked_second(recording):
    served = view(Plaintext(recording), scan(Plaintext(recording))).read()
    with av.open(io.BytesIO(served)) as container:
        stream = container.streams.video[0]
        assert float(container.duration / av.time_base) == pytest.approx(4.0, abs=0.05)
        container.seek(int(2.5 / stream.time_base), stream=stream, backward=True)
        first = next(container.decode(stream))
        assert float(first.pts * stream.time_base) == pytest.approx(2.0, abs=0.01)   # the keyframe before 2.5 s
        assert first.to_ndarray(format="bgr24")[100, 5, 0] == pytest.approx((60 * 3) % 256, abs=8)


@pytest.mark.parametrize("cut_into", ["the moov", "the third moof", "the third mdat"])
def test_an_interrupted_recording_is_served_up_to_its_last_complete_fragment(recording, cut_into):
    complete = scan(Plaintext(recording))
    starts = [complete.init_length]
    for reference in range(4):
        starts.append(starts[-1] + struct.unpack_from(">I", complete.sidx, 40 + 12 * reference)[0])
    cut = {"the moov": complete.init_length - 10, "the third moof": starts[2] + 20,
           "the third mdat": starts[3] - 5}[cut_into]
    if cut_into == "the moov":
        with pytest.raises(NotPlayable):
            scan(Plaintext(recording[:cut]))
        return
    index = scan(Plaintext(recording[:cut]))
    assert index.init_length + index.media_length == starts[2]
    assert struct.unpack_from(">H", index.sidx, 38)[0] == 2
    with av.open(io.BytesIO(view(Plaintext(recording[:cut]), index).read())) as container:
        assert sum(1 for _ in container.decode(video=0)) == 2 * FPS


def test_plaintext_that_is_not_a_recording_is_not_playable(recording):
    for plaintext in (b"", b"\0" * 100, recording[:recording.index(b"moof") - 4]):
        with pytest.raises(NotPlayable):
            scan(Plaintext(plaintext))


@pytest.fixture
def small_regions(monkeypatch):
    """Regions of a few kilobytes, so a 4 s recording is scanned in several at once."""
    from appliance.portal import indexed_view
    monkeypatch.setattr(indexed_view, "REGION_BYTES", 4096)
    monkeypatch.setattr(indexed_view, "SCAN_REGIONS", 8)


def planted(recording: bytes) -> bytes:
    """The recording with a copy of its first moof, and an mdat header after it, written into the
    video data (mdat body) of every fragment: a region's search meets these false fragments
    first, and chains from them."""
    first = recording.index(b"moof") - 4
    fake = recording[first:first + int.from_bytes(recording[first:first + 4], "big")] + struct.pack(">I4s", 100, b"mdat")
    data, offset = bytearray(recording), first
    while (offset := recording.find(b"mdat", offset + 1)) > 0:
        body_end = offset - 4 + int.from_bytes(recording[offset - 4:offset], "big")
        for at in range(offset + 20, body_end - len(fake), 1000):
            data[at:at + len(fake)] = fake
    return bytes(data)


@pytest.mark.parametrize("variant", ["as recorded", "signatures in the video data", "torn"])
def test_a_scan_in_regions_finds_the_same_index_as_one_chain(recording, small_regions, variant):
    data = {"as recorded": recording, "signatures in the video data": planted(recording),
            "torn": recording[:len(recording) * 2 // 3]}[variant]
    opened = []

    def open_reader():
        opened.append(Plaintext(data))
        return opened[-1]

    assert scan(Plaintext(data), open_reader) == scan(Plaintext(data))
    assert len(opened) > 2          # it did scan in regions


def test_indexes_are_cached_per_object_and_scanned_once_however_many_ask(recording):
    from concurrent.futures import ThreadPoolExecutor

    from appliance.portal.indexed_view import IndexCache

    cache = IndexCache(capacity=2)
    with ThreadPoolExecutor(4) as pool:
        found = list(pool.map(lambda _: cache.index(("bucket", "a", "etag-1"), Plaintext(recording)), range(8)))
    assert cache.scans == 1 and all(index == found[0] for index in found)
    cache.index(("bucket", "b", "etag-1"), Plaintext(recording))
    cache.index(("bucket", "a", "etag-2"), Plaintext(recording))      # the object changed: scanned again
    assert cache.scans == 3
    cache.index(("bucket", "a", "etag-1"), Plaintext(recording))      # the oldest was dropped (capacity 2)
    assert cache.scans == 4


class ProbedLock:
    """The cache's own lock, except that each time the armed thread releases it, another request
    for the recording runs there to its end: a request arriving at that very moment."""

    def __init__(self, probe):
        self._lock, self._probe, self.armed = threading.Lock(), probe, None

    def __enter__(self):
        self._lock.acquire()

    def __exit__(self, *exc):
        self._lock.release()
        if self.armed == threading.get_ident():
            self._probe()


def test_a_request_arriving_as_a_scan_ends_gets_that_scan_s_index(recording, monkeypatch):
    from appliance.portal import indexed_view
    from appliance.portal.indexed_view import IndexCache

    cache, key, answers = IndexCache(), ("bucket", "a", "etag-1"), []

    def request_meanwhile():
        thread = threading.Thread(target=lambda: answers.append(cache.index(key, Plaintext(recording))))
        thread.start()
        thread.join(30)             # the deadline only bounds a failure (a request stuck behind the scan)
        assert not thread.is_alive(), "a request arriving after the scan waited on it"

    lock = cache._lock = ProbedLock(request_meanwhile)
    real_scan = indexed_view.scan

    def scan_then_arm(*args):
        found = real_scan(*args)
        if lock.armed is None:      # from now on, the first scanner's every release is probed
            lock.armed = threading.get_ident()
        return found

    monkeypatch.setattr(indexed_view, "scan", scan_then_arm)
    found = cache.index(key, Plaintext(recording))
    assert answers and all(answer == found for answer in answers)
    assert cache.scans == 1


def test_a_broken_recording_is_refused_from_memory_for_a_while_then_scanned_again():
    from appliance.portal.indexed_view import FAILURE_KEPT_S, IndexCache

    now = [1000.0]
    cache, key = IndexCache(clock=lambda: now[0]), ("bucket", "broken", "etag-1")
    with pytest.raises(NotPlayable) as first:
        cache.index(key, Plaintext(b"\0" * 100))
    for _ in range(3):              # a browser retrying its ranges
        with pytest.raises(NotPlayable) as again:
            cache.index(key, Plaintext(b"\0" * 100))
        assert str(again.value) == str(first.value)
    assert cache.scans == 1
    now[0] += FAILURE_KEPT_S + 1
    with pytest.raises(NotPlayable):
        cache.index(key, Plaintext(b"\0" * 100))
    assert cache.scans == 2


def test_an_archive_failure_is_not_remembered(recording):
    from appliance.archive.s3 import ArchiveError
    from appliance.portal.indexed_view import IndexCache

    class Unreachable(Plaintext):
        def read(self, *args):
            raise ArchiveError("the archive did not answer")

    cache, key = IndexCache(), ("bucket", "a", "etag-1")
    with pytest.raises(ArchiveError):
        cache.index(key, Unreachable(recording))
    assert cache.index(key, Plaintext(recording)) == scan(Plaintext(recording))     # tried again at once
