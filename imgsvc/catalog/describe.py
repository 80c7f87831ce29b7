"""A service's description from its items: the extent, grid, bands and statistics the root resource reports.

Computed once, when items are registered, and stored with the service; statistics of several items are merged
from their per-item distributions (count-weighted means, pooled variances, histograms re-binned onto one range).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from imgsvc import sr
from imgsvc.block import BandStats
from imgsvc.catalog.records import BandDistribution, RasterItem, ServiceDescription
from imgsvc.distributions import HISTOGRAM_BINS
from imgsvc.errors import invalid



def check_compatible(items: Sequence[RasterItem]) -> None:
    """Items of one service share band count and pixel type, which compositing needs (one band list, one pixel
    type); they may differ in SR and resolution.  The refusal names the file."""
    first = items[0]
    for item in items[1:]:
        if item.band_count != first.band_count or item.dtype != first.dtype:
            hint = " (choose the variables to serve with --variable)" if item.dataset else ""
            raise invalid(f"{item.dataset or item.path} has {item.band_count} band(s) of {item.dtype}, but the "
                          f"service's rasters have {first.band_count} band(s) of {first.dtype}{hint}.")


def item_bounds_in(item: RasterItem, crs_wkt: str) -> tuple[float, float, float, float]:
    """The item's bounds in the service SR (densified, so a curved edge is covered)."""
    if item.crs_wkt == crs_wkt:
        return item.bounds
    return sr.transform_bounds(sr.crs_from_wkt(item.crs_wkt), sr.crs_from_wkt(crs_wkt), item.bounds)


def cell_size_in(item: RasterItem, crs_wkt: str, bounds: Sequence[float]) -> tuple[float, float]:
    """The item's (x, y) cell size in service units: its own in the service SR; else its extent there (``bounds``)
    over its size."""
    if item.crs_wkt == crs_wkt:
        return abs(item.transform.a), abs(item.transform.e)
    return (bounds[2] - bounds[0]) / item.width, (bounds[3] - bounds[1]) / item.height


def describe_service(items: Sequence[RasterItem],
                     distributions: Sequence[tuple[BandDistribution, ...]] | None = None) -> ServiceDescription:
    """The description of a service made of ``items`` (the first one sets the SR); ``distributions`` (one tuple per
    item) let the statistics of several items be merged exactly."""
    check_compatible(items)
    first = items[0]
    crs_wkt = first.crs_wkt
    bounds = [item_bounds_in(item, crs_wkt) for item in items]
    extent = (min(b[0] for b in bounds), min(b[1] for b in bounds), max(b[2] for b in bounds),
              max(b[3] for b in bounds))
    sizes = [cell_size_in(item, crs_wkt, b) for item, b in zip(items, bounds)]
    pixel_x, pixel_y = min(s[0] for s in sizes), min(s[1] for s in sizes)
    coarsest = max(size[0] * item.width / (item.overview_shapes[-1][0] if item.overview_shapes else item.width)
                   for size, item in zip(sizes, items))
    if len(items) == 1:
        stats, columns, rows = first.stats, first.width, first.height
    else:
        stats = (tuple(_band_stats(d) for d in merge_distributions(distributions)) if distributions
                 else first.stats)
        columns = max(1, round((extent[2] - extent[0]) / pixel_x))
        rows = max(1, round((extent[3] - extent[1]) / pixel_y))
    return ServiceDescription(
        crs_wkt=crs_wkt, extent=extent, pixel_size=(pixel_x, pixel_y), dtype=first.dtype,
        band_names=first.band_names, nodata=first.nodata, stats=stats, block_shape=first.block_shape,
        compression=first.compression, item_count=len(items), columns=columns, rows=rows,
        coarsest_pixel_size=coarsest)


def _band_stats(d: BandDistribution) -> BandStats:
    return BandStats(min=d.min, max=d.max, mean=d.mean, stdv=d.stdv)


def merge_distributions(per_item: Sequence[tuple[BandDistribution, ...]]) -> tuple[BandDistribution, ...]:
    """One distribution per band over the pixels of every item: exact count, min, max, mean and standard deviation;
    the histogram re-bins each item's counts onto the union range by bin centre (exact when the items' bins are
    the same, as for 8-bit data), and median and mode come from it."""
    if len(per_item) == 1:
        return per_item[0]
    return tuple(_merge_band([item[b] for item in per_item]) for b in range(len(per_item[0])))


def _merge_band(parts: list[BandDistribution]) -> BandDistribution:
    parts_with_data = [p for p in parts if p.count] or parts[:1]
    count = sum(p.count for p in parts)
    mean = sum(p.mean * p.count for p in parts) / count if count else 0.0
    # Pooled variance: each part's variance about the overall mean.
    variance = sum(p.count * (p.stdv ** 2 + (p.mean - mean) ** 2) for p in parts) / count if count else 0.0
    hist_min = min(p.hist_min for p in parts_with_data)
    hist_max = max(p.hist_max for p in parts_with_data)
    same_bins = all((p.hist_min, p.hist_max, len(p.counts)) == (hist_min, hist_max, HISTOGRAM_BINS)
                    for p in parts_with_data)
    counts = np.zeros(HISTOGRAM_BINS, np.int64)
    for p in parts_with_data:
        if same_bins:
            counts += np.asarray(p.counts, np.int64)
            continue
        width = (p.hist_max - p.hist_min) / len(p.counts)
        centres = p.hist_min + (np.arange(len(p.counts)) + 0.5) * width
        bins = np.clip(((centres - hist_min) / (hist_max - hist_min) * HISTOGRAM_BINS).astype(np.int64),
                       0, HISTOGRAM_BINS - 1)
        np.add.at(counts, bins, np.asarray(p.counts, np.int64))
    width = (hist_max - hist_min) / HISTOGRAM_BINS
    median = mode = 0.0
    if count:
        cumulative = np.cumsum(counts)
        k = int(np.searchsorted(cumulative, count / 2.0))
        median = hist_min + (k + 0.5) * width
        mode = hist_min + (int(np.argmax(counts)) + 0.5) * width
    return BandDistribution(
        min=min(p.min for p in parts_with_data), max=max(p.max for p in parts_with_data), mean=float(mean),
        stdv=float(math.sqrt(max(0.0, variance))), median=float(median), mode=float(mode), count=int(count),
        hist_min=float(hist_min), hist_max=float(hist_max), counts=tuple(int(c) for c in counts))
