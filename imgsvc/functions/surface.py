"""Surface functions of a DEM (docs/protocol.md §6.2): Hillshade, Slope, Aspect, Curvature, ShadedRelief.

All read each pixel's 3 x 3 window (buffer 1) with Horn's gradient, and the compiled kernels of
``imgsvc._kernels.surface`` do the per-pixel work.  The rules common to the five:

* The DEM is the input's first band (a multi-band input gives its band 0).
* NoData: an invalid centre, or two or more invalid neighbours, give NoData; exactly one invalid neighbour takes
  the centre's value.  Neighbours outside the array count as invalid: the array is the read grid, whose 1-pixel
  ring around the output is cropped off, so every output pixel has its real neighbours and tiles meet without
  seams.  For the same reason ``RemoveEdgeEffect`` is accepted and changes nothing: there is no edge to remove.
* Cell sizes come from the grid: the lengths of a pixel's column and row vectors, in the CRS's units as they are
  (a DEM whose z unit differs from them is the user's to correct with ``ZFactor``, as in ArcGIS).  On a geographic
  grid degrees become metres by latitude, per row (decisions Q12): a degree of longitude is
  111 320 m x cos(latitude of the row's pixel centres), a degree of latitude 110 574 m.
"""
from __future__ import annotations

import math

import numpy as np

from imgsvc._kernels import surface as _surface
from imgsvc._kernels.surface import Measure
from imgsvc.block import BandStats
from imgsvc.errors import unsupported
from imgsvc.functions.base import BandsInfo, RasterFunction
from imgsvc.functions.colormap import Colormap

# Metres per degree (decisions Q12): of longitude at the equator (times cos(latitude) elsewhere), and of latitude
# (its value at the equator; it grows by 1 % toward the poles, which a slope does not notice).
METRES_PER_DEGREE_LONGITUDE = 111320.0
METRES_PER_DEGREE_LATITUDE = 110574.0

DEGREE, PERCENT_RISE, SCALED = 1, 2, 3
TRADITIONAL, MULTIDIRECTIONAL = 0, 1
STANDARD, PROFILE, PLANFORM = 0, 1, 2
# Multidirectional hillshade: (azimuth, altitude, weight) of the six lights; weights are out of their sum, 18.
MULTIDIRECTIONAL_LIGHTS = ((315, 60, 3), (270, 60, 5), (225, 60, 3), (360, 60, 2), (180, 60, 1), (0, 90, 4))
# The built-in elevation ramp of ShadedRelief without a Colormap: (fraction of the input's min..max, r, g, b),
# low green through yellow and brown to near-white peaks.
ELEVATION_RAMP = ((0.0, 46, 139, 87), (0.25, 154, 205, 50), (0.5, 240, 230, 140), (0.75, 160, 82, 45),
                  (1.0, 250, 250, 245))


def uniform_stats(low: float, high: float) -> BandStats:
    """A function's known output range as statistics (of values spread evenly over it): the default stretch then
    maps the whole range to 0..255, the same on every tile."""
    return BandStats(low, high, (low + high) / 2, (high - low) / math.sqrt(12))


U8_STATS = uniform_stats(0.0, 255.0)
NO_LIGHTS = np.empty((0, 4))  # the lights argument of the kernel's measures other than the hillshade


def cell_sizes(grid, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """(cx, cy): each row's cell width and height, in the grid CRS's linear unit or, for a geographic grid, in
    metres at the latitude of the row's pixel centres."""
    t = grid.transform
    width, height = math.hypot(t.a, t.d), math.hypot(t.b, t.e)
    if not grid.crs.is_geographic:
        return np.full(rows, width), np.full(rows, height)
    # Output grids are north-up, so a row has one latitude (column 0's centre stands for it under a rotation).
    latitude = t.d * 0.5 + t.e * (np.arange(rows) + 0.5) + t.f
    cos_latitude = np.maximum(np.cos(np.radians(latitude)), 0.0)  # a row past a pole has no width
    return (width * METRES_PER_DEGREE_LONGITUDE * cos_latitude,
            np.full(rows, height * METRES_PER_DEGREE_LATITUDE))


# The DEM pixel types the kernels are compiled for; another (a float64 constant, int64) is read as float64.
KERNEL_DTYPES = frozenset(np.dtype(t) for t in ("u1", "i1", "u2", "i2", "u4", "i4", "f4", "f8"))


def dem(inputs) -> tuple[np.ndarray, np.ndarray]:
    """The DEM the kernels read: band 0 of the input, C-contiguous, and its validity as bytes."""
    source = inputs[0]
    z = source.data[0]
    if z.dtype not in KERNEL_DTYPES:
        z = z.astype(np.float64)
    return np.ascontiguousarray(z), np.ascontiguousarray(source.valid).view(np.uint8)


def run(kernel, z: np.ndarray, valid: np.ndarray, dtype, *arguments) -> tuple[np.ndarray, np.ndarray]:
    """A kernel's (out, valid) over the DEM ``z``: ``kernel(z, valid, *arguments, out, out_valid)``."""
    out = np.empty(z.shape, dtype)
    out_valid = np.empty(z.shape, np.uint8)
    kernel(z, valid, *arguments, out, out_valid)
    return out, out_valid.view(bool)


class WindowFunction(RasterFunction):
    """A function of each pixel's 3 x 3 window over the input's band 0."""

    bandwise = False  # the output is computed from band 0 only

    @property
    def buffer(self) -> int:
        return 1


class SurfaceFunction(WindowFunction):
    """A window function scaling z by ``ZFactor``; ``RemoveEdgeEffect`` is accepted and changes nothing."""

    ARGUMENTS = {"ZFactor": ("ZFactor",), "RemoveEdgeEffect": ("RemoveEdgeEffect",)}

    def __init__(self, arguments) -> None:
        super().__init__(arguments)
        self.z_factor = self.number("ZFactor", 1.0)
        self.flag("RemoveEdgeEffect", False)


class GradientFunction(SurfaceFunction):
    """A function of Horn's gradient (dx, dy), scaled by ZFactor and, for SlopeType 3, by a power of the cell size."""

    ARGUMENTS = {**SurfaceFunction.ARGUMENTS, "SlopeType": ("SlopeType",), "PSPower": ("PSPower",),
                 "PSZFactor": ("PSZFactor",)}
    SLOPE_TYPES = (DEGREE, PERCENT_RISE, SCALED)

    def __init__(self, arguments) -> None:
        super().__init__(arguments)
        self.slope_type = self.integer("SlopeType", DEGREE)
        if self.slope_type not in self.SLOPE_TYPES:
            raise self.bad("SlopeType", f"must be one of {', '.join(map(str, self.SLOPE_TYPES))}, "
                                        f"got {self.slope_type}")
        self.ps_power = self.number("PSPower", 0.664)
        self.ps_z_factor = self.number("PSZFactor", 0.024)

    def gradient_factors(self, grid, rows: int, z_factor: float) -> tuple[np.ndarray, np.ndarray]:
        """Each row's (kx, ky) with dx = Σx·kx, dy = Σy·ky: Z/(8 cx), or, scaled (SlopeType 3),
        (Z + cx^PSPower·PSZFactor)/(8 cx)."""
        cx, cy = cell_sizes(grid, rows)
        with np.errstate(divide="ignore", invalid="ignore"):  # a zero-width row gives inf: NoData in the kernels
            if self.slope_type == SCALED:
                return ((z_factor + cx ** self.ps_power * self.ps_z_factor) / (8 * cx),
                        (z_factor + cy ** self.ps_power * self.ps_z_factor) / (8 * cy))
            return z_factor / (8 * cx), z_factor / (8 * cy)


def light(azimuth: float, altitude: float, weight: float) -> tuple[float, float, float, float]:
    """A light as the hillshade kernel takes it: (cos zen, -sin zen·cos az, sin zen·sin az, weight), with
    zen = 90° - altitude and az = 450° - azimuth (mathematical angle from east, counter-clockwise)."""
    zenith, angle = math.radians(90.0 - altitude), math.radians(450.0 - azimuth)
    return (math.cos(zenith), -math.sin(zenith) * math.cos(angle), math.sin(zenith) * math.sin(angle), weight)


class Hillshade(GradientFunction):
    """255·cos(i), i the angle between the surface normal and the light, clipped at 0 (ArcGIS's scale, not
    gdaldem's 1 + 254·cos i), rounded to U8.  Multidirectional (HillshadeType 1) sums the six weighted lights of
    MULTIDIRECTIONAL_LIGHTS, each clipped at 0, with Z doubled; Azimuth and Altitude are then validated and unused
    (the lights are fixed).  SlopeType 2 (percent rise) shades like 1: the unit of a slope does not change its
    normal."""

    NAME = "Hillshade"
    ARGUMENTS = {**GradientFunction.ARGUMENTS, "Azimuth": ("Azimuth",), "Altitude": ("Altitude",),
                 "HillshadeType": ("HillshadeType",), "Colormap": ("Colormap",), "ColorRamp": ("ColorRamp",)}

    def __init__(self, arguments) -> None:
        super().__init__(arguments)
        self.hillshade_type = self.integer("HillshadeType", TRADITIONAL, TRADITIONAL, MULTIDIRECTIONAL)
        azimuth = self.number("Azimuth", 315.0, 0.0, 360.0)
        altitude = self.number("Altitude", 45.0, 0.0, 90.0)
        if self.hillshade_type == MULTIDIRECTIONAL:
            self.lights = np.array([light(*spec[:2], spec[2] / 18) for spec in MULTIDIRECTIONAL_LIGHTS])
            self.shading_z_factor = 2 * self.z_factor  # ArcGIS doubles Z for the multidirectional shade
        else:
            self.lights = np.array([light(azimuth, altitude, 1.0)])
            self.shading_z_factor = self.z_factor
        self.colour_arguments()

    def colour_arguments(self) -> None:
        """Validate the arguments that colour the output (a tint is not built: refused)."""
        for name in ("Colormap", "ColorRamp"):
            if self.has(name):
                raise unsupported(f"renderingRule {self.NAME} argument {name} (a tinted hillshade) is not supported "
                                  "yet; use ShadedRelief with a Colormap.", parameter="renderingRule")

    def describe(self, inputs):
        return BandsInfo(("Hillshade",), "uint8", (U8_STATS,))

    def shade(self, inputs, grid) -> tuple[np.ndarray, np.ndarray]:
        """(rows, cols) uint8 hillshade and its validity (rows, cols) bool."""
        z, valid = dem(inputs)
        kx, ky = self.gradient_factors(grid, z.shape[0], self.shading_z_factor)
        return run(_surface.gradient_map, z, valid, np.uint8, kx, ky, Measure.HILLSHADE, self.lights)

    def apply(self, inputs, grid):
        out, valid = self.shade(inputs, grid)
        return out[None], valid


class Slope(GradientFunction):
    """Degrees (SlopeType 1 and 3) or percent rise (2) of Horn's gradient."""

    NAME = "Slope"

    def describe(self, inputs):
        stats = None if self.slope_type == PERCENT_RISE else (uniform_stats(0.0, 90.0),)  # percent is unbounded
        return BandsInfo(("Slope",), "float32", stats)

    def apply(self, inputs, grid):
        z, valid = dem(inputs)
        kx, ky = self.gradient_factors(grid, z.shape[0], self.z_factor)
        measure = Measure.SLOPE_PERCENT if self.slope_type == PERCENT_RISE else Measure.SLOPE_DEGREES
        out, out_valid = run(_surface.gradient_map, z, valid, np.float32, kx, ky, measure, NO_LIGHTS)
        return out[None], out_valid


class Aspect(WindowFunction):
    """Degrees clockwise from north of the direction the slope faces, [0, 360); -1 where flat (dx = dy = 0).
    Takes no argument: a z factor does not turn a slope."""

    NAME = "Aspect"

    def describe(self, inputs):
        return BandsInfo(("Aspect",), "float32", (uniform_stats(-1.0, 360.0),))

    def apply(self, inputs, grid):
        z, valid = dem(inputs)
        cx, cy = cell_sizes(grid, z.shape[0])
        with np.errstate(divide="ignore"):
            kx, ky = 1 / (8 * cx), 1 / (8 * cy)
        out, out_valid = run(_surface.gradient_map, z, valid, np.float32, kx, ky, Measure.ASPECT, NO_LIGHTS)
        return out[None], out_valid


class Curvature(SurfaceFunction):
    """Zevenbergen-Thorne curvature (decisions Q13), in 1/100 z-unit per (cell-size unit)², with ArcGIS's signs:
    standard -2(D + E)·100 is positive where the surface is upwardly convex, profile (along the slope) positive
    where it is upwardly concave, planform (across the slope) positive where it is laterally convex, so that
    standard = planform - profile.  Zevenbergen and Thorne's own profile and planform have the opposite signs.
    Profile and planform are 0 on a flat window (no direction to curve along)."""

    NAME = "Curvature"
    ARGUMENTS = {**SurfaceFunction.ARGUMENTS, "CurvatureType": ("CurvatureType",)}

    def __init__(self, arguments) -> None:
        super().__init__(arguments)
        self.kind = self.integer("CurvatureType", STANDARD, STANDARD, PLANFORM)

    def describe(self, inputs):
        return BandsInfo(("Curvature",), "float32", None)

    def apply(self, inputs, grid):
        z, valid = dem(inputs)
        cx, cy = cell_sizes(grid, z.shape[0])
        out, out_valid = run(_surface.curvature, z, valid, np.float32, cx, cy, self.z_factor, self.kind)
        return out[None], out_valid


class ReliefRamp(Colormap):
    """ShadedRelief's colour ramp: parsed and spread over the values as the Colormap function does, its refusals
    naming ShadedRelief (not a function of its own: it is not in the registry)."""

    NAME = "ShadedRelief"


class ShadedRelief(Hillshade):
    """The elevation's colour modulated by the hillshade, rgb·hs/255 (decisions Q13), 3-band U8.

    The colour comes from ``Colormap`` (``[[value, r, g, b], …]``, linear between the listed values, the end
    colours beyond them), from ``ColorRamp`` (a ramp name or ramp object, spread over the input's min..max exactly
    as the Colormap function spreads it; ``ColorSchemeType`` 1 picks it when both are given) or, with neither, from
    a built-in elevation ramp over the input's min..max (its statistics; the block's own when it has none).
    """

    NAME = "ShadedRelief"
    ARGUMENTS = {**Hillshade.ARGUMENTS, "ColorSchemeType": ("ColorSchemeType",)}

    def colour_arguments(self) -> None:
        scheme = self.integer("ColorSchemeType", 1 if self.has("ColorRamp") and not self.has("Colormap") else 0,
                              0, 1)
        if scheme == 1 and not self.has("ColorRamp"):
            raise self.bad("ColorSchemeType", "is 1 (colour ramp) but no ColorRamp is given")
        # A colour ramp is the Colormap function's: one parser and one way of spreading it over the values.
        self.ramp_colours = (ReliefRamp({"ColorRamp": self.arguments["ColorRamp"], "ColorSchemeType": 1})
                             if scheme == 1 else None)
        self.colormap = self.parse_colormap() if self.has("Colormap") and scheme == 0 else None

    def parse_colormap(self) -> np.ndarray:
        """(n, 4) float64 of [value, r, g, b], sorted by value."""
        entries = self.arguments["Colormap"]
        if not isinstance(entries, list) or not entries:
            raise self.bad("Colormap", "must be a list of [value, red, green, blue]")
        rows = []
        for entry in entries:
            if not isinstance(entry, list) or len(entry) != 4:
                raise self.bad("Colormap", f"entries must be [value, red, green, blue], got {entry!r}")
            value = self._number(entry[0], "Colormap", None, None)
            rows.append((value, *(self._number(c, "Colormap", 0, 255) for c in entry[1:])))
        return np.array(sorted(rows, key=lambda row: row[0]))

    def describe(self, inputs):
        return BandsInfo(("Red", "Green", "Blue"), "uint8", (U8_STATS,) * 3)

    def apply(self, inputs, grid):
        shade, valid = self.shade(inputs, grid)
        elevation = np.where(valid, inputs[0].data[0], 0).astype(np.float64)  # NoData stays out of the colours
        out = np.empty((3, *shade.shape), np.uint8)
        if self.ramp_colours is not None:
            colours = self.ramp_colours.colours(elevation, inputs[0])[:3].astype(np.float64)
            out[:] = np.floor(colours * shade / 255.0 + 0.5)
        else:
            stops = self.colormap if self.colormap is not None else self.ramp(inputs[0])
            for band in range(3):
                colour = np.interp(elevation, stops[:, 0], stops[:, band + 1])
                out[band] = np.floor(colour * shade / 255.0 + 0.5)
        out[:, ~valid] = 0
        return out, valid

    @staticmethod
    def ramp(source) -> np.ndarray:
        """The built-in elevation ramp's stops over the input's range."""
        if source.info.stats is not None:
            low, high = source.info.stats[0].min, source.info.stats[0].max
        else:
            values = source.data[0][source.valid]
            values = values[np.isfinite(values)]
            low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
        stops = np.array(ELEVATION_RAMP, dtype=np.float64)
        stops[:, 0] = low + stops[:, 0] * (high - low)
        return stops
