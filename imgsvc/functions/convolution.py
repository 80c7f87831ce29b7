"""Convolution: each pixel's weighted sum of its window (docs/protocol.md §6.2 "Convolution").

The kernel is applied as it is written, row 0 north (a correlation, as ArcGIS JS applies it), and divided by its
sum when that sum is neither 0 nor 1 (as ArcGIS JS does: smoothing kernels given as integers keep the level).

- NoData: a pixel is NoData when it is, when any pixel its kernel reads (a non-zero weight of the window) is, or when
  the sum overflows; zero weights read nothing, so a kernel whose only non-zero weight is a 1 at the centre is the
  identity.
- ``MirrorEdges`` is accepted and changes no output pixel: the read grid is widened by the kernel's radius, so the
  array's edges lie in the margin cropped off afterwards, and where the data ends (NoData beyond) the NoData rule
  applies, as there is no raster edge to mirror.
- ``Rows``, ``Columns`` and ``Kernel`` describe the user-defined kernel (``Type`` -1, the default); a predefined
  ``Type`` names its kernel, so they are not read with it.
- Output: the input pixel type (§6.4), the float64 sum rounded half away from zero for integer types and clipped to
  the type's range.
"""
from __future__ import annotations

import math

import numpy as np

from imgsvc import kernels
from imgsvc._kernels import convolution as _convolution
from imgsvc.functions.base import BandsInfo, Raster, RasterFunction
from imgsvc.functions.focal import MAX_KERNEL, kernel_arrays
from imgsvc.pixel_types import NAME_OF_DTYPE

USER_DEFINED = -1
NO_CONVOLUTION = 255  # the identity

# The predefined kernels, row-major 3 x 3 or 5 x 5 (docs/protocol.md §6.2); those whose sum is neither 0 nor 1 are
# divided by it when applied.
PREDEFINED_KERNELS: dict[int, tuple[str, tuple[float, ...]]] = {
    0: ("LineDetectionHorizontal", (-1, -1, -1, 2, 2, 2, -1, -1, -1)),
    1: ("LineDetectionVertical", (-1, 2, -1, -1, 2, -1, -1, 2, -1)),
    2: ("LeftDiagonal", (2, -1, -1, -1, 2, -1, -1, -1, 2)),
    3: ("RightDiagonal", (-1, -1, 2, -1, 2, -1, 2, -1, -1)),
    4: ("GradientNorth", (-1, -2, -1, 0, 0, 0, 1, 2, 1)),
    5: ("GradientWest", (-1, 0, 1, -2, 0, 2, -1, 0, 1)),
    6: ("GradientEast", (1, 0, -1, 2, 0, -2, 1, 0, -1)),
    7: ("GradientSouth", (1, 2, 1, 0, 0, 0, -1, -2, -1)),
    8: ("GradientNorthEast", (0, -1, -2, 1, 0, -1, 2, 1, 0)),
    9: ("GradientNorthWest", (-2, -1, 0, -1, 0, 1, 0, 1, 2)),
    10: ("SmoothArithmeticMean", (1 / 9,) * 9),
    11: ("Smoothing3x3", tuple(v / 16 for v in (1, 2, 1, 2, 4, 2, 1, 2, 1))),
    12: ("Smoothing5x5", (1, 1, 1, 1, 1, 1, 4, 4, 4, 1, 1, 4, 12, 4, 1, 1, 4, 4, 4, 1, 1, 1, 1, 1, 1)),
    13: ("Sharpening3x3", (-1, -1, -1, -1, 9, -1, -1, -1, -1)),
    14: ("Sharpening5x5", (-1, -3, -4, -3, -1, -3, 0, 6, 0, -3, -4, 6, 21, 6, -4, -3, 0, 6, 0, -3,
                           -1, -3, -4, -3, -1)),
    15: ("Laplacian3x3", (0, -1, 0, -1, 4, -1, 0, -1, 0)),
    16: ("Laplacian5x5", (0, 0, -1, 0, 0, 0, -1, -2, -1, 0, -1, -2, 17, -2, -1, 0, -1, -2, -1, 0, 0, 0, -1, 0, 0)),
    17: ("SobelHorizontal", (-1, -2, -1, 0, 0, 0, 1, 2, 1)),
    18: ("SobelVertical", (-1, 0, 1, -2, 0, 2, -1, 0, 1)),
    19: ("Sharpen", (0, -.25, 0, -.25, 2, -.25, 0, -.25, 0)),
    20: ("Sharpen2", (-.25, -.25, -.25, -.25, 3, -.25, -.25, -.25, -.25)),
    21: ("PointSpread", (-.627, .352, -.627, .352, 2.923, .352, -.627, .352, -.627)),
}
# A kernel sum this close to 0 or 1 is taken as 0 or 1 (3 x 3 of 1/9 sums to 1 only up to rounding).
SUM_TOLERANCE = 1e-9


def normalised(kernel: np.ndarray) -> np.ndarray:
    """The kernel divided by its sum when that sum is neither 0 nor 1 (docs/protocol.md §6.2)."""
    total = math.fsum(kernel.ravel())
    if abs(total) <= SUM_TOLERANCE or abs(total - 1) <= SUM_TOLERANCE:
        return kernel
    return kernel / total


class Convolution(RasterFunction):
    NAME = "Convolution"
    ARGUMENTS = {"Type": ("Type", "ConvolutionType"), "Rows": ("Rows",), "Columns": ("Columns",),
                 "Kernel": ("Kernel",), "MirrorEdges": ("MirrorEdges",)}

    def __init__(self, arguments) -> None:
        super().__init__(arguments)
        self.type = self.integer("Type", USER_DEFINED)
        self.flag("MirrorEdges", False)  # validated; no effect (see the module's docstring)
        if self.type == NO_CONVOLUTION:
            self.kernel = None
        elif self.type == USER_DEFINED:
            rows = self._odd_size("Rows")
            columns = self._odd_size("Columns")
            values = self.numbers("Kernel", ())
            if len(values) != rows * columns:
                raise self.bad("Kernel", f"must hold Rows x Columns = {rows * columns} numbers (row-major), got "
                                         f"{len(values)}")
            try:
                self.kernel = normalised(np.array(values, dtype=np.float64).reshape(rows, columns))
            except OverflowError:  # a sum past float64's range: a probe, not a kernel
                raise self.bad("Kernel", "sums beyond the range of 64-bit floats") from None
        elif self.type in PREDEFINED_KERNELS:
            values = PREDEFINED_KERNELS[self.type][1]
            side = math.isqrt(len(values))
            self.kernel = normalised(np.array(values, dtype=np.float64).reshape(side, side))
        else:
            raise self.bad("Type", f"must be -1 (user defined), 0 to 21 or 255 (none), got {self.type}")

    def _odd_size(self, name: str) -> int:
        size = self.integer(name, 3, 1, MAX_KERNEL)
        if size % 2 == 0:
            raise self.bad(name, f"must be odd (the kernel has a centre pixel), got {size}")
        return size

    @property
    def buffer(self) -> int:
        return 0 if self.kernel is None else max(self.kernel.shape) // 2

    def describe(self, inputs):
        (source,) = inputs
        return source if self.kernel is None else BandsInfo(source.names, source.dtype, None)

    def apply(self, inputs, grid):
        (source,) = inputs
        if self.kernel is None:
            return source.data, source.valid
        return correlate(source, self.kernel)


def correlate(source: Raster, kernel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(data, valid): ``kernel`` (odd rows x odd columns) applied to each band of the Raster ``source``, in its
    pixel type (rounded half away from zero for integers, clipped to the type's range)."""
    rows, columns = kernel.shape
    if rows % 2 == 0 or columns % 2 == 0:
        raise ValueError(f"The kernel must have odd sides, not {rows} x {columns}.")
    data, valid = kernel_arrays(source)
    reads = kernel != 0
    reads[rows // 2, columns // 2] = True  # a NoData pixel stays NoData whatever the weights
    tap_rows, tap_cols = np.nonzero(reads)
    weights = np.ascontiguousarray(kernel[tap_rows, tap_cols], dtype=np.float64)
    out = np.empty(data.shape, dtype=np.float64)
    out_valid = np.empty(valid.shape, dtype=np.uint8)
    _convolution.correlate(data, valid, (tap_rows - rows // 2).astype(np.intp),
                           (tap_cols - columns // 2).astype(np.intp), weights, out, out_valid)
    out_valid = out_valid.view(bool)
    return kernels.convert_pixel_type(out, out_valid, NAME_OF_DTYPE[data.dtype.name]), out_valid
