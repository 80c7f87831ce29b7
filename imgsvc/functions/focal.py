"""Focal functions: a statistic of each pixel's rectangular neighbourhood (docs/protocol.md §6.2 "Statistics").

NoData pixels of a neighbourhood are left out of its statistic, and a pixel is valid when any pixel of its
neighbourhood is (as ArcGIS's focal statistics ignoring NoData); with ``FillNoDataOnly`` the valid pixels keep
their own value and only NoData pixels are filled.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from imgsvc.errors import unsupported
from imgsvc.functions.base import BandsInfo, RasterFunction, with_dtype

MIN, MAX, MEAN, STANDARD_DEVIATION, MEDIAN, MAJORITY, MINORITY = range(1, 8)
STATISTIC_NAMES = {MIN: "Min", MAX: "Max", MEAN: "Mean", STANDARD_DEVIATION: "StandardDeviation", MEDIAN: "Median",
                   MAJORITY: "Majority", MINORITY: "Minority"}
MAX_KERNEL = 31  # pixels a side: a neighbourhood larger than this is a different tool (and unbounded work)


def box_sums(values: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Sum of every ``rows`` x ``cols`` window centred on each pixel of (bands, H, W) ``values``, zero outside."""
    pad_r, pad_c = rows // 2, cols // 2
    padded = np.pad(values, ((0, 0), (pad_r + 1, pad_r), (pad_c + 1, pad_c)))
    table = padded.cumsum(axis=1).cumsum(axis=2)
    return (table[:, rows:, cols:] - table[:, :-rows, cols:] - table[:, rows:, :-cols] + table[:, :-rows, :-cols])


class FocalStatistics(RasterFunction):
    NAME = "Statistics"
    ARGUMENTS = {"Type": ("Type", "StatisticsType"), "Columns": ("KernelColumns", "Columns"),
                 "Rows": ("KernelRows", "Rows"), "FillNoDataOnly": ("FillNoDataOnly",)}

    def __init__(self, arguments) -> None:
        super().__init__(arguments)
        self.statistic = self.integer("Type", MEAN, MIN, MINORITY)
        if self.statistic in (MAJORITY, MINORITY):
            raise unsupported(f"renderingRule Statistics Type {STATISTIC_NAMES[self.statistic]} is not supported "
                              "yet.", parameter="renderingRule")
        self.columns = self.integer("Columns", 3, 1, MAX_KERNEL)
        self.rows = self.integer("Rows", 3, 1, MAX_KERNEL)
        self.fill_only = self.flag("FillNoDataOnly", False)

    @property
    def buffer(self) -> int:
        return max(self.rows, self.columns) // 2

    def describe(self, inputs):
        (source,) = inputs
        if self.statistic in (MIN, MAX):
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
            result = self._windowed(data, valid)
        result[:, ~out_valid] = 0
        if self.fill_only:
            result[:, valid] = data[:, valid]
        return result, out_valid

    def _windowed(self, data: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """Min, max or median over the window's valid pixels (the others stand aside as +inf, -inf or NaN)."""
        filler = {MIN: np.inf, MAX: -np.inf, MEDIAN: np.nan}[self.statistic]
        values = np.where(valid, data, filler).astype(np.float64)
        pad_r, pad_c = self.rows // 2, self.columns // 2
        padded = np.pad(values, ((0, 0), (pad_r, pad_r), (pad_c, pad_c)), constant_values=filler)
        windows = sliding_window_view(padded, (self.rows, self.columns), axis=(1, 2))
        windows = windows.reshape(*windows.shape[:3], self.rows * self.columns)
        if self.statistic == MIN:
            result = windows.min(axis=-1)
        elif self.statistic == MAX:
            result = windows.max(axis=-1)
        else:  # NaN sorts last, so the valid values of each window come first, in order
            ordered = np.sort(windows, axis=-1)
            count = (~np.isnan(windows)).sum(axis=-1, keepdims=True)
            low = np.take_along_axis(ordered, np.maximum(count - 1, 0) // 2, axis=-1)
            high = np.take_along_axis(ordered, count // 2, axis=-1)
            result = ((low + high) / 2)[..., 0]
        result[~np.isfinite(result)] = 0
        return result.astype(data.dtype if self.statistic in (MIN, MAX) else np.float32)
