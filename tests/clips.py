"""Real recordings for tests: H.264 fragmented MP4 encoded straight into a vault writer (no
plaintext file), frame i at i/30 s; or the synthetic camera's frames, with its laser spot on
chosen frames."""

from __future__ import annotations

import av
import numpy as np

from appliance.camera.synthetic import SyntheticPattern

FPS = 30
SIZE = (320, 200)


def frame(index: int, noisy: bool) -> np.ndarray:
    image = np.full((SIZE[1], SIZE[0], 3), (index * 3) % 256, np.uint8)
    image[:16, : 10 * (index % 32)] = 255          # a bar that grows with the index
    if noisy:                                       # hard to compress: many vault segments
        image[100:] = np.random.default_rng(index).integers(0, 256, (100, SIZE[0], 3), np.uint8)
    return image


def write_clip(destination, recipient, frames: int, *, noisy: bool = False, seal: bool = True,
               synthetic: SyntheticPattern | None = None, laser_frames=()):
    """Encodes `frames` frames into a vault for `recipient`: the synthetic camera's, with the
    laser spot on `laser_frames`, when `synthetic` is given. Returns the SealedStream, or None
    when `seal` is False (the power went: the writer never closes, its last segment is lost)."""
    from appliance import vault

    writer = vault.encrypt(destination, [recipient])
    muxer = av.open(writer, "w", format="mp4", options={"movflags": "frag_keyframe+empty_moov+default_base_moof"})
    stream = muxer.add_stream("libx264", rate=FPS)
    width, height = (synthetic.width, synthetic.height) if synthetic else SIZE
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    stream.codec_context.gop_size = FPS
    stream.codec_context.options = {"preset": "ultrafast", "tune": "zerolatency"}
    for index in range(frames):
        image = synthetic.render(index, index in laser_frames) if synthetic else frame(index, noisy)
        picture = av.VideoFrame.from_ndarray(image, format="bgr24")
        picture.pts = index
        for packet in stream.encode(picture):
            muxer.mux(packet)
    if not seal:
        return None
    for packet in stream.encode():
        muxer.mux(packet)
    muxer.close()
    return writer.close()
