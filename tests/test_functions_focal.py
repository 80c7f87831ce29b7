"""Neighbourhood functions (docs/protocol.md §6.2): Convolution against numpy references written here, focal
Statistics' order statistics (Majority and Minority by hand), and Resample choosing the render stage's resampling."""
from __future__ import annotations

import json
import threading
import warnings

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from imgsvc.errors import ErrorKind, ImgsvcError
from imgsvc.functions import REGISTRY, BandsInfo, Raster, parse_rule
from tests.test_pipeline import _SumOfRasters, core, export, halves_catalog, native_bbox  # noqa: F401 (fixtures)

# The predefined kernels as docs/protocol.md §6.2 lists them (row-major).
PREDEFINED = {
    0: "-1,-1,-1, 2,2,2, -1,-1,-1", 1: "-1,2,-1, -1,2,-1, -1,2,-1", 2: "2,-1,-1, -1,2,-1, -1,-1,2",
    3: "-1,-1,2, -1,2,-1, 2,-1,-1", 4: "-1,-2,-1, 0,0,0, 1,2,1", 5: "-1,0,1, -2,0,2, -1,0,1",
    6: "1,0,-1, 2,0,-2, 1,0,-1", 7: "1,2,1, 0,0,0, -1,-2,-1", 8: "0,-1,-2, 1,0,-1, 2,1,0",
    9: "-2,-1,0, -1,0,1, 0,1,2", 10: ",".join(["0.1111111111111111"] * 9), 11: "0.0625,0.125,0.0625, 0.125,0.25,0.125, "
    "0.0625,0.125,0.0625", 12: "1,1,1,1,1, 1,4,4,4,1, 1,4,12,4,1, 1,4,4,4,1, 1,1,1,1,1",
    13: "-1,-1,-1, -1,9,-1, -1,-1,-1",
    14: "-1,-3,-4,-3,-1, -3,0,6,0,-3, -4,6,21,6,-4, -3,0,6,0,-3, -1,-3,-4,-3,-1", 15: "0,-1,0, -1,4,-1, 0,-1,0",
    16: "0,0,-1,0,0, 0,-1,-2,-1,0, -1,-2,17,-2,-1, 0,-1,-2,-1,0, 0,0,-1,0,0", 17: "-1,-2,-1, 0,0,0, 1,2,1",
    18: "-1,0,1, -2,0,2, -1,0,1", 19: "0,-.25,0, -.25,2,-.25, 0,-.25,0",
    20: "-.25,-.25,-.25, -.25,3,-.25, -.25,-.25,-.25",
    21: "-.627,.352,-.627, .352,2.923,.352, -.627,.352,-.627",
}
SHARPEN_RULE = ('{"rasterFunction":"Convolution","rasterFunctionArguments":{"Type":-1,"Rows":3,"Columns":3,'
                '"Kernel":[0,-1,0,-1,5,-1,0,-1,0]}}')
DTYPES = ["uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "float64"]


def kernel_of(text: str) -> np.ndarray:
    values = np.array([float(v) for v in text.split(",")])
    side = int(round(np.sqrt(values.size)))
    return values.reshape(side, side)


def reference(data: np.ndarray, valid: np.ndarray, kernel: np.ndarray):
    """The kernel (divided by its sum unless that is 0 or 1) slid over each band, row 0 north; a pixel is valid when
    it is and every pixel under a non-zero weight is valid and inside the array; integers rounded half away from zero and
    clipped to the type."""
    total = kernel.sum()
    if abs(total) > 1e-9 and abs(total - 1) > 1e-9:
        kernel = kernel / total
    pr, pc = kernel.shape[0] // 2, kernel.shape[1] // 2
    padded = np.pad(data.astype(np.float64), ((0, 0), (pr, pr), (pc, pc)))
    padded_valid = np.pad(valid, ((pr, pr), (pc, pc)))
    sums = (sliding_window_view(padded, kernel.shape, axis=(1, 2)) * kernel).sum(axis=(-2, -1))
    read = kernel != 0
    read[pr, pc] = True
    needed = sliding_window_view(padded_valid, kernel.shape) | ~read
    out_valid = needed.all(axis=(-2, -1))
    if np.dtype(data.dtype).kind in "iu":
        info = np.iinfo(data.dtype)
        sums = np.clip(np.where(sums >= 0, np.floor(sums + 0.5), np.ceil(sums - 0.5)), info.min, info.max)
    return np.where(out_valid, sums, 0).astype(data.dtype), out_valid


def raster(data: np.ndarray, valid: np.ndarray | None = None) -> Raster:
    valid = np.ones(data.shape[1:], bool) if valid is None else valid
    return Raster(data, valid, BandsInfo(tuple(f"b{i}" for i in range(data.shape[0])), data.dtype.name, None))


def run(rule, data: np.ndarray, valid: np.ndarray | None = None):
    out = parse_rule(json.loads(rule) if isinstance(rule, str) else rule).apply(raster(data, valid), grid=None)
    return out.data, out.valid


def convolution(**arguments) -> dict:
    return {"rasterFunction": "Convolution", "rasterFunctionArguments": arguments}


def random_block(dtype: str, shape=(2, 23, 29), seed: int = 1):
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        data = rng.normal(100, 50, shape)
    else:
        info = np.iinfo(dtype)
        data = rng.integers(info.min, info.max, shape, endpoint=True)
    valid = rng.random(shape[1:]) > 0.05
    return data.astype(dtype), valid


# ---- Convolution ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", sorted(PREDEFINED))
def test_each_predefined_kernel_is_the_sliding_sum(kind):
    data, valid = random_block("float64")
    out, out_valid = run(convolution(Type=kind), data, valid)
    expected, expected_valid = reference(data, valid, kernel_of(PREDEFINED[kind]))
    np.testing.assert_array_equal(out_valid, expected_valid)
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-9)
    assert out.dtype == np.float64
    assert parse_rule(convolution(Type=kind)).buffer == len(kernel_of(PREDEFINED[kind])) // 2


def test_the_convolution_type_alias_mirror_edges_and_none():
    data, valid = random_block("int16")
    sharpened = run(convolution(Type=13), data, valid)
    for same in (convolution(ConvolutionType=13), convolution(Type=13, MirrorEdges=True),
                 convolution(type=13, mirrorEdges="false", Rows=5)):  # Rows describes user kernels only
        np.testing.assert_array_equal(run(same, data, valid)[0], sharpened[0])
    chain = parse_rule(convolution(Type=255))
    assert chain.buffer == 0 and not chain.is_identity
    out, out_valid = run(convolution(Type=255), data, valid)
    np.testing.assert_array_equal(out, data)
    np.testing.assert_array_equal(out_valid, valid)


@pytest.mark.parametrize("rows, columns, kernel", [
    (3, 3, [0, -1, 0, -1, 5, -1, 0, -1, 0]),  # a sharpen (sum 1: not divided)
    (1, 5, [1, 2, 3, 2, 1]),  # sum 9: divided by it
    (5, 3, list(range(-7, 8))),  # sum 0: not divided
])
def test_user_kernels(rows, columns, kernel):
    data, valid = random_block("float32")
    out, out_valid = run(convolution(Type=-1, Rows=rows, Columns=columns, Kernel=kernel), data, valid)
    expected, expected_valid = reference(data, valid, np.array(kernel, float).reshape(rows, columns))
    np.testing.assert_array_equal(out_valid, expected_valid)
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-3)
    assert parse_rule(convolution(Type=-1, Rows=rows, Columns=columns, Kernel=kernel)).buffer == max(rows, columns) // 2


def test_a_nodata_neighbour_makes_nodata_unless_its_weight_is_zero():
    data = np.arange(25, dtype=np.float32).reshape(1, 5, 5)
    valid = np.ones((5, 5), bool)
    valid[2, 2] = False
    _, sharpened = run(convolution(Type=13), data, valid)  # every weight non-zero: each interior window holds (2, 2)
    assert not sharpened.any()  # and the others run off the array
    valid[2, 2], valid[0, 0] = True, False
    out, laplacian_valid = run(convolution(Type=15), data, valid)  # the corners weigh 0: (0, 0) is not read by (1, 1)
    assert laplacian_valid[1:4, 1:4].all() and laplacian_valid.sum() == 9
    assert out[0, 2, 2] == 4 * 12 - 7 - 11 - 13 - 17 and out[0, 0, 0] == 0
    valid[0, 0], valid[2, 2] = True, False
    _, zeros_valid = run(convolution(Rows=3, Columns=3, Kernel=[0] * 9), data, valid)  # reads nothing but itself
    assert zeros_valid.sum() == 24 and not zeros_valid[2, 2]


def test_integers_are_rounded_half_away_from_zero_and_clamped():
    data = np.array([[[1, 0, -1, 0, 3, 0, 30000, 0]]], np.int16)
    out, valid = run(convolution(Type=-1, Rows=1, Columns=3, Kernel=[0, 1.5, -0.5]), data)  # 1.5 v[c] − 0.5 v[c+1]
    assert valid[0].tolist() == [True] * 7 + [False]  # the zero weight reads nothing west
    # 1.5 → 2, 0.5 → 1, −1.5 → −2, −1.5 → −2, 4.5 → 5, then 45000 clamped to S16
    assert out[0, 0].tolist() == [2, 1, -2, -2, 5, -15000, 32767, 0]
    bright = np.array([[[10, 10, 10], [10, 250, 10], [10, 10, 10]]], np.uint8)
    assert run(convolution(Type=13), bright)[0][0, 1, 1] == 255  # 9·250 − 80 clamped to U8
    assert run(convolution(Type=13), 255 - bright)[0][0, 1, 1] == 0  # 9·5 − 8·245 clamped at 0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", [11, 14, -1])
def test_every_pixel_type_keeps_its_type(dtype, kind):
    data, valid = random_block(dtype)
    user = kernel_of("0,-1,0, -1,5,-1, 0,-1,0")
    rule = convolution(Type=kind, Rows=3, Columns=3, Kernel=user.ravel().tolist())
    out, out_valid = run(rule, data, valid)
    expected, expected_valid = reference(data, valid, user if kind == -1 else kernel_of(PREDEFINED[kind]))
    assert out.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(out_valid, expected_valid)
    if np.dtype(dtype).kind == "f":
        np.testing.assert_allclose(out, expected, rtol=1e-6)
    else:
        np.testing.assert_array_equal(out, expected)
    assert parse_rule(rule).describe(raster(data, valid).info).dtype == dtype


def test_an_overflowing_sum_is_nodata():
    data = np.array([[[1e308, 0, -1e308, 0]]])
    out, valid = run(convolution(Type=-1, Rows=1, Columns=3, Kernel=[2, 0, -1]), data)
    assert valid.tolist() == [[False, False, True, False]] and out[0, 0, 1] == 0 and out[0, 0, 2] == 0


@pytest.mark.parametrize("rule", [SHARPEN_RULE, json.dumps(convolution(Type=12)),
                                  '{"rasterFunction":"Statistics","rasterFunctionArguments":{"Type":6,"Rows":5,'
                                  '"Columns":5}}'], ids=["sharpen", "smoothing5x5", "majority5x5"])
def test_kernels_give_the_same_bytes_from_four_threads(rule):
    data, valid = random_block("uint16", shape=(2, 300, 300))
    expected = run(rule, data, valid)
    results = [None] * 4

    def work(i):
        results[i] = run(rule, data, valid)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for out, out_valid in results:
        assert out.tobytes() == expected[0].tobytes() and out_valid.tobytes() == expected[1].tobytes()


def test_the_sharpen_rule_through_the_core(image_service):
    """docs/protocol.md §6.3b: the user-defined sharpen over the DEM, against the reference on the source pixels
    (a one-pixel wider export gives the neighbours of the edge pixels)."""
    source, valid = export(image_service, "dem", bbox=native_bbox(189, 521, 89, 401), size="332,312",
                           interpolation="RSP_NearestNeighbor")
    out, out_valid = export(image_service, "dem", bbox=native_bbox(190, 520, 90, 400), size="330,310",
                            renderingRule=SHARPEN_RULE, interpolation="RSP_NearestNeighbor")
    expected, expected_valid = reference(source, valid, kernel_of("0,-1,0, -1,5,-1, 0,-1,0"))
    assert out.dtype == np.float32 and not out_valid.all() and out_valid.any()  # the DEM's hole is in there
    np.testing.assert_array_equal(out_valid, expected_valid[1:-1, 1:-1])
    np.testing.assert_allclose(out[0][out_valid], expected[0, 1:-1, 1:-1][out_valid], rtol=1e-5)


@pytest.mark.parametrize("service", ["whole", "halves"])
def test_a_5x5_convolution_gives_seamless_tiles(core, service):  # noqa: F811 (the fixture)
    rule = json.dumps(convolution(Type=14))
    whole, whole_valid = export(core, service, bbox=native_bbox(200, 520), size="320,300", renderingRule=rule)
    left, left_valid = export(core, service, bbox=native_bbox(200, 360), size="160,300", renderingRule=rule)
    right, right_valid = export(core, service, bbox=native_bbox(360, 520), size="160,300", renderingRule=rule)
    np.testing.assert_array_equal(np.concatenate([left_valid, right_valid], axis=1), whole_valid)
    np.testing.assert_array_equal(np.concatenate([left, right], axis=2), whole)
    assert whole_valid.any()


@pytest.mark.parametrize("arguments, fragment", [
    ({"Type": -1, "Rows": 3, "Columns": 3, "Kernel": [1, 2, 3]}, "Kernel"),
    ({"Type": -1, "Rows": 4, "Columns": 3, "Kernel": [1] * 12}, "Rows"),
    ({"Type": -1, "Rows": 3, "Columns": 33, "Kernel": [1] * 99}, "Columns"),
    ({"Type": -1, "Rows": 3, "Columns": 3, "Kernel": "sharpen"}, "Kernel"),
    ({"Type": 22}, "Type"),
    ({"Type": 3, "MirrorEdges": "sometimes"}, "MirrorEdges"),
])
def test_bad_convolution_arguments_are_refused_by_name(arguments, fragment):
    with pytest.raises(ImgsvcError) as info:
        parse_rule(convolution(**arguments))
    assert info.value.kind is ErrorKind.INVALID_ARGUMENT and info.value.parameter == "renderingRule"
    assert f"Convolution argument {fragment}" in info.value.text


# ---- focal Statistics ------------------------------------------------------------------------------------------

def statistics(kind: int, rows: int = 3, columns: int = 3) -> dict:
    return {"rasterFunction": "Statistics", "rasterFunctionArguments": {"Type": kind, "Rows": rows, "Columns": columns}}


def test_majority_and_minority_by_hand():
    data = np.array([[[1, 1, 2, 7],
                      [3, 2, 2, 7],
                      [9, 3, 3, 7]]], np.uint8)
    valid = np.ones((3, 4), bool)
    valid[2, 0] = False  # the 9 is NoData: left out
    majority, majority_valid = run(statistics(6), data, valid)
    minority, _ = run(statistics(7), data, valid)
    assert majority_valid.all() and majority.dtype == np.uint8
    # (1, 1): 1 1 2 / 3 2 2 / · 3 3 → 2 and 3 three times each: the tie goes to the smaller, 2;
    # (0, 3): 2 7 / 2 7 → a tie again: 2;  (2, 2): 2 2 7 / 3 3 7 → 2, 3 and 7 twice each: 2
    assert majority[0].tolist() == [[1, 2, 2, 2], [1, 2, 2, 7], [3, 3, 2, 7]]
    # (0, 0): 1 1 / 3 2 → 2 and 3 once each: 2;  (1, 3): 2 7 / 2 7 / 3 7 → 3 once
    assert minority[0].tolist() == [[2, 3, 1, 2], [2, 1, 1, 3], [2, 2, 2, 2]]


def test_statistics_match_numpy_with_nodata_and_even_windows():
    data, valid = random_block("int32", shape=(2, 40, 37), seed=4)
    valid[10:14, 5:12] = False
    for kind, reduce in ((1, np.nanmin), (2, np.nanmax), (3, np.nanmean), (4, np.nanstd), (5, np.nanmedian)):
        for rows, columns in ((3, 3), (5, 3), (4, 6)):
            out, out_valid = run(statistics(kind, rows, columns), data, valid)
            values = np.where(valid, data, np.nan)
            before, after = (rows // 2, columns // 2), (rows - 1 - rows // 2, columns - 1 - columns // 2)
            padded = np.pad(values, ((0, 0), (before[0], after[0]), (before[1], after[1])), constant_values=np.nan)
            windows = sliding_window_view(padded, (rows, columns), axis=(1, 2))
            with np.errstate(invalid="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # the windows wholly in the hole: NaN, NoData
                expected = reduce(windows, axis=(-2, -1))
            np.testing.assert_array_equal(out_valid, ~np.isnan(expected[0]))
            np.testing.assert_allclose(out[:, out_valid], expected[:, out_valid], rtol=1e-6)


def test_majority_keeps_the_type_and_fills_nodata_only_when_asked():
    data = np.array([[[5, 5, 5], [5, 0, 6], [6, 6, 6]]], np.int16)
    valid = np.ones((3, 3), bool)
    valid[1, 1] = False
    rule = statistics(6)
    rule["rasterFunctionArguments"]["FillNoDataOnly"] = True
    out, out_valid = run(rule, data, valid)
    assert out_valid.all() and out[0, 1, 1] == 5 and out[0, 2, 2] == 6  # 5 four times, 6 four times: the smaller
    assert parse_rule(rule).describe(raster(data, valid).info).dtype == "int16"


# ---- Resample ------------------------------------------------------------------------------------------------------

RESAMPLE_QUERY = {"bbox": native_bbox(200.3, 420.3, 100.6, 300.6), "size": "330,290"}  # off the source grid


@pytest.mark.parametrize("code, interpolation", [(0, "RSP_NearestNeighbor"), (1, "RSP_BilinearInterpolation"),
                                                 (2, "RSP_CubicConvolution"), (3, "RSP_Majority")])
def test_resample_over_the_service_image_chooses_the_resampling(image_service, code, interpolation):
    rule = json.dumps({"rasterFunction": "Resample", "rasterFunctionArguments": {"ResamplingType": code}})
    other = "RSP_BilinearInterpolation" if code == 0 else "RSP_NearestNeighbor"
    resampled, valid = export(image_service, "dem", renderingRule=rule, interpolation=other, **RESAMPLE_QUERY)
    expected, expected_valid = export(image_service, "dem", interpolation=interpolation, **RESAMPLE_QUERY)
    np.testing.assert_array_equal(valid, expected_valid)
    np.testing.assert_array_equal(resampled, expected)
    assert not np.array_equal(resampled, export(image_service, "dem", interpolation=other, **RESAMPLE_QUERY)[0])


def test_resample_under_a_function_and_without_a_type():
    nested = {"rasterFunction": "Statistics", "rasterFunctionArguments": {
        "Raster": {"rasterFunction": "Resample", "rasterFunctionArguments": {"ResamplingType": 1}}}}
    assert parse_rule(nested).resampling == "bilinear" and parse_rule(nested).buffer == 1
    plain = parse_rule({"rasterFunction": "Resample", "rasterFunctionArguments": {"InputCellsize": {"x": 0, "y": 0}}})
    assert plain.resampling is None and plain.is_identity


@pytest.mark.parametrize("rule, fragment, kind", [
    ({"rasterFunction": "Resample", "rasterFunctionArguments": {"ResamplingType": 1, "Raster": statistics(3)}},
     "Resample over Statistics", ErrorKind.UNIMPLEMENTED),
    ({"rasterFunction": "Resample", "rasterFunctionArguments": {"ResamplingType": 4}}, "BilinearPlus",
     ErrorKind.UNIMPLEMENTED),
    ({"rasterFunction": "Resample", "rasterFunctionArguments": {"ResamplingType": 7}}, "vector",
     ErrorKind.UNIMPLEMENTED),
    ({"rasterFunction": "Resample", "rasterFunctionArguments": {"ResamplingType": 10}}, "magnitude-direction",
     ErrorKind.UNIMPLEMENTED),
    ({"rasterFunction": "Resample", "rasterFunctionArguments": {"ResamplingType": 11}}, "ResamplingType",
     ErrorKind.INVALID_ARGUMENT),
    ({"rasterFunction": "Resample", "rasterFunctionArguments": {"OutputCellsize": {"x": 60, "y": 60}}},
     "OutputCellsize", ErrorKind.UNIMPLEMENTED),
    ({"rasterFunction": "Resample", "rasterFunctionArguments": {"InputCellsize": 30}}, "InputCellsize",
     ErrorKind.INVALID_ARGUMENT),
], ids=["over-a-function", "bilinear-plus", "vector-uv", "vector-magdir", "unknown", "output-cellsize",
        "input-cellsize-number"])
def test_resample_refusals_name_what_is_refused(rule, fragment, kind):
    with pytest.raises(ImgsvcError) as info:
        parse_rule(rule)
    assert info.value.kind is kind and fragment in info.value.text and info.value.parameter == "renderingRule"


def test_two_resamplings_of_the_service_image_must_agree(monkeypatch):
    monkeypatch.setitem(REGISTRY, "testsum", _SumOfRasters)

    def resample(code):
        return {"rasterFunction": "Resample", "rasterFunctionArguments": {"ResamplingType": code}}

    same = parse_rule({"rasterFunction": "TestSum", "rasterFunctionArguments": {"Rasters": [resample(2), resample(2)]}})
    assert same.resampling == "cubic"
    with pytest.raises(ImgsvcError, match="different resamplings"):
        parse_rule({"rasterFunction": "TestSum", "rasterFunctionArguments": {"Rasters": [resample(0), resample(1)]}})
