"""What the recorder is configured with; defaults are the appliance's production choices."""

from __future__ import annotations

from dataclasses import dataclass, field

X264_FAMILY = ("libx264", "libx265")


@dataclass(frozen=True)
class RecordingSettings:
    codec: str = "libx264"          # or "mpeg4", "h264_v4l2m2m", "h264_vaapi"... where present
    # x264/x265 only. "superfast" at CRF 23, measured on the 2-core target (bench record,
    # 1920x1200): 111 fps unpaced, 38 % CPU at 30 fps, 0.43x the old mp4v bytes at +0.6 dB
    # PSNR. "ultrafast" is faster (144 fps) but needs 0.60x the bytes; "veryfast" (49 fps)
    # leaves too little headroom above the 45 fps budget.
    preset: str = "superfast"
    crf: int = 23                   # constant quality
    bit_rate: int = 8_000_000       # other codecs only: target bits per second
    gop_seconds: float = 1.0        # keyframe interval: bounds pre-roll alignment and crash loss
    pre_roll_seconds: float = 5.0   # encoded video kept in RAM before a trigger
    writer_queue_chunks: int = 64   # muxed chunks waiting for encryption before the encoder waits
    codec_options: dict[str, str] = field(default_factory=dict)  # extra options for the codec

    def __post_init__(self):
        if self.gop_seconds <= 0 or self.pre_roll_seconds < 0 or not 0 <= self.crf <= 51:
            raise ValueError("gop_seconds > 0, pre_roll_seconds >= 0 and 0 <= crf <= 51 are required")
