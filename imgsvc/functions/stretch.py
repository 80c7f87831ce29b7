"""Stretch: each band's values mapped onto an output range [Min, Max] (docs/protocol.md §6.2 "Stretch").

Cut-offs ``lo``, ``hi`` per band come from statistics: the ``Statistics`` argument, else the request's own valid
pixels when ``DRA`` is true, else the input's statistics (the service's), else the block's own pixels.  PercentClip
and HistogramEqualization read a histogram instead: the request's pixels with ``DRA``, else the input's (the
service's histograms, which the service fetches because ``needs_histograms``), else the block's.

    t = (v - lo) / (hi - lo), clipped to [0, 1]          (hi <= lo: t = 0 up to lo, 1 above)
    linear:  out = Min + floor(t · (Max - Min))
    gamma:   out = Min + floor(t^(1/γ) · (Max - Min))     (docs/decisions.md Q13: the plain power law, without the
                                                            empirical correction ArcGIS JS adds for γ > 1)

Decisions of docs/decisions.md Q13 taken here:

- ComputeGamma: γ per band such that the band's mean maps to the middle of the output range,
  ``t_mean^(1/γ) = 0.5``, i.e. ``γ = ln(t_mean) / ln(0.5)``, bounded to [0.1, 10] (1 when t_mean is 0 or 1).
- HistogramEqualization: the classic cumulative-distribution mapping, ``out = Min + floor(F(v) · (Max - Min))``
  where F(v) is the fraction of pixels in v's histogram bin and below.
- Sigmoid: an S-curve over [min, max] of the statistics centred on the mean, of gain ``g = 4 · level``
  (SigmoidStrengthLevel 1 gentle ... 6 nearly a threshold), rescaled so that min maps to Min and max to Max:
  ``s(x) = 1 / (1 + exp(-g (x - c)))``, x = t over [min, max], c = t of the mean,
  ``out = Min + floor((s(x) - s(0)) / (s(1) - s(0)) · (Max - Min))``.
- StretchType None leaves the values as they are (the input's type; ``outputPixelType`` casts them).
"""
from __future__ import annotations

import math

import numpy as np

from imgsvc import kernels
from imgsvc.block import BandStats
from imgsvc.distributions import distributions_of
from imgsvc.encode.stretch import block_band_stats
from imgsvc.errors import unsupported
from imgsvc.functions.base import BandsInfo, Histogram, RasterFunction

NONE, STANDARD_DEVIATION, HISTOGRAM_EQUALIZATION, MIN_MAX, PERCENT_CLIP, SIGMOID = 0, 3, 4, 5, 6, 9
STRETCH_TYPES = {NONE: "None", 1: "DefaultFromSource", 2: "Custom", STANDARD_DEVIATION: "StandardDeviation",
                 HISTOGRAM_EQUALIZATION: "HistogramEqualization", MIN_MAX: "MinMax", PERCENT_CLIP: "PercentClip",
                 7: "Count", 8: "ExactValue", SIGMOID: "Sigmoid"}
BY_HISTOGRAM = (PERCENT_CLIP, HISTOGRAM_EQUALIZATION)
GAMMA_BOUNDS = (0.1, 10.0)  # what ComputeGamma may choose: beyond these a band is all black or all white
SIGMOID_GAIN_PER_LEVEL = 4.0


def output_dtype(low: float, high: float) -> str:
    """The smallest type that holds every output level of the range [low, high] (U8 for the default 0..255)."""
    if low != int(low) or high != int(high):
        return "float32"
    return np.result_type(np.min_scalar_type(int(low)), np.min_scalar_type(int(high))).name


def per_value(band: np.ndarray, compute) -> np.ndarray:
    """``compute`` (float values -> an array whose last axis follows them) for each pixel of ``band``.

    For integer types of at most 16 bits it is computed once for every value the type holds (at most 65536) and
    looked up, one pass over the pixels instead of a chain of float temporaries (signed values are indexed by their
    bit pattern); other types are computed on the pixels themselves (floats as they are, others as float64).
    """
    if band.dtype.kind in "iu" and band.dtype.itemsize <= 2:
        index_type = np.dtype(f"u{band.dtype.itemsize}")
        values = np.arange(np.iinfo(index_type).max + 1, dtype=index_type).view(band.dtype)
        return np.take(compute(values.astype(np.float64)), band.view(index_type), axis=-1)  # take: 3x [..., i]
    return compute(band if band.dtype.kind == "f" else band.astype(np.float64))


def block_histogram(band: np.ndarray, valid: np.ndarray) -> Histogram:
    """A band's histogram over its valid pixels, binned as the service's are."""
    (distribution,) = distributions_of(lambda: [(band[None], valid)], 1, band.dtype.name)
    return Histogram(distribution.hist_min, distribution.hist_max, distribution.counts)


def bin_centres(histogram: Histogram) -> np.ndarray:
    width = (histogram.max - histogram.min) / len(histogram.counts)
    return histogram.min + (np.arange(len(histogram.counts)) + 0.5) * width


def percent_clip_range(histogram: Histogram, min_percent: float, max_percent: float) -> tuple[float, float]:
    """(lo, hi): the centre of the first bin where the count from the bottom reaches ``min_percent`` % of the
    total, and of the last bin where the count from the top reaches ``max_percent`` %."""
    counts = np.asarray(histogram.counts, np.float64)
    total = counts.sum()
    centres = bin_centres(histogram)
    if total == 0:
        return histogram.min, histogram.max
    from_bottom = np.cumsum(counts)
    from_top = np.cumsum(counts[::-1])[::-1]
    lo = np.flatnonzero((from_bottom >= total * min_percent / 100) & (counts > 0))[0]
    hi = np.flatnonzero((from_top >= total * max_percent / 100) & (counts > 0))[-1]
    return float(centres[lo]), float(centres[max(hi, lo)])


def bin_index(values: np.ndarray, histogram: Histogram) -> np.ndarray:
    """The histogram bin of each value (values beyond its range in its first or last bin; NaN in the first)."""
    width = (histogram.max - histogram.min) / len(histogram.counts)
    with np.errstate(invalid="ignore"):
        index = np.clip(np.floor((values - histogram.min) / width), 0, len(histogram.counts) - 1)
    return np.nan_to_num(index).astype(np.intp)


def equalized(values: np.ndarray, histogram: Histogram) -> np.ndarray:
    """F(v) in [0, 1]: the fraction of the histogram's pixels in v's bin and below."""
    counts = np.asarray(histogram.counts, np.float64)
    total = counts.sum()
    if total == 0:
        return np.zeros(values.shape)
    return (np.cumsum(counts) / total)[bin_index(values, histogram)]


def computed_gamma(t_mean: float) -> float:
    if not 0 < t_mean < 1:
        return 1.0
    return float(np.clip(math.log(t_mean) / math.log(0.5), *GAMMA_BOUNDS))


class Stretch(RasterFunction):
    NAME = "Stretch"
    ARGUMENTS = {"StretchType": ("StretchType",), "Min": ("Min",), "Max": ("Max",),
                 "NumberOfStandardDeviations": ("NumberOfStandardDeviations", "NumberOfStandardDeviation"),
                 "MinPercent": ("MinPercent",), "MaxPercent": ("MaxPercent",), "Statistics": ("Statistics",),
                 "DRA": ("DRA",), "UseGamma": ("UseGamma",), "Gamma": ("Gamma",), "ComputeGamma": ("ComputeGamma",),
                 "SigmoidStrengthLevel": ("SigmoidStrengthLevel",),
                 "EstimateStatsHistogram": ("EstimateStatsHistogram",)}

    def __init__(self, arguments) -> None:
        super().__init__(arguments)
        self.type = self.integer("StretchType", NONE, 0, max(STRETCH_TYPES))
        if self.type not in (NONE, STANDARD_DEVIATION, HISTOGRAM_EQUALIZATION, MIN_MAX, PERCENT_CLIP, SIGMOID):
            raise unsupported(f"renderingRule Stretch StretchType {self.type} ({STRETCH_TYPES[self.type]}) is not "
                              "supported.", parameter="renderingRule")
        self.low = self.number("Min", 0)
        self.high = self.number("Max", 255)
        if self.high <= self.low:
            raise self.bad("Max", f"must be greater than Min ({self.low:g}), got {self.high:g}")
        self.deviations = self.number("NumberOfStandardDeviations", 2, low=0)
        self.min_percent = self.number("MinPercent", 0.25, 0, 100)
        self.max_percent = self.number("MaxPercent", 0.5, 0, 100)
        if self.min_percent + self.max_percent >= 100:
            raise self.bad("MaxPercent", "plus MinPercent must be less than 100")
        self.statistics = self._statistics()
        self.dra = self.flag("DRA", False)
        self.use_gamma = self.flag("UseGamma", False)
        self.gammas = self.numbers("Gamma", ()) if self.has("Gamma") else ()
        if any(g <= 0 for g in self.gammas):
            raise self.bad("Gamma", f"values must be positive, got {list(self.gammas)}")
        self.compute_gamma = self.flag("ComputeGamma", False)
        self.sigmoid_level = self.integer("SigmoidStrengthLevel", 2, 1, 6)
        self.flag("EstimateStatsHistogram", False)  # accepted: statistics and histograms here are always exact

    def _statistics(self) -> tuple[BandStats, ...] | None:
        value = self.arguments.get("Statistics")
        if value is None or value == []:  # an empty list, as clients send with DRA, gives no statistics
            return None
        if not isinstance(value, list):
            raise self.bad("Statistics", f"must be a list of [min, max, mean, stddev] per band, got {value!r}")
        stats = []
        for band in value:
            if not isinstance(band, list) or len(band) != 4:
                raise self.bad("Statistics", f"must be a list of [min, max, mean, stddev] per band, got {band!r}")
            low, high, mean, stdv = (self._number(v, "Statistics", None, None) for v in band)
            if high < low or stdv < 0:
                raise self.bad("Statistics", f"needs min <= max and stddev >= 0, got {band!r}")
            stats.append(BandStats(low, high, mean, stdv))
        return tuple(stats)

    @property
    def needs_histograms(self) -> bool:
        return self.type in BY_HISTOGRAM and not self.dra

    def _per_band(self, name: str, values: tuple, bands: int) -> tuple:
        """One value per band: as many as bands, or one for all."""
        if len(values) == 1:
            return values * bands
        if len(values) != bands:
            raise self.bad(name, f"has {len(values)} entries but the input has {bands} band(s)")
        return values

    def describe(self, inputs):
        (source,) = inputs
        if self.statistics is not None:
            self._per_band("Statistics", self.statistics, source.count)
        if self.gammas:
            self._per_band("Gamma", self.gammas, source.count)
        if self.type == NONE:
            return source
        return BandsInfo(source.names, output_dtype(self.low, self.high), None)

    def apply(self, inputs, grid):
        (source,) = inputs
        if self.type == NONE:
            return source.data, source.valid
        bands = source.data.shape[0]
        info = self.describe([source.info])
        out = np.empty(source.data.shape, info.dtype)
        for b in range(bands):
            out[b] = per_value(source.data[b], lambda values: self._stretched(values, source, b).astype(out.dtype))
            out[b][~source.valid] = 0
        return out, source.valid.copy()

    def _stats(self, source, b: int) -> BandStats:
        if self.statistics is not None:
            return self._per_band("Statistics", self.statistics, source.data.shape[0])[b]
        if self.dra or source.info.stats is None:
            return block_band_stats(source.data[b], source.valid)
        return source.info.stats[b]

    def _histogram(self, source, b: int) -> Histogram:
        if self.dra or source.info.histograms is None:
            return block_histogram(source.data[b], source.valid)
        return source.info.histograms[b]

    def _stretched(self, values: np.ndarray, source, b: int) -> np.ndarray:
        """The output levels (float64, before the cast to the output type) of float ``values`` of band ``b``."""
        span = self.high - self.low
        if self.type == HISTOGRAM_EQUALIZATION:
            return self.low + np.floor(equalized(values.astype(np.float64), self._histogram(source, b)) * span)
        if self.type == PERCENT_CLIP:
            lo, hi = percent_clip_range(self._histogram(source, b), self.min_percent, self.max_percent)
        elif self.type == STANDARD_DEVIATION:
            stats = self._stats(source, b)
            lo = max(stats.min, stats.mean - self.deviations * stats.stdv)
            hi = min(stats.max, stats.mean + self.deviations * stats.stdv)
        else:  # MinMax and Sigmoid
            stats = self._stats(source, b)
            lo, hi = stats.min, stats.max
        if self.type == SIGMOID:
            with np.errstate(invalid="ignore"):  # NaN pixels are invalid ones; they are zeroed
                t = np.clip((values.astype(np.float64) - lo) / (hi - lo), 0, 1) if hi > lo \
                    else (values > lo).astype(np.float64)
                levels = self.low + np.floor(self._sigmoid(t, (stats.mean - lo) / (hi - lo) if hi > lo else 0.5) * span)
            levels[~np.isfinite(levels)] = 0
            return levels
        gamma = 1.0
        if self.use_gamma and self.compute_gamma:
            gamma = computed_gamma((self._stats(source, b).mean - lo) / (hi - lo) if hi > lo else 0.0)
        elif self.use_gamma:
            gamma = self._per_band("Gamma", self.gammas or (1.0,), source.data.shape[0])[b]
        return kernels.stretch_levels(values, lo, hi, self.low, span, gamma)

    def _sigmoid(self, t: np.ndarray, centre: float) -> np.ndarray:
        gain = SIGMOID_GAIN_PER_LEVEL * self.sigmoid_level

        def s(x):
            return 1 / (1 + np.exp(-gain * (x - centre)))

        bottom, top = s(0.0), s(1.0)
        return np.clip((s(t) - bottom) / (top - bottom), 0, 1)
