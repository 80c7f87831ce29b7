"""Per-band statistics and 256-bin histograms over valid pixels: of a whole raster at registration (``read``), and
of a rendering rule's output when a resource is asked for it (``service``)."""
from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from imgsvc.catalog.records import BandDistribution

HISTOGRAM_BINS = 256
# 8-bit data gets one bin per value, centred on it (ArcGIS's convention: U8 histograms span -0.5..255.5).
INTEGER_BIN_RANGES = {"uint8": (-0.5, 255.5), "int8": (-128.5, 127.5)}


def distributions_of(chunks: Callable[[], Iterable[tuple[np.ndarray, np.ndarray]]], bands: int,
                     dtype: str) -> tuple[BandDistribution, ...]:
    """Every band's statistics and histogram over the valid pixels of ``chunks()`` (each a (bands, rows, cols) data
    array and its (rows, cols) validity), called twice: range, then histogram.

    Bins: 256 single-value bins for 8-bit data (-0.5..255.5 for U8), else 256 equal bins over [min, max] (a
    constant band gets [v - 0.5, v + 0.5]).  Median is interpolated within the bin holding the middle pixel and mode
    is the centre of the fullest bin, so both are exact for 8-bit data and within one bin width otherwise.
    """
    count = np.zeros(bands, np.int64)
    total = np.zeros(bands, np.float64)
    squares = np.zeros(bands, np.float64)
    lo = np.full(bands, np.inf)
    hi = np.full(bands, -np.inf)
    for data, valid in chunks():
        for b in range(bands):
            values = data[b][valid].astype(np.float64)
            if values.size:
                count[b] += values.size
                total[b] += values.sum()
                squares[b] += np.square(values).sum()
                lo[b] = min(lo[b], values.min())
                hi[b] = max(hi[b], values.max())
    ranges = []
    for b in range(bands):
        if dtype in INTEGER_BIN_RANGES:
            ranges.append(INTEGER_BIN_RANGES[dtype])
        elif count[b] == 0:
            ranges.append((0.0, 1.0))
        elif lo[b] == hi[b]:
            ranges.append((lo[b] - 0.5, hi[b] + 0.5))
        else:
            ranges.append((lo[b], hi[b]))
    counts = np.zeros((bands, HISTOGRAM_BINS), np.int64)
    for data, valid in chunks():
        for b in range(bands):
            counts[b] += np.histogram(data[b][valid], bins=HISTOGRAM_BINS, range=ranges[b])[0]
    result = []
    for b in range(bands):
        n = int(count[b])
        mean = total[b] / n if n else 0.0
        stdv = float(np.sqrt(max(0.0, squares[b] / n - mean * mean))) if n else 0.0
        hmin, hmax = ranges[b]
        width = (hmax - hmin) / HISTOGRAM_BINS
        median = mode = 0.0
        if n:
            cumulative = np.cumsum(counts[b])
            k = int(np.searchsorted(cumulative, n / 2.0))
            below = cumulative[k - 1] if k else 0
            if dtype in INTEGER_BIN_RANGES:
                median = hmin + (k + 0.5) * width
            else:
                median = hmin + (k + (n / 2.0 - below) / counts[b][k]) * width
            mode = hmin + (int(np.argmax(counts[b])) + 0.5) * width
        result.append(BandDistribution(
            min=float(lo[b]) if n else 0.0, max=float(hi[b]) if n else 0.0, mean=float(mean), stdv=stdv,
            median=float(median), mode=float(mode), count=n, hist_min=float(hmin), hist_max=float(hmax),
            counts=tuple(int(c) for c in counts[b])))
    return tuple(result)
