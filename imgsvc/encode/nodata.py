"""What masked pixels hold in formats that store a value for every pixel (tiff, bip, bsq)."""
from __future__ import annotations

import numpy as np

from imgsvc.block import ImageBlock, holds


def fill_values(block: ImageBlock) -> list[float]:
    """Per band: its nodata value where the pixel type can hold it, else 0."""
    dtype = block.data.dtype
    given = block.nodata or ()
    return [given[band] if band < len(given) and holds(dtype, given[band]) else 0 for band in range(block.band_count)]


def filled(block: ImageBlock) -> np.ndarray:
    """The block's data with every masked pixel set to its band's fill value (a copy only when something is
    masked)."""
    if block.valid.all():
        return block.data
    data = block.data.copy()
    masked = ~block.valid
    for band, fill in enumerate(fill_values(block)):
        data[band][masked] = fill
    return data
