"""The one recording-settings type: the `[recording]` section of the config file (each field is
a key of that name) and what the recorder is built with. Defaults are the appliance's
production choices.
"""

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
    bitrate_bps: int = 8_000_000    # other codecs only: target bits per second
    gop_s: float = 1.0              # keyframe interval: bounds pre-roll alignment and crash loss
    pre_roll_s: float = 5.0         # encoded video kept in RAM before a trigger
    post_roll_s: float = 10.0       # recording goes on this long after the footswitch is released
    bitrate_estimate_bps: int = 8_000_000   # for recording time left, until a bitrate is measured
    codec_options: dict[str, str] = field(default_factory=dict)  # extra options for the codec

    def __post_init__(self):
        # Messages start with the key, so the config file and the CLI can each say where it came from.
        if not 0 <= self.crf <= 51:
            raise ValueError(f"crf must be between 0 and 51, got {self.crf}")
        for name in ("gop_s", "bitrate_bps", "bitrate_estimate_bps"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be greater than 0, got {getattr(self, name)}")
        for name in ("pre_roll_s", "post_roll_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)}")
