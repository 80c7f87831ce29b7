"""The one value that moves between pipeline stages: pixels, their validity, and where they sit on the earth."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from affine import Affine
from pyproj import CRS


def grid_bounds(transform: Affine, cols: int, rows: int) -> tuple[float, float, float, float]:
    """(xmin, ymin, xmax, ymax) of a grid: all four corners, so rotated or sheared geotransforms are right too."""
    xs, ys = zip(*(transform @ corner for corner in ((0, 0), (cols, 0), (0, rows), (cols, rows))))
    return min(xs), min(ys), max(xs), max(ys)


def holds(dtype: np.dtype, value: float) -> bool:
    """Whether ``dtype`` holds ``value`` exactly (NaN and infinities only in float types)."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return not np.isfinite(value) or abs(value) <= float(np.finfo(dtype).max)
    info = np.iinfo(dtype)
    return bool(np.isfinite(value)) and value == int(value) and info.min <= value <= info.max


@dataclass(frozen=True)
class BandStats:
    """Per-band statistics of a service (computed once at registration); the default stretch uses them."""

    min: float
    max: float
    mean: float
    stdv: float


@dataclass(frozen=True)
class ImageBlock:
    """``data`` is (bands, rows, cols) in its native dtype; ``valid`` is (rows, cols) bool, True = holds data.

    ``nodata`` is the per-band value that formats carrying a nodata value (TIFF) write into invalid pixels, or None
    when there is none (then the TIFF carries an internal mask).  ``stats`` are the per-band statistics of the bands
    in ``data`` (after bandIds), used by the default stretch to 8 bits.
    """

    data: np.ndarray
    valid: np.ndarray
    transform: Affine
    crs: CRS
    nodata: tuple[float, ...] | None = None
    stats: tuple[BandStats, ...] | None = None

    def __post_init__(self) -> None:
        if self.data.ndim != 3:
            raise ValueError("ImageBlock.data must be (bands, rows, cols)")
        if self.valid.shape != self.data.shape[1:] or self.valid.dtype != np.bool_:
            raise ValueError("ImageBlock.valid must be a bool (rows, cols) array")

    @property
    def shape(self) -> tuple[int, int]:
        return self.data.shape[1], self.data.shape[2]

    @property
    def band_count(self) -> int:
        return self.data.shape[0]

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(xmin, ymin, xmax, ymax) of the block's grid."""
        rows, cols = self.shape
        return grid_bounds(self.transform, cols, rows)
