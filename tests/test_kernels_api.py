"""imgsvc.kernels beyond GDAL parity: argument checks, pixel types, the affine fast path, unprojectable points,
thread safety and properties on random grids."""
from __future__ import annotations

import concurrent.futures
import math
import threading

import numpy as np
import pytest
from affine import Affine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyproj import CRS

from imgsvc import kernels, sr
from imgsvc.errors import ErrorKind, ImgsvcError

UTM33 = CRS.from_epsg(32633)
SRC_TRANSFORM = Affine(100.0, 0.0, 480000.0, 0.0, -100.0, 5550000.0)


def field(dtype="f4", bands=1, shape=(120, 130), seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:shape[0], 0:shape[1]]
    f = 100 + 50 * np.sin(x / 7.0) + 40 * np.cos(y / 9.0)
    return np.stack([f + rng.normal(0, 3, shape) + 10 * b for b in range(bands)]).astype(dtype)


def grid(crs: CRS, width: int, area=(482000.0, 5540000.0, 490000.0, 5548000.0)):
    x0, y0, x1, y1 = sr.transform_bounds(UTM33, crs, area)
    res = max((x1 - x0) / width, (y1 - y0) / width)
    return Affine(res, 0.0, x0, 0.0, -res, y1), (int(round((y1 - y0) / res)), width)


# --- convert_pixel_type ---------------------------------------------------------------------------------------

INT_TYPES = {"U1": (np.uint8, 0, 1), "U2": (np.uint8, 0, 3), "U4": (np.uint8, 0, 15), "U8": (np.uint8, 0, 255),
             "S8": (np.int8, -128, 127), "U16": (np.uint16, 0, 65535), "S16": (np.int16, -32768, 32767),
             "U32": (np.uint32, 0, 4294967295), "S32": (np.int32, -2147483648, 2147483647)}


@pytest.mark.parametrize("pixel_type", sorted(INT_TYPES))
def test_float_to_integer_types_clip_round_half_away_from_zero_and_zero_nan(pixel_type):
    dtype, lo, hi = INT_TYPES[pixel_type]
    values = np.array([lo - 1e12, lo - 0.5, lo, lo + 0.5, lo + 1.5, hi - 0.5, hi, hi + 0.5, 1e12, np.nan, -2.5, 2.5],
                      dtype=np.float64)
    data = values.reshape(1, 1, -1)
    valid = np.ones((1, values.size), bool)
    out = kernels.convert_pixel_type(data, valid, pixel_type)
    assert out.dtype == dtype
    expected = []
    for v in values:
        if math.isnan(v):
            expected.append(0)
            continue
        rounded = math.floor(abs(v) + 0.5) * (1 if v >= 0 else -1)  # half away from zero
        expected.append(min(max(rounded, lo), hi))
    assert out.ravel().tolist() == expected


@pytest.mark.parametrize("pixel_type", sorted(INT_TYPES))
@pytest.mark.parametrize("source_dtype", ["u1", "i1", "u2", "i2", "u4", "i4"])
def test_integer_to_integer_types_clip(pixel_type, source_dtype):
    dtype, lo, hi = INT_TYPES[pixel_type]
    info = np.iinfo(source_dtype)
    candidates = [info.min, -1, 0, 1, 2, 3, 15, 16, 255, 256, 65535, 65536, info.max]
    values = np.array([v for v in candidates if info.min <= v <= info.max], dtype=source_dtype)
    out = kernels.convert_pixel_type(values.reshape(1, 1, -1), np.ones((1, values.size), bool), pixel_type)
    assert out.dtype == dtype
    assert out.ravel().tolist() == [min(max(int(v), lo), hi) for v in values]


def test_float_types_clip_to_range_and_keep_values():
    values = np.array([-1e300, -1.5, 0.25, 3.4e38, 1e300, np.nan], dtype=np.float64).reshape(1, 1, -1)
    valid = np.ones((1, 6), bool)
    f32 = kernels.convert_pixel_type(values, valid, "F32")
    fmax = np.finfo(np.float32).max
    assert f32.dtype == np.float32
    assert f32.ravel().tolist() == [-fmax, -1.5, 0.25, np.float32(3.4e38), fmax, 0.0]
    f64 = kernels.convert_pixel_type(values[:, :, 1:4].astype(np.float32), valid[:, 1:4], "F64")
    assert f64.dtype == np.float64 and f64.ravel()[:2].tolist() == [-1.5, 0.25]


def test_invalid_pixels_become_zero_and_unknown_is_identity():
    data = np.full((2, 2, 2), 7.6, dtype=np.float32)
    valid = np.array([[True, False], [False, True]])
    out = kernels.convert_pixel_type(data, valid, "U8")
    assert out[:, valid].tolist() == [[8, 8], [8, 8]] and not out[:, ~valid].any()
    assert kernels.convert_pixel_type(data, valid, "UNKNOWN") is data


@pytest.mark.parametrize("pixel_type", ["C64", "C128"])
def test_complex_pixel_types_are_refused(pixel_type):
    with pytest.raises(ImgsvcError) as err:
        kernels.convert_pixel_type(np.zeros((1, 1, 1), "f4"), np.ones((1, 1), bool), pixel_type)
    assert err.value.kind is ErrorKind.UNIMPLEMENTED and pixel_type in err.value.text


@pytest.mark.parametrize("pixel_type, valid", [("F16", np.ones((1, 1), bool)), ("U8", np.ones((2, 1), bool)),
                                               ("U8", np.ones((1, 1), "u1"))])
def test_a_pixel_type_or_mask_no_request_can_produce_is_a_value_error(pixel_type, valid):
    with pytest.raises(ValueError):
        kernels.convert_pixel_type(np.zeros((1, 1, 1), "f4"), valid, pixel_type)


# --- reproject: arguments and paths ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["c8", "c16"])
def test_complex_sources_are_a_type_error_naming_c64_c128(dtype):
    # The read stage never hands over complex pixels (the catalog refuses such rasters): one here is a bug.
    with pytest.raises(TypeError) as err:
        kernels.reproject(np.zeros((1, 4, 4), dtype), None, SRC_TRANSFORM, UTM33, SRC_TRANSFORM, UTM33, (4, 4),
                          "nearest")
    assert "C64" in str(err.value) and "C128" in str(err.value)


@pytest.mark.parametrize("kwargs", [dict(resampling="lanczos"), dict(dst_shape=(0, 4)), dict(max_error=-1.0),
                                    dict(source_valid=np.ones((3, 3), bool)), dict(source=np.zeros((4, 4), "u1"))])
def test_bad_arguments_are_a_value_error_not_a_client_error(kwargs):
    args = dict(source=np.zeros((1, 4, 4), "u1"), source_valid=None, src_transform=SRC_TRANSFORM, src_crs=UTM33,
                dst_transform=SRC_TRANSFORM, dst_crs=UTM33, dst_shape=(4, 4), resampling="nearest")
    args.update(kwargs)
    max_error = args.pop("max_error", kernels.DEFAULT_MAX_ERROR)
    with pytest.raises(ValueError):
        kernels.reproject(**args, max_error=max_error)


def test_same_crs_takes_the_affine_path_without_projecting(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("same CRS must not project")

    monkeypatch.setattr(sr, "transform_points", fail)
    source = field("u2")
    dst = Affine(50.0, 0.0, 481000.0, 0.0, -50.0, 5548000.0)
    data, valid = kernels.reproject(source, None, SRC_TRANSFORM, UTM33, dst, UTM33, (100, 100), "nearest")
    # 2x upsampling of an aligned grid: output pixel (r, c) lies in source pixel (20 + r // 2, 10 + c // 2).
    assert valid.all()
    assert np.array_equal(data[0], source[0, 20:70, 10:60].repeat(2, 0).repeat(2, 1))


def test_unprojectable_points_are_invalid_not_errors():
    # A source in Web Mercator seen from a polar stereographic grid reaching past the pole: output points beyond
    # Mercator's latitude limit cannot be projected.
    source = field("f4", shape=(200, 200))
    src_transform = Affine(200000.0, 0.0, -20000000.0, 0.0, -100000.0, 20000000.0)
    dst = Affine(40000.0, 0.0, -2000000.0, 0.0, -40000.0, 2000000.0)
    data, valid = kernels.reproject(source, None, src_transform, CRS.from_epsg(3857), dst, CRS.from_epsg(3413),
                                    (100, 100), "bilinear")
    assert 0 < valid.mean() < 1
    assert not valid[50, 50]  # the pole itself has no Mercator y
    assert np.isfinite(data).all() and not data[:, ~valid].any()


def test_nan_source_pixels_are_invalid():
    source = field("f8")
    source[0, 40:60, 40:60] = np.nan
    data, valid = kernels.reproject(source, None, SRC_TRANSFORM, UTM33, SRC_TRANSFORM, UTM33, source.shape[1:],
                                    "bilinear")
    assert not valid[40:60, 40:60].any() and valid[:30].all() and not np.isnan(data).any()


@pytest.mark.parametrize("resampling", kernels.RESAMPLINGS)
@pytest.mark.parametrize("dtype, bands", [("f4", 1), ("u2", 4), ("i2", 1), ("f8", 3)])
def test_a_mask_valid_everywhere_is_the_same_as_none_and_a_hole_is_not(resampling, dtype, bands):
    """The kernels drop a mask with every pixel valid (they then test no tap): the same bytes as no mask, at 1:1
    and downsampled; one invalid pixel still changes what is around it."""
    source = field(dtype, bands=bands, shape=(240, 260))
    for width in (260, 97):
        dst, shape = grid(UTM33, width)
        args = (SRC_TRANSFORM, UTM33, dst, UTM33, shape, resampling)
        bare = kernels.reproject(source, None, *args)
        masked = kernels.reproject(source, np.ones(source.shape[1:], bool), *args)
        assert np.array_equal(bare[0], masked[0]) and np.array_equal(bare[1], masked[1])
        holed = np.ones(source.shape[1:], bool)
        holed[50:60, 50:60] = False
        assert not np.array_equal(bare[1], kernels.reproject(source, holed, *args)[1])


@pytest.mark.parametrize("resampling", ["bilinear", "cubic"])
@pytest.mark.parametrize("dtype, bands", [("u2", 4), ("u1", 3), ("f4", 5), ("f8", 9)])
def test_bands_resampled_together_are_each_bands_own_bytes(resampling, dtype, bands):
    """The filtered kernels sum a chunk of bands in one pass over the taps (a full chunk in registers): each band
    comes out as the one-band kernel (GDAL's arithmetic, tests/test_kernels.py) makes it, with and without a mask."""
    source = field(dtype, bands=bands, shape=(240, 260))
    holed = np.ones(source.shape[1:], bool)
    holed[50:60, 50:60] = False
    for width, mask in ((97, None), (97, holed), (61, holed)):
        dst, shape = grid(UTM33, width)
        args = (SRC_TRANSFORM, UTM33, dst, UTM33, shape, resampling)
        together, valid = kernels.reproject(source, mask, *args)
        for band in range(bands):
            alone, alone_valid = kernels.reproject(source[band:band + 1], mask, *args)
            assert np.array_equal(valid, alone_valid)
            assert np.array_equal(together[band], alone[0])


@pytest.mark.parametrize("resampling", ["bilinear", "cubic"])
@pytest.mark.parametrize("dtype, bands", [("f4", 1), ("u2", 4), ("u1", 3), ("f8", 6)])
def test_downsampling_skips_zero_weight_taps_without_changing_a_bit(monkeypatch, resampling, dtype, bands):
    """The filtered kernels leave out the taps of zero weight when every valid pixel is finite: the same bytes as
    summing them all (what they do otherwise), with and without a mask; a valid Inf keeps every tap (0 x Inf is
    NaN, which the sums carry as GDAL's do)."""
    source = field(dtype, bands=bands, shape=(240, 260))
    mask = np.random.default_rng(1).random(source.shape[1:]) > 0.05
    # 240 x 220 source pixels onto 100 a side: the filtered kernels
    dst, shape = grid(CRS.from_epsg(3857), 100, area=(481000.0, 5527000.0, 505000.0, 5549000.0))
    if dtype.startswith("f"):
        infinite = source.copy()
        infinite[0, 100:104, 100:104] = np.inf
        cases = [(source, None), (source, mask), (infinite, mask)]
    else:
        cases = [(source, None), (source, mask)]
    skipping = [kernels.reproject(s, m, SRC_TRANSFORM, UTM33, dst, CRS.from_epsg(3857), shape, resampling)
                for s, m in cases]
    assert kernels._method(resampling, kernels._ExactMap(SRC_TRANSFORM, UTM33, dst, CRS.from_epsg(3857)), *shape,
                           *source.shape[1:])[0] in (kernels._warp.FILTERED_BILINEAR, kernels._warp.FILTERED_CUBIC)
    monkeypatch.setattr(kernels, "_valid_pixels_finite", lambda source, valid: False)
    every_tap = [kernels.reproject(s, m, SRC_TRANSFORM, UTM33, dst, CRS.from_epsg(3857), shape, resampling)
                 for s, m in cases]
    for (data, valid), (expected, expected_valid) in zip(skipping, every_tap):
        assert data.tobytes() == expected.tobytes() and np.array_equal(valid, expected_valid)


def test_tighter_bound_moves_nearest_picks_closer_to_exact():
    dst_crs = CRS.from_epsg(3413)
    dst, shape = grid(dst_crs, 200)
    source = np.arange(120 * 130, dtype="i4").reshape(1, 120, 130)
    exact, _ = kernels.reproject(source, None, SRC_TRANSFORM, UTM33, dst, dst_crs, shape, "nearest", max_error=0.0)
    agreement = {}
    for bound in (0.5, kernels.DEFAULT_MAX_ERROR):
        data, _ = kernels.reproject(source, None, SRC_TRANSFORM, UTM33, dst, dst_crs, shape, "nearest",
                                    max_error=bound)
        agreement[bound] = (data == exact).mean()
    assert agreement[kernels.DEFAULT_MAX_ERROR] >= 0.995
    assert agreement[kernels.DEFAULT_MAX_ERROR] >= agreement[0.5]


@pytest.mark.parametrize("bound", [0.002, kernels.DEFAULT_MAX_ERROR])
@pytest.mark.parametrize("epsg", [3857, 4326, 32632, 3413])
def test_interpolated_coordinates_stay_within_the_bound(epsg, bound):
    # Bilinear resampling of a ramp reproduces the coordinate it samples (value = x - 0.5 at source x), so the kernel's
    # coordinates can be read off its output and compared with the exact transformer's, pixel by pixel (upsampling, so
    # that the 4-tap formula is used).  The source spans 1000 km so that the map bends and the lattice refines.
    src_transform = Affine(2000.0, 0.0, 0.0, 0.0, -2000.0, 6000000.0)
    ramp = np.stack(np.meshgrid(np.arange(500.0), np.arange(500.0))[::-1])[::-1].copy()  # band 0: column, 1: row
    crs = CRS.from_epsg(epsg)
    x0, y0, x1, y1 = sr.transform_bounds(UTM33, crs, (350000.0, 5350000.0, 650000.0, 5650000.0))
    res = max((x1 - x0) / 400, (y1 - y0) / 400)
    dst = Affine(res, 0.0, x0, 0.0, -res, y1)
    shape = (int(round((y1 - y0) / res)), 400)
    assert kernels._method("bilinear", kernels._ExactMap(src_transform, UTM33, dst, crs), *shape, 500, 500)[0] \
        == kernels._warp.BILINEAR
    exact, exact_valid = kernels.reproject(ramp, None, src_transform, UTM33, dst, crs, shape, "bilinear",
                                           max_error=0.0)
    data, valid = kernels.reproject(ramp, None, src_transform, UTM33, dst, crs, shape, "bilinear", max_error=bound)
    assert exact_valid.all() and valid.all()
    assert np.abs(data - exact).max() <= bound


@pytest.mark.parametrize("bound", [0.002, kernels.DEFAULT_MAX_ERROR, 0.0001])
@pytest.mark.parametrize("epsg", [3857, 4326, 3413])
def test_continental_grids_use_cubic_cells_within_the_bound(epsg, bound):
    # 4000 km on 512 pixels: bilinear would need a node every 2-4 samples; the cubics get by with one every 8 or 16.
    src_transform = Affine(8000.0, 0.0, -1500000.0, 0.0, -8000.0, 7500000.0)
    crs = CRS.from_epsg(epsg)
    x0, y0, x1, y1 = sr.transform_bounds(UTM33, crs, (-1500000.0, 3500000.0, 2500000.0, 7500000.0))
    res = max((x1 - x0) / 512, (y1 - y0) / 512)
    exact = kernels._ExactMap(src_transform, UTM33, Affine(res, 0.0, x0, 0.0, -res, y1), crs)
    lattice = kernels._coordinate_lattice(exact, 512, 512, 0.5, bound)
    assert (lattice[0] & kernels._warp.CUBIC_NODES).mean() > 0.5
    x, y = kernels._lattice_coordinates(lattice, 512, 512)
    centres = np.arange(512) + 0.5
    ex, ey = exact(centres[None, :], centres[:, None])
    assert np.isfinite(ex).all() and max(np.abs(x - ex).max(), np.abs(y - ey).max()) <= bound
    # Pixel corners (mode's lattice) too.
    corners = np.arange(513.0)
    lattice = kernels._coordinate_lattice(exact, 513, 513, 0.0, bound)
    x, y = kernels._lattice_coordinates(lattice, 513, 513)
    ex, ey = exact(corners[None, :], corners[:, None])
    assert max(np.abs(x - ex).max(), np.abs(y - ey).max()) <= bound


def test_lattice_cells_across_the_antimeridian_are_exact_per_pixel():
    # A global geographic source seen from a Web Mercator grid across x = +-20037508: PROJ wraps longitudes to
    # +-180, so the map jumps by the whole globe at the seam, and the cells across it must be projected point by point.
    wgs84, mercator = CRS.from_epsg(4326), CRS.from_epsg(3857)
    source = np.arange(360 * 720, dtype="i4").reshape(1, 360, 720)  # 0.5 degree pixels, an id per pixel
    src_transform = Affine(0.5, 0.0, -180.0, 0.0, -0.5, 90.0)
    dst = Affine(10000.0, 0.0, 19000000.0, 0.0, -10000.0, 1500000.0)  # x 19.0e6 .. 21.0e6
    shape = (300, 200)
    data, valid = kernels.reproject(source, None, src_transform, wgs84, dst, mercator, shape, "nearest")
    assert valid.all()
    r, c = np.mgrid[0:shape[0], 0:shape[1]] + 0.5
    lon, lat = sr.transform_points(mercator, wgs84, dst.c + dst.a * c, dst.f + dst.e * r)
    expected = (np.floor((90.0 - np.asarray(lat)) / 0.5) * 720 + np.floor((np.asarray(lon) + 180.0) / 0.5))
    assert (data[0] == expected).all()
    exact, _ = kernels.reproject(source, None, src_transform, wgs84, dst, mercator, shape, "nearest", max_error=0.0)
    assert np.array_equal(data, exact)
    # The seam (column 103.7) runs through lattice column 3, refined down to one sample; the columns away from it
    # are not.
    level = kernels._coordinate_lattice(kernels._ExactMap(src_transform, wgs84, dst, mercator), *shape, 0.5,
                                        kernels.DEFAULT_MAX_ERROR)[0]
    finest = kernels.LATTICE_CELL.bit_length() - 1
    level = level & ~kernels._warp.CUBIC_NODES
    assert (level[:, 3] == finest).all() and (level[:, [0, 1, 5, 6]] < finest).all()


# --- pixels_valid ---------------------------------------------------------------------------------------------

MASK_DTYPES = ["uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "float64"]


def gdal_valid(path) -> np.ndarray:
    """GDAL's dataset mask of a file, NaN pixels (in any band) taken out: what the read stage's mask must be."""
    import rasterio

    with rasterio.open(path) as src:
        data = src.read()
        valid = src.dataset_mask() > 0
    return valid & ~np.isnan(data).any(axis=0) if data.dtype.kind == "f" else valid


def write_masked(path, dtype: str, bands: int, nodata, seed: int = 0) -> np.ndarray:
    """A raster where nodata holds in some bands of some pixels and in every band of others (and NaN in floats)."""
    import rasterio

    rng = np.random.default_rng(seed)
    data = rng.integers(0, 100, (bands, 40, 50)).astype(dtype)
    value = np.asarray(nodata).astype(dtype) if nodata is not None and kernels.holds(np.dtype(dtype), nodata) else 7
    data[rng.random(data.shape) < 0.3] = value  # in some bands
    data[:, rng.random(data.shape[1:]) < 0.1] = value  # in all of them
    if data.dtype.kind == "f":
        data[rng.integers(0, bands), rng.random(data.shape[1:]) < 0.05] = np.nan
    with rasterio.open(path, "w", driver="GTiff", width=50, height=40, count=bands, dtype=dtype, nodata=nodata,
                       crs="EPSG:32633", transform=SRC_TRANSFORM) as dst:
        dst.write(data)
    return data


@pytest.mark.parametrize("dtype", MASK_DTYPES)
@pytest.mark.parametrize("bands", [1, 3, 5])
def test_pixels_valid_is_gdals_nodata_mask_without_nan(tmp_path, dtype, bands):
    data = write_masked(tmp_path / "r.tif", dtype, bands, 0)
    expected = gdal_valid(tmp_path / "r.tif")
    assert expected.any() and not expected.all()
    assert np.array_equal(kernels.pixels_valid(data, 0.0), expected)


@pytest.mark.parametrize("dtype, nodata", [("int16", 0.5), ("float32", np.nan), ("float64", np.nan),
                                           ("uint8", None), ("float32", None)])
def test_pixels_valid_with_a_nodata_value_gdal_marks_nothing_by_or_nan(tmp_path, dtype, nodata):
    """A value the type cannot hold marks nothing (GDAL); NaN as nodata and no nodata at all leave NaN out only."""
    data = write_masked(tmp_path / "r.tif", dtype, 2, nodata)
    assert np.array_equal(kernels.pixels_valid(data, nodata), gdal_valid(tmp_path / "r.tif"))


def test_pixels_valid_ignores_a_nodata_value_out_of_the_types_range():
    """Values GDAL itself will not write as a band's nodata (rasterio refuses them), but that files hold."""
    data = np.array([[[0, 241, 255]]], dtype="uint8")  # -9999 wraps to 241 in uint8
    assert kernels.pixels_valid(data, -9999.0).all()
    floats = np.array([[[np.inf, 1.0, np.nan]]], dtype="float32")  # 1e39 overflows float32 to inf
    assert kernels.pixels_valid(floats, 1e39).tolist() == [[True, True, False]]


def test_pixels_valid_in_threads_at_once_and_its_argument_checks():
    rng = np.random.default_rng(3)
    sources = [rng.integers(0, 3, (2, 300, 301)).astype("int16") for _ in range(8)]
    expected = [(s != 0).any(axis=0) for s in sources]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        for _ in range(3):
            assert all(np.array_equal(got, want) for got, want in
                       zip(pool.map(lambda s: kernels.pixels_valid(s, 0), sources), expected))
    assert kernels.pixels_valid(np.zeros((1, 0, 4), "uint8"), 0).shape == (0, 4)
    assert np.array_equal(kernels.pixels_valid(sources[0][:, :, ::2], 0), expected[0][:, ::2])  # not contiguous
    with pytest.raises(ValueError):
        kernels.pixels_valid(np.zeros((4, 4), "uint8"), 0)
    with pytest.raises(TypeError):
        kernels.pixels_valid(np.zeros((1, 4, 4), "complex64"), 0)


# --- threads ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("resampling", kernels.RESAMPLINGS)
def test_concurrent_calls_give_the_same_bytes_as_one_thread(resampling):
    cases = []
    for i, epsg in enumerate((3857, 4326, 32632, 3413)):
        crs = CRS.from_epsg(epsg)
        dst, shape = grid(crs, 90 + 20 * i)
        source = field(("u1", "u2", "f4", "i2")[i], bands=3, seed=i)
        valid = np.ones(source.shape[1:], bool)
        valid[30:50, 20:90] = False
        cases.append((source, valid, SRC_TRANSFORM, UTM33, dst, crs, shape, resampling))
    serial = [kernels.reproject(*case) for case in cases]
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        for _ in range(3):
            concurrent_results = list(pool.map(lambda case: kernels.reproject(*case), cases * 2))
            for (data, valid), (ref_data, ref_valid) in zip(concurrent_results, serial * 2):
                assert data.tobytes() == ref_data.tobytes() and valid.tobytes() == ref_valid.tobytes()


# --- resampling in bands of rows -----------------------------------------------------------------------------------

@pytest.mark.parametrize("resampling", ["nearest", "bilinear", "cubic"])
@pytest.mark.parametrize("width", [150, 40])  # upsampled, and downsampled 4x (the filtered kernels)
def test_bands_of_rows_give_the_bytes_of_one_pass(monkeypatch, resampling, width):
    source = field("f4", bands=2, seed=3)
    valid = np.ones(source.shape[1:], bool)
    valid[10:30, 40:70] = False
    dst, shape = grid(CRS.from_epsg(3857), width)
    whole = kernels.reproject(source, valid, SRC_TRANSFORM, UTM33, dst, CRS.from_epsg(3857), shape, resampling)
    calls = []
    monkeypatch.setattr(kernels, "ROW_BAND_SAMPLES", 7 * width)  # bands of a few rows, not cell-aligned
    banded = kernels.reproject(source, valid, SRC_TRANSFORM, UTM33, dst, CRS.from_epsg(3857), shape, resampling,
                               between_rows=lambda: calls.append(1))
    assert len(calls) >= 3
    assert banded[0].tobytes() == whole[0].tobytes() and banded[1].tobytes() == whole[1].tobytes()


def test_what_between_rows_raises_stops_the_resampling_there(monkeypatch):
    class Stop(Exception):
        pass

    calls = []

    def deadline():
        calls.append(1)
        if len(calls) == 2:
            raise Stop

    monkeypatch.setattr(kernels, "ROW_BAND_SAMPLES", 10 * 130)
    with pytest.raises(Stop):
        kernels.reproject(field(), None, SRC_TRANSFORM, UTM33, SRC_TRANSFORM, UTM33, (120, 130), "cubic",
                          between_rows=deadline)
    assert len(calls) == 2  # no band of rows after the one that raised


def test_a_row_range_outside_the_output_is_a_value_error():
    from imgsvc._kernels import warp

    out = np.zeros((1, 4, 4), np.float32)
    lattice = kernels._coordinate_lattice(kernels._ExactMap(SRC_TRANSFORM, UTM33, SRC_TRANSFORM, UTM33), 4, 4, 0.5,
                                          0.0)
    for start, stop in ((0, 5), (3, 2), (-1, 2)):
        with pytest.raises(ValueError, match="rows"):
            warp.warp_centres(field()[:, :4, :4].copy(), kernels._NO_MASK, False, *lattice, warp.NEAREST, 1.0, 1.0,
                              0, 0, False, out, np.zeros((4, 4), np.uint8), start, stop)


# --- properties -----------------------------------------------------------------------------------------------------

CRS_CHOICES = [CRS.from_epsg(code) for code in (4326, 3857, 32633, 32632, 3413, 3035)]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    dst_index=st.integers(0, len(CRS_CHOICES) - 1),
    rows=st.integers(1, 60), cols=st.integers(1, 60),
    shift=st.tuples(st.floats(-0.6, 0.6), st.floats(-0.6, 0.6)),
    zoom=st.floats(0.05, 8.0),
    resampling=st.sampled_from(kernels.RESAMPLINGS),
    dtype=st.sampled_from(["u1", "i1", "u2", "i2", "u4", "i4", "f4", "f8"]),
    hole=st.tuples(st.integers(0, 40), st.integers(0, 40), st.integers(0, 30)),
    seed=st.integers(0, 2**16),
)
def test_random_grids_never_crash_and_keep_masks_and_values_consistent(dst_index, rows, cols, shift, zoom,
                                                                        resampling, dtype, hole, seed):
    rng = np.random.default_rng(seed)
    source = rng.integers(0, 100, (2, 40, 40)).astype(dtype)
    source_valid = np.ones((40, 40), bool)
    source_valid[hole[0]:hole[0] + hole[2], hole[1]:hole[1] + hole[2]] = False
    src_transform = Affine(1000.0, 0.0, 470000.0, 0.0, -1000.0, 5560000.0)
    dst_crs = CRS_CHOICES[dst_index]
    # An output grid around the source (shifted and zoomed at random) in the target CRS.
    x0, y0, x1, y1 = sr.transform_bounds(UTM33, dst_crs, (470000.0, 5520000.0, 510000.0, 5560000.0))
    w, h = (x1 - x0) * zoom, (y1 - y0) * zoom
    cx, cy = (x0 + x1) / 2 + shift[0] * (x1 - x0), (y0 + y1) / 2 + shift[1] * (y1 - y0)
    dst = Affine(w / cols, 0.0, cx - w / 2, 0.0, -h / rows, cy + h / 2)

    data, valid = kernels.reproject(source, source_valid, src_transform, UTM33, dst, dst_crs, (rows, cols),
                                    resampling)
    assert data.shape == (2, rows, cols) and data.dtype == source.dtype and valid.dtype == np.bool_
    assert not data[:, ~valid].any()
    if resampling in ("nearest", "mode"):
        # Picked values come from valid source pixels only, band by band.
        for b in range(2):
            assert set(np.unique(data[b][valid])) <= set(np.unique(source[b][source_valid]))
    if valid.any() and resampling == "nearest":
        # Every valid output pixel's centre lies in a valid source pixel (exact transform, checked point by point).
        r, c = np.nonzero(valid)
        x, y = dst.c + dst.a * (c + 0.5), dst.f + dst.e * (r + 0.5)
        sx, sy = sr.transform_points(dst_crs, UTM33, x, y)
        col = (np.asarray(sx) - src_transform.c) / src_transform.a
        row = (np.asarray(sy) - src_transform.f) / src_transform.e
        inside = (col >= -0.01) & (col < 40.01) & (row >= -0.01) & (row < 40.01)
        assert inside.mean() >= 0.99


@pytest.fixture
def one_helper(monkeypatch):
    """A helper thread whatever the machine's cores (the pool has room for one even where a one-core machine uses
    none)."""
    monkeypatch.setattr(kernels, "_HELPER_COUNT", 1)


def test_bands_of_rows_run_on_the_helper_threads_beside_the_caller(one_helper):
    both_in = threading.Barrier(2, timeout=30)  # the first two bands wait for each other: two threads at once
    threads = []

    def work(start, stop):
        threads.append(threading.current_thread().name)
        if start < 2:
            both_in.wait()

    kernels._run_bands(work, [(i, i + 1) for i in range(6)], None)
    assert threads[0] != threads[1] and any(name.startswith("imgsvc-resample") for name in threads[:2])


def test_a_failure_in_a_helper_thread_is_the_callers_and_stops_the_bands(one_helper):
    caller_in, helper_failed = threading.Event(), threading.Event()
    done = []

    def work(start, stop):  # the helper fails while the caller is in a band
        if threading.current_thread().name.startswith("imgsvc-resample"):
            caller_in.wait(30)
            helper_failed.set()
            raise ValueError("broken band")
        caller_in.set()
        helper_failed.wait(30)
        done.append(start)

    with pytest.raises(ValueError, match="broken band"):
        kernels._run_bands(work, [(i, i + 1) for i in range(50)], None)
    assert len(done) == 1  # the caller finished its band and took none after the failure
