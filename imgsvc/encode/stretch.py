"""The default stretch: how a non-8-bit result becomes 8 bits for the picture formats (JPEG, PNG, BMP, GIF).

ArcGIS says only that a "default stretch" is applied (docs/protocol.md §1.1, docs/decisions.md Q6).  The rule chosen
here is ArcMap's default for rasters with statistics, a standard-deviation stretch with n = 2.5:

    lo = max(min, mean - 2.5 * stdv)      hi = min(max, mean + 2.5 * stdv)
    out = round((v - lo) * 255 / (hi - lo)), clipped to 0..255

The statistics are the service's (``block.stats``), so that adjacent tiles of one service get the same mapping and
a mosaic of tiles shows no seams.  Only when the block carries none do we fall back to the block's own statistics
over its valid, finite pixels.  A band whose range is empty (hi <= lo, e.g. a constant band) maps to 0.
U8 data is never stretched.  NaN and masked pixels become 0 (masked ones are made transparent or filled later).
"""
from __future__ import annotations

import numpy as np

from imgsvc.block import BandStats, ImageBlock

STDV_FACTOR = 2.5
# What masked pixels hold after the stretch: black, which jpg and bmp (no transparency) then show.
MASKED_VALUE = 0


def stretch_range(stats: BandStats) -> tuple[float, float]:
    """The (lo, hi) input range that maps to 0..255 for one band."""
    lo = max(stats.min, stats.mean - STDV_FACTOR * stats.stdv)
    hi = min(stats.max, stats.mean + STDV_FACTOR * stats.stdv)
    return lo, hi


def block_band_stats(band: np.ndarray, valid: np.ndarray) -> BandStats:
    """Statistics of one band over its valid, finite pixels (the fallback when the service has none)."""
    values = band[valid]
    if values.dtype.kind == "f":
        values = values[np.isfinite(values)]
    if values.size == 0:
        return BandStats(0.0, 0.0, 0.0, 0.0)
    values = values.astype(np.float64, copy=False)
    return BandStats(float(values.min()), float(values.max()), float(values.mean()), float(values.std()))


def to_8bit(block: ImageBlock) -> np.ndarray:
    """(bands, rows, cols) uint8 of the whole block; masked pixels are MASKED_VALUE, NaN pixels 0."""
    data = block.data
    if data.dtype == np.uint8:
        return np.where(block.valid, data, np.uint8(MASKED_VALUE)) if not block.valid.all() else data
    if block.stats is not None and len(block.stats) != block.band_count:
        raise ValueError(f"ImageBlock has {block.band_count} bands but {len(block.stats)} band statistics")
    # float32 is exact enough for 256 output levels and halves the memory traffic, but cannot hold the range of
    # 32-bit integers or doubles without collapsing close values, so those are stretched in float64.
    work = np.float64 if data.dtype.itemsize >= 4 and data.dtype != np.float32 else np.float32
    out = np.empty(data.shape, np.uint8)
    for index in range(block.band_count):
        band = data[index]
        stats = block.stats[index] if block.stats is not None else block_band_stats(band, block.valid)
        lo, hi = stretch_range(stats)
        scale = work(255.0 / (hi - lo)) if hi > lo and np.isfinite(hi - lo) else work(0.0)
        scaled = (band.astype(work) - work(lo)) * scale
        np.clip(scaled, 0.0, 255.0, out=scaled)
        np.rint(scaled, out=scaled)
        scaled[~np.isfinite(scaled)] = 0.0
        scaled[~block.valid] = MASKED_VALUE
        out[index] = scaled.astype(np.uint8)
    return out
