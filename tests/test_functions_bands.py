"""Band and pixel-arithmetic functions (docs/protocol.md §6.2): ExtractBand, CompositeBand, NDVI, BandArithmetic
(with its expression grammar), Arithmetic, Local and Clip, against hand-computed arrays and numpy/rasterio
references computed here, and end to end through the core on the "ms" service (uint16, bands Blue Green Red
NearInfrared, nodata 0)."""
from __future__ import annotations

import json
import math
import threading

import numpy as np
import pytest
from affine import Affine
from pyproj import CRS, Transformer
from rasterio.features import geometry_mask
from rasterio.io import MemoryFile

from imgsvc.errors import ErrorKind, ImgsvcError
from imgsvc.functions import BandsInfo, Raster, parse_rule
from imgsvc.functions.arithmetic import OPERATIONS
from imgsvc.functions.expression import MAX_DEPTH, MAX_LENGTH, MAX_OPERATIONS
from imgsvc.grpc import convert
from imgsvc.grpc.requests import export_params
from imgsvc.identify import identify_params
from imgsvc.plan import OutputGrid
from imgsvc.rest.query import Params, export_request
from tests import rasters

UTM = CRS.from_user_input(rasters.UTM11)
MS_NAMES = ("Blue", "Green", "Red", "NearInfrared")


# ---- helpers ---------------------------------------------------------------------------------------------------------

def run(rule, data, valid=None, names=None) -> Raster:
    """The rule applied to (bands, rows, cols) ``data`` on a 10 m UTM grid, as the function stage applies it."""
    data = np.asarray(data)
    data = data[None] if data.ndim == 2 else data
    valid = np.ones(data.shape[1:], bool) if valid is None else np.asarray(valid, bool)
    names = names or tuple(f"Band_{i + 1}" for i in range(data.shape[0]))
    chain = parse_rule(rule)
    grid = OutputGrid(UTM, Affine(10, 0, rasters.ORIGIN[0], 0, -10, rasters.ORIGIN[1]), data.shape[2], data.shape[1])
    source = BandsInfo(tuple(names), data.dtype.name, None)
    out = chain.apply(Raster(data, valid, source), grid)
    assert out.data.dtype.name == chain.describe(source).dtype and out.data.shape[0] == chain.describe(source).count
    assert np.isfinite(out.data.astype(np.float64)).all()
    return out


def in_threads(work, count: int = 8) -> list:
    """``work()`` run by ``count`` threads at once; their results."""
    results = [None] * count

    def run_one(i):
        results[i] = work()

    threads = [threading.Thread(target=run_one, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def refused(rule, data=np.ones((4, 2, 2), np.uint16), names=MS_NAMES) -> ImgsvcError:
    with pytest.raises(ImgsvcError) as info:
        run(rule, data, names=names)
    assert info.value.parameter == "renderingRule"
    return info.value


def export(core, query):
    query = {"format": "tiff", "f": "image", **query}
    result = core.export_image(export_params(export_request("ms", Params(query.items()))))
    with MemoryFile(result.encoded.data) as mem, mem.open() as tif:
        return tif.read(), tif.read_masks(1) > 0


def ms_bbox(col0: int, col1: int, row0: int, row1: int) -> str:
    """A bbox on the ms service's own 10 m grid, columns [col0, col1) and rows [row0, row1)."""
    x0, y0 = rasters.ORIGIN
    return f"{x0 + 10 * col0},{y0 - 10 * row1},{x0 + 10 * col1},{y0 - 10 * row0}"


# The east edge of ms is nodata (its last 20 columns): columns 400-500 hold both.
NATIVE = {"bbox": ms_bbox(400, 500, 100, 200), "size": "100,100", "interpolation": "RSP_NearestNeighbor"}


@pytest.fixture(autouse=True)
def quiet_references():
    """The references divide by zero where the functions answer NoData; only valid pixels are compared."""
    with np.errstate(all="ignore"):
        yield


@pytest.fixture(scope="module")
def plain(image_service):
    """The ms pixels of NATIVE as they are, and their mask."""
    data, valid = export(image_service, NATIVE)
    assert valid.any() and not valid.all()
    return data.astype(np.float64), valid


def through_core(core, rule) -> tuple[np.ndarray, np.ndarray]:
    return export(core, {**NATIVE, "renderingRule": json.dumps(rule)})


# ---- ExtractBand -----------------------------------------------------------------------------------------------------

FOUR = np.arange(1, 17, dtype=np.uint16).reshape(4, 2, 2)  # band b holds 4b+1 .. 4b+4


@pytest.mark.parametrize("arguments, bands", [
    ({"BandIDs": [3, 2, 1]}, [3, 2, 1]),
    ({"BandIds": [0]}, [0]),
    ({"BandNames": ["nearinfrared", "Blue"]}, [3, 0]),
    ({"BandNames": ["Red"], "Method": 0}, [2]),
    ({"BandWavelengths": [840, 480], "Method": 1}, [3, 0]),
    ({"BandWavelengths": [1000], "Method": 1}, [3]),  # best match: the nearest band centre (NearInfrared)
    ({"BandNames": ["NIR"]}, [3]),  # not a band name, but a known wavelength: best match
], ids=["ids", "ids-alias", "names", "names-method", "wavelengths", "wavelength-best-match", "name-best-match"])
def test_extract_band_selects_and_reorders(arguments, bands):
    valid = np.array([[True, False], [True, True]])
    out = run({"rasterFunction": "ExtractBand", "rasterFunctionArguments": arguments}, FOUR, valid, MS_NAMES)
    np.testing.assert_array_equal(out.data, FOUR[bands])
    np.testing.assert_array_equal(out.valid, valid)
    assert out.info.names == tuple(MS_NAMES[b] for b in bands) and out.data.dtype == np.uint16


@pytest.mark.parametrize("arguments, fragment", [
    ({"BandIDs": [4]}, "band 4"),
    ({"BandIDs": [-1]}, "BandIDs"),
    ({"BandIDs": [1.5]}, "BandIDs"),
    ({"BandNames": ["Thermal"]}, "'Thermal'"),
    ({"BandNames": ["NIR"], "MissingBandAction": 1}, "'NIR'"),
    ({"BandWavelengths": [1000], "Method": 1, "MissingBandAction": 1}, "1000"),
    ({"Method": 0}, "BandNames"),
    ({"BandIDs": []}, "BandIDs"),
    ({"BandIDs": [0], "MissingBandAction": 3}, "MissingBandAction"),
])
def test_extract_band_refuses_missing_bands_naming_them(arguments, fragment):
    error = refused({"rasterFunction": "ExtractBand", "rasterFunctionArguments": arguments}, FOUR)
    assert error.kind is ErrorKind.INVALID_ARGUMENT and fragment in error.text and "ExtractBand" in error.text


def test_wavelengths_need_band_names_that_say_them():
    error = refused({"rasterFunction": "ExtractBand", "rasterFunctionArguments": {"BandWavelengths": [660]}},
                    FOUR, names=("Band_1", "Band_2", "Band_3", "Band_4"))
    assert "660" in error.text


# ---- CompositeBand ---------------------------------------------------------------------------------------------------

def extract(*ids):
    return {"rasterFunction": "ExtractBand", "rasterFunctionArguments": {"BandIDs": list(ids)}}


def test_composite_band_stacks_inputs_and_ands_their_masks():
    valid = np.array([[True, False], [True, True]])
    out = run({"rasterFunction": "CompositeBand", "rasterFunctionArguments": {
        "Rasters": [extract(3), extract(0, 1), {"rasterFunction": "Clip", "rasterFunctionArguments": {
            "ClippingGeometry": {"xmin": 380000, "ymin": 4069985, "xmax": 380020, "ymax": 4070000,
                                 "spatialReference": {"wkid": 32611}}, "Raster": extract(2)}}]}},
        FOUR, valid, MS_NAMES)
    np.testing.assert_array_equal(out.data, FOUR[[3, 0, 1, 2]])
    assert out.info.names == ("NearInfrared", "Blue", "Green", "Red") and out.data.dtype == np.uint16
    np.testing.assert_array_equal(out.valid, [[True, False], [False, False]])  # the Clip keeps the first row


def test_composite_band_of_two_extract_bands_through_the_core(image_service, plain):
    data, valid = through_core(image_service, {"rasterFunction": "CompositeBand",
                                               "rasterFunctionArguments": {"Rasters": [extract(3), extract(1)]}})
    np.testing.assert_array_equal(valid, plain[1])
    np.testing.assert_array_equal(data, plain[0][[3, 1]])
    assert data.dtype == np.uint16


# ---- NDVI ------------------------------------------------------------------------------------------------------------

RED = np.array([[10, 50, 0, 7]], np.uint16)
NIR = np.array([[30, 50, 0, 0]], np.uint16)
RED_NIR = np.stack([np.zeros_like(RED), np.zeros_like(RED), RED, NIR])
RED_NIR_VALID = np.array([[True, True, True, False]])


def test_ndvi_scientific_is_the_normalized_difference():
    out = run({"rasterFunction": "NDVI", "rasterFunctionArguments": {"VisibleBandID": 2, "InfraredBandID": 3,
                                                                     "ScientificOutput": True}},
              RED_NIR, RED_NIR_VALID, MS_NAMES)
    # (30-10)/(30+10) = 0.5; (50-50)/100 = 0; 0/0 -> NoData; the last pixel is NoData in the input
    np.testing.assert_array_equal(out.valid, [[True, True, False, False]])
    np.testing.assert_allclose(out.data[0, 0, :2], [0.5, 0.0])
    assert out.data.dtype == np.float32 and out.info.names == ("NDVI",)


def test_ndvi_scaled_is_ndvi_times_100_plus_100_in_8_bits():
    """Rounded half away from zero, as every float-to-integer outputPixelType conversion: 1/3 -> 133.3 -> 133,
    -1/3 -> 66.7 -> 67."""
    red = np.array([[10, 50, 30, 1, 1, 2]], np.uint16)
    nir = np.array([[30, 50, 10, 0, 2, 1]], np.uint16)
    out = run({"rasterFunction": "NDVI", "rasterFunctionArguments": {"VisibleBandID": 0, "InfraredBandID": 1}},
              np.stack([red, nir]))
    assert out.data.dtype == np.uint8 and out.valid.all()
    assert out.data[0].tolist() == [[150, 100, 50, 0, 133, 67]]


def test_ndvi_defaults_are_the_bands_named_red_and_near_infrared():
    """decisions Q20: left out, the bands named Red and NearInfrared; with no such names, ArcGIS JS's 1 and 2."""
    rule = {"rasterFunction": "NDVI", "rasterFunctionArguments": {"ScientificOutput": True}}
    named = run(rule, RED_NIR, names=MS_NAMES)
    explicit = run({"rasterFunction": "NDVI", "rasterFunctionArguments": {
        "VisibleBandID": 2, "InfraredBandID": 3, "ScientificOutput": True}}, RED_NIR)
    np.testing.assert_array_equal(named.data, explicit.data)
    unnamed = run(rule, np.stack([RED * 0, RED, NIR]))
    np.testing.assert_array_equal(unnamed.data[0, 0, :2], [0.5, 0.0])
    assert "InfraredBandID" in refused({"rasterFunction": "NDVI", "rasterFunctionArguments": {"InfraredBandID": 4}},
                                       RED_NIR).text


def test_ndvi_rule_through_the_core(image_service, plain):
    data, valid = through_core(image_service, {"rasterFunction": "NDVI", "rasterFunctionArguments": {
        "VisibleBandID": 2, "InfraredBandID": 3, "ScientificOutput": True}})
    red, nir = plain[0][2], plain[0][3]
    expected_valid = plain[1] & (red + nir != 0)
    np.testing.assert_array_equal(valid, expected_valid)
    np.testing.assert_allclose(data[0][valid], ((nir - red) / (nir + red))[valid], rtol=1e-6)
    scaled, _ = through_core(image_service, {"rasterFunction": "NDVI"})
    assert scaled.dtype == np.uint8
    np.testing.assert_array_equal(scaled[0][valid], np.floor(((nir - red) / (nir + red) * 100 + 100.5)[valid]))


@pytest.mark.parametrize("dtype", ["u1", "i2", "u2", "i4", "f4", "f8", "i8"])
def test_the_normalized_difference_kernel_in_several_threads_at_once(dtype):
    """The compiled kernel against numpy, for each pixel type, from eight threads at once."""
    rng = np.random.default_rng(2)
    data = rng.integers(0, 120, size=(2, 97, 131)).astype(dtype)
    data[:, 5, :7] = 0  # 0/0
    valid = rng.random((97, 131)) > 0.1
    rule = {"rasterFunction": "NDVI", "rasterFunctionArguments": {"VisibleBandID": 0, "InfraredBandID": 1,
                                                                  "ScientificOutput": True}}
    nir, red = data[1].astype(np.float64), data[0].astype(np.float64)
    expected_valid = valid & (nir + red != 0)
    expected = np.where(expected_valid, (nir - red) / (nir + red), 0).astype(np.float32)
    for result in in_threads(lambda: run(rule, data, valid)):
        np.testing.assert_array_equal(result.valid, expected_valid)
        np.testing.assert_array_equal(result.data[0], expected)


# ---- BandArithmetic: the index methods -------------------------------------------------------------------------------

# Two pixels of six reflectance-like bands (think B1 Blue, B2 Green, B3 Red, B4 NIR, B5 SWIR1 / red edge, B6 SWIR2).
PIXELS = np.array([[0.05, 0.08, 0.12, 0.45, 0.25, 0.15], [0.06, 0.09, 0.11, 0.50, 0.30, 0.20]]).T.reshape(6, 1, 2)


def _gemi(n, r):
    eta = (2 * (n * n - r * r) + 1.5 * n + 0.5 * r) / (n + r + 0.5)
    return eta * (1 - 0.25 * eta) - (r - 0.125) / (1 - r)


# method, BandIndexes, expected from b (1-based bands of one pixel) — the published formulas, written out here.
METHODS = [
    (1, "4 3", lambda b: (b[4] - b[3]) / (b[4] + b[3])),
    (2, "4 3 0.5", lambda b: (b[4] - b[3]) / (b[4] + b[3] + 0.5) * 1.5),
    (2, "4 3", lambda b: (b[4] - b[3]) / (b[4] + b[3] + 0.5) * 1.5),  # L defaults to 0.5
    (2, "4 3 1", lambda b: (b[4] - b[3]) / (b[4] + b[3] + 1) * 2),
    (3, "4 3 0.33 0.5 1.5", lambda b: 0.33 * (b[4] - 0.33 * b[3] - 0.5)
     / (0.5 * b[4] + b[3] - 0.5 * 0.33 + 1.5 * (1 + 0.33 ** 2))),
    (4, "4 3", lambda b: (2 * b[4] + 1 - math.sqrt((2 * b[4] + 1) ** 2 - 8 * (b[4] - b[3]))) / 2),
    (5, "4 3", lambda b: _gemi(b[4], b[3])),
    (6, "4 3 0.3 0.5", lambda b: (b[4] - 0.3 * b[3] - 0.5) / math.sqrt(1 + 0.09)),
    (7, "1 2 3 4 5 6", lambda b: -0.2848 * b[1] - 0.2435 * b[2] - 0.5436 * b[3] + 0.7243 * b[4] + 0.0840 * b[5]
     - 1.1800 * b[6]),
    (9, "3 2 1", lambda b: (b[2] - b[3]) / (b[2] + b[3] - b[1])),
    (10, "4 2", lambda b: (b[4] - b[2]) / (b[4] + b[2])),
    (11, "4 3", lambda b: b[4] / b[3]),
    (12, "4 5", lambda b: (b[4] - b[5]) / (b[4] + b[5])),
    (13, "4 5", lambda b: b[4] / b[5]),
    (14, "4 3 2", lambda b: 1.5 * (1.2 * (b[4] - b[2]) - 2.5 * (b[3] - b[2]))
     / math.sqrt((2 * b[4] + 1) ** 2 - (6 * b[4] - 5 * math.sqrt(b[3])) - 0.5)),
    (15, "4 5 2", lambda b: 100 * (b[4] - b[5]) - 10 * (b[4] - b[2])),
    (16, "4 5", lambda b: b[4] / b[5] - 1),
    (17, "4 2", lambda b: b[4] / b[2] - 1),
    (18, "2 4", lambda b: (b[2] - b[4]) / (b[2] + b[4])),
    (19, "4 3 1", lambda b: 2.5 * (b[4] - b[3]) / (b[4] + 6 * b[3] - 7.5 * b[1] + 1)),
    (20, "3 1", lambda b: b[3] / b[1]),
    (21, "5 4", lambda b: b[5] / b[4]),
    (22, "5 6", lambda b: b[5] / b[6]),
    (23, "2 4 5", lambda b: (b[2] - 0.5 * b[4] - 0.5 * b[5]) / (b[2] + 0.5 * b[4] + 0.5 * b[5])),
    (23, "2 4 5 0.2", lambda b: (b[2] - 0.2 * b[4] - 0.8 * b[5]) / (b[2] + 0.2 * b[4] + 0.8 * b[5])),
    (24, "3 4", lambda b: 1 / ((0.1 - b[3]) ** 2 + (0.06 - b[4]) ** 2)),
    (25, "4 6", lambda b: (b[4] - b[6]) / (b[4] + b[6])),
    (26, "5 4", lambda b: (b[5] - b[4]) / (b[5] + b[4])),
    (27, "4 5", lambda b: (b[4] - b[5]) / (b[4] + b[5])),
    (28, "2 5", lambda b: (b[2] - b[5]) / (b[2] + b[5])),
    (29, "2 5", lambda b: (b[2] - b[5]) / (b[2] + b[5])),
]


@pytest.mark.parametrize("method, indexes, formula", METHODS, ids=[f"{m}:{i}" for m, i, _ in METHODS])
def test_band_arithmetic_methods_on_known_values(method, indexes, formula):
    out = run({"rasterFunction": "BandArithmetic", "rasterFunctionArguments": {"Method": method,
                                                                               "BandIndexes": indexes}},
              PIXELS.astype(np.float32))
    expected = [formula({i + 1: float(np.float32(PIXELS[i, 0, p])) for i in range(6)}) for p in range(2)]
    assert out.data.dtype == np.float32 and out.data.shape == (1, 1, 2) and out.valid.all()
    np.testing.assert_allclose(out.data[0, 0], expected, rtol=2e-6)


def test_sultan_has_three_outputs():
    out = run({"rasterFunction": "BandArithmetic", "rasterFunctionArguments": {"Method": 8,
                                                                               "BandIndexes": "1 2 3 4 5 6"}},
              PIXELS)
    b = {i + 1: PIXELS[i, 0, 0] for i in range(6)}
    np.testing.assert_allclose(out.data[:, 0, 0], [b[5] / b[6] * 100, b[5] / b[1] * 100,
                                                   b[3] / b[4] * b[5] / b[4] * 100], rtol=1e-6)
    assert out.info.count == 3


def test_band_arithmetic_division_by_zero_and_overflow_are_nodata():
    data = np.array([[[0.0, 2.0, 3.0]], [[0.0, 0.0, 1.0]]], np.float32)  # B1, B2
    sr = run({"rasterFunction": "BandArithmetic", "rasterFunctionArguments": {"Method": 11, "BandIndexes": "1 2"}},
             data, [[True, True, False]])
    assert sr.valid.tolist() == [[False, False, False]]  # 0/0, 2/0, and NoData in the input
    huge = run({"rasterFunction": "BandArithmetic", "rasterFunctionArguments": {"BandIndexes": "exp(B1 * 1000)"}},
               data)
    assert huge.valid.tolist() == [[True, False, False]]  # exp(0) = 1; exp(2000) overflows float32


def test_band_arithmetic_rule_through_the_core(image_service, plain):
    data, valid = through_core(image_service, {"rasterFunction": "BandArithmetic", "outputPixelType": "F32",
                                               "rasterFunctionArguments": {"Method": 0,
                                                                           "BandIndexes": "(B4-B3)/(B4+B3)"}})
    red, nir = plain[0][2], plain[0][3]
    np.testing.assert_array_equal(valid, plain[1] & (nir + red != 0))
    np.testing.assert_allclose(data[0][valid], ((nir - red) / (nir + red))[valid], rtol=1e-6)
    assert data.dtype == np.float32


@pytest.mark.parametrize("arguments, fragment", [
    ({"Method": 1, "BandIndexes": "4"}, "NIR Red"),
    ({"Method": 1, "BandIndexes": "4 3 2"}, "NIR Red"),
    ({"Method": 1, "BandIndexes": "4 x"}, "'x'"),
    ({"Method": 1, "BandIndexes": "0 3"}, "'0'"),
    ({"Method": 1, "BandIndexes": "5 3"}, "band 5"),
    ({"Method": 0, "BandIndexes": "B5 - B1"}, "band 5"),
    ({"Method": 30, "BandIndexes": "1 2"}, "Method"),
    ({"Method": 1}, "BandIndexes"),
    ({"Method": 2, "BandIndexes": "4 3 zero"}, "zero"),
])
def test_band_arithmetic_refuses_bad_band_indexes(arguments, fragment):
    error = refused({"rasterFunction": "BandArithmetic", "rasterFunctionArguments": arguments})
    assert error.kind is ErrorKind.INVALID_ARGUMENT and fragment in error.text


# ---- BandArithmetic Method 0: the expression grammar -----------------------------------------------------------------

B = np.array([[[2.0, -1.0]], [[3.0, 4.0]], [[5.0, 0.5]]], np.float32)  # B1, B2, B3 of two pixels


def expression(text: str, data=B) -> Raster:
    return run({"rasterFunction": "BandArithmetic", "rasterFunctionArguments": {"Method": 0, "BandIndexes": text}},
               data)


@pytest.mark.parametrize("text, expected", [
    ("B1 + B2 * B3", lambda b1, b2, b3: b1 + b2 * b3),
    ("(B1 + B2) * B3", lambda b1, b2, b3: (b1 + b2) * b3),
    ("B1 - B2 - B3", lambda b1, b2, b3: (b1 - b2) - b3),
    ("B1 / B2 / B3", lambda b1, b2, b3: (b1 / b2) / b3),
    ("-B1 + B2", lambda b1, b2, b3: -b1 + b2),
    ("-(B1 + B2)", lambda b1, b2, b3: -(b1 + b2)),
    ("2 - -B1", lambda b1, b2, b3: 2 + b1),
    ("+B1 * -2", lambda b1, b2, b3: b1 * -2),
    ("b1*1e1 + .5", lambda b1, b2, b3: b1 * 10 + 0.5),
    ("((((B1))))", lambda b1, b2, b3: b1),
    ("sqrt(abs(B1)) + max(B1, B2, B3) - MIN(B1, 0)", lambda b1, b2, b3: np.sqrt(np.abs(b1)) + np.maximum(
        np.maximum(b1, b2), b3) - np.minimum(b1, 0)),
    ("pow(B2, 2) + ln(B2) + log10(B2) + exp(B3) + sin(B1) + cos(B1) + tan(B1)",
     lambda b1, b2, b3: b2 ** 2 + np.log(b2) + np.log10(b2) + np.exp(b3) + np.sin(b1) + np.cos(b1) + np.tan(b1)),
    ("7", lambda b1, b2, b3: np.full_like(b1, 7)),
], ids=lambda v: v if isinstance(v, str) else "")
def test_expression_precedence_parentheses_and_functions(text, expected):
    out = expression(text)
    b1, b2, b3 = B.astype(np.float64)[:, 0]
    np.testing.assert_allclose(out.data[0, 0], expected(b1, b2, b3), rtol=1e-6)
    assert out.valid.all()


def test_expression_undefined_values_are_nodata():
    out = expression("sqrt(B1) + B3 / (B2 - B2)")
    assert out.valid.tolist() == [[False, False]]
    assert expression("ln(B1)").valid.tolist() == [[True, False]]


@pytest.mark.parametrize("text, fragment", [
    ("__import__('os')", "'__import__'"),
    ("B1.real", "'.'"),
    ("9**9**9", "'*' at character 3"),
    ("B1 +", "before it is complete"),
    ("(B1 + B2", "before it is complete"),
    ("B1 + B2)", "')' at character 8"),
    ("B1 B2", "'B2'"),
    ("os.system('x')", "'os'"),
    ("lambda: 1", "'lambda'"),
    ("B1 if B2 else B3", "'if'"),
    ("B1; B2", "';'"),
    ("sqrt(B1, B2)", "'sqrt'"),
    ("max(B1)", "'max'"),
    ("B0 + 1", "'B0'"),
    ("1e999", "'1e999'"),
    ("", "before it is complete"),
])
def test_expression_errors_name_the_bad_token(text, fragment):
    error = refused({"rasterFunction": "BandArithmetic", "rasterFunctionArguments": {"Method": 0,
                                                                                     "BandIndexes": text}})
    assert error.kind is ErrorKind.INVALID_ARGUMENT and fragment in error.text and "BandIndexes" in error.text


@pytest.mark.parametrize("text, fragment", [
    ("(" * 100_000 + "B1" + ")" * 100_000, f"at most {MAX_LENGTH}"),
    ("B1+" * 34_000 + "B1", f"at most {MAX_LENGTH}"),
    ("(" * 1000 + "B1" + ")" * 1000, f"deeper than {MAX_DEPTH}"),
    ("-" * 2000 + "B1", f"deeper than {MAX_DEPTH}"),
    ("sqrt(" * 40 + "B1" + ")" * 40, f"deeper than {MAX_DEPTH}"),
    ("B1+" * 300 + "B1", f"more than {MAX_OPERATIONS}"),
], ids=["100KB-parentheses", "100KB-sum", "deep-parentheses", "deep-unary", "deep-calls", "too-many-operations"])
def test_hostile_expressions_are_refused_before_any_work(text, fragment):
    error = refused({"rasterFunction": "BandArithmetic", "rasterFunctionArguments": {"Method": 0,
                                                                                     "BandIndexes": text}})
    assert fragment in error.text and len(error.text) < 500


def test_expressions_evaluate_in_several_threads_at_once():
    data = np.random.default_rng(1).uniform(1, 100, size=(3, 64, 64)).astype(np.float32)
    rule = {"rasterFunction": "BandArithmetic", "rasterFunctionArguments": {"BandIndexes": "(B1-B2)/(B1+B2)*B3"}}
    expected = run(rule, data).data
    for result in in_threads(lambda: run(rule, data).data):
        np.testing.assert_array_equal(result, expected)


# ---- Arithmetic and Local --------------------------------------------------------------------------------------------

X = np.array([[[4.0, -2.0, 0.0, 9.0]]], np.float32)
Y = np.array([[[2.0, 3.0, 0.0, -1.0]]], np.float32)
XY_VALID = np.array([[True, True, True, False]])


def local(operation: int, data, *numbers, valid=XY_VALID) -> Raster:
    """Local over ``data`` (as the service image) and numbers."""
    return run({"rasterFunction": "Local", "rasterFunctionArguments": {"Operation": operation,
                                                                        "Rasters": ["$$", *numbers]}}, data, valid)


XY = np.concatenate([X, Y])  # band 0 = X, band 1 = Y: binary operations use two ExtractBands of it


def local_xy(operation: int, valid=XY_VALID) -> Raster:
    return run({"rasterFunction": "Local", "rasterFunctionArguments": {"Operation": operation,
                                                                        "Rasters": [extract(0), extract(1)]}},
               XY, valid)


@pytest.mark.parametrize("operation, expected, dtype", [
    (1, [6, 1, 0], "float32"), (2, [2, -5, 0], "float32"), (3, [8, -6, 0], "float32"),
    (5, [16, -8, 1], "float32"), (23, [2, -2 / 3, None], "float32"), (44, [0, -2, None], "float32"),
    (61, [math.atan2(4, 2), math.atan2(-2, 3), 0], "float32"),
    (64, [2, -2 / 3, None], "float32"), (65, [2, -1, None], "float32"),
    (11, [0, 2, 0], "int32"), (14, [6, -1, 0], "int32"), (16, [6, -3, 0], "int32"),
    (12, [16, -16, 0], "int32"), (15, [1, -1, 0], "int32"),
    (17, [1, 1, 0], "uint8"), (19, [1, 1, 0], "uint8"), (20, [0, 0, 0], "uint8"),
    (24, [0, 0, 1], "uint8"), (28, [1, 0, 0], "uint8"), (29, [1, 0, 1], "uint8"), (33, [0, 1, 0], "uint8"),
    (34, [0, 1, 1], "uint8"), (46, [1, 1, 0], "uint8"),
    (50, [None, None, 0], "float32"),  # SetNull: NoData where the condition (X) is non-zero, else Y
], ids=lambda v: str(v) if isinstance(v, int) else None)
def test_local_binary_operations(operation, expected, dtype):
    out = local_xy(operation)
    assert out.data.dtype.name == dtype
    assert out.valid[0, 3] == False  # noqa: E712  NoData in an input
    for pixel, value in enumerate(expected):
        if value is None:
            assert not out.valid[0, pixel]
        else:
            assert out.valid[0, pixel] and out.data[0, 0, pixel] == pytest.approx(value, rel=1e-6)


@pytest.mark.parametrize("operation, reference", [
    (4, np.sqrt), (6, np.arccos), (7, np.arcsin), (8, np.arctan), (9, np.arctanh), (10, np.abs), (21, np.cos),
    (22, np.cosh), (25, np.exp), (26, lambda v: 10.0 ** v), (27, np.exp2), (30, np.trunc), (32, lambda v: v),
    (35, np.log), (36, np.log10), (37, np.log2), (45, np.negative), (48, np.floor), (49, np.ceil), (51, np.sin),
    (52, np.sinh), (53, np.square), (56, np.tan), (57, np.tanh), (59, np.arccosh), (60, np.arcsinh),
])
def test_local_unary_operations_match_numpy_and_make_undefined_values_nodata(operation, reference):
    values = np.array([[[-1.5, -0.5, 0.0, 0.5, 1.0, 2.7, 100.0, 7.0]]], np.float32)
    valid = np.array([[True] * 7 + [False]])
    out = local(operation, values, valid=valid)
    with np.errstate(all="ignore"):
        expected = reference(values.astype(np.float64))[0, 0]
    defined = np.isfinite(expected) & (np.abs(expected) <= np.finfo(np.float32).max) & valid[0]
    np.testing.assert_array_equal(out.valid[0], defined)
    np.testing.assert_allclose(out.data[0, 0][defined], expected[defined], rtol=1e-6)
    assert out.data.dtype == np.float32


def test_every_local_operation_code_is_built():
    """docs/protocol.md §6.2's codes 1-61 and the cell statistics with their IgnoreNoData variants (66-75), plus
    FloatDivide and FloorDivide (64, 65); Con (76) is refused as not built."""
    assert set(OPERATIONS) == set(range(1, 62)) | {64, 65} | set(range(66, 76))


def test_bitwise_not_boolean_not_and_is_null():
    values = np.array([[[5.0, 0.0, 2.9]]], np.float32)
    valid = np.array([[True, True, False]])
    bitwise_not = local(13, values, valid=valid)
    assert bitwise_not.data.dtype == np.int32 and bitwise_not.data[0, 0, :2].tolist() == [-6, -1]
    assert local(18, values, valid=valid).data[0, 0, :2].tolist() == [0, 1]
    shifted = local(12, np.array([[[3.0, 2.0 ** 29, 1.0]]], np.float32), 4, valid=valid)
    assert shifted.valid.tolist() == [[True, False, False]] and shifted.data[0, 0, 0] == 48  # 2^33: beyond int32
    is_null = local(31, values, valid=valid)
    assert is_null.valid.all() and is_null.data[0, 0].tolist() == [0, 0, 1] and is_null.data.dtype == np.uint8


# Three rasters of two pixels; the second pixel's middle raster is NoData.
STACK = np.array([[[1.0, 4.0]], [[3.0, 9.0]], [[3.0, 2.0]]], np.float32)
STACK_VALID = np.array([[True, True]])


def cell_statistic(operation: int) -> Raster:
    rasters = [extract(0), {"rasterFunction": "Local", "rasterFunctionArguments": {
        "Operation": 50, "Rasters": [{"rasterFunction": "Local", "rasterFunctionArguments": {
            "Operation": 24, "Rasters": [extract(1), 9]}}, extract(1)]}}, extract(2)]  # SetNull(B2 == 9, B2)
    return run({"rasterFunction": "Local", "rasterFunctionArguments": {"Operation": operation, "Rasters": rasters}},
               STACK, STACK_VALID)


@pytest.mark.parametrize("operation, first, ignoring", [
    (38, 3, 2), (39, 3, 4), (40, 7 / 3, 3), (41, 3, 3), (42, 1, 2), (43, 1, 2), (47, 2, 2),
    (54, float(np.std([1, 3, 3])), 1), (55, 7, 6), (58, 2, 2),
], ids=["Majority", "Max", "Mean", "Median", "Min", "Minority", "Range", "StdDev", "Sum", "Variety"])
def test_cell_statistics_and_their_ignore_nodata_variants(operation, first, ignoring):
    """The first pixel holds 1, 3, 3 (all valid); the second 4, NoData, 2: NoData unless NoData is ignored."""
    plain = cell_statistic(operation)
    assert plain.valid.tolist() == [[True, False]]
    assert plain.data[0, 0, 0] == pytest.approx(first, rel=1e-6)
    ignore = cell_statistic(66 + [38, 39, 40, 41, 42, 43, 47, 54, 55, 58].index(operation))
    assert ignore.valid.tolist() == [[True, True]]
    assert ignore.data[0, 0].tolist() == pytest.approx([first, ignoring], rel=1e-6)


def test_statistics_ignoring_nodata_are_nodata_where_every_input_is():
    out = run({"rasterFunction": "Local", "rasterFunctionArguments": {"Operation": 67, "Rasters": ["$$", "$$"]}},
              X, XY_VALID)
    assert out.valid.tolist() == XY_VALID.tolist()


def test_local_broadcasts_numbers_and_one_band_rasters_over_bands():
    out = run({"rasterFunction": "Local", "rasterFunctionArguments": {"Operation": 1, "Rasters": ["$$", extract(1)]}},
              XY)
    np.testing.assert_array_equal(out.data, XY + XY[1])
    assert out.info.names == ("Band_1", "Band_2")
    error = refused({"rasterFunction": "Local", "rasterFunctionArguments": {
        "Operation": 1, "Rasters": ["$$", extract(0, 1)]}}, FOUR)
    assert "Rasters" in error.text and "2 and 4 bands" in error.text


@pytest.mark.parametrize("operation, expected", [(1, [6, 1, 0]), (2, [2, -5, 0]), (3, [8, -6, 0]),
                                                 (4, [2, -2 / 3, None]), (5, [16, -8, 1]), (6, [0, -2, None])])
def test_arithmetic(operation, expected):
    out = run({"rasterFunction": "Arithmetic", "rasterFunctionArguments": {
        "Operation": operation, "Raster": extract(0), "Raster2": extract(1), "ExtentType": 1, "CellsizeType": 0}},
        XY, XY_VALID)
    assert out.data.dtype == np.float32 and not out.valid[0, 3]
    for pixel, value in enumerate(expected):
        assert out.valid[0, pixel] == (value is not None)
        if value is not None:
            assert out.data[0, 0, pixel] == pytest.approx(value, rel=1e-6)


def test_arithmetic_with_a_number():
    out = run({"rasterFunction": "Arithmetic", "rasterFunctionArguments": {"Operation": 3, "Raster2": 0.5}}, X)
    np.testing.assert_allclose(out.data, X * 0.5)


def test_local_times_a_constant_rule_through_the_core(image_service, plain):
    data, valid = through_core(image_service, {"rasterFunction": "Local",
                                               "rasterFunctionArguments": {"Operation": 3, "Rasters": ["$$", 0.3048]}})
    np.testing.assert_array_equal(valid, plain[1])
    np.testing.assert_allclose(data[:, valid], (plain[0] * 0.3048)[:, valid], rtol=1e-6)
    assert data.dtype == np.float32 and data.shape[0] == 4
    divided, _ = through_core(image_service, {"rasterFunction": "Arithmetic",
                                              "rasterFunctionArguments": {"Operation": 4, "Raster2": 2}})
    np.testing.assert_allclose(divided[:, valid], (plain[0] / 2)[:, valid], rtol=1e-6)


@pytest.mark.parametrize("rule, fragment, kind", [
    ({"rasterFunction": "Local", "rasterFunctionArguments": {"Operation": 62, "Rasters": ["$$"]}}, "Operation",
     ErrorKind.INVALID_ARGUMENT),
    ({"rasterFunction": "Local", "rasterFunctionArguments": {"Rasters": ["$$"]}}, "Operation",
     ErrorKind.INVALID_ARGUMENT),
    ({"rasterFunction": "Local", "rasterFunctionArguments": {"Operation": 1, "Rasters": ["$$"]}}, "Rasters",
     ErrorKind.INVALID_ARGUMENT),
    ({"rasterFunction": "Local", "rasterFunctionArguments": {"Operation": 4, "Rasters": ["$$", 2]}}, "Rasters",
     ErrorKind.INVALID_ARGUMENT),
    ({"rasterFunction": "Local", "rasterFunctionArguments": {"Operation": 76, "Rasters": ["$$", 1, 2]}}, "Con",
     ErrorKind.UNIMPLEMENTED),
    ({"rasterFunction": "Local", "rasterFunctionArguments": {"Operation": 1, "Rasters": ["$$", 1],
                                                             "ExtentType": 7}}, "ExtentType",
     ErrorKind.INVALID_ARGUMENT),
    ({"rasterFunction": "Local", "rasterFunctionArguments": {"Operation": 55, "Rasters": ["$$"] * 65}},
     "at most 64", ErrorKind.INVALID_ARGUMENT),
    ({"rasterFunction": "CompositeBand", "rasterFunctionArguments": {"Rasters": ["$$"] * 65}}, "at most 64",
     ErrorKind.INVALID_ARGUMENT),
    ({"rasterFunction": "Arithmetic", "rasterFunctionArguments": {"Operation": 7}}, "Operation",
     ErrorKind.INVALID_ARGUMENT),
    ({"rasterFunction": "Arithmetic", "rasterFunctionArguments": {"Operation": 1, "CellsizeType": "x"}},
     "CellsizeType", ErrorKind.INVALID_ARGUMENT),
])
def test_local_and_arithmetic_refuse_bad_arguments(rule, fragment, kind):
    error = refused(rule, X, names=("Band_1",))
    assert error.kind is kind and fragment in error.text


# ---- Clip ------------------------------------------------------------------------------------------------------------

def to_lonlat(points):
    transformer = Transformer.from_crs(UTM, "EPSG:4326", always_xy=True)
    return [list(transformer.transform(x, y)) for x, y in points]


# An irregular polygon with a hole, in UTM metres over the NATIVE box (x 384000..385000, y 4068000..4069000).
OUTER = [(384130.3, 4068120.7), (384870.1, 4068210.2), (384940.6, 4068930.4), (384410.8, 4068610.9),
         (384152.7, 4068883.1), (384130.3, 4068120.7)]
HOLE = [(384400.4, 4068300.6), (384600.7, 4068310.1), (384520.9, 4068480.3), (384400.4, 4068300.6)]


def clip_rule(geometry, clip_type=1):
    return {"rasterFunction": "Clip", "rasterFunctionArguments": {"ClippingGeometry": geometry,
                                                                  "ClippingType": clip_type}}


def reference_inside(grid_transform, shape, rings):
    """rasterio's rasterisation of the polygon (pixel centres inside), the reference for Clip."""
    polygon = {"type": "Polygon", "coordinates": [list(map(list, ring)) for ring in rings]}
    return geometry_mask([polygon], out_shape=shape, transform=grid_transform, invert=True)


@pytest.mark.parametrize("clip_type", [1, 2])
def test_clip_by_a_polygon_in_another_sr_matches_rasterio(image_service, plain, clip_type):
    geometry = {"rings": [to_lonlat(OUTER), to_lonlat(HOLE)], "spatialReference": {"wkid": 4326}}
    data, valid = through_core(image_service, clip_rule(geometry, clip_type))
    x0, y0 = rasters.ORIGIN
    inside = reference_inside(Affine(10, 0, x0 + 4000, 0, -10, y0 - 1000), (100, 100), [OUTER, HOLE])
    assert 0.2 < inside.mean() < 0.8 and not inside[63, 50]  # the hole's centroid is out
    np.testing.assert_array_equal(valid, plain[1] & (inside if clip_type == 1 else ~inside))
    np.testing.assert_array_equal(data[:, valid], plain[0][:, valid])
    assert data.dtype == np.uint16


def test_clip_rings_in_the_grid_sr_and_an_envelope():
    data = np.ones((1, 60, 80), np.uint8)
    x0, y0 = rasters.ORIGIN
    star = [(x0 + 400 + 300 * math.cos(a) * (0.4 if k % 2 else 1), y0 - 300 + 280 * math.sin(a) * (0.4 if k % 2
                                                                                                     else 1))
            for k, a in enumerate(np.linspace(0, 2 * math.pi, 11)[:-1] + 0.1)]
    star.append(star[0])
    out = run(clip_rule({"rings": [star], "spatialReference": {"wkid": 32611}}), data)
    transform = Affine(10, 0, x0, 0, -10, y0)
    np.testing.assert_array_equal(out.valid, reference_inside(transform, (60, 80), [star]))
    envelope = run(clip_rule({"xmin": x0 + 96, "ymin": y0 - 204, "xmax": x0 + 304, "ymax": y0 - 96,
                              "spatialReference": {"wkid": 32611}}), data)
    expected = np.zeros((60, 80), bool)
    expected[10:20, 10:30] = True  # centres 105..295 and 105..195 m from the corner
    np.testing.assert_array_equal(envelope.valid, expected)


def test_the_clip_kernel_in_several_threads_at_once():
    """Many rings (some crossing the grid's edges, some nested) rasterised from eight threads at once."""
    rng = np.random.default_rng(4)
    x0, y0 = rasters.ORIGIN
    rings = []
    for _ in range(12):
        cx, cy, radius = rng.uniform(-100, 1400), rng.uniform(-900, 100), rng.uniform(30, 400)
        angles = np.sort(rng.uniform(0, 2 * math.pi, 9))
        ring = [(x0 + cx + radius * math.cos(a), y0 + cy + radius * math.sin(a)) for a in angles]
        rings.append(ring + ring[:1])
    data = np.ones((1, 83, 127), np.uint8)
    rule = clip_rule({"rings": rings, "spatialReference": {"wkid": 32611}})
    expected = np.zeros((83, 127), bool)
    for ring in rings:  # even-odd over all rings: each ring flips the pixels it covers
        expected ^= reference_inside(Affine(10, 0, x0, 0, -10, y0), (83, 127), [ring])
    assert 0.05 < expected.mean() < 0.95
    for result in in_threads(lambda: run(rule, data).valid):
        np.testing.assert_array_equal(result, expected)


def test_clip_rule_of_the_examples_keeps_nothing_far_away(image_service):
    """The §6.3b Clip rule: a 10 m square at Web Mercator's origin, far from the service: everything is clipped."""
    rule = {"rasterFunction": "Clip", "rasterFunctionArguments": {
        "ClippingGeometry": {"rings": [[[0, 0], [0, 10], [10, 10], [10, 0], [0, 0]]], "spatialReference": {
            "wkid": 3857}}, "ClipType": 1}}
    data, valid = through_core(image_service, rule)
    assert not valid.any() and data.dtype == np.uint16


@pytest.mark.parametrize("arguments, fragment, kind", [
    ({"ClippingGeometry": {"rings": [[[0, 0], [0, 1], [1, 1]]]}}, "spatialReference", ErrorKind.INVALID_ARGUMENT),
    ({"ClippingGeometry": {"rings": [[[0, 0], [0, 1]]], "spatialReference": {"wkid": 3857}}}, "ring",
     ErrorKind.INVALID_ARGUMENT),
    ({"ClippingGeometry": {"paths": [], "spatialReference": {"wkid": 3857}}}, "ClippingGeometry",
     ErrorKind.INVALID_ARGUMENT),
    ({"ClippingGeometry": {"xmin": 5, "ymin": 0, "xmax": 1, "ymax": 1, "spatialReference": {"wkid": 3857}}},
     "xmin < xmax", ErrorKind.INVALID_ARGUMENT),
    ({"ClippingGeometry": {"rings": [[[0, 0], [0, 1], [1, 1]]], "spatialReference": {"wkid": 999999}}},
     "spatialReference", ErrorKind.INVALID_ARGUMENT),
    ({"ClippingGeometry": "not json"}, "ClippingGeometry", ErrorKind.INVALID_ARGUMENT),
    ({"ClippingGeometry": {"rings": [[[i % 7, i // 7] for i in range(100_001)]], "spatialReference": {
        "wkid": 3857}}}, "100000 vertices", ErrorKind.INVALID_ARGUMENT),
    ({}, "ClippingGeometry", ErrorKind.INVALID_ARGUMENT),
    ({"ClippingGeometry": {"xmin": 0, "ymin": 0, "xmax": 1, "ymax": 1, "spatialReference": {"wkid": 3857}},
      "ClipType": 3}, "ClipType", ErrorKind.INVALID_ARGUMENT),
    ({"ClippingRaster": {"rasterFunction": "None"}}, "ClippingRaster", ErrorKind.UNIMPLEMENTED),
    ({"Extent": {"xmin": 0}}, "Extent", ErrorKind.UNIMPLEMENTED),
    ({"UseInputFeatureGeometry": True}, "UseInputFeatureGeometry", ErrorKind.UNIMPLEMENTED),
])
def test_clip_refuses_bad_geometries_and_arguments_not_built(arguments, fragment, kind):
    error = refused({"rasterFunction": "Clip", "rasterFunctionArguments": arguments})
    assert error.kind is kind and fragment in error.text


# ---- the §6.3b example rules of this family, end to end --------------------------------------------------------------

def test_extract_band_rule_through_the_core(image_service, plain):
    data, valid = through_core(image_service, {"rasterFunction": "ExtractBand",
                                               "rasterFunctionArguments": {"BandIDs": [3, 2, 1]}})
    np.testing.assert_array_equal(valid, plain[1])
    np.testing.assert_array_equal(data, plain[0][[3, 2, 1]])


def test_bandids_pick_from_the_output_of_a_band_function(image_service, plain):
    """decisions Q14: bandIds pick from the rule's output, so the rule reads every band."""
    data, _ = export(image_service, {**NATIVE, "bandIds": "0", "renderingRule": json.dumps(
        {"rasterFunction": "ExtractBand", "rasterFunctionArguments": {"BandIDs": [3, 2, 1]}})})
    np.testing.assert_array_equal(data[0], plain[0][3])


def test_identify_and_the_root_answer_with_a_band_functions_output(image_service):
    """identify reads the rule's output at the point, and the root describes it (as every resource honours the
    rendering rule)."""
    x0, y0 = rasters.ORIGIN
    point = (x0 + 10 * 150 + 3, y0 - 10 * 120 - 4)
    plain = image_service.identify(identify_params("ms", point))
    rule = {"rasterFunction": "NDVI", "rasterFunctionArguments": {"ScientificOutput": True}}
    ndvi = image_service.identify(identify_params("ms", point, rendering_rule=rule))
    red, nir = plain.values[2], plain.values[3]
    assert ndvi.values[0] == pytest.approx((nir - red) / (nir + red), rel=1e-6)
    info = convert.service_info(image_service.service("ms", {"rasterFunction": "NDVI"}))
    assert convert.pb.PixelType.Name(info.pixel_type) == "PIXEL_TYPE_U8" and info.band_count == 1



@pytest.mark.parametrize("dtype", ["u1", "i1", "u2", "i2", "u4", "i4", "f4", "f8", "i8"])
def test_the_compiled_expression_matches_numpy_for_every_pixel_type_and_thread(dtype):
    from concurrent.futures import ThreadPoolExecutor

    from imgsvc.functions import expression

    rng = np.random.default_rng(7)
    data = rng.integers(0, 100, size=(3, 40, 50)).astype(dtype)
    data[0, :2] = 0  # zeros: division by zero and logs of zero are NoData
    valid = rng.random((40, 50)) > 0.1
    text = "(B1 - B2) / (B1 + B2) * -2 + pow(abs(B3), 0.5) - min(B1, B2, 7) + max(B3, 1) + ln(B1) - log10(B2 + 1)"
    program = expression.compile_program(expression.parse(text))
    b1, b2, b3 = (data[i].astype(np.float64) for i in range(3))
    with np.errstate(all="ignore"):
        reference = ((b1 - b2) / (b1 + b2) * -2 + np.power(np.abs(b3), 0.5) - np.minimum(np.minimum(b1, b2), 7)
                     + np.maximum(b3, 1) + np.log(b1) - np.log10(b2 + 1))
    expected_valid = valid & np.isfinite(reference)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: expression.evaluate(program, data, valid), range(8)))
    for out, out_valid in results:
        np.testing.assert_array_equal(out_valid, expected_valid)
        np.testing.assert_allclose(out[0][expected_valid], reference[expected_valid].astype(np.float32), rtol=1e-6)
        assert (out[0][~expected_valid] == 0).all()


def test_an_expression_too_deep_for_the_kernels_stack_is_refused():
    from imgsvc.functions import expression

    deep = "B1" + "+(B1" * 70 + ")" * 70
    with pytest.raises(expression.ExpressionError, match="at once|nested|deep"):
        expression.compile_program(expression.parse(deep))
