"""Neighbourhood functions (docs/protocol.md §6.2): focal Statistics against numpy references written here
(Majority and Minority by hand)."""
from __future__ import annotations

import json
import warnings

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from imgsvc.functions import BandsInfo, Raster, parse_rule


def raster(data: np.ndarray, valid: np.ndarray | None = None) -> Raster:
    valid = np.ones(data.shape[1:], bool) if valid is None else valid
    return Raster(data, valid, BandsInfo(tuple(f"b{i}" for i in range(data.shape[0])), data.dtype.name, None))


def run(rule, data: np.ndarray, valid: np.ndarray | None = None):
    out = parse_rule(json.loads(rule) if isinstance(rule, str) else rule).apply(raster(data, valid), grid=None)
    return out.data, out.valid


def random_block(dtype: str, shape=(2, 23, 29), seed: int = 1):
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        data = rng.normal(100, 50, shape)
    else:
        info = np.iinfo(dtype)
        data = rng.integers(info.min, info.max, shape, endpoint=True)
    valid = rng.random(shape[1:]) > 0.05
    return data.astype(dtype), valid


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
