"""The frame-index stamp: 32 blocks of 16x16 px along the top edge, from the top-left corner.

Block k carries bit 31-k of the index (MSB first); white = 1, black = 0. The blocks are large
and flat so the stamp survives lossy encoding, which lets tests read back which source frames
a decoded recording contains.
"""

from __future__ import annotations

import numpy as np

BITS = 32
BLOCK = 16
STAMP_WIDTH = BITS * BLOCK


def stamp_index(image: np.ndarray, index: int) -> None:
    """Writes `index` into the top-left stamp area of a BGR (or grey) image, in place."""
    if not 0 <= index < 1 << BITS:
        raise ValueError(f"frame index {index} does not fit in {BITS} bits")
    if image.shape[1] < STAMP_WIDTH or image.shape[0] < BLOCK:
        raise ValueError(f"image {image.shape[1]}x{image.shape[0]} is too small for the stamp")
    for bit in range(BITS):
        value = 255 if (index >> (BITS - 1 - bit)) & 1 else 0
        image[:BLOCK, bit * BLOCK:(bit + 1) * BLOCK] = value


def read_index(image: np.ndarray) -> int:
    """Reads the stamp back, judging each block by the mean of its centre (edges blur in coding)."""
    index = 0
    for bit in range(BITS):
        centre = image[4:BLOCK - 4, bit * BLOCK + 4:(bit + 1) * BLOCK - 4]
        index = (index << 1) | int(centre.mean() > 127)
    return index


def decoded_stamps(video, *, torn_tail_ok: bool = False) -> list[int]:
    """The stamped index of every frame of a recording, in decoding order.

    `video` is a readable file object (a vault reader, or a BytesIO in tests), so plaintext
    stays in memory. An interrupted recording ends in a torn fragment: with `torn_tail_ok`
    the list simply stops there.
    """
    import av

    indices = []
    with av.open(video) as container:
        try:
            for frame in container.decode(video=0):
                indices.append(read_index(frame.to_ndarray(format="bgr24")))
        except (av.error.InvalidDataError, EOFError):
            if not torn_tail_ok:
                raise
    return indices


def complete_in_order(indices: list[int], frames: int, dropped: int) -> bool:
    """Every frame a recording claims is there once, in order; dropped frames are exactly the gaps."""
    return (bool(indices) and indices == sorted(set(indices)) and len(indices) == frames
            and indices[-1] - indices[0] + 1 == frames + dropped)
