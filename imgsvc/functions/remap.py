"""Value mapping functions (docs/protocol.md §6.2): Remap, Mask, Threshold, Grayscale, ContrastBrightness and
UnitConversion.

Remap ranges are half-open, ``lo <= v < hi`` (docs/decisions.md Q15: ArcGIS JS adds 1e-4 to a class break's upper
bound to include it, so the server excludes it), except that a pair with ``lo == hi`` matches that one value; the
first matching range wins; NoDataRanges are read the same way and win over InputRanges.
"""
from __future__ import annotations

import math

import numpy as np

from imgsvc.block import BandStats, holds
from imgsvc.errors import unsupported
from imgsvc.functions.base import BandsInfo, RasterFunction
from imgsvc.functions.stretch import bin_index, block_histogram


def in_ranges(values: np.ndarray, bounds: tuple[float, ...]) -> list[np.ndarray]:
    """For each (lo, hi) pair of ``bounds``: where lo <= v < hi (v == lo when lo == hi)."""
    pairs = zip(bounds[::2], bounds[1::2])
    return [(values == lo) if lo == hi else (values >= lo) & (values < hi) for lo, hi in pairs]


class Remap(RasterFunction):
    NAME = "Remap"
    ARGUMENTS = {"InputRanges": ("InputRanges",), "OutputValues": ("OutputValues",),
                 "NoDataRanges": ("NoDataRanges",), "AllowUnmatched": ("AllowUnmatched",),
                 "UseTable": ("UseTable",), "Table": ("Table",), "InputField": ("InputField",),
                 "OutputField": ("OutputField",), "InputMaxField": ("InputMaxField",),
                 "RemapTableType": ("RemapTableType",)}
    TABLE_ARGUMENTS = ("Table", "InputField", "OutputField", "InputMaxField", "RemapTableType")
    bandwise = False  # a pixel is NoData when any band's value is

    def __init__(self, arguments) -> None:
        super().__init__(arguments)
        table = [name for name in self.TABLE_ARGUMENTS if self.has(name)]
        if self.flag("UseTable", False) or table:
            raise unsupported(f"renderingRule Remap {table[0] if table else 'UseTable'}: the table form of Remap is "
                              "not supported; send InputRanges and OutputValues.", parameter="renderingRule")
        self.ranges = self._pairs("InputRanges")
        self.outputs = self.numbers("OutputValues", ())
        if len(self.outputs) != len(self.ranges) // 2:
            raise self.bad("OutputValues", f"must have one value per InputRanges pair ({len(self.ranges) // 2}), "
                           f"got {len(self.outputs)}")
        self.no_data = self._pairs("NoDataRanges")
        self.allow_unmatched = self.flag("AllowUnmatched", True)

    def _pairs(self, name: str) -> tuple[float, ...]:
        bounds = self.numbers(name, ())
        if len(bounds) % 2 or any(lo > hi for lo, hi in zip(bounds[::2], bounds[1::2])):
            raise self.bad(name, f"must be [lo1, hi1, lo2, hi2, ...] with each lo <= hi, got {list(bounds)}")
        return bounds

    def describe(self, inputs):
        (source,) = inputs
        fits = all(holds(np.dtype(source.dtype), v) for v in self.outputs)
        return BandsInfo(source.names, source.dtype if fits else "float32", None)

    def apply(self, inputs, grid):
        (source,) = inputs
        dtype = self.describe([source.info]).dtype
        out = source.data.astype(dtype)
        matched = np.zeros(source.data.shape, bool)
        for hits, value in zip(in_ranges(source.data, self.ranges), self.outputs):
            hits &= ~matched
            out[hits] = value
            matched |= hits
        removed = np.zeros_like(matched)
        for hits in in_ranges(source.data, self.no_data):
            removed |= hits
        if not self.allow_unmatched:
            removed |= ~matched
        # A band's NoData makes the pixel NoData: validity is one mask for all bands.
        valid = source.valid & ~removed.any(axis=0)
        out[:, ~valid] = 0
        return out, valid


class Mask(RasterFunction):
    """A pixel is NoData where its bands match their criteria (a listed value, or a value outside the included
    range, both inclusive): any band (NoDataInterpretation 0) or all the bands that have criteria (1); Invert keeps
    those pixels instead and masks the others.  One string of values or one range for a multiband input stands for
    every band."""

    NAME = "Mask"
    ARGUMENTS = {"NoDataValues": ("NoDataValues",), "IncludedRanges": ("IncludedRanges",),
                 "NoDataInterpretation": ("NoDataInterpretation",), "Invert": ("Invert",)}
    bandwise = False  # NoDataInterpretation weighs the bands together

    def __init__(self, arguments) -> None:
        super().__init__(arguments)
        self.values = self._no_data_values()
        self.included = self.numbers("IncludedRanges", ())
        if len(self.included) % 2:
            raise self.bad("IncludedRanges", f"must be [min_b1, max_b1, min_b2, max_b2, ...], got "
                           f"{list(self.included)}")
        self.match_all = self.integer("NoDataInterpretation", 0, 0, 1) == 1
        self.invert = self.flag("Invert", False)

    def _no_data_values(self) -> tuple[tuple[float, ...], ...]:
        """One tuple of values per band, from one string per band of values separated by spaces."""
        value = self.arguments.get("NoDataValues", [])
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, list):
            raise self.bad("NoDataValues", f"must be a list of strings, one per band, got {value!r}")
        return tuple(tuple(self._number(v, "NoDataValues", None, None) for v in str(band).split())
                     for band in value)

    def _per_band(self, name: str, items: tuple, bands: int) -> tuple:
        if len(items) in (0, bands):
            return items
        if len(items) == 1:
            return items * bands
        raise self.bad(name, f"has {len(items)} band entries but the input has {bands} band(s)")

    def describe(self, inputs):
        (source,) = inputs
        self._per_band("NoDataValues", self.values, source.count)
        self._per_band("IncludedRanges", tuple(zip(self.included[::2], self.included[1::2])), source.count)
        return source

    def apply(self, inputs, grid):
        (source,) = inputs
        bands = source.data.shape[0]
        values = self._per_band("NoDataValues", self.values, bands)
        included = self._per_band("IncludedRanges", tuple(zip(self.included[::2], self.included[1::2])), bands)
        # Per band: whether the pixel matches its NoData criteria (a listed value, or outside its included range).
        matches = []
        for b in range(bands):
            band = source.data[b]
            criteria = [band == v for v in values[b]] if values else []
            if included:
                low, high = included[b]
                criteria.append((band < low) | (band > high))
            if criteria:
                matches.append(np.logical_or.reduce(criteria))
        if not matches:
            masked = np.zeros(source.valid.shape, bool)
        else:
            masked = np.logical_and.reduce(matches) if self.match_all else np.logical_or.reduce(matches)
        valid = source.valid & (masked if self.invert else ~masked)
        out = source.data.copy()
        out[:, ~valid] = 0
        return out, valid


OTSU = 1


def otsu_threshold(counts: np.ndarray) -> int:
    """The last bin of the lower class that maximises the between-class variance (Otsu 1979)."""
    counts = counts.astype(np.float64)
    total = counts.sum()
    levels = np.arange(len(counts))
    weight = np.cumsum(counts)[:-1] / total
    cumulative_mean = np.cumsum(counts * levels)[:-1] / total
    overall = cumulative_mean[-1] + counts[-1] * levels[-1] / total
    with np.errstate(invalid="ignore", divide="ignore"):
        between = (overall * weight - cumulative_mean) ** 2 / (weight * (1 - weight))
    between[~np.isfinite(between)] = -1
    return int(np.argmax(between))


class Threshold(RasterFunction):
    """Otsu's binary threshold per band: 1 above it, 0 at or below.  The threshold comes from the input's histogram
    (the service's, so tiles agree), else the block's."""

    NAME = "Threshold"
    ARGUMENTS = {"ThresholdType": ("ThresholdType",)}
    needs_histograms = True

    def __init__(self, arguments) -> None:
        super().__init__(arguments)
        kind = self.integer("ThresholdType", OTSU)
        if kind != OTSU:
            raise unsupported(f"renderingRule Threshold ThresholdType {kind} is not supported (1 = Otsu's binary "
                              "threshold).", parameter="renderingRule")

    def describe(self, inputs):
        return BandsInfo(inputs[0].names, "uint8", None)

    def apply(self, inputs, grid):
        (source,) = inputs
        out = np.zeros(source.data.shape, np.uint8)
        for b in range(source.data.shape[0]):
            histogram = (source.info.histograms[b] if source.info.histograms is not None
                         else block_histogram(source.data[b], source.valid))
            if sum(histogram.counts) == 0:
                continue
            k = otsu_threshold(np.asarray(histogram.counts))
            out[b] = bin_index(source.data[b].astype(np.float64), histogram) > k
        out[:, ~source.valid] = 0
        return out, source.valid.copy()


GRAYSCALE_WEIGHTS = (0.299, 0.587, 0.114)


class Grayscale(RasterFunction):
    """The weighted sum of the bands, one weight per band.  Integer input with non-negative weights summing to at
    most 1 keeps its type (the sum stays in its range; rounded half away from zero), anything else is F32."""

    NAME = "Grayscale"
    ARGUMENTS = {"ConversionParameters": ("ConversionParameters",)}
    bandwise = False

    def __init__(self, arguments) -> None:
        super().__init__(arguments)
        self.weights = self.numbers("ConversionParameters", GRAYSCALE_WEIGHTS)
        if not self.weights:
            raise self.bad("ConversionParameters", "must give one weight per band")

    def describe(self, inputs):
        (source,) = inputs
        if len(self.weights) != source.count:
            raise self.bad("ConversionParameters", f"has {len(self.weights)} weights but the input has "
                           f"{source.count} band(s)")
        keeps = np.dtype(source.dtype).kind in "iu" and min(self.weights) >= 0 and sum(self.weights) <= 1 + 1e-9
        return BandsInfo(("Gray",), source.dtype if keeps else "float32", None)

    def apply(self, inputs, grid):
        (source,) = inputs
        dtype = np.dtype(self.describe([source.info]).dtype)
        total = np.tensordot(np.asarray(self.weights), source.data.astype(np.float64), axes=1)[None]
        if dtype.kind in "iu":
            total = np.trunc(total + np.copysign(0.5, total))
        valid = source.valid & np.isfinite(total[0])
        out = np.where(valid, total, 0).astype(dtype)
        return out, valid


class ContrastBrightness(RasterFunction):
    """An 8-bit enhancement (Esri publishes no formula; this is GIMP's classic brightness-contrast):

        v' = v + 255 · BrightnessOffset / 100
        out = (v' - 127.5) · tan((ContrastOffset / 100 + 1) · π/4) + 127.5, rounded and clipped to 0..255

    Values are read as 8-bit levels whatever the input type (so other types are clipped to 0..255)."""

    NAME = "ContrastBrightness"
    ARGUMENTS = {"ContrastOffset": ("ContrastOffset", "Contrast"),
                 "BrightnessOffset": ("BrightnessOffset", "Brightness")}

    def __init__(self, arguments) -> None:
        super().__init__(arguments)
        self.contrast = self.number("ContrastOffset", 0, -100, 100)
        self.brightness = self.number("BrightnessOffset", 0, -100, 100)

    def describe(self, inputs):
        return BandsInfo(inputs[0].names, "uint8", None)

    def apply(self, inputs, grid):
        (source,) = inputs
        # At ContrastOffset 100 the slope is vertical: a step at 127.5 (tan's huge value stands for it).
        slope = math.tan(min((self.contrast / 100 + 1) * math.pi / 4, math.pi / 2 - 1e-12))
        with np.errstate(invalid="ignore", over="ignore"):
            levels = (source.data.astype(np.float64) + 255 * self.brightness / 100 - 127.5) * slope + 127.5
        levels = np.clip(np.trunc(levels + 0.5), 0, 255)
        levels[~np.isfinite(levels)] = 0
        out = levels.astype(np.uint8)
        out[:, ~source.valid] = 0
        return out, source.valid.copy()


# Length units in metres, temperature units as (scale, offset) to kelvin: K = v · scale + offset.
LENGTH_UNITS = {"meters": 1.0, "kilometers": 1000.0, "decimeters": 0.1, "centimeters": 0.01, "millimeters": 0.001,
                "feet": 0.3048, "usfeet": 1200 / 3937, "inches": 0.0254, "yards": 0.9144, "miles": 1609.344,
                "nauticalmiles": 1852.0}
TEMPERATURE_UNITS = {"kelvin": (1.0, 0.0), "celsius": (1.0, 273.15), "fahrenheit": (5 / 9, 273.15 - 32 * 5 / 9)}
UNIT_SPELLINGS = {"meter": "meters", "metre": "meters", "metres": "meters", "kilometer": "kilometers",
                  "kilometre": "kilometers", "kilometres": "kilometers", "decimeter": "decimeters",
                  "centimeter": "centimeters", "millimeter": "millimeters", "foot": "feet", "internationalfeet": "feet",
                  "usfoot": "usfeet", "ussurveyfeet": "usfeet", "inch": "inches", "yard": "yards", "mile": "miles",
                  "statutemiles": "miles", "nauticalmile": "nauticalmiles", "degreescelsius": "celsius",
                  "degreesfahrenheit": "fahrenheit", "kelvins": "kelvin"}


class UnitConversion(RasterFunction):
    """Length or temperature values from one unit to another (F32).  Units are named in words, case and spaces
    ignored, with or without Esri's ``esri`` prefix (``meters``, ``esriFeet``, ``US Feet``, ``Celsius``...)."""

    NAME = "UnitConversion"
    ARGUMENTS = {"FromUnit": ("FromUnit",), "ToUnit": ("ToUnit",)}

    def __init__(self, arguments) -> None:
        super().__init__(arguments)
        source, target = self._unit("FromUnit"), self._unit("ToUnit")
        if (source in LENGTH_UNITS) != (target in LENGTH_UNITS):
            raise self.bad("ToUnit", f"{self.arguments['ToUnit']!r} does not measure what FromUnit "
                           f"{self.arguments['FromUnit']!r} does (a length and a temperature)")
        if source in LENGTH_UNITS:
            self.scale, self.offset = LENGTH_UNITS[source] / LENGTH_UNITS[target], 0.0
        else:  # v -> kelvin -> target
            (a, b), (c, d) = TEMPERATURE_UNITS[source], TEMPERATURE_UNITS[target]
            self.scale, self.offset = a / c, (b - d) / c

    def _unit(self, name: str) -> str:
        spelled = self.text(name)
        key = spelled.lower().replace(" ", "").replace("_", "").removeprefix("esri")
        key = UNIT_SPELLINGS.get(key, key)
        if key not in LENGTH_UNITS and key not in TEMPERATURE_UNITS:
            raise self.bad(name, f"{spelled!r} is not a known unit (lengths: {', '.join(LENGTH_UNITS)}; "
                           f"temperatures: {', '.join(TEMPERATURE_UNITS)})")
        return key

    def describe(self, inputs):
        (source,) = inputs
        if source.stats is None:
            return BandsInfo(source.names, "float32", None)
        return BandsInfo(source.names, "float32", tuple(self._converted(s) for s in source.stats))

    def _converted(self, stats: BandStats) -> BandStats:
        low, high = sorted((stats.min * self.scale + self.offset, stats.max * self.scale + self.offset))
        return BandStats(low, high, stats.mean * self.scale + self.offset, stats.stdv * abs(self.scale))

    def apply(self, inputs, grid):
        (source,) = inputs
        out = (source.data.astype(np.float64) * self.scale + self.offset).astype(np.float32)
        valid = source.valid & np.isfinite(out).all(axis=0)
        out[:, ~valid] = 0
        return out, valid
