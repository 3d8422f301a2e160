"""Recording -> what DICOM allows: decrypted video in, H.264 High 4.1 (or HEVC Main) MP4 parts out.

The source is a vault reader (decrypted segment by segment in memory); each output part is
muxed into an encrypted scratch file (scratch.py) and read back with its moov moved to the
front (faststart.py). No plaintext frame or byte reaches a disk, and memory holds a few frames,
one cached block per file and one moov, whatever the recording's length.

H.264: no DICOM H.264 transfer syntax admits 1920x1200 (level 4.1 caps a frame at 8192
macroblocks), so frames larger than 1920x1080 are scaled to fit it, aspect ratio and square
pixels kept (1920x1200 -> 1728x1080). HEVC Main keeps the native size (level 5.1). Timestamps
are the recording's own, so a dropped frame stays a gap. A part ends at a keyframe before it
could pass `max_part_bytes` (DICOM caps an instance's pixel data item below 4 GiB); each part
is a separate instance. Before a part is returned, PyAV reads back its profile and level.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Iterator

import av

from appliance.errors import ApplianceError
from appliance.gateway.decoding import ScaledFrames
from appliance.gateway.faststart import Concatenation, Piece, moov_first
from appliance.gateway.scratch import EncryptedScratch

PART_LIMIT = 0xFFFF_FFFE - (64 << 20)   # one DICOM item (< 4 GiB), less room for the dataset's other elements
MOOV_BYTES_PER_FRAME = 24               # stts/stsz/stco/stss entries, generously


@dataclass(frozen=True)
class Transfer:
    name: str
    codec: str
    profile: str             # as PyAV reports it
    max_level: int           # as PyAV reports it: H.264 10 x level, HEVC 30 x level
    max_frame: tuple[int, int] | None   # largest frame kept as is; larger ones are scaled to fit
    max_macroblocks_per_s: int | None
    options: dict = field(default_factory=dict)


H264 = Transfer("h264", "libx264", "High", 41, (1920, 1080), 245_760, {
    "preset": "superfast", "profile": "high",
    # Level 4.1, High profile: MaxBR 62.5 Mbit/s, MaxCPB 62.5 Mbit; no B-frames keeps every
    # part's decode order = presentation order, so parts cut at any keyframe.
    "x264-params": "level=4.1:vbv-maxrate=50000:vbv-bufsize=62500:bframes=0:crf=23"})
HEVC = Transfer("hevc", "libx265", "Main", 153, None, None, {
    "preset": "superfast", "profile": "main",
    "x265-params": "level-idc=5.1:bframes=0:crf=26:log-level=error"})
TRANSFERS = {transfer.name: transfer for transfer in (H264, HEVC)}


def output_size(width: int, height: int, transfer: Transfer) -> tuple[int, int]:
    """The frame size `transfer` carries: the source's, or scaled down (even, aspect kept) to fit."""
    if transfer.max_frame is None:
        return width - width % 2, height - height % 2
    scale = min(1.0, transfer.max_frame[0] / width, transfer.max_frame[1] / height)
    return round(width * scale / 2) * 2, round(height * scale / 2) * 2


def level_problem(width: int, height: int, fps: float, transfer: Transfer) -> str | None:
    """Why frames of this size and rate cannot be carried at the transfer's level, or None."""
    macroblocks = -(-width // 16) * -(-height // 16)
    if transfer.max_macroblocks_per_s and macroblocks * fps > transfer.max_macroblocks_per_s:
        return (f"{width}x{height} at {fps:g} fps exceeds {transfer.profile} level "
                f"{transfer.max_level / 10:g}'s {transfer.max_macroblocks_per_s} macroblocks per second")
    return None


@dataclass
class VideoPart:
    """One transcoded MP4 (moov first), held encrypted in its scratch file until closed."""

    index: int
    frames: int
    frame_time_ms: float
    width: int
    height: int
    profile: str
    level: int
    start_s: float           # from the recording's first frame
    duration_s: float
    scratch: EncryptedScratch
    pieces: list[Piece]

    @property
    def length(self) -> int:
        return sum(len(piece) if isinstance(piece, bytes) else piece[1] for piece in self.pieces)

    def open(self) -> Concatenation:
        """The MP4's bytes as a seekable file (decrypted block by block as it is read)."""
        return Concatenation(self.scratch, self.pieces)

    def close(self) -> None:
        self.scratch.close()

    def __enter__(self) -> "VideoPart":
        return self

    def __exit__(self, *_) -> None:
        self.close()


def transcode(source, transfer: Transfer = H264, *, scratch_dir=None,
              max_part_bytes: int = PART_LIMIT) -> Iterator[VideoPart]:
    """Yields the parts of the transcoded video, in order; close each when done with it."""
    try:
        with av.open(source) as container:
            yield from _Transcoder(container, transfer, scratch_dir, max_part_bytes).run()
    except av.FFmpegError as error:
        raise ApplianceError(f"the recording could not be transcoded: {error}") from None


class _Transcoder:
    def __init__(self, container, transfer: Transfer, scratch_dir, max_part_bytes: int):
        self._input = container.streams.video[0]
        self._input.thread_type = "AUTO"
        self._container = container
        self._transfer, self._scratch_dir, self._max_part_bytes = transfer, scratch_dir, max_part_bytes
        self._time_base = self._input.time_base
        self._rate = Fraction(self._input.average_rate or self._input.guessed_rate or 30)
        source = self._input.codec_context
        self.width, self.height = output_size(source.width, source.height, transfer)
        problem = level_problem(self.width, self.height, float(self._rate), transfer)
        if problem:
            raise ApplianceError(f"the recording cannot be carried in DICOM: {problem}")
        self._home = av.open(io.BytesIO(), "w", format="mp4")   # gives the encoder a template stream
        self._stream = self._home.add_stream(transfer.codec, rate=self._rate)
        context = self._stream.codec_context
        context.width, context.height, context.pix_fmt = self.width, self.height, "yuv420p"
        context.time_base = self._time_base
        context.gop_size = max(1, round(self._rate))
        context.options = dict(transfer.options)
        context.flags |= av.codec.context.Flags.global_header
        context.thread_type = "FRAME"     # frame threads: throughput matters here, not latency
        context.open()
        self._encoder = context
        self._part: _PartMuxer | None = None
        self._parts = 0
        self._largest_gop = 0
        self._first_pts: int | None = None

    def run(self) -> Iterator[VideoPart]:
        frames = ScaledFrames(self._container, self._input, (self.width, self.height))
        try:
            yield from self._parts_of(frames)
        finally:                      # also when the consumer stops early: no thread, no scratch left
            frames.close()
            if self._part is not None:
                self._part.scratch.close()
            self._home.close()

    def _parts_of(self, frames: ScaledFrames) -> Iterator[VideoPart]:
        for frame in frames:
            frame.time_base = self._time_base
            yield from self._mux(self._encoder.encode(frame))
        yield from self._mux(self._encoder.encode(None))
        if self._part is None and not self._parts:
            raise ApplianceError("the recording holds no video frame to send")
        if self._part is not None:
            yield self._finish()

    def _mux(self, packets) -> Iterator[VideoPart]:
        for packet in packets:
            if packet.is_keyframe and self._part is not None:
                self._largest_gop = max(self._largest_gop, self._part.gop_bytes())
                if self._part.bytes_at_end(self._largest_gop) > self._max_part_bytes:
                    yield self._finish()
            if self._first_pts is None:
                self._first_pts = packet.pts
            if self._part is None:
                self._part = _PartMuxer(self._stream, self._encoder.extradata, self._time_base,
                                        EncryptedScratch(self._scratch_dir))
            self._part.write(packet, self._nominal_ticks())

    def _nominal_ticks(self) -> int:
        return max(1, round(1 / (self._rate * self._time_base)))

    def _finish(self) -> VideoPart:
        part, self._part = self._part, None
        index, self._parts = self._parts, self._parts + 1
        try:
            return part.close(index, self._transfer, (self.width, self.height), self._nominal_ticks(),
                              self._first_pts)
        except BaseException:
            part.scratch.close()
            raise


class _PartMuxer:
    def __init__(self, template, extradata: bytes, time_base, scratch: EncryptedScratch):
        self.scratch = scratch
        self._container = av.open(scratch, "w", format="mp4")
        self._stream = self._container.add_stream_from_template(template)
        self._stream.codec_context.extradata = extradata   # the template copies no SPS/PPS
        if template.codec_context.name == "libx265":
            self._stream.codec_tag = "hvc1"    # parameter sets in the sample entry: what Apple's and browsers' players take
        self._stream.time_base = time_base
        self._time_base = time_base
        self._base_pts: int | None = None
        self._last_pts = 0
        self.frames = 0
        self._gop_start = 0

    def write(self, packet: av.Packet, nominal_ticks: int) -> None:
        if packet.is_keyframe:
            self._gop_start = self.scratch.size
        if self._base_pts is None:
            self._base_pts = packet.pts
        packet.pts -= self._base_pts
        packet.dts = packet.pts                   # no B-frames: decode order is presentation order
        packet.duration = packet.duration or nominal_ticks
        packet.time_base, packet.stream = self._time_base, self._stream
        self._last_pts = packet.pts
        self._container.mux(packet)
        self.frames += 1

    def gop_bytes(self) -> int:
        return self.scratch.size - self._gop_start

    def bytes_at_end(self, next_gop: int) -> int:
        """What the part would hold with one more GOP of `next_gop` bytes, and its index."""
        return self.scratch.size + 2 * next_gop + self.frames * MOOV_BYTES_PER_FRAME + 65536

    def close(self, index: int, transfer: Transfer, size: tuple[int, int], nominal_ticks: int,
              recording_first_pts: int) -> VideoPart:
        self._container.close()
        self.scratch.flush()
        pieces = moov_first(self._read_at, self.scratch.size)
        frame_ticks = self._last_pts / (self.frames - 1) if self.frames > 1 else nominal_ticks
        part = VideoPart(index=index, frames=self.frames, frame_time_ms=float(frame_ticks * self._time_base * 1000),
                         width=size[0], height=size[1], profile="", level=0,
                         start_s=float((self._base_pts - recording_first_pts) * self._time_base),
                         duration_s=float((self._last_pts + nominal_ticks) * self._time_base),
                         scratch=self.scratch, pieces=pieces)
        part.profile, part.level = check_stream(part, transfer)
        return part

    def _read_at(self, offset: int, length: int) -> bytes:
        self.scratch.seek(offset)
        return self.scratch.read(length)


def check_stream(part: VideoPart, transfer: Transfer) -> tuple[str, int]:
    """Reads the part back as a player would (moov first) and checks what DICOM's transfer
    syntax promises: codec, profile, level, frame size and frame count."""
    with av.open(part.open()) as container:
        stream = container.streams.video[0]
        context = stream.codec_context
        found = (context.name, context.profile, context.level, context.width, context.height, stream.frames)
    codec = {"libx264": "h264", "libx265": "hevc"}[transfer.codec]
    expected_level = f"{transfer.profile} at level <= {transfer.max_level}"
    if found[0] != codec or found[1] != transfer.profile or not 0 < found[2] <= transfer.max_level:
        raise ApplianceError(f"the transcoded video is {found[0]} {found[1]} level {found[2]}, "
                             f"not {codec} {expected_level}: not sent")
    if found[3:] != (part.width, part.height, part.frames):
        raise ApplianceError(f"the transcoded video reads back as {found[3]}x{found[4]} with {found[5]} frames, "
                             f"not {part.width}x{part.height} with {part.frames}")
    return found[1], found[2]
