"""Focal functions: a statistic of each pixel's rectangular neighbourhood (docs/protocol.md §6.2 "Statistics").

NoData pixels of a neighbourhood are left out of its statistic, and a pixel is valid when any pixel of its
neighbourhood is (as ArcGIS's focal statistics ignoring NoData); with ``FillNoDataOnly`` the valid pixels keep
their own value and only NoData pixels are filled.  Majority and Minority are the most and least frequent valid
value of the window, the smallest such value on a tie.

Mean and StandardDeviation are box sums over cumulative tables (a few whole-array passes); the order statistics
(Min, Max, Median, Majority, Minority) run in the compiled kernel ``imgsvc._kernels.focal``.  The numpy median it
replaces sorted every window of the block at once, a (bands, rows, cols, window) float64 array: 3-7 times the mean's
time for 3 x 3 (1000 x 1000 float32) and 8 bytes x window per pixel (650 MB for 9 x 9 there); the kernel keeps one
window at a time, in about the same time (0.6-1.5 times numpy's, measured on a shared machine).
"""
from __future__ import annotations

import numpy as np

from imgsvc._kernels import focal as _focal
from imgsvc.functions.base import BandsInfo, Raster, RasterFunction, with_dtype
from imgsvc.pixel_types import NAME_OF_DTYPE

MIN, MAX, MEAN, STANDARD_DEVIATION, MEDIAN, MAJORITY, MINORITY = range(1, 8)
STATISTIC_NAMES = {MIN: "Min", MAX: "Max", MEAN: "Mean", STANDARD_DEVIATION: "StandardDeviation", MEDIAN: "Median",
                   MAJORITY: "Majority", MINORITY: "Minority"}
MAX_KERNEL = 31  # pixels a side: a neighbourhood larger than this is a different tool (and unbounded work)


def box_sums(values: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Sum of every ``rows`` x ``cols`` window centred on each pixel of (bands, H, W) ``values``, zero outside (an
    even side reaches one pixel further before the centre than after it, as the order statistics' windows do)."""
    pad_r, pad_c = rows // 2, cols // 2
    padded = np.pad(values, ((0, 0), (pad_r + 1, rows - 1 - pad_r), (pad_c + 1, cols - 1 - pad_c)))
    table = padded.cumsum(axis=1).cumsum(axis=2)
    return (table[:, rows:, cols:] - table[:, :-rows, cols:] - table[:, rows:, :-cols] + table[:, :-rows, :-cols])


class FocalStatistics(RasterFunction):
    NAME = "Statistics"
    ARGUMENTS = {"Type": ("Type", "StatisticsType"), "Columns": ("KernelColumns", "Columns"),
                 "Rows": ("KernelRows", "Rows"), "FillNoDataOnly": ("FillNoDataOnly",)}

    def __init__(self, arguments) -> None:
        super().__init__(arguments)
        self.statistic = self.integer("Type", MEAN, MIN, MINORITY)
        self.columns = self.integer("Columns", 3, 1, MAX_KERNEL)
        self.rows = self.integer("Rows", 3, 1, MAX_KERNEL)
        self.fill_only = self.flag("FillNoDataOnly", False)

    @property
    def buffer(self) -> int:
        return max(self.rows, self.columns) // 2

    def describe(self, inputs):
        (source,) = inputs
        if self.statistic in (MIN, MAX, MAJORITY, MINORITY):  # a value of the window
            return source
        if self.statistic == STANDARD_DEVIATION:  # its range is not known from the source's statistics
            return BandsInfo(source.names, "float32", None)
        return with_dtype(source, "float32")  # a mean or median stays within the source's range

    def apply(self, inputs, grid):
        data, valid = inputs[0].data, inputs[0].valid
        weights = valid.astype(np.float64)[None]
        count = box_sums(weights, self.rows, self.columns)[0]
        out_valid = count > 0
        if self.statistic in (MEAN, STANDARD_DEVIATION):
            values = np.where(valid, data, 0).astype(np.float64)
            total = box_sums(values, self.rows, self.columns)
            mean = total / np.maximum(count, 1)
            if self.statistic == MEAN:
                result = mean
            else:
                squares = box_sums(values * values, self.rows, self.columns)
                result = np.sqrt(np.maximum(squares / np.maximum(count, 1) - mean * mean, 0.0))
            result = result.astype(np.float32)
        else:
            result = window_statistic(inputs[0], self.rows, self.columns, self.statistic)
            if self.statistic == MEDIAN:  # a mean of two values, whatever the input type
                result = result.astype(np.float32)
            else:
                result = result.astype(data.dtype)
        result[:, ~out_valid] = 0
        if self.fill_only:
            result[:, valid] = data[:, valid]
        return result, out_valid


KERNEL_DTYPES = frozenset(np.dtype(dtype) for dtype in NAME_OF_DTYPE)  # the 8 pixel dtypes


def kernel_arrays(raster: Raster) -> tuple[np.ndarray, np.ndarray]:
    """A raster's (data, valid) as the compiled kernels take them: C-contiguous, data of one of the 8 pixel dtypes
    (anything else as float64), the mask as uint8."""
    data = raster.data if raster.data.dtype in KERNEL_DTYPES else raster.data.astype(np.float64)
    valid = np.ascontiguousarray(raster.valid, dtype=np.bool_)
    if valid.shape != data.shape[1:]:
        raise ValueError(f"valid {valid.shape} does not match data {data.shape}.")
    return np.ascontiguousarray(data), valid.view(np.uint8)


def window_statistic(raster: Raster, rows: int, cols: int, statistic: int) -> np.ndarray:
    """Min, max, median, majority or minority (ArcGIS codes) of each ``rows`` x ``cols`` window's valid pixels, as
    float64 (bands, rows, cols); 0 where a window holds no valid pixel."""
    if statistic not in _focal.STATISTICS or not (1 <= rows <= MAX_KERNEL and 1 <= cols <= MAX_KERNEL):
        raise ValueError(f"No focal kernel for statistic {statistic} over {rows} x {cols}.")
    data, valid = kernel_arrays(raster)
    out = np.empty(data.shape, dtype=np.float64)
    _focal.window_statistic(data, valid, rows, cols, statistic, out, np.empty(rows * cols, dtype=np.float64))
    return out
