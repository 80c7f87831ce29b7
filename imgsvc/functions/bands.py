"""Band functions: ExtractBand, CompositeBand, NDVI and BandArithmetic (docs/protocol.md §6.2).

Services carry band names but no wavelength metadata, so wavelengths are known through the usual band names
(``BAND_WAVELENGTHS``: Blue ~ 480 nm, Green ~ 560 nm, Red ~ 660 nm, NearInfrared ~ 840 nm, ...).  Index maths
runs on the pixel values as they are (digital numbers or reflectance, whatever the service holds), in float64,
and outputs float32 with NoData where a denominator is zero or the result overflows (``float32_pixels``).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Callable

import numpy as np

from imgsvc import kernels
from imgsvc._kernels import bandmath as _bandmath
from imgsvc.functions import expression
from imgsvc.functions.arithmetic import check_input_count, float32_pixels
from imgsvc.functions.base import BandsInfo, RasterFunction

# Band names -> (low, high) nm of the band, as multispectral sensors (Landsat 8/9, Sentinel-2) name them; lower
# case, spaces and underscores removed.
BAND_WAVELENGTHS: dict[str, tuple[float, float]] = {
    "coastal": (430, 450), "coastalaerosol": (430, 450), "blue": (450, 515), "green": (525, 600),
    "red": (630, 690), "rededge": (690, 750), "nearinfrared": (780, 900), "nir": (780, 900),
    "swir1": (1550, 1750), "shortwaveinfrared1": (1550, 1750), "swir2": (2080, 2350),
    "shortwaveinfrared2": (2080, 2350),
}


def band_wavelengths(name: str) -> tuple[float, float] | None:
    return BAND_WAVELENGTHS.get(re.sub(r"[\s_-]", "", name.lower()))


def _centre(span: tuple[float, float]) -> float:
    return (span[0] + span[1]) / 2


def _holding_band(names: tuple[str, ...], wavelength: float) -> int | None:
    """The first band whose name's wavelengths hold ``wavelength``, or None."""
    spans = [band_wavelengths(n) for n in names]
    return next((i for i, span in enumerate(spans) if span and span[0] <= wavelength <= span[1]), None)


def _closest_band(names: tuple[str, ...], wavelength: float) -> int | None:
    """The band whose wavelengths hold ``wavelength``, else the one whose centre is nearest; None when no band
    name says its wavelengths."""
    holding = _holding_band(names, wavelength)
    if holding is not None:
        return holding
    known = [(i, band_wavelengths(n)) for i, n in enumerate(names) if band_wavelengths(n)]
    return min(known, key=lambda k: abs(_centre(k[1]) - wavelength))[0] if known else None


BY_NAMES, BY_WAVELENGTHS, BY_IDS = 0, 1, 2
BEST_MATCH, FAIL = 0, 1


class ExtractBand(RasterFunction):
    """ExtractBand: select and reorder bands by 0-based id, by name or by wavelength (nm).

    ``Method`` (0 names, 1 wavelengths, 2 ids) defaults to the method of the one list given, else ids.  A missing
    band with ``MissingBandAction`` 0 (best match, the default) is, for a name, the band nearest the name's usual
    wavelength, and for a wavelength, the band whose centre is nearest; with 1 (fail) it is refused naming it.  An
    id past the last band is always refused: no band is "near" a missing index.
    """

    NAME = "ExtractBand"
    ARGUMENTS = {"BandIDs": ("BandIDs", "BandIds"), "BandNames": ("BandNames",),
                 "BandWavelengths": ("BandWavelengths",), "Method": ("Method",),
                 "MissingBandAction": ("MissingBandAction",)}
    LISTS = {BY_NAMES: "BandNames", BY_WAVELENGTHS: "BandWavelengths", BY_IDS: "BandIDs"}
    bandwise = False

    def __init__(self, arguments) -> None:
        super().__init__(arguments)
        given = [method for method, name in self.LISTS.items() if self.has(name)]
        self.method = self.integer("Method", given[0] if len(given) == 1 else BY_IDS, BY_NAMES, BY_IDS)
        self.missing = self.integer("MissingBandAction", BEST_MATCH, BEST_MATCH, FAIL)
        argument = self.LISTS[self.method]
        if not self.has(argument):
            raise self.bad(argument, f"is required with Method {self.method}")
        if self.method == BY_NAMES:
            names = self.arguments[argument]
            if isinstance(names, str):
                names = [names]
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise self.bad(argument, f"must be a list of band names, got {names!r}")
            self.wanted: tuple = tuple(names)
        elif self.method == BY_WAVELENGTHS:
            self.wanted = self.numbers(argument, low=0)
        else:
            ids = self.numbers(argument, low=0)
            if any(i != int(i) for i in ids):
                raise self.bad(argument, f"must be 0-based band numbers, got {list(ids)!r}")
            self.wanted = tuple(int(i) for i in ids)
        if not self.wanted:
            raise self.bad(argument, "must name at least one band")

    def bands(self, names: tuple[str, ...]) -> list[int]:
        """The 0-based input bands selected, in output order."""
        return [self._band(names, wanted) for wanted in self.wanted]

    def _band(self, names: tuple[str, ...], wanted) -> int:
        argument = self.LISTS[self.method]
        if self.method == BY_IDS:
            if wanted >= len(names):
                raise self.bad(argument, f"asks for band {wanted} but the input has bands 0 to {len(names) - 1}")
            return wanted
        if self.method == BY_NAMES:
            lowered = [n.lower() for n in names]
            if wanted.lower() in lowered:
                return lowered.index(wanted.lower())
            span = band_wavelengths(wanted)
            found = None if span is None or self.missing == FAIL else _closest_band(names, _centre(span))
        else:
            found = _holding_band(names, wanted) if self.missing == FAIL else _closest_band(names, wanted)
        if found is None:
            raise self.bad(argument, f"asks for band {wanted!r}, which the input (bands {', '.join(names)}) does "
                           "not have")
        return found

    def describe(self, inputs):
        (source,) = inputs
        chosen = self.bands(source.names)
        stats = None if source.stats is None else tuple(source.stats[b] for b in chosen)
        # The histograms follow their bands, so a PercentClip stretch over the selection reads the service's.
        histograms = None if source.histograms is None else tuple(source.histograms[b] for b in chosen)
        return BandsInfo(tuple(source.names[b] for b in chosen), source.dtype, stats, histograms)

    def apply(self, inputs, grid):
        (source,) = inputs
        return source.data[self.bands(source.info.names)], source.valid


class CompositeBand(RasterFunction):
    """CompositeBand: the bands of every input, stacked in order; a pixel is valid where it is valid in all.

    docs/protocol.md §6.2 reads "stacks band 0 of each input"; ArcGIS stacks every band of each input (a one-band
    input gives its one band), which is what this does: two ExtractBands of one band each give two bands either way.
    The output type is the common type of the inputs (a number among them makes it float64).  ``CellsizeType`` is
    checked and changes nothing: every input is rendered on the one read grid.
    """

    NAME = "CompositeBand"
    ARGUMENTS = {"CellsizeType": ("CellsizeType", "CellSizeType")}
    RASTER_INPUTS = {"Rasters": ("Rasters",)}
    RASTER_LISTS = frozenset({"Rasters"})
    bandwise = False

    def __init__(self, arguments) -> None:
        super().__init__(arguments)
        self.integer("CellsizeType", 2, 0, 4)

    def describe(self, inputs):
        check_input_count(self, "Rasters", inputs)
        stats = None if any(i.stats is None for i in inputs) else tuple(s for i in inputs for s in i.stats)
        return BandsInfo(tuple(n for i in inputs for n in i.names),
                         np.result_type(*(i.dtype for i in inputs)).name, stats)

    def apply(self, inputs, grid):
        dtype = np.result_type(*(r.data.dtype for r in inputs))
        data = np.concatenate([r.data.astype(dtype, copy=False) for r in inputs])
        return data, np.logical_and.reduce([r.valid for r in inputs])


def normalized_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a - b) / (a + b)


# The pixel types the compiled kernel takes (the rest, e.g. 64-bit integers, are converted to float64 first).
KERNEL_DTYPES = frozenset(np.dtype(t) for t in ("u1", "i1", "u2", "i2", "u4", "i4", "f4", "f8"))


def normalized_difference_pixels(a: np.ndarray, b: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(a − b)/(a + b) of two (rows, cols) bands as (1, rows, cols) float32 and its validity: NoData where
    ``valid`` is False or a + b is 0.  Checks here, so that the compiled loop cannot fail."""
    if a.shape != b.shape or valid.shape != a.shape or valid.dtype != np.bool_:
        raise ValueError("normalized_difference_pixels needs two bands and a bool mask of one shape")
    dtype = np.result_type(a, b)
    dtype = dtype if dtype in KERNEL_DTYPES else np.dtype(np.float64)
    a, b = (np.ascontiguousarray(band, dtype=dtype) for band in (a, b))
    out = np.empty((1, *a.shape), np.float32)
    out_valid = np.empty(a.shape, np.uint8)
    _bandmath.normalized_difference(a, b, np.ascontiguousarray(valid).view(np.uint8), out[0], out_valid)
    return out, out_valid.view(bool)


# Default NDVI bands: those whose names' wavelengths hold these, else ArcGIS JS's 0-based ids (decisions Q20).
RED_NM, NEAR_INFRARED_NM = 660, 840
DEFAULT_VISIBLE_ID, DEFAULT_INFRARED_ID = 1, 2


class NDVI(RasterFunction):
    """NDVI: ``(NIR − Red)/(NIR + Red)``; with ``ScientificOutput`` false, ``ndvi·100 + 100`` as uint8 (0…200,
    rounded as outputPixelType rounds), else float32 (−1…1).  NoData where NIR + Red is 0.

    ``VisibleBandID`` and ``InfraredBandID`` are 0-based.  Left out (decisions Q20), each is the band whose name
    says it holds 660 nm (Red) or 840 nm (NearInfrared, NIR; see ``BAND_WAVELENGTHS``), else ArcGIS JS's defaults,
    1 and 2.
    """

    NAME = "NDVI"
    ARGUMENTS = {"VisibleBandID": ("VisibleBandID", "VisibleBandId"),
                 "InfraredBandID": ("InfraredBandID", "InfraredBandId"),
                 "ScientificOutput": ("ScientificOutput",)}
    bandwise = False

    def __init__(self, arguments) -> None:
        super().__init__(arguments)
        self.visible = self.integer("VisibleBandID", low=0) if self.has("VisibleBandID") else None
        self.infrared = self.integer("InfraredBandID", low=0) if self.has("InfraredBandID") else None
        self.scientific = self.flag("ScientificOutput", False)

    def bands(self, names: tuple[str, ...]) -> tuple[int, int]:
        """(red, near infrared) 0-based band numbers in an input of bands ``names``."""
        red, nir = self.visible, self.infrared
        if red is None:
            red = _holding_band(names, RED_NM)
            red = DEFAULT_VISIBLE_ID if red is None else red
        if nir is None:
            nir = _holding_band(names, NEAR_INFRARED_NM)
            nir = DEFAULT_INFRARED_ID if nir is None else nir
        for argument, band in (("VisibleBandID", red), ("InfraredBandID", nir)):
            if band >= len(names):
                raise self.bad(argument, f"is band {band} but the input has bands 0 to {len(names) - 1}")
        return red, nir

    def describe(self, inputs):
        self.bands(inputs[0].names)
        return BandsInfo(("NDVI",), "float32" if self.scientific else "uint8", None)

    def apply(self, inputs, grid):
        (source,) = inputs
        red, nir = self.bands(source.info.names)
        ndvi, valid = normalized_difference_pixels(source.data[nir], source.data[red], source.valid)
        if self.scientific:
            return ndvi, valid
        # To 8 bits as any outputPixelType conversion: rounded half away from zero, clipped (values beyond 0..200
        # only come from negative pixel values).
        return kernels.convert_pixel_type(ndvi * 100 + 100, valid, "U8"), valid


@dataclass(frozen=True)
class Index:
    """A BandArithmetic method: the bands ``BandIndexes`` lists (1-based, in this order), then its constants with
    their defaults, and the formula over them (float64 arrays, then the constants); ``outputs`` names its bands."""

    name: str
    bands: tuple[str, ...]
    formula: Callable[..., np.ndarray | tuple[np.ndarray, ...]]
    constants: tuple[tuple[str, float], ...] = ()
    outputs: tuple[str, ...] = ()


def _gemi(nir, red):
    eta = (2 * (nir ** 2 - red ** 2) + 1.5 * nir + 0.5 * red) / (nir + red + 0.5)
    return eta * (1 - 0.25 * eta) - (red - 0.125) / (1 - red)


def _mtvi2(nir, red, green):
    return 1.5 * (1.2 * (nir - green) - 2.5 * (red - green)) / np.sqrt((2 * nir + 1) ** 2 - (6 * nir - 5 * np.sqrt(red))
                                                                        - 0.5)


def _wndwi(green, nir, swir, alpha):
    return (green - alpha * nir - (1 - alpha) * swir) / (green + alpha * nir + (1 - alpha) * swir)


TM6 = ("B1", "B2", "B3", "B4", "B5", "B7")  # Landsat TM's six reflective bands, in BandIndexes order

# BandArithmetic methods (docs/protocol.md §6.2; 10-29 from Esri's Band Arithmetic function reference and the
# indices' publications).  BandIndexes lists the bands in the order of the second column, then the constants.
#
#  #   name              BandIndexes                 formula
#  1   NDVI              NIR Red                     (NIR − Red)/(NIR + Red)
#  2   SAVI              NIR Red [L=0.5]             (NIR − Red)/(NIR + Red + L)·(1 + L)
#  3   TSAVI             NIR Red [s=0.33 a=0.5 X=1.5] s(NIR − s·Red − a)/(a·NIR + Red − a·s + X(1 + s²))
#  4   MSAVI             NIR Red                     (2NIR + 1 − √((2NIR + 1)² − 8(NIR − Red)))/2
#  5   GEMI              NIR Red                     η(1 − 0.25η) − (Red − 0.125)/(1 − Red),
#                                                    η = (2(NIR² − Red²) + 1.5NIR + 0.5Red)/(NIR + Red + 0.5)
#  6   PVI               NIR Red [a=0.3 b=0.5]       (NIR − a·Red − b)/√(1 + a²)
#  7   GVI               B1 B2 B3 B4 B5 B7           −0.2848B1 − 0.2435B2 − 0.5436B3 + 0.7243B4 + 0.0840B5 − 1.1800B7
#  8   Sultan            B1 B2 B3 B4 B5 B7           B5/B7·100, B5/B1·100, B3/B4·B5/B4·100 (3 bands)
#  9   VARI              Red Green Blue              (Green − Red)/(Green + Red − Blue)
#  10  GNDVI             NIR Green                   (NIR − Green)/(NIR + Green)
#  11  SR                NIR Red                     NIR/Red
#  12  NDVIre            NIR RedEdge                 (NIR − RedEdge)/(NIR + RedEdge)
#  13  SRre              NIR RedEdge                 NIR/RedEdge
#  14  MTVI2             NIR Red Green               1.5(1.2(NIR − Green) − 2.5(Red − Green))
#                                                    / √((2NIR + 1)² − (6NIR − 5√Red) − 0.5)
#  15  RTVICore          NIR RedEdge Green           100(NIR − RedEdge) − 10(NIR − Green)
#  16  CIre              NIR RedEdge                 NIR/RedEdge − 1
#  17  CIg               NIR Green                   NIR/Green − 1
#  18  NDWI              Green NIR                   (Green − NIR)/(Green + NIR)            (McFeeters)
#  19  EVI               NIR Red Blue                2.5(NIR − Red)/(NIR + 6Red − 7.5Blue + 1)
#  20  IronOxide         Red Blue                    Red/Blue
#  21  FerrousMinerals   SWIR NIR                    SWIR/NIR
#  22  ClayMinerals      SWIR1 SWIR2                 SWIR1/SWIR2
#  23  WNDWI             Green NIR SWIR [α=0.5]      (Green − α·NIR − (1 − α)SWIR)/(Green + α·NIR + (1 − α)SWIR)
#  24  BAI               Red NIR                     1/((0.1 − Red)² + (0.06 − NIR)²)
#  25  NBR               NIR SWIR2                   (NIR − SWIR2)/(NIR + SWIR2)
#  26  NDBI              SWIR NIR                    (SWIR − NIR)/(SWIR + NIR)
#  27  NDMI              NIR SWIR1                   (NIR − SWIR1)/(NIR + SWIR1)
#  28  NDSI              Green SWIR                  (Green − SWIR)/(Green + SWIR)
#  29  MNDWI             Green SWIR                  (Green − SWIR)/(Green + SWIR)
INDICES: dict[int, Index] = {
    1: Index("NDVI", ("NIR", "Red"), normalized_difference),
    2: Index("SAVI", ("NIR", "Red"), lambda nir, red, l: (nir - red) / (nir + red + l) * (1 + l), (("L", 0.5),)),
    3: Index("TSAVI", ("NIR", "Red"),
             lambda nir, red, s, a, x: s * (nir - s * red - a) / (a * nir + red - a * s + x * (1 + s * s)),
             (("s", 0.33), ("a", 0.5), ("X", 1.5))),
    4: Index("MSAVI", ("NIR", "Red"),
             lambda nir, red: (2 * nir + 1 - np.sqrt((2 * nir + 1) ** 2 - 8 * (nir - red))) / 2),
    5: Index("GEMI", ("NIR", "Red"), _gemi),
    6: Index("PVI", ("NIR", "Red"), lambda nir, red, a, b: (nir - a * red - b) / math.sqrt(1 + a * a),
             (("a", 0.3), ("b", 0.5))),
    7: Index("GVI", TM6, lambda b1, b2, b3, b4, b5, b7: (-0.2848 * b1 - 0.2435 * b2 - 0.5436 * b3 + 0.7243 * b4
                                                          + 0.0840 * b5 - 1.1800 * b7)),
    8: Index("Sultan", TM6, lambda b1, b2, b3, b4, b5, b7: (b5 / b7 * 100, b5 / b1 * 100, b3 / b4 * (b5 / b4) * 100),
             outputs=("B5/B7", "B5/B1", "B3/B4*B5/B4")),
    9: Index("VARI", ("Red", "Green", "Blue"), lambda red, green, blue: (green - red) / (green + red - blue)),
    10: Index("GNDVI", ("NIR", "Green"), normalized_difference),
    11: Index("SR", ("NIR", "Red"), lambda nir, red: nir / red),
    12: Index("NDVIre", ("NIR", "RedEdge"), normalized_difference),
    13: Index("SRre", ("NIR", "RedEdge"), lambda nir, rededge: nir / rededge),
    14: Index("MTVI2", ("NIR", "Red", "Green"), _mtvi2),
    15: Index("RTVICore", ("NIR", "RedEdge", "Green"),
              lambda nir, rededge, green: 100 * (nir - rededge) - 10 * (nir - green)),
    16: Index("CIre", ("NIR", "RedEdge"), lambda nir, rededge: nir / rededge - 1),
    17: Index("CIg", ("NIR", "Green"), lambda nir, green: nir / green - 1),
    18: Index("NDWI", ("Green", "NIR"), normalized_difference),
    19: Index("EVI", ("NIR", "Red", "Blue"),
              lambda nir, red, blue: 2.5 * (nir - red) / (nir + 6 * red - 7.5 * blue + 1)),
    20: Index("IronOxide", ("Red", "Blue"), lambda red, blue: red / blue),
    21: Index("FerrousMinerals", ("SWIR", "NIR"), lambda swir, nir: swir / nir),
    22: Index("ClayMinerals", ("SWIR1", "SWIR2"), lambda swir1, swir2: swir1 / swir2),
    23: Index("WNDWI", ("Green", "NIR", "SWIR"), _wndwi, (("alpha", 0.5),)),
    24: Index("BAI", ("Red", "NIR"), lambda red, nir: 1 / ((0.1 - red) ** 2 + (0.06 - nir) ** 2)),
    25: Index("NBR", ("NIR", "SWIR2"), normalized_difference),
    26: Index("NDBI", ("SWIR", "NIR"), normalized_difference),
    27: Index("NDMI", ("NIR", "SWIR1"), normalized_difference),
    28: Index("NDSI", ("Green", "SWIR"), normalized_difference),
    29: Index("MNDWI", ("Green", "SWIR"), normalized_difference),
}
USER_DEFINED = 0


class BandArithmetic(RasterFunction):
    """BandArithmetic: an index of the input's bands (``INDICES``), or with Method 0 a band-math expression over
    B1…Bn (``imgsvc.functions.expression``).  ``BandIndexes`` holds 1-based band numbers separated by spaces (or
    commas), then the method's constants; constants left out take their defaults.  float32, one band (Sultan
    three), NoData where the formula is undefined (a zero denominator, a negative square root) or overflows."""

    NAME = "BandArithmetic"
    ARGUMENTS = {"Method": ("Method",), "BandIndexes": ("BandIndexes",)}
    bandwise = False

    def __init__(self, arguments) -> None:
        super().__init__(arguments)
        self.method = self.integer("Method", USER_DEFINED, USER_DEFINED, max(INDICES))
        if not self.has("BandIndexes"):
            raise self.bad("BandIndexes", "is required")
        text = self.text("BandIndexes")
        if self.method == USER_DEFINED:
            try:
                self.tree = expression.parse(text)
                self.program = expression.compile_program(self.tree)
            except expression.ExpressionError as exc:
                raise self.bad("BandIndexes", f"expression {exc}") from None
            self.band_numbers = sorted(expression.bands_used(self.tree))
            return
        index = INDICES[self.method]
        values = [v for v in re.split(r"[\s,]+", text.strip()) if v]
        if not len(index.bands) <= len(values) <= len(index.bands) + len(index.constants):
            wanted = " ".join((*index.bands, *(f"[{name}]" for name, _ in index.constants)))
            raise self.bad("BandIndexes", f"must list the {index.name} bands as 1-based band numbers, then any "
                           f"constants: {wanted}; got {text!r}")
        self.band_numbers = [self._band_number(v) for v in values[:len(index.bands)]]
        given = [self._number(v, "BandIndexes", None, None) for v in values[len(index.bands):]]
        self.constants = given + [default for _, default in index.constants[len(given):]]

    def _band_number(self, value: str) -> int:
        if not value.isdigit() or int(value) < 1:
            raise self.bad("BandIndexes", f"must hold 1-based band numbers, got {value!r}")
        return int(value)

    def describe(self, inputs):
        (source,) = inputs
        for number in self.band_numbers:
            if number > source.count:
                raise self.bad("BandIndexes", f"uses band {number} but the input has bands 1 to {source.count}")
        if self.method == USER_DEFINED:
            names = ("BandArithmetic",)
        else:
            index = INDICES[self.method]
            names = index.outputs or (index.name,)
        return BandsInfo(names, "float32", None)

    def apply(self, inputs, grid):
        (source,) = inputs
        with np.errstate(all="ignore"):
            if self.method == USER_DEFINED:  # one compiled pass over the block
                return expression.evaluate(self.program, source.data, source.valid)
            if INDICES[self.method].formula is normalized_difference:  # the compiled kernel's case
                a, b = self.band_numbers
                return normalized_difference_pixels(source.data[a - 1], source.data[b - 1], source.valid)
            else:
                bands = [source.data[n - 1].astype(np.float64) for n in self.band_numbers]
                result = INDICES[self.method].formula(*bands, *self.constants)
        outputs = [np.broadcast_to(np.asarray(r, np.float64), source.valid.shape)
                   for r in (result if isinstance(result, tuple) else (result,))]
        values = outputs[0][None] if len(outputs) == 1 else np.stack(outputs)  # one band: no copy before the cast
        return float32_pixels(values, source.valid)
