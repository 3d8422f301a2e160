"""Real recordings for tests: H.264 fragmented MP4 encoded straight into a vault writer (no
plaintext file), frame i at i/30 s, optionally with a bright laser spot on chosen frames."""

from __future__ import annotations

import av
import numpy as np

FPS = 30
SIZE = (320, 200)
SPOT = (slice(120, 160), slice(200, 240))     # rows, columns of the laser spot while it is on


def frame(index: int, noisy: bool, spot: bool = False) -> np.ndarray:
    image = np.full((SIZE[1], SIZE[0], 3), (index * 3) % 256 // 2, np.uint8)
    image[:16, : 10 * (index % 32)] = 255          # a bar that grows with the index
    if noisy:                                       # hard to compress: many vault segments
        image[100:] = np.random.default_rng(index).integers(0, 256, (100, SIZE[0], 3), np.uint8)
    if spot:
        image[SPOT] = 255
    return image


def spot_shown(bgr: np.ndarray) -> bool:
    """Whether a decoded (possibly downscaled) frame shows the laser spot: its area is near white."""
    height, width = bgr.shape[:2]
    rows = slice(SPOT[0].start * height // SIZE[1] + 2, SPOT[0].stop * height // SIZE[1] - 2)
    columns = slice(SPOT[1].start * width // SIZE[0] + 2, SPOT[1].stop * width // SIZE[0] - 2)
    return float(bgr[rows, columns].mean()) > 200


def write_clip(destination, recipient, frames: int, *, noisy: bool = False, seal: bool = True,
               laser_frames: range | tuple = ()):
    """Encodes `frames` frames into a vault for `recipient`; the spot is drawn on `laser_frames`.
    Returns the SealedStream, or None when `seal` is False (the power went: the writer never
    closes, its last segment is lost)."""
    from appliance import vault

    writer = vault.encrypt(destination, [recipient])
    muxer = av.open(writer, "w", format="mp4", options={"movflags": "frag_keyframe+empty_moov+default_base_moof"})
    stream = muxer.add_stream("libx264", rate=FPS)
    stream.width, stream.height, stream.pix_fmt = SIZE[0], SIZE[1], "yuv420p"
    stream.codec_context.gop_size = FPS
    stream.codec_context.options = {"preset": "ultrafast", "tune": "zerolatency"}
    for index in range(frames):
        picture = av.VideoFrame.from_ndarray(frame(index, noisy, index in laser_frames), format="bgr24")
        picture.pts = index
        for packet in stream.encode(picture):
            muxer.mux(packet)
    if not seal:
        return None
    for packet in stream.encode():
        muxer.mux(packet)
    muxer.close()
    return writer.close()
