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
