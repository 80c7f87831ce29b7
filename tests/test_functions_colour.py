"""Colour and value-mapping functions (docs/protocol.md §6.2): Stretch, Colormap, Remap, Mask, Threshold, Grayscale,
ContrastBrightness and UnitConversion, each against expectations computed here, and end to end through the core."""
from __future__ import annotations

import concurrent.futures
import json

import numpy as np
import pytest
from rasterio.io import MemoryFile

from imgsvc import kernels
from imgsvc.block import BandStats
from imgsvc.catalog import Catalog
from imgsvc.errors import ErrorKind, ImgsvcError
from imgsvc.functions import REGISTRY, BandsInfo, Histogram, Raster, parse_rule
from imgsvc.functions.colormap import interpolate, rgb_to_hsv, rgb_to_lab
from imgsvc.functions.stretch import percent_clip_range
from imgsvc.grpc.requests import export_params
from imgsvc.identify import IdentifyParams
from imgsvc.rest.query import Params, export_request
from tests import rasters


def run(rule: dict, data, valid=None, stats=None, histograms=None) -> Raster:
    """The rule applied to a hand-made block (bands, rows, cols)."""
    data = np.asarray(data)
    if data.ndim == 2:
        data = data[None]
    valid = np.ones(data.shape[1:], bool) if valid is None else np.asarray(valid)
    info = BandsInfo(tuple(f"b{i}" for i in range(data.shape[0])), data.dtype.name, stats, histograms)
    return parse_rule(rule).apply(Raster(data, valid, info), None)


def stretch(data, **arguments) -> Raster:
    return run({"rasterFunction": "Stretch", "rasterFunctionArguments": arguments}, np.asarray(data, np.float64))


def linear(v, lo, hi, low=0, high=255):
    t = np.clip((np.asarray(v, np.float64) - lo) / (hi - lo), 0, 1)
    return low + np.floor(t * (high - low))


def export(service, image_service, **query):
    query = {"format": "tiff", "f": "image", "interpolation": "RSP_NearestNeighbor", **query}
    result = image_service.export_image(export_params(export_request(service, Params(query.items()))))
    with MemoryFile(result.encoded.data) as mem, mem.open() as tif:
        return tif.read(), tif.read_masks(1) > 0


def bbox(col0, col1, row0=100, row1=300, res=30.0):
    x0, y0 = rasters.ORIGIN
    return f"{x0 + res * col0},{y0 - res * row1},{x0 + res * col1},{y0 - res * row0}"


VALUES = np.array([[0, 10, 50, 100], [120, 150, 200, 250]], np.float64)
STATS = [[0, 250, 110, 40]]


# ---- Stretch ------------------------------------------------------------------------------------------------------

def test_minmax_maps_the_statistics_range_onto_min_max():
    out = stretch(VALUES, StretchType=5, Statistics=STATS)
    assert out.data.dtype == np.uint8 and out.info.dtype == "uint8"
    np.testing.assert_array_equal(out.data[0], linear(VALUES, 0, 250))
    ranged = stretch(VALUES, StretchType=5, Statistics=STATS, Min=10, Max=100)
    np.testing.assert_array_equal(ranged.data[0], linear(VALUES, 0, 250, 10, 100))
    assert stretch(VALUES, StretchType=5, Statistics=STATS, Max=1000).data.dtype == np.uint16


def test_standard_deviation_cuts_at_mean_plus_minus_n_sigma_clipped_to_the_range():
    out = stretch(VALUES, StretchType=3, NumberOfStandardDeviation=1.5, Statistics=STATS)  # the singular alias
    np.testing.assert_array_equal(out.data[0], linear(VALUES, 110 - 60, 110 + 60))
    wide = stretch(VALUES, StretchType=3, NumberOfStandardDeviations=5, Statistics=STATS)
    np.testing.assert_array_equal(wide.data[0], linear(VALUES, 0, 250))  # 110 ± 200 clipped to [0, 250]


def test_a_value_exactly_at_the_cut_offs_maps_to_min_and_max():
    out = stretch([[50.0, 170.0, 110.0]], StretchType=3, NumberOfStandardDeviations=1.5, Statistics=STATS)
    assert out.data[0].tolist() == [[0, 255, 127]]  # floor(0.5 · 255)


def test_gamma_raises_t_to_one_over_gamma():
    out = stretch(VALUES, StretchType=5, Statistics=STATS, UseGamma=True, Gamma=[2.0])
    t = VALUES / 250
    np.testing.assert_array_equal(out.data[0], np.floor(255 * t ** 0.5))
    untouched = stretch(VALUES, StretchType=5, Statistics=STATS, UseGamma=False, Gamma=[2.0])
    np.testing.assert_array_equal(untouched.data[0], linear(VALUES, 0, 250))


def test_gamma_is_per_band():
    data = np.stack([VALUES, VALUES])
    out = stretch(data, StretchType=5, Statistics=STATS * 2, UseGamma=True, Gamma=[2.0, 0.5])
    t = VALUES / 250
    np.testing.assert_array_equal(out.data[0], np.floor(255 * t ** 0.5))
    np.testing.assert_array_equal(out.data[1], np.floor(255 * t ** 2))


def test_computed_gamma_takes_the_mean_to_the_middle():
    out = stretch([[50.0, 0.0, 250.0]], StretchType=5, Statistics=[[0, 250, 50, 40]], UseGamma=True,
                  ComputeGamma=True)
    assert out.data[0].tolist() == [[127, 0, 255]]  # (50/250)^(1/γ) = 0.5, floor(127.5)


def test_histogram_equalization_maps_each_value_to_its_cumulative_fraction():
    histogram = Histogram(-0.5, 3.5, (1, 1, 2, 4))  # single-value bins 0, 1, 2, 3
    out = run({"rasterFunction": "Stretch", "rasterFunctionArguments": {"StretchType": 4}},
              np.array([[0.0, 1.0, 2.0, 3.0]]), histograms=(histogram,))
    assert out.data[0].tolist() == [[int(255 * 1 / 8), int(255 * 2 / 8), int(255 * 4 / 8), 255]]


def test_percent_clip_cut_offs_are_numpy_percentiles_of_the_same_histogram():
    rng = np.random.default_rng(7)
    histogram = Histogram(100.0, 612.0, tuple(int(c) for c in rng.integers(0, 50, 256)))
    width = (histogram.max - histogram.min) / 256
    pixels = np.repeat(histogram.min + (np.arange(256) + 0.5) * width, histogram.counts)
    for low, high in ((0.25, 0.5), (2, 2), (10, 30), (0, 0)):
        lo, hi = percent_clip_range(histogram, low, high)
        assert lo == pytest.approx(np.quantile(pixels, low / 100, method="inverted_cdf") if low else pixels.min())
        assert hi == pytest.approx(-np.quantile(-pixels, high / 100, method="inverted_cdf") if high else pixels.max())
    lo, hi = percent_clip_range(histogram, 2, 3)
    values = np.array([[lo - 10, lo, (lo + hi) / 2, hi, hi + 10]])
    out = run({"rasterFunction": "Stretch", "rasterFunctionArguments": {"StretchType": 6, "MinPercent": 2,
                                                                         "MaxPercent": 3}},
              values, histograms=(histogram,))
    np.testing.assert_array_equal(out.data[0], linear(values, lo, hi))


def test_sigmoid_is_an_s_curve_from_min_to_max_centred_on_the_mean():
    values = np.linspace(0, 250, 11)[None]
    out = stretch(values, StretchType=9, Statistics=STATS, SigmoidStrengthLevel=3)
    gain, centre = 12.0, 110 / 250

    def s(x):
        return 1 / (1 + np.exp(-gain * (x - centre)))

    expected = np.floor(255 * (s(values / 250) - s(0)) / (s(1) - s(0)))
    np.testing.assert_array_equal(out.data[0], expected)
    assert out.data[0, 0, 0] == 0 and out.data[0, 0, -1] == 255
    steeper = stretch(values, StretchType=9, Statistics=STATS, SigmoidStrengthLevel=6)
    assert abs(int(steeper.data[0, 0, 6]) - int(steeper.data[0, 0, 4])) > abs(int(out.data[0, 0, 6]) -
                                                                              int(out.data[0, 0, 4]))


def test_statistics_come_from_the_argument_then_dra_then_the_input():
    service = (BandStats(0, 1000, 500, 100),)
    block = np.array([[10.0, 20.0, 30.0]])
    rule = {"rasterFunction": "Stretch", "rasterFunctionArguments": {"StretchType": 5}}
    assert run(rule, block, stats=service).data[0].tolist() == [linear([10, 20, 30], 0, 1000).tolist()]
    rule["rasterFunctionArguments"].update(DRA=True, Statistics=[])
    assert run(rule, block, stats=service).data[0].tolist() == [[0, 127, 255]]
    rule["rasterFunctionArguments"]["Statistics"] = [[0, 60, 30, 10]]
    assert run(rule, block, stats=service).data[0].tolist() == [linear([10, 20, 30], 0, 60).tolist()]


def test_invalid_and_nan_pixels_stay_out_of_the_statistics_and_the_output():
    data = np.array([[[np.nan, 5.0, 10.0, 1e9]]])
    out = run({"rasterFunction": "Stretch", "rasterFunctionArguments": {"StretchType": 5, "DRA": True}}, data,
              valid=np.array([[False, True, True, False]]))
    assert out.data[0].tolist() == [[0, 0, 255, 0]] and out.valid.tolist() == [[False, True, True, False]]


@pytest.mark.parametrize("dtype", ["uint8", "int8", "uint16", "int16"])
@pytest.mark.parametrize("arguments", [
    {"StretchType": 3, "Statistics": [[-100, 200, 50, 30]]},
    {"StretchType": 5, "Statistics": [[-100, 200, 50, 30]], "UseGamma": True, "Gamma": [1.7]},
    {"StretchType": 6, "MinPercent": 5, "MaxPercent": 10},
    {"StretchType": 4},
    {"StretchType": 9, "Statistics": [[-100, 200, 50, 30]], "Min": 10, "Max": 1000},
], ids=["stddev", "gamma", "percentclip", "equalization", "sigmoid-u16"])
def test_small_integer_input_looked_up_by_value_is_stretched_as_its_float_values(dtype, arguments):
    info = np.iinfo(dtype)
    data = np.random.default_rng(3).integers(max(info.min, -120), min(info.max, 220), (2, 9, 11)).astype(dtype)
    histograms = (Histogram(-120.0, 220.0, tuple(range(1, 257))),) * 2
    rule = {"rasterFunction": "Stretch", "rasterFunctionArguments": arguments}
    looked_up = run(rule, data, histograms=histograms)
    np.testing.assert_array_equal(looked_up.data, run(rule, data.astype(np.float64), histograms=histograms).data)


@pytest.mark.parametrize("dtype", ["float32", "float64", "int32"])
@pytest.mark.parametrize("lo, hi, gamma", [(10.0, 90.0, 1.0), (10.0, 90.0, 2.2), (10.0, 90.0, 0.4), (50.0, 50.0, 1.0),
                                           (50.0, 40.0, 1.0)])
def test_the_stretch_kernel_gives_numpys_levels(dtype, lo, hi, gamma):
    values = np.random.default_rng(4).uniform(-20, 120, (37, 41)).astype(dtype)
    if dtype != "int32":
        values[0, :3] = [np.nan, np.inf, -np.inf]
    wide = values.astype(np.float64)
    with np.errstate(invalid="ignore"):
        t = np.clip((wide - lo) / (hi - lo), 0, 1) if hi > lo else (wide > lo).astype(np.float64)
        expected = 3 + np.floor(t ** (1 / gamma) * 200)
    expected[np.isnan(wide)] = 0
    np.testing.assert_array_equal(kernels.stretch_levels(values, lo, hi, 3, 200, gamma), expected)


def test_the_stretch_kernel_runs_in_several_threads_at_once():
    blocks = [np.random.default_rng(seed).uniform(0, 4000, (512, 512)).astype(np.float32) for seed in range(8)]
    expected = [kernels.stretch_levels(b, 100, 3900, 0, 255, 1.5) for b in blocks]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda b: kernels.stretch_levels(b, 100, 3900, 0, 255, 1.5), blocks * 3))
    for k, result in enumerate(results):
        np.testing.assert_array_equal(result, expected[k % len(blocks)])


def test_stretch_type_none_leaves_values_alone():
    out = stretch(VALUES, StretchType=0)
    np.testing.assert_array_equal(out.data[0], VALUES)


def test_percent_clip_reads_the_service_histograms_only_when_it_needs_them():
    assert parse_rule({"rasterFunction": "Stretch", "rasterFunctionArguments": {"StretchType": 6}}).needs_histograms
    assert not parse_rule({"rasterFunction": "Stretch",
                           "rasterFunctionArguments": {"StretchType": 6, "DRA": True}}).needs_histograms
    assert not parse_rule({"rasterFunction": "Stretch", "rasterFunctionArguments": {"StretchType": 5}}).needs_histograms
    assert parse_rule({"rasterFunction": "Stretch", "rasterFunctionArguments": {"StretchType": 5, "Raster": {
        "rasterFunction": "Stretch", "rasterFunctionArguments": {"StretchType": 4}}}}).needs_histograms


def test_percent_clip_end_to_end_uses_the_service_histogram(image_service, catalog_path):
    rule = {"rasterFunction": "Stretch", "outputPixelType": "U8",
            "rasterFunctionArguments": {"StretchType": 6, "MinPercent": 1, "MaxPercent": 2}}
    query = {"bbox": bbox(100, 300), "size": "200,200"}
    source, valid = export("dem", image_service, **query)
    out, out_valid = export("dem", image_service, renderingRule=json.dumps(rule), **query)
    (d,) = Catalog(catalog_path, readonly=True).distributions("dem")
    lo, hi = percent_clip_range(Histogram(d.hist_min, d.hist_max, d.counts), 1, 2)
    np.testing.assert_array_equal(out_valid, valid)
    np.testing.assert_array_equal(out[0][valid], linear(source[0][valid], lo, hi))


@pytest.mark.parametrize("stretch_type", [3, 5, 6])
def test_without_dra_adjacent_tiles_meet_without_a_seam_and_with_dra_each_tile_stretches_itself(
        image_service, stretch_type):
    def tiles(dra):
        rule = json.dumps({"rasterFunction": "Stretch", "outputPixelType": "U8",
                           "rasterFunctionArguments": {"StretchType": stretch_type, "DRA": dra}})
        whole, _ = export("dem", image_service, bbox=bbox(100, 500), size="400,200", renderingRule=rule)
        left, _ = export("dem", image_service, bbox=bbox(100, 300), size="200,200", renderingRule=rule)
        right, _ = export("dem", image_service, bbox=bbox(300, 500), size="200,200", renderingRule=rule)
        return whole, left, right

    whole, left, right = tiles(False)
    np.testing.assert_array_equal(np.concatenate([left, right], axis=2), whole)
    whole, left, right = tiles(True)
    assert (left[0, :, -1] != right[0, :, 0]).any() or not np.array_equal(np.concatenate([left, right], axis=2),
                                                                          whole)
    assert left.max() == 255 and right.max() == 255  # each tile spans the whole output range


def test_a_percent_clip_over_extract_band_reads_the_service_histograms_of_the_bands_chosen(image_service,
                                                                                          catalog_path):
    rule = {"rasterFunction": "Stretch", "rasterFunctionArguments": {"StretchType": 6, "MinPercent": 1,
                                                                      "MaxPercent": 2, "Raster": {
        "rasterFunction": "ExtractBand", "rasterFunctionArguments": {"BandIds": [3, 1]}}}}
    query = {"bbox": "380000,4066000,384000,4070000", "size": "200,200"}
    source, valid = export("ms", image_service, **query)
    out, _ = export("ms", image_service, renderingRule=json.dumps(rule), **query)
    distributions = Catalog(catalog_path, readonly=True).distributions("ms")
    for k, band in enumerate((3, 1)):
        d = distributions[band]
        lo, hi = percent_clip_range(Histogram(d.hist_min, d.hist_max, d.counts), 1, 2)
        np.testing.assert_array_equal(out[k][valid], linear(source[band][valid], lo, hi))


def test_the_standard_deviation_rule_of_6_3b(image_service):
    rule = ('{"rasterFunction":"Stretch","rasterFunctionArguments":{"StretchType":3,"NumberOfStandardDeviations":2.5,'
            '"Statistics":[[0,255,120,30]],"DRA":false,"Min":0,"Max":255},"outputPixelType":"U8",'
            '"variableName":"Raster"}')
    source, valid = export("ms", image_service, bbox="380000,4066000,382000,4068000", size="200,200")
    out, out_valid = export("ms", image_service, renderingRule=rule, bbox="380000,4066000,382000,4068000",
                            size="200,200")
    assert out.dtype == np.uint8 and out.shape[0] == 4
    np.testing.assert_array_equal(out[:, valid], linear(source[:, valid], 45, 195))


# ---- Colormap -----------------------------------------------------------------------------------------------------

COLORMAP = {"rasterFunction": "Colormap",
            "rasterFunctionArguments": {"Colormap": [[1, 255, 0, 0], [2, 0, 255, 0], [3, 0, 0, 255, 0],
                                                     [7, 10, 20, 30, 255]]}}


def test_a_colormap_looks_values_up_and_leaves_others_nodata():
    out = run(COLORMAP, np.array([[1, 2, 3, 4, 7, 1]], np.int16), valid=np.array([[1, 1, 1, 1, 1, 0]], bool))
    assert out.data.dtype == np.uint8 and out.info.names == ("Red", "Green", "Blue")
    assert out.valid.tolist() == [[True, True, False, False, True, False]]  # 3 has alpha 0, 4 is not listed
    assert out.data[:, 0].T.tolist() == [[255, 0, 0], [0, 255, 0], [0, 0, 0], [0, 0, 0], [10, 20, 30], [0, 0, 0]]


@pytest.mark.parametrize("dtype", ["uint8", "int16", "float32"])
def test_a_colormap_looks_up_every_input_type_alike(dtype):
    data = np.array([[1, 2, 3, 4, 7]], dtype)
    out = run(COLORMAP, data)
    assert out.valid.tolist() == [[True, True, False, False, True]]
    assert out.data[:, 0].T.tolist() == [[255, 0, 0], [0, 255, 0], [0, 0, 0], [0, 0, 0], [10, 20, 30]]


def test_a_colormap_colours_the_first_band_of_several():
    data = np.array([[[1, 2]], [[2, 1]]], np.uint8)
    assert run(COLORMAP, data).data[:, 0].T.tolist() == [[255, 0, 0], [0, 255, 0]]


@pytest.mark.parametrize("algorithm, start, end, middle", [
    ("esriHSVAlgorithm", (255, 0, 0), (0, 0, 255), (0, 255, 0)),  # hue 0 -> 240: 120 is green
    ("esriHSVAlgorithm", (0, 0, 0), (255, 255, 255), (128, 128, 128)),
    ("esriCIELabAlgorithm", (0, 0, 0), (255, 255, 255), (119, 119, 119)),  # L* 50 is sRGB 119
    ("esriLabLChAlgorithm", (0, 0, 0), (255, 255, 255), (119, 119, 119)),
])
def test_ramp_interpolation_midpoints(algorithm, start, end, middle):
    colours = interpolate(start, end, np.array([0.0, 0.5, 1.0]), algorithm.lower())
    np.testing.assert_allclose(colours[0], start, atol=0.01)
    np.testing.assert_allclose(colours[2], end, atol=0.01)
    np.testing.assert_allclose(colours[1], middle, atol=0.6)


def test_colour_spaces_round_trip():
    rgb = np.random.default_rng(1).uniform(0, 255, (50, 3))
    lab = rgb_to_lab(rgb)
    np.testing.assert_allclose(interpolate(rgb[0], rgb[0], np.zeros(1), "esricielabalgorithm")[0], rgb[0], atol=1e-6)
    assert lab[:, 0].min() >= 0 and lab[:, 0].max() <= 100
    hsv = rgb_to_hsv(np.array([[255.0, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0]]))
    assert hsv[:, 0].tolist() == [0, 120, 240, 60]


def test_a_ramp_over_8_bit_input_is_indexed_by_value():
    ramp = {"type": "algorithmic", "fromColor": [255, 0, 0, 255], "toColor": [0, 0, 255, 255],
            "algorithm": "esriHSVAlgorithm"}
    out = run({"rasterFunction": "Colormap", "rasterFunctionArguments": {"colorRamp": ramp}},
              np.array([[0, 255, 0]], np.uint8))
    assert out.data[:, 0].T.tolist() == [[255, 0, 0], [0, 0, 255], [255, 0, 0]] and out.valid.all()


def test_a_multipart_ramp_gives_each_part_an_equal_share():
    part = {"type": "algorithmic", "fromColor": [0, 0, 0, 255], "toColor": [255, 255, 255, 255],
            "algorithm": "esriCIELabAlgorithm"}
    other = {**part, "fromColor": [255, 0, 0, 255], "toColor": [255, 0, 0, 255]}
    out = run({"rasterFunction": "Colormap", "rasterFunctionArguments": {
        "ColorRamp": {"type": "multipart", "colorRamps": [part, other]}}}, np.array([[0, 127, 128, 255]], np.uint8))
    colours = out.data[:, 0].T.tolist()
    assert colours[0] == [0, 0, 0] and colours[2:] == [[255, 0, 0], [255, 0, 0]]
    assert colours[1][0] == colours[1][1] == colours[1][2] >= 250  # 127/255 is 99.6 % along the first part


def test_a_ramp_over_float_input_spreads_over_the_statistics():
    out = run({"rasterFunction": "Colormap", "rasterFunctionArguments": {"ColormapName": "Gray"}},
              np.array([[100.0, 150.0, 200.0, 300.0]]), stats=(BandStats(100, 200, 150, 10),))
    assert out.data[0].tolist() == [[0, 128, 255, 255]]  # position 0.5 -> entry 128 of 256 (rounded)


def test_random_colours_are_the_same_for_a_value_everywhere():
    rule = {"rasterFunction": "Colormap", "rasterFunctionArguments": {"ColormapName": "Random"}}
    first = run(rule, np.array([[5, 6, 7]], np.int32)).data
    again = run(rule, np.array([[7, 5]], np.int32)).data
    assert first[:, 0, 2].tolist() == again[:, 0, 0].tolist() and first[:, 0, 0].tolist() == again[:, 0, 1].tolist()
    assert len({tuple(c) for c in first[:, 0].T}) == 3


def test_the_elevation_colormap_rule_of_6_3b(image_service):
    rule = ('{"rasterFunction":"Colormap","rasterFunctionArguments":{"ColormapName":"Elevation"},'
            '"variableName":"Raster"}')
    out, valid = export("dem", image_service, renderingRule=rule, bbox=bbox(0, 300), size="300,200")
    assert out.shape[0] == 3 and out.dtype == np.uint8
    assert valid.any() and not valid[:, :12].any()  # the DEM's no-data strip stays NoData
    assert len({tuple(c) for c in out[:, valid].T}) > 50


def test_the_js3_chain_colormap_over_stretch(image_service):
    """docs/protocol.md §6.1: Colormap over a PercentClip Stretch (over ExtractBand when it is built)."""
    stretch_rule = {"rasterFunction": "Stretch", "outputPixelType": "U8", "variableName": "Raster",
                    "rasterFunctionArguments": {"StretchType": 6, "MinPercent": 0.25, "MaxPercent": 0.5, "DRA": True,
                                                "UseGamma": False, "ComputeGamma": False}}
    if "extractband" in REGISTRY:
        stretch_rule["rasterFunctionArguments"]["Raster"] = {"rasterFunction": "ExtractBand",
                                                             "rasterFunctionArguments": {"BandIds": [3, 2, 1]}}
    chain = {"rasterFunction": "Colormap", "variableName": "Raster",
             "rasterFunctionArguments": {"Colormap": [[0, 255, 255, 204], [1, 254, 253, 200]],
                                         "Raster": stretch_rule}}
    query = {"bbox": "380000,4066000,384000,4070000", "size": "200,200"}
    levels, level_valid = export("ms", image_service, renderingRule=json.dumps(stretch_rule), **query)
    out, valid = export("ms", image_service, renderingRule=json.dumps(chain), **query)
    assert out.shape[0] == 3 and out.dtype == np.uint8
    np.testing.assert_array_equal(valid, level_valid & (levels[0] <= 1))
    assert (levels[0][level_valid] == 0).any()
    assert out[:, valid & (levels[0] == 0)].T.tolist() == [[255, 255, 204]] * int((valid & (levels[0] == 0)).sum())


# ---- Remap and Mask -----------------------------------------------------------------------------------------------

REMAP = {"rasterFunction": "Remap", "rasterFunctionArguments": {
    "InputRanges": [0, 100, 100, 500, 7, 7], "OutputValues": [1, 2, 3], "NoDataRanges": [-9999, -9998]}}


def test_remap_ranges_include_the_lower_bound_and_exclude_the_upper():
    data = np.array([[-9999, -1, 0, 7, 99, 100, 499, 500]], np.int16)
    out = run(REMAP, data)
    assert out.data.dtype == np.int16
    assert out.data[0].tolist() == [[0, -1, 1, 1, 1, 2, 2, 500]]  # 7 is in [0, 100) first
    assert out.valid.tolist() == [[False] + [True] * 7]
    strict = {**REMAP, "rasterFunctionArguments": {**REMAP["rasterFunctionArguments"], "AllowUnmatched": False}}
    assert run(strict, data).valid.tolist() == [[False, False, True, True, True, True, True, False]]


def test_remap_outputs_float_when_a_value_does_not_fit_the_input_type():
    rule = {"rasterFunction": "Remap", "rasterFunctionArguments": {"InputRanges": [0, 10], "OutputValues": [0.5]}}
    out = run(rule, np.array([[3, 30]], np.uint8))
    assert out.data.dtype == np.float32 and out.data[0].tolist() == [[0.5, 30]]


def test_the_remap_rule_of_6_3b(image_service):
    rule = ('{"rasterFunction":"Remap","rasterFunctionArguments":{"InputRanges":[0,100,100,500],"OutputValues":[1,2],'
            '"NoDataRanges":[-9999,-9998],"AllowUnmatched":false},"outputPixelType":"U8"}')
    query = {"bbox": bbox(0, 300), "size": "300,200"}
    source, valid = export("dem", image_service, **query)
    out, out_valid = export("dem", image_service, renderingRule=rule, **query)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out_valid, valid & (source[0] >= 0) & (source[0] < 500))  # DEM is 1500 ± 900


MASK = {"rasterFunction": "Mask", "rasterFunctionArguments": {"NoDataValues": ["0 255", "9"],
                                                             "IncludedRanges": [0, 200, 0, 100]}}


@pytest.mark.parametrize("interpretation, expected", [
    (0, [True, False, False, False, False, False]),
    (1, [True, True, True, False, True, False]),
])
def test_mask_any_or_all_bands(interpretation, expected):
    data = np.array([[[5, 0, 5, 0, 220, 255]], [[5, 5, 9, 9, 50, 101]]], np.uint8)
    rule = {**MASK, "rasterFunctionArguments": {**MASK["rasterFunctionArguments"],
                                                "NoDataInterpretation": interpretation}}
    out = run(rule, data)
    assert out.valid[0].tolist() == expected and out.data.dtype == np.uint8
    inverted = run({**rule, "rasterFunctionArguments": {**rule["rasterFunctionArguments"], "Invert": True}}, data)
    assert inverted.valid[0].tolist() == [not v for v in expected]


def test_the_mask_rule_of_6_3b(image_service):
    rule = ('{"rasterFunction":"Mask","rasterFunctionArguments":{"NoDataValues":["0"],"IncludedRanges":[1,255],'
            '"NoDataInterpretation":0}}')
    query = {"bbox": "380000,4066000,384000,4070000", "size": "200,200"}
    source, valid = export("ms", image_service, **query)
    out, out_valid = export("ms", image_service, renderingRule=rule, **query)
    assert out.dtype == np.uint16
    # One value and one range stand for every band; any band outside them masks the pixel.
    np.testing.assert_array_equal(out_valid, valid & ((source >= 1) & (source <= 255)).all(axis=0))


# ---- Threshold, Grayscale, ContrastBrightness, UnitConversion -------------------------------------------------------

def test_otsu_threshold_splits_a_bimodal_band():
    data = np.array([[10, 12, 11, 200, 205, 199, 13, 201]], np.uint8)
    out = run({"rasterFunction": "Threshold", "rasterFunctionArguments": {"ThresholdType": 1}}, data)
    assert out.data.dtype == np.uint8 and out.data[0].tolist() == [[0, 0, 0, 1, 1, 1, 0, 1]]


def test_grayscale_is_the_weighted_sum_of_the_bands():
    data = np.array([[[100, 0]], [[50, 255]], [[10, 255]]], np.uint8)
    out = run({"rasterFunction": "Grayscale"}, data)
    assert out.data.dtype == np.uint8 and out.data.shape == (1, 1, 2)
    assert out.data[0, 0].tolist() == [round(29.9 + 29.35 + 1.14), round(0.587 * 255 + 0.114 * 255)]
    weighted = run({"rasterFunction": "Grayscale", "rasterFunctionArguments": {"ConversionParameters": [1, 1, -1]}},
                   data)
    assert weighted.data.dtype == np.float32 and weighted.data[0, 0].tolist() == [140, 0]


def test_contrast_brightness():
    data = np.array([[0, 64, 127, 200, 255]], np.uint8)
    out = run({"rasterFunction": "ContrastBrightness",
               "rasterFunctionArguments": {"ContrastOffset": 50, "BrightnessOffset": 10}}, data)
    slope = np.tan(1.5 * np.pi / 4)
    expected = np.clip(np.floor((data + 25.5 - 127.5) * slope + 127.5 + 0.5), 0, 255)
    assert out.data.dtype == np.uint8 and out.data[0].tolist() == expected.tolist()
    same = run({"rasterFunction": "ContrastBrightness"}, data)
    np.testing.assert_array_equal(same.data, data[None])


@pytest.mark.parametrize("source, target, values, expected", [
    ("Meters", "Feet", [0, 0.3048, 3.048], [0, 1, 10]),
    ("esriFeet", "meters", [1, 10], [0.3048, 3.048]),
    ("Celsius", "Fahrenheit", [-40, 0, 100], [-40, 32, 212]),
    ("Fahrenheit", "Kelvin", [32], [273.15]),
    ("Kelvin", "Celsius", [0], [-273.15]),
])
def test_unit_conversion(source, target, values, expected):
    out = run({"rasterFunction": "UnitConversion", "rasterFunctionArguments": {"FromUnit": source, "ToUnit": target}},
              np.array([values], np.float64))
    assert out.data.dtype == np.float32
    np.testing.assert_allclose(out.data[0, 0], expected, rtol=1e-6, atol=1e-4)


# ---- bad arguments ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("rule, fragment, kind", [
    ({"rasterFunction": "Stretch", "rasterFunctionArguments": {"StretchType": 12}}, "StretchType",
     ErrorKind.INVALID_ARGUMENT),
    ({"rasterFunction": "Stretch", "rasterFunctionArguments": {"StretchType": 1}}, "DefaultFromSource",
     ErrorKind.UNIMPLEMENTED),
    ({"rasterFunction": "Stretch", "rasterFunctionArguments": {"Min": 10, "Max": 5}}, "Max",
     ErrorKind.INVALID_ARGUMENT),
    ({"rasterFunction": "Stretch", "rasterFunctionArguments": {"Statistics": [[0, 1, 2]]}}, "Statistics",
     ErrorKind.INVALID_ARGUMENT),
    ({"rasterFunction": "Stretch", "rasterFunctionArguments": {"SigmoidStrengthLevel": 7}}, "SigmoidStrengthLevel",
     ErrorKind.INVALID_ARGUMENT),
    ({"rasterFunction": "Stretch", "rasterFunctionArguments": {"Gamma": [0]}}, "Gamma", ErrorKind.INVALID_ARGUMENT),
    ({"rasterFunction": "Colormap"}, "Colormap", ErrorKind.INVALID_ARGUMENT),
    ({"rasterFunction": "Colormap", "rasterFunctionArguments": {"Colormap": [[1, 2, 3]]}}, "Colormap",
     ErrorKind.INVALID_ARGUMENT),
    ({"rasterFunction": "Colormap", "rasterFunctionArguments": {"Colormap": [[1, 2, 3, 300]]}}, "Colormap",
     ErrorKind.INVALID_ARGUMENT),
    ({"rasterFunction": "Colormap", "rasterFunctionArguments": {"ColormapName": "Rainbow"}}, "ColormapName",
     ErrorKind.INVALID_ARGUMENT),
    ({"rasterFunction": "Colormap", "rasterFunctionArguments": {"ColorRamp": "Blue Bright"}}, "Blue Bright",
     ErrorKind.UNIMPLEMENTED),
    ({"rasterFunction": "Colormap", "rasterFunctionArguments": {"ColorRamp": {"type": "algorithmic", "fromColor": [
        0, 0, 0], "toColor": [1, 1, 1], "algorithm": "esriFooAlgorithm"}}}, "algorithm", ErrorKind.INVALID_ARGUMENT),
    ({"rasterFunction": "Remap", "rasterFunctionArguments": {"InputRanges": [0, 1, 2], "OutputValues": [1]}},
     "InputRanges", ErrorKind.INVALID_ARGUMENT),
    ({"rasterFunction": "Remap", "rasterFunctionArguments": {"InputRanges": [0, 1], "OutputValues": [1, 2]}},
     "OutputValues", ErrorKind.INVALID_ARGUMENT),
    ({"rasterFunction": "Remap", "rasterFunctionArguments": {"UseTable": True}}, "table form",
     ErrorKind.UNIMPLEMENTED),
    ({"rasterFunction": "Remap", "rasterFunctionArguments": {"RemapTableType": 1}}, "RemapTableType",
     ErrorKind.UNIMPLEMENTED),
    ({"rasterFunction": "Mask", "rasterFunctionArguments": {"NoDataValues": ["0 x"]}}, "NoDataValues",
     ErrorKind.INVALID_ARGUMENT),
    ({"rasterFunction": "Mask", "rasterFunctionArguments": {"NoDataInterpretation": 2}}, "NoDataInterpretation",
     ErrorKind.INVALID_ARGUMENT),
    ({"rasterFunction": "Threshold", "rasterFunctionArguments": {"ThresholdType": 2}}, "ThresholdType",
     ErrorKind.UNIMPLEMENTED),
    ({"rasterFunction": "ContrastBrightness", "rasterFunctionArguments": {"ContrastOffset": 101}}, "ContrastOffset",
     ErrorKind.INVALID_ARGUMENT),
    ({"rasterFunction": "UnitConversion", "rasterFunctionArguments": {"FromUnit": "Parsecs", "ToUnit": "Feet"}},
     "Parsecs", ErrorKind.INVALID_ARGUMENT),
    ({"rasterFunction": "UnitConversion", "rasterFunctionArguments": {"FromUnit": "Feet", "ToUnit": "Celsius"}},
     "ToUnit", ErrorKind.INVALID_ARGUMENT),
])
def test_bad_arguments_are_refused_naming_them(rule, fragment, kind):
    with pytest.raises(ImgsvcError) as info:
        parse_rule(rule)
    assert info.value.kind is kind and fragment in info.value.text and info.value.parameter == "renderingRule"


@pytest.mark.parametrize("rule, fragment", [
    ({"rasterFunction": "Stretch", "rasterFunctionArguments": {"StretchType": 5, "Statistics": [[0, 1, 0, 1]] * 2}},
     "Statistics"),
    ({"rasterFunction": "Grayscale", "rasterFunctionArguments": {"ConversionParameters": [1, 1]}},
     "ConversionParameters"),
    ({"rasterFunction": "Mask", "rasterFunctionArguments": {"NoDataValues": ["0", "0"]}}, "NoDataValues"),
])
def test_arguments_that_do_not_match_the_band_count_are_refused_naming_them(image_service, rule, fragment):
    with pytest.raises(ImgsvcError) as info:
        export("ms", image_service, renderingRule=json.dumps(rule), bbox="380000,4066000,381000,4067000",
               size="10,10")
    assert info.value.kind is ErrorKind.INVALID_ARGUMENT and fragment in info.value.text


# ---- the resources around exportImage -----------------------------------------------------------------------------

def test_the_root_and_identify_describe_a_colormap_over_a_stretch(image_service):
    rule = {"rasterFunction": "Colormap", "rasterFunctionArguments": {"ColormapName": "Gray", "Raster": {
        "rasterFunction": "Stretch", "rasterFunctionArguments": {"StretchType": 5}}}}
    description = image_service.service("ms", rule).description
    assert description.band_names == ("Red", "Green", "Blue") and description.dtype == "uint8"
    result = image_service.identify(IdentifyParams("ms", 381005.0, 4069005.0, None, rule))
    assert len(result.values) == 3 and result.values[0] == result.values[1] == result.values[2]
