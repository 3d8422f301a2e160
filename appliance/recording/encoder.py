"""The video encoder: BGR frames in, compressed packets out, PTS from capture timestamps.

The codec context is opened with a global header (SPS/PPS as extradata, the MP4 way), apart
from any container, so one continuous encoder feeds the pre-roll ring and every clip; each
clip's muxer is built from this stream as a template and given the same extradata.
"""

from __future__ import annotations

import io
from fractions import Fraction

import av
import cv2

from appliance.errors import BadInput
from appliance.recording.settings import X264_FAMILY, RecordingSettings

# 33 us ticks: fine enough for capture jitter, and within MPEG-4 Part 2's 16-bit time base
# limit, so one clock serves every codec.
TIME_BASE = Fraction(1, 30_000)


class Encoder:
    def __init__(self, settings: RecordingSettings, width: int, height: int, fps: float):
        if width % 2 or height % 2:
            raise BadInput(f"frame size {width}x{height} must be even for 4:2:0 video")
        if settings.codec not in av.codecs_available:
            raise BadInput(f"video codec {settings.codec!r} is not available in this FFmpeg build")
        # A container that is never written: it only gives the encoder a Stream, which clip
        # muxers need as their template (PyAV opens any non-template stream as a new encoder).
        self._home = av.open(io.BytesIO(), "w", format="mp4")
        self.stream = self._home.add_stream(settings.codec, rate=Fraction(fps).limit_denominator(1001))
        context = self.stream.codec_context
        context.width, context.height = width, height
        context.pix_fmt = "yuv420p"
        context.time_base = TIME_BASE
        context.gop_size = max(1, round(fps * settings.gop_s))
        if settings.codec in X264_FAMILY:
            context.options = {"preset": settings.preset, "crf": str(settings.crf), "tune": "zerolatency",
                               **settings.codec_options}
        else:
            context.bit_rate = settings.bitrate_bps
            context.max_b_frames = 0   # PTS order = decode order; pre-roll cut points stay simple
            context.options = dict(settings.codec_options)
        context.flags |= av.codec.context.Flags.global_header
        try:
            context.open()
        except av.FFmpegError as error:
            raise BadInput(f"cannot open the {settings.codec} encoder: {error}") from None
        self.context = context
        self.extradata = context.extradata
        self.width, self.height = width, height
        self._last_pts = -1

    def pts_for(self, capture_ns: int, epoch_ns: int) -> int:
        """Capture time -> PTS; strictly increasing, so equal timestamps cannot collide."""
        pts = (capture_ns - epoch_ns) * TIME_BASE.denominator // 1_000_000_000
        return max(pts, self._last_pts + 1)

    def encode(self, image, pts: int) -> list[av.Packet]:
        if image.shape[1] != self.width or image.shape[0] != self.height:
            raise ValueError(f"frame is {image.shape[1]}x{image.shape[0]}, the encoder expects "
                             f"{self.width}x{self.height}")
        # OpenCV's I420 conversion (BT.601, limited range, as H.264 assumes) is several times
        # faster than swscale's generic path for BGR input.
        planar = cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420)
        frame = av.VideoFrame.from_ndarray(planar, format="yuv420p")
        frame.pts = pts
        frame.time_base = TIME_BASE
        self._last_pts = pts
        return self.context.encode(frame)

    def flush(self) -> list[av.Packet]:
        return self.context.encode(None)
