"""Colormap: values to colours, as a 3-band U8 image (docs/protocol.md §6.2 "Colormap").

Three ways to give the colours, chosen by ``ColorSchemeType`` when several are sent (0 the colormap, 1 the ramp):

- ``Colormap`` ``[[value, r, g, b], ...]`` or ``[[value, r, g, b, a], ...]``: each pixel whose value is listed takes
  its colour; a value not listed, or listed with alpha 0, is NoData.
- ``ColormapName``: ``Random`` (a colour per value from a fixed integer hash of the value, so every tile gives a
  value the same colour), or a named ramp: ``Gray``, ``Elevation``, ``NDVI``, ``NDVI2``, ``NDVI3``.
- ``ColorRamp``: a ramp name as above, or the ArcGIS REST colour ramp JSON: ``{"type": "algorithmic",
  "fromColor": [r, g, b, a], "toColor": [...], "algorithm": "esriHSVAlgorithm" | "esriCIELabAlgorithm" |
  "esriLabLChAlgorithm"}`` or ``{"type": "multipart", "colorRamps": [...]}`` (each part an equal share of the ramp).

A ramp is sampled at 256 positions.  8-bit input indexes it by value (0..255, as ArcGIS clients build 256-entry
colormaps from a ramp); any other input is spread over its statistics' [min, max] (the service's, so tiles agree),
else over the block's valid pixels.  The NDVI ramps are anchored instead on the NDVI function's scaled output
(0..200 = NDVI -1..1), whatever the input.  Interpolation between two colours is linear in the algorithm's space:
HSV (hue not wrapped, as a straight line from the first hue to the second), CIE L*a*b* (D65, sRGB), or L*C*h (hue
the short way round).  An input of several bands is coloured by its first band.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from imgsvc.encode.stretch import block_band_stats
from imgsvc.errors import unsupported
from imgsvc.functions.base import BandsInfo, RasterFunction
from imgsvc.functions.stretch import per_value

RAMP_SIZE = 256
RGB_NAMES = ("Red", "Green", "Blue")
COLORMAP, COLOR_RAMP = 0, 1

# Named ramps: (position 0..1, (r, g, b)) stops, linear in RGB between them.
NAMED_RAMPS = {
    "gray": ((0.0, (0, 0, 0)), (1.0, (255, 255, 255))),
    # Lowlands green through tan and brown to snow.
    "elevation": ((0.0, (56, 168, 0)), (0.25, (200, 215, 120)), (0.5, (222, 184, 135)), (0.75, (140, 90, 50)),
                  (1.0, (255, 255, 255))),
}
# NDVI ramps over the NDVI function's scaled output: value 0..200 is NDVI -1..1 (water/bare below 100, greener up).
NDVI_SCALE = 200.0
NDVI_RAMPS = {
    "ndvi": ((0, (0, 0, 128)), (100, (200, 200, 200)), (120, (200, 170, 100)), (150, (120, 200, 60)),
             (200, (0, 100, 0))),
    "ndvi2": ((0, (128, 128, 128)), (100, (255, 255, 255)), (200, (0, 128, 0))),
    "ndvi3": ((0, (165, 0, 38)), (100, (255, 255, 191)), (200, (0, 104, 55))),
}
RAMP_NAMES = {"gray": "Gray", "elevation": "Elevation", "ndvi": "NDVI", "ndvi2": "NDVI2", "ndvi3": "NDVI3"}
COLORMAP_NAMES = {**RAMP_NAMES, "random": "Random"}
ALGORITHMS = ("esrihsvalgorithm", "esricielabalgorithm", "esrilablchalgorithm")

# sRGB (D65) <-> CIE XYZ
RGB_TO_XYZ = np.array([[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750],
                       [0.0193339, 0.1191920, 0.9503041]])
XYZ_TO_RGB = np.linalg.inv(RGB_TO_XYZ)
WHITE = RGB_TO_XYZ @ np.ones(3)


# ---- colour spaces (arrays of shape (..., 3); RGB in 0..255) ----------------------------------------------------

def rgb_to_hsv(rgb: np.ndarray) -> np.ndarray:
    """H in degrees [0, 360), S and V in [0, 1]; a grey has hue 0."""
    rgb = rgb / 255.0
    high, low = rgb.max(axis=-1), rgb.min(axis=-1)
    chroma = high - low
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    safe = np.where(chroma > 0, chroma, 1)
    hue = np.select([chroma == 0, high == r, high == g],
                    [0.0, ((g - b) / safe) % 6, (b - r) / safe + 2], (r - g) / safe + 4) * 60
    saturation = np.where(high > 0, chroma / np.where(high > 0, high, 1), 0)
    return np.stack([hue, saturation, high], axis=-1)


def hsv_to_rgb(hsv: np.ndarray) -> np.ndarray:
    hue, saturation, value = hsv[..., 0] % 360 / 60, hsv[..., 1], hsv[..., 2]
    chroma = value * saturation
    x = chroma * (1 - np.abs(hue % 2 - 1))
    zero = np.zeros_like(hue)
    sector = np.minimum(hue.astype(int), 5)
    table = np.stack([np.stack(parts, axis=-1) for parts in (
        (chroma, x, zero), (x, chroma, zero), (zero, chroma, x), (zero, x, chroma), (x, zero, chroma),
        (chroma, zero, x))])
    picked = np.take_along_axis(table, sector[None, ..., None].repeat(3, axis=-1), axis=0)[0]
    return (picked + (value - chroma)[..., None]) * 255


def _linear(rgb: np.ndarray) -> np.ndarray:
    c = rgb / 255.0
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _encoded(linear: np.ndarray) -> np.ndarray:
    c = np.clip(linear, 0, 1)
    return np.where(c <= 0.0031308, c * 12.92, 1.055 * c ** (1 / 2.4) - 0.055) * 255


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    xyz = _linear(rgb) @ RGB_TO_XYZ.T / WHITE
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1)


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    fy = (lab[..., 0] + 16) / 116
    f = np.stack([fy + lab[..., 1] / 500, fy, fy - lab[..., 2] / 200], axis=-1)
    xyz = np.where(f > 6 / 29, f ** 3, 3 * (6 / 29) ** 2 * (f - 4 / 29)) * WHITE
    return _encoded(xyz @ XYZ_TO_RGB.T)


def interpolate(start, end, positions: np.ndarray, algorithm: str) -> np.ndarray:
    """RGB colours at ``positions`` (0..1) between two RGB colours, linear in the algorithm's colour space."""
    start, end, p = np.asarray(start, np.float64), np.asarray(end, np.float64), positions[:, None]
    if algorithm == "esrihsvalgorithm":
        a, b = rgb_to_hsv(start), rgb_to_hsv(end)
        return hsv_to_rgb(a + (b - a) * p)
    a, b = rgb_to_lab(start), rgb_to_lab(end)
    if algorithm == "esricielabalgorithm":
        return lab_to_rgb(a + (b - a) * p)
    (la, ca, ha), (lb, cb, hb) = ((lab[0], np.hypot(lab[1], lab[2]), np.arctan2(lab[2], lab[1])) for lab in (a, b))
    turn = (hb - ha + np.pi) % (2 * np.pi) - np.pi  # the short way round
    lightness, chroma, hue = la + (lb - la) * p[:, 0], ca + (cb - ca) * p[:, 0], ha + turn * p[:, 0]
    return lab_to_rgb(np.stack([lightness, chroma * np.cos(hue), chroma * np.sin(hue)], axis=-1))


def stops_table(stops, positions: np.ndarray) -> np.ndarray:
    """(len(positions), 3) RGB of piecewise-linear RGB stops ((position, (r, g, b)), ...)."""
    at = np.array([s[0] for s in stops], np.float64)
    colours = np.array([s[1] for s in stops], np.float64)
    return np.stack([np.interp(positions, at, colours[:, c]) for c in range(3)], axis=-1)


def random_colours(values: np.ndarray) -> np.ndarray:
    """(3, ...) colours of integer ``values`` from the splitmix64 hash of each value: the same everywhere."""
    with np.errstate(over="ignore"):
        z = values.astype(np.int64).view(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return np.stack([(z >> np.uint64(shift)) & np.uint64(255) for shift in (0, 8, 16)]).astype(np.uint8)


class Colormap(RasterFunction):
    NAME = "Colormap"
    ARGUMENTS = {"Colormap": ("Colormap",), "ColormapName": ("ColormapName",), "ColorRamp": ("ColorRamp",),
                 "ColorSchemeType": ("ColorSchemeType",)}
    bandwise = False

    def __init__(self, arguments) -> None:
        super().__init__(arguments)
        self.entries = self._colormap() if self.has("Colormap") else None
        name = None
        if self.has("ColormapName"):
            name = self.text("ColormapName").lower()
            if name not in COLORMAP_NAMES:
                raise self.bad("ColormapName", f"must be one of {', '.join(COLORMAP_NAMES.values())}, got "
                               f"{self.arguments['ColormapName']!r}")
            if self.entries is not None:
                raise self.bad("ColormapName", "cannot be given with Colormap: give one of them")
        ramp = self._ramp(self.arguments["ColorRamp"], depth=0) if self.has("ColorRamp") else None
        default = COLOR_RAMP if ramp is not None and self.entries is None and name is None else COLORMAP
        scheme = self.integer("ColorSchemeType", default, COLORMAP, COLOR_RAMP)
        if scheme == COLOR_RAMP and ramp is None:
            raise self.bad("ColorSchemeType", "is 1 (colour ramp) but no ColorRamp is given")
        if scheme == COLORMAP and self.entries is None and name is None:
            raise self.bad("Colormap", "or ColormapName or ColorRamp is required")
        if scheme == COLOR_RAMP:
            self.entries, name = None, None
        self.random = name == "random"
        # The ramp: a ramp name, or a parsed ramp object (see ramp_colours); None with a colormap or Random.
        self.ramp = ramp if scheme == COLOR_RAMP else (None if self.random else name)
        if self.ramp is not None:  # (3, RAMP_SIZE) uint8
            colours = ramp_colours(self.ramp, np.linspace(0, 1, RAMP_SIZE))
            self.ramp_table = np.clip(np.rint(colours), 0, 255).astype(np.uint8).T.copy()

    def _colormap(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(sorted values, their RGB, whether each is opaque)."""
        value = self.arguments["Colormap"]
        form = "a list of [value, r, g, b] or [value, r, g, b, a]"
        if not isinstance(value, list) or not value:
            raise self.bad("Colormap", f"must be {form}, got {value!r}")
        rows = []
        for entry in value:
            if not isinstance(entry, list) or len(entry) not in (4, 5):
                raise self.bad("Colormap", f"must be {form}, got entry {entry!r}")
            key = self._number(entry[0], "Colormap", None, None)
            colour = [self._number(c, "Colormap", 0, 255) for c in entry[1:]]
            rows.append((key, *colour, *([255.0] if len(entry) == 4 else [])))
        table = np.array(rows, np.float64)
        table = table[np.argsort(table[:, 0], kind="stable")]
        return table[:, 0], np.rint(table[:, 1:4]).astype(np.uint8), table[:, 4] > 0

    def _ramp(self, value: Any, depth: int):
        """The parsed ramp, as ramp_colours takes it: a name, or a tuple for an algorithmic or multipart ramp."""
        if isinstance(value, str):
            if value.lower() not in RAMP_NAMES:
                raise unsupported(f"renderingRule Colormap ColorRamp {value!r} is not a supported ramp name "
                                  f"(supported: {', '.join(RAMP_NAMES.values())}).", parameter="renderingRule")
            return value.lower()
        if not isinstance(value, Mapping) or depth > 1:
            raise self.bad("ColorRamp", f"must be a ramp name or a colour ramp object, got {value!r}")
        kind = str(value.get("type", "")).lower()
        if kind == "algorithmic":
            colours = [self._colour(value.get(key), key) for key in ("fromColor", "toColor")]
            algorithm = str(value.get("algorithm", "esriHSVAlgorithm"))
            if algorithm.lower() not in ALGORITHMS:
                raise self.bad("ColorRamp", f"algorithm must be esriHSVAlgorithm, esriCIELabAlgorithm or "
                               f"esriLabLChAlgorithm, got {algorithm!r}")
            return ("algorithmic", *colours, algorithm.lower())
        if kind == "multipart":
            parts = value.get("colorRamps")
            if not isinstance(parts, list) or not parts:
                raise self.bad("ColorRamp", "multipart needs a non-empty list colorRamps")
            return ("multipart", tuple(self._ramp(part, depth + 1) for part in parts))
        raise self.bad("ColorRamp", f"type must be algorithmic or multipart, got {value.get('type')!r}")

    def _colour(self, value: Any, key: str) -> tuple[float, float, float]:
        """(r, g, b): a ramp's alpha is not used (its output is 3 bands)."""
        if not isinstance(value, list) or len(value) not in (3, 4):
            raise self.bad("ColorRamp", f"{key} must be [r, g, b] or [r, g, b, a], got {value!r}")
        return tuple(self._number(c, "ColorRamp", 0, 255) for c in value[:3])

    def describe(self, inputs):
        return BandsInfo(RGB_NAMES, "uint8", None)

    def apply(self, inputs, grid):
        (source,) = inputs
        band = source.data[0]
        coloured = per_value(band, lambda values: self.colours(values, source))
        valid = source.valid & (coloured[3] > 0)
        out = coloured[:3].copy()
        out[:, ~valid] = 0
        return out, valid

    def colours(self, values: np.ndarray, source) -> np.ndarray:
        """(4, ...) uint8: the red, green and blue of float ``values`` and whether each is coloured (1) or NoData."""
        with np.errstate(invalid="ignore"):
            if self.entries is not None:
                keys, rgb, opaque = self.entries
                index = np.clip(np.searchsorted(keys, values), 0, len(keys) - 1)
                found = (np.take(keys, index) == values) & np.take(opaque, index)
                return np.concatenate([np.take(rgb.T, index, axis=-1), found[None]])
            if self.random:
                whole = np.isfinite(values) & (np.floor(values) == values)
                return np.concatenate([random_colours(np.where(whole, values, 0)), whole[None]])
            lo, hi = self._ramp_range(source)
            values = values.astype(np.float64, copy=False)
            position = np.clip((values - lo) / (hi - lo), 0, 1) if hi > lo else np.zeros(values.shape)
            finite = np.isfinite(position)
        index = np.rint(np.where(finite, position, 0) * (RAMP_SIZE - 1)).astype(np.intp)
        return np.concatenate([np.take(self.ramp_table, index, axis=-1), finite[None]])

    def _ramp_range(self, source) -> tuple[float, float]:
        """The input values the ramp spans: see the module's docstring."""
        stats = source.info.stats[0] if source.info.stats is not None else \
            block_band_stats(source.data[0], source.valid)
        return self.ramp_range(source.data.dtype, stats)

    @property
    def ramp_is_ndvi(self) -> bool:
        """An NDVI ramp spans the NDVI function's scaled output, whatever the input's statistics."""
        return self.ramp in NDVI_RAMPS

    def ramp_range(self, dtype, stats) -> tuple[float, float]:
        """The values the ramp spans over an input of ``dtype`` whose band 0 has ``stats``."""
        dtype = np.dtype(dtype)
        if self.ramp_is_ndvi:
            return 0.0, NDVI_SCALE
        if dtype.itemsize == 1 and dtype.kind in "iu":
            info = np.iinfo(dtype)
            return float(info.min), float(info.max)
        return stats.min, stats.max


def ramp_colours(ramp, positions: np.ndarray) -> np.ndarray:
    """(len(positions), 3) RGB of a parsed ramp: a name, ("algorithmic", from, to, algorithm) or ("multipart",
    parts), each part an equal share of 0..1."""
    if isinstance(ramp, str):
        if ramp in NDVI_RAMPS:
            return stops_table(NDVI_RAMPS[ramp], positions * NDVI_SCALE)
        return stops_table(NAMED_RAMPS[ramp], positions)
    if ramp[0] == "algorithmic":
        _, start, end, algorithm = ramp
        return interpolate(start, end, positions, algorithm)
    parts = ramp[1]
    share = np.minimum((positions * len(parts)).astype(int), len(parts) - 1)
    out = np.empty((len(positions), 3))
    for k, part in enumerate(parts):
        chosen = share == k
        out[chosen] = ramp_colours(part, positions[chosen] * len(parts) - k)
    return out
