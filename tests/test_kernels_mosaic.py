"""The mosaic operator kernels (ext/mosaic.pyx through imgsvc.kernels): for every pixel type against numpy written
here from the operators' definitions, First and Last against GDAL's VRT compositing of the same items, and from
several threads at once."""
from __future__ import annotations

import concurrent.futures

import numpy as np
import pytest
import rasterio
from affine import Affine

from imgsvc import kernels
from imgsvc.mosaic import BLEND_MIN_WEIGHT, MosaicOperation, pixel_selection

DTYPES = ["u1", "i1", "u2", "i2", "u4", "i4", "f4", "f8"]
SHAPE = (3, 60, 70)


def items(dtype: str, count: int = 4, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """``count`` random items over the type's range, each valid on a random two thirds of the grid."""
    rng = np.random.default_rng(seed)
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else None
    out = []
    for _ in range(count):
        if info is None:
            data = rng.normal(0, 1000, SHAPE).astype(dtype)
        else:
            data = rng.integers(info.min, info.max, SHAPE, endpoint=True, dtype=dtype)
        out.append((data, rng.random(SHAPE[1:]) < 0.66))
    return out


def composite(operation: MosaicOperation, stack, copy: bool = True) -> tuple[np.ndarray, np.ndarray, int]:
    """The operation over the items, top first; fed copies unless ``copy`` is False (the selection owns what it is
    fed and may write into it)."""
    selection = pixel_selection(operation)
    fed = 0
    for data, valid in stack:
        if selection.is_done:
            break
        selection.feed(*((data.copy(), valid.copy()) if copy else (data, valid)))
        fed += 1
    data, valid = selection.result(SHAPE[0], SHAPE[1:], stack[0][0].dtype)
    return data, valid, fed


def reference(operation: MosaicOperation, stack) -> tuple[np.ndarray, np.ndarray]:
    """Each output pixel from the list of the items valid there, top item first."""
    data = np.zeros(SHAPE, stack[0][0].dtype)
    valid = np.zeros(SHAPE[1:], bool)
    for r in range(SHAPE[1]):
        for c in range(SHAPE[2]):
            values = [d[:, r, c] for d, v in stack if v[r, c]]
            if not values:
                continue
            valid[r, c] = True
            column = np.array(values, np.float64)
            if operation is MosaicOperation.FIRST:
                data[:, r, c] = values[0]
            elif operation is MosaicOperation.LAST:
                data[:, r, c] = values[-1]
            elif operation is MosaicOperation.MIN:
                data[:, r, c] = np.min(np.array(values), axis=0)
            elif operation is MosaicOperation.MAX:
                data[:, r, c] = np.max(np.array(values), axis=0)
            else:
                total = column.sum(axis=0) if operation is MosaicOperation.SUM else column.mean(axis=0)
                data[:, r, c] = _convert(total, stack[0][0].dtype)
    return data, valid


def _convert(values: np.ndarray, dtype) -> np.ndarray:
    """Rounded half away from zero and clipped, as every conversion to an integer type is."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return np.clip(values, -np.finfo(dtype).max, np.finfo(dtype).max).astype(dtype)
    rounded = np.sign(values) * np.floor(np.abs(values) + 0.5)
    return np.clip(rounded, np.iinfo(dtype).min, np.iinfo(dtype).max).astype(dtype)


OPERATIONS = [MosaicOperation.FIRST, MosaicOperation.LAST, MosaicOperation.MIN, MosaicOperation.MAX,
              MosaicOperation.MEAN, MosaicOperation.SUM]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda o: o.value)
def test_each_operator_matches_its_definition_for_every_pixel_type(operation, dtype):
    stack = items(dtype)
    data, valid, _ = composite(operation, stack)
    expected, expected_valid = reference(operation, stack)
    assert data.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(valid, expected_valid)
    if operation in (MosaicOperation.MEAN, MosaicOperation.SUM) and np.dtype(dtype).kind == "f":
        np.testing.assert_allclose(data[:, valid], expected[:, valid], rtol=1e-6)
    else:
        np.testing.assert_array_equal(data[:, valid], expected[:, valid])


def test_first_stops_reading_once_every_pixel_is_filled():
    full = (np.full(SHAPE, 7, np.uint16), np.ones(SHAPE[1:], bool))
    half = (np.full(SHAPE, 3, np.uint16), np.arange(SHAPE[2])[None, :].repeat(SHAPE[1], 0) < 35)
    assert composite(MosaicOperation.FIRST, [full, half, half])[2] == 1
    data, valid, fed = composite(MosaicOperation.FIRST, [half, full, half])
    assert fed == 2 and valid.all() and (data[:, :, :35] == 3).all() and (data[:, :, 35:] == 7).all()
    assert composite(MosaicOperation.LAST, [full, half, half])[2] == 3


def test_a_read_only_first_item_is_copied_before_the_result_changes():
    """The selection owns what it is fed (the render stage resamples each item into a fresh array, so the first
    one becomes the result without a copy), except arrays it may not write, such as a cache's."""
    stack = items("u2", 2)
    for array in stack[0]:
        array.flags.writeable = False
    first = stack[0][0].copy(), stack[0][1].copy()
    for operation in OPERATIONS:
        composite(operation, stack, copy=False)
        np.testing.assert_array_equal(stack[0][0], first[0])
        np.testing.assert_array_equal(stack[0][1], first[1])


@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda o: o.value)
def test_read_only_and_strided_items_are_taken(operation):
    stack = []
    for data, valid in items("i2", 3):
        wide = np.zeros((SHAPE[0], SHAPE[1], SHAPE[2] * 2), data.dtype)
        wide[:, :, ::2] = data
        view = wide[:, :, ::2]
        view.flags.writeable = False
        stack.append((view, valid))
    expected, expected_valid = reference(operation, stack)
    data, valid, _ = composite(operation, stack, copy=False)
    np.testing.assert_array_equal(valid, expected_valid)
    np.testing.assert_array_equal(data[:, valid], expected[:, valid])


def test_blend_weights_are_the_distance_to_the_nearest_edge():
    x, y = np.meshgrid(np.arange(10.0), np.arange(8.0))
    weights = kernels.blend_weights(x, y, (0.0, 0.0, 9.0, 7.0), BLEND_MIN_WEIGHT)
    expected = np.minimum(np.minimum(x, 9 - x), np.minimum(y, 7 - y))
    np.testing.assert_array_equal(weights, np.maximum(expected, BLEND_MIN_WEIGHT))


@pytest.mark.parametrize("operation", [MosaicOperation.FIRST, MosaicOperation.LAST], ids=lambda o: o.value)
def test_first_and_last_match_gdal_vrt_compositing(tmp_path, operation):
    """A VRT draws its sources in order, each over the ones before where it has data: Last in VRT order is the
    last source, First the first (the sources given in reverse)."""
    stack = items("u2", 4, seed=3)
    paths = []
    for index, (data, valid) in enumerate(stack):
        path = tmp_path / f"item{index}.tif"
        with rasterio.open(path, "w", driver="GTiff", width=SHAPE[2], height=SHAPE[1], count=SHAPE[0], dtype="uint16",
                           crs="EPSG:32611", transform=Affine(10, 0, 500000, 0, -10, 4000000), nodata=0) as dst:
            dst.write(np.where(valid, np.maximum(data, 1), 0))  # 0 is nodata: valid pixels hold 1 or more
        paths.append(path)
    stack = [(np.maximum(d, 1), v) for d, v in stack]
    order = paths if operation is MosaicOperation.LAST else paths[::-1]
    sources = "".join(
        f'<ComplexSource><SourceFilename relativeToVRT="0">{p}</SourceFilename><SourceBand>{{band}}</SourceBand>'
        f'<NODATA>0</NODATA></ComplexSource>' for p in order)
    bands = "".join(f'<VRTRasterBand dataType="UInt16" band="{b}"><NoDataValue>0</NoDataValue>'
                    f'{sources.format(band=b)}</VRTRasterBand>' for b in range(1, SHAPE[0] + 1))
    vrt = tmp_path / "items.vrt"
    vrt.write_text(f'<VRTDataset rasterXSize="{SHAPE[2]}" rasterYSize="{SHAPE[1]}"><SRS>EPSG:32611</SRS>'
                   f'<GeoTransform>500000, 10, 0, 4000000, 0, -10</GeoTransform>{bands}</VRTDataset>')
    with rasterio.open(vrt) as src:
        gdal = src.read()
    data, valid, _ = composite(operation, stack)
    np.testing.assert_array_equal(valid, (gdal != 0).all(axis=0))
    np.testing.assert_array_equal(np.where(valid, data, 0), gdal)


@pytest.mark.parametrize("operation", OPERATIONS + [MosaicOperation.BLEND], ids=lambda o: o.value)
def test_concurrent_composites_give_the_same_bytes_as_one_thread(operation):
    stacks = [items(dtype, seed=seed) for seed in range(4) for dtype in ("u1", "f4")]
    centres = np.meshgrid(np.arange(SHAPE[2]) + 0.5, np.arange(SHAPE[1]) + 0.5)

    def run(stack):
        selection = pixel_selection(operation, centres, "EPSG:32611")
        for data, valid in stack:
            selection.feed(data.copy(), valid.copy(), _Item())
        return selection.result(SHAPE[0], SHAPE[1:], stack[0][0].dtype)

    assert_threads_agree(run, stacks)


def assert_threads_agree(run, stacks) -> None:
    """``run`` over the stacks from 4 threads at once gives the bytes it gives in one thread."""
    alone = [run(stack) for stack in stacks]
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        together = list(pool.map(run, stacks * 3))
    for (data, valid), (expected, expected_valid) in zip(together, alone * 3):
        assert data.tobytes() == expected.tobytes() and valid.tobytes() == expected_valid.tobytes()


class _Item:
    """Stands for a catalog item where Blend asks for its bounds (in the service SR: 'EPSG:32611' above)."""

    crs_wkt = "EPSG:32611"
    bounds = (10.0, 5.0, 60.0, 50.0)


@pytest.mark.parametrize("call", [
    lambda: kernels.mosaic_first(np.zeros((1, 2, 2), "u1"), np.zeros((2, 2), bool), np.zeros((1, 3, 2), "u1"),
                                 np.zeros((3, 2), bool)),
    lambda: kernels.mosaic_last(np.zeros((1, 2, 2), "u1"), np.zeros((2, 2), "u1"), np.zeros((1, 2, 2), "u1"),
                                np.zeros((2, 2), bool)),
    lambda: kernels.mosaic_accumulate(np.zeros((1, 2, 2), "f4"), np.zeros((2, 2)), np.zeros((1, 2, 2), "u1"),
                                      np.zeros((2, 2), bool)),
    lambda: kernels.blend_weights(np.zeros((2, 2)), np.zeros((2, 3)), (0, 0, 1, 1), 0.0),
])
def test_bad_operands_are_errors_before_the_loop(call):
    with pytest.raises((ValueError, TypeError)):
        call()


@pytest.mark.parametrize("dtype", DTYPES)
def test_deepest_keeps_the_two_deepest_items_with_data_for_every_pixel_type(dtype):
    stack = items(dtype, 5, seed=11)
    rng = np.random.default_rng(12)
    depths = [np.round(rng.uniform(-5, 50, SHAPE[1:])) for _ in stack]  # rounded: ties happen
    best, runner = np.zeros(SHAPE, dtype), np.zeros(SHAPE, dtype)
    best_depth, runner_depth = np.full(SHAPE[1:], -np.inf), np.full(SHAPE[1:], -np.inf)
    for (data, valid), depth in zip(stack, depths):
        kernels.mosaic_deepest(best, best_depth, runner, runner_depth, data, valid, depth)
    ranked = np.where(np.array([v for _, v in stack]), np.array(depths), -np.inf)
    # A stable sort on -depth: equal depths keep the feeding order, so the first fed is the deeper one.
    order = np.argsort(-ranked, axis=0, kind="stable")
    values = np.array([d for d, _ in stack])
    for rank, (kept, kept_depth) in enumerate(((best, best_depth), (runner, runner_depth))):
        index = order[rank]
        np.testing.assert_array_equal(kept_depth, np.take_along_axis(ranked, index[None], 0)[0])
        has = kept_depth > -np.inf
        expected = np.take_along_axis(values, index[None, None].repeat(SHAPE[0], 1), 0)[0]
        np.testing.assert_array_equal(kept[:, has], expected[:, has])


def test_concurrent_seamline_composites_give_the_same_bytes_as_one_thread():
    stacks = [items(dtype, seed=seed) for seed in range(4) for dtype in ("u2", "f8")]
    centres = np.meshgrid(np.arange(SHAPE[2]) + 0.5, np.arange(SHAPE[1]) + 0.5)

    def run(stack):
        selection = pixel_selection(MosaicOperation.FIRST, centres, "EPSG:32611", seamline_blend_width=9.0)
        for index, (data, valid) in enumerate(stack):
            item = _Item()
            item.bounds = (5.0 * index, 3.0 * index, 50.0 + 5 * index, 40.0 + 3 * index)
            selection.feed(data.copy(), valid.copy(), item)
        return selection.result(SHAPE[0], SHAPE[1:], stack[0][0].dtype)

    assert_threads_agree(run, stacks)
