"""The pipeline made for many rasters and a chain of functions: a service of several items found by extent and
composited through a pixel-selection strategy, and a function stage whose buffer makes tiles meet without seams."""
from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from rasterio.io import MemoryFile
from rasterio.windows import Window

from imgsvc.catalog import Catalog, ServiceSettings
from imgsvc.errors import ErrorKind, ImgsvcError
from imgsvc.functions import REGISTRY, BandsInfo, RasterFunction, parse_rule
from imgsvc.mosaic import FirstSelection, MosaicOperation, pixel_selection
from imgsvc.grpc.requests import export_params
from imgsvc.read import compute_distributions, describe_raster
from imgsvc.rest.query import Params, export_request
from imgsvc.service import ImageService
from tests import rasters

SPLIT = 360  # the test DEM is 720 columns wide: two halves of 360 (a multiple of every overview factor)


def write_half(source, path, col_off: int, width: int):
    with rasterio.open(source) as src:
        data = src.read(window=Window(col_off, 0, width, src.height))
        origin = src.window_transform(Window(col_off, 0, width, src.height))
        return rasters.write_raster(path, data, nodata=src.nodata, origin=(origin.c, origin.f))


@pytest.fixture(scope="module")
def halves_catalog(tmp_path_factory, dem_path):
    """One catalog with the whole DEM as `whole` and its two halves, side by side, as the service `halves`."""
    folder = tmp_path_factory.mktemp("halves")
    left = write_half(dem_path, folder / "left.tif", 0, SPLIT)
    right = write_half(dem_path, folder / "right.tif", SPLIT, 720 - SPLIT)
    catalog = Catalog(folder / "catalog.sqlite")
    whole = describe_raster(dem_path)
    catalog.add_service("whole", [whole], ServiceSettings(), distributions=[compute_distributions(whole)])
    items = [describe_raster(left), describe_raster(right)]
    catalog.add_service("halves", items, ServiceSettings(), distributions=[compute_distributions(i) for i in items])
    return folder / "catalog.sqlite"


@pytest.fixture(scope="module")
def core(halves_catalog):
    return ImageService(Catalog(halves_catalog, readonly=True))


def export(core, service, **query):
    query = {"format": "tiff", "f": "image", **query}
    result = core.export_image(export_params(export_request(service, Params(query.items()))))
    with MemoryFile(result.encoded.data) as mem, mem.open() as tif:
        return tif.read(), tif.read_masks(1) > 0


def native_bbox(col0: int, col1: int, row0: int = 100, row1: int = 400) -> str:
    """A bbox on the DEM's own 30 m grid, columns [col0, col1) and rows [row0, row1)."""
    x0, y0 = rasters.ORIGIN
    return f"{x0 + 30 * col0},{y0 - 30 * row1},{x0 + 30 * col1},{y0 - 30 * row0}"


# ---- the service is a description, items are found by extent --------------------------------------------------

def test_a_service_of_two_items_describes_their_union(halves_catalog):
    catalog = Catalog(halves_catalog, readonly=True)
    whole, halves = catalog.service("whole").description, catalog.service("halves").description
    assert halves.item_count == 2 and whole.item_count == 1
    assert halves.extent == pytest.approx(whole.extent)
    assert halves.pixel_size == whole.pixel_size and (halves.columns, halves.rows) == (whole.columns, whole.rows)
    for merged, single in zip(halves.stats, whole.stats):  # merged from the two halves' distributions
        assert (merged.min, merged.max) == (single.min, single.max)
        assert merged.mean == pytest.approx(single.mean, rel=1e-9)
        assert merged.stdv == pytest.approx(single.stdv, rel=1e-6)
    assert catalog.distributions("halves")[0].count == catalog.distributions("whole")[0].count


def test_items_in_finds_only_the_items_under_a_box(halves_catalog):
    catalog = Catalog(halves_catalog, readonly=True)
    x0, y0 = rasters.ORIGIN
    left_only = (x0 + 100, y0 - 5000, x0 + 3000, y0 - 1000)
    assert [item.object_id for item in catalog.items_in("halves", left_only)] == [1]
    right_only = (x0 + 30 * SPLIT + 100, y0 - 5000, x0 + 30 * SPLIT + 3000, y0 - 1000)
    assert [item.object_id for item in catalog.items_in("halves", right_only)] == [2]
    across = (x0 + 30 * SPLIT - 100, y0 - 5000, x0 + 30 * SPLIT + 100, y0 - 1000)
    assert [item.object_id for item in catalog.items_in("halves", across)] == [1, 2]
    assert catalog.items_in("halves", (0, 0, 1, 1)) == ()
    index_rows = catalog.backend.execute("SELECT COUNT(*) FROM items_index").fetchone()[0]
    assert index_rows == 3  # the R*Tree holds both items


# ---- compositing across the seam --------------------------------------------------------------------------------

@pytest.mark.parametrize("query", [
    {"bbox": native_bbox(200, 520), "size": "320,300"},  # the source grid itself, across the seam
    {"bbox": native_bbox(250, 470), "size": "110,150"},  # 2x down: the halves' overviews
    {"bbox": "-13152000,4390000,-13140000,4402000", "bboxSR": "3857", "imageSR": "3857", "size": "300,300"},
], ids=["native", "downsampled", "web-mercator"])
def test_two_halves_export_like_the_whole(core, query):
    query = {**query, "interpolation": "RSP_NearestNeighbor"}
    whole, whole_valid = export(core, "whole", **query)
    halves, halves_valid = export(core, "halves", **query)
    assert whole_valid.any()
    np.testing.assert_array_equal(halves_valid, whole_valid)
    np.testing.assert_array_equal(halves, whole)


def test_bilinear_across_the_seam_differs_only_where_a_kernel_straddles_it(core):
    """Each item is resampled on its own (as in an ArcGIS mosaic dataset): away from the seam the halves are the
    whole exactly; on the two output columns whose bilinear taps fall on both items, each item's own edge pixel is
    used (GDAL's renormalisation at a raster's edge)."""
    query = {"bbox": native_bbox(200.5, 520.5), "size": "320,300", "interpolation": "RSP_BilinearInterpolation"}
    whole, _ = export(core, "whole", **query)
    halves, _ = export(core, "halves", **query)
    differs = np.argwhere((whole != halves).any(axis=0))
    assert set(differs[:, 1]) == {SPLIT - 200 - 1}  # only the output column straddling source columns 359|360


def test_pixel_selection_first_stops_when_every_pixel_is_filled():
    first = FirstSelection()
    top = np.zeros((1, 2, 2), np.uint8), np.array([[True, False], [True, True]])
    first.feed(*top)
    assert not first.is_done
    first.feed(np.full((1, 2, 2), 7, np.uint8), np.ones((2, 2), bool))
    assert first.is_done
    data, valid = first.result(1, (2, 2), np.dtype("uint8"))
    assert valid.all() and data.tolist() == [[[0, 7], [0, 0]]]


@pytest.mark.parametrize("operation, expected", [
    (MosaicOperation.FIRST, [1, 5, 0]), (MosaicOperation.LAST, [3, 5, 0]), (MosaicOperation.MIN, [1, 5, 0]),
    (MosaicOperation.MAX, [3, 5, 0]), (MosaicOperation.MEAN, [2, 5, 0]), (MosaicOperation.SUM, [4, 5, 0])])
def test_mosaic_operations(operation, expected):
    selection = pixel_selection(operation)
    selection.feed(np.array([[[1, 5, 9]]], np.int16), np.array([[True, True, False]]))
    selection.feed(np.array([[[3, 7, 9]]], np.int16), np.array([[True, False, False]]))
    data, valid = selection.result(1, (1, 3), np.dtype("int16"))
    assert valid.tolist() == [[True, True, False]]
    assert data[0, 0, :2].tolist() == expected[:2] and data.dtype == np.int16


# ---- mosaic rules ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("rule", [
    '{"mosaicMethod":"esriMosaicNone","mosaicOperation":"MT_FIRST"}',
    '{"mosaicMethod":"esriMosaicLockRaster","lockRasterIds":[1]}',
    '{"fids":[1]}',
    '{"where":"1=1","ascending":false}',
])
def test_a_rule_that_changes_nothing_on_a_one_raster_service_is_honoured(core, rule):
    query = {"bbox": native_bbox(100, 300), "size": "200,300"}
    plain = export(core, "whole", **query)
    ruled = export(core, "whole", mosaicRule=rule, **query)
    np.testing.assert_array_equal(ruled[0], plain[0])


def test_fids_and_lock_raster_ids_select_items(core):
    query = {"bbox": native_bbox(200, 520), "size": "320,300"}
    _, left_only = export(core, "halves", mosaicRule='{"fids":[1]}', **query)
    assert left_only[:, :SPLIT - 200].any() and not left_only[:, SPLIT - 200:].any()
    _, right_only = export(core, "halves", mosaicRule='{"mosaicMethod":"esriMosaicLockRaster","lockRasterIds":[2]}',
                           **query)
    assert right_only[:, SPLIT - 200:].any() and not right_only[:, :SPLIT - 200].any()
    _, none = export(core, "whole", mosaicRule='{"fids":[2]}', **query)
    assert not none.any()


@pytest.mark.parametrize("rule, fragment", [
    ('{"multidimensionalDefinition":[{"variableName":"t"}]}', "multidimensionalDefinition"),
])
def test_rules_a_plain_service_cannot_honour_are_refused_by_name(core, rule, fragment):
    with pytest.raises(ImgsvcError) as info:
        export(core, "whole", mosaicRule=rule)
    assert info.value.kind is ErrorKind.UNIMPLEMENTED and fragment in info.value.text
    assert info.value.parameter == "mosaicRule"


# ---- the function stage --------------------------------------------------------------------------------------------

FOCAL_MEAN = '{"rasterFunction":"Statistics","rasterFunctionArguments":{"Type":3,"KernelColumns":3,"KernelRows":3}}'
# A 5x5 maximum of the 3x3 mean: buffers add up along the chain (1 + 2).
NESTED = ('{"rasterFunction":"Statistics","rasterFunctionArguments":{"StatisticsType":2,"Columns":5,"Rows":5,'
          f'"Raster":{FOCAL_MEAN}}}}}')


def test_the_chain_buffer_is_the_sum_along_the_chain():
    assert parse_rule(json.loads(FOCAL_MEAN)).buffer == 1 and parse_rule(json.loads(NESTED)).buffer == 3
    assert parse_rule({"rasterFunction": "None"}).is_identity
    assert not parse_rule({"rasterFunction": "None", "outputPixelType": "U8"}).is_identity


@pytest.mark.parametrize("service", ["whole", "halves"])
@pytest.mark.parametrize("rule", [FOCAL_MEAN, NESTED], ids=["mean3x3", "max5x5-of-mean3x3"])
def test_a_buffered_function_gives_seamless_tiles(core, service, rule):
    """Two tiles side by side equal the export of both at once: the plan reads the chain's buffer."""
    whole, whole_valid = export(core, service, bbox=native_bbox(200, 520), size="320,300", renderingRule=rule)
    left, left_valid = export(core, service, bbox=native_bbox(200, 360), size="160,300", renderingRule=rule)
    right, right_valid = export(core, service, bbox=native_bbox(360, 520), size="160,300", renderingRule=rule)
    np.testing.assert_array_equal(np.concatenate([left_valid, right_valid], axis=1), whole_valid)
    np.testing.assert_array_equal(np.concatenate([left, right], axis=2), whole)
    assert whole.dtype == np.float32 and whole_valid.any()


def test_the_focal_mean_is_the_mean_of_each_3x3_neighbourhood(core):
    source, valid = export(core, "whole", bbox=native_bbox(199, 521, 99, 401), size="322,302",
                           interpolation="RSP_NearestNeighbor")
    mean, mean_valid = export(core, "whole", bbox=native_bbox(200, 520), size="320,300", renderingRule=FOCAL_MEAN,
                              interpolation="RSP_NearestNeighbor")
    values = np.where(valid, source[0], 0).astype(np.float64)
    windows = np.lib.stride_tricks.sliding_window_view(values, (3, 3)).sum(axis=(-2, -1))
    counts = np.lib.stride_tricks.sliding_window_view(valid.astype(np.float64), (3, 3)).sum(axis=(-2, -1))
    np.testing.assert_array_equal(mean_valid, counts > 0)
    expected = np.where(counts > 0, windows / np.maximum(counts, 1), 0)
    np.testing.assert_allclose(mean[0][mean_valid], expected[mean_valid], rtol=1e-6)


def test_none_with_an_output_pixel_type_is_honoured(core):
    data, _ = export(core, "whole", bbox=native_bbox(100, 300), size="200,300",
                     renderingRule='{"rasterFunction":"None","outputPixelType":"U8"}')
    assert data.dtype == np.uint8 and data.max() == 255  # elevations above 255 are truncated to the type


@pytest.mark.parametrize("rule, fragment, kind", [
    ('{"rasterFunction":"NoSuchFunction"}', "NoSuchFunction", ErrorKind.UNIMPLEMENTED),
    ('{"rasterFunction":"Statistics","rasterFunctionArguments":{"Type":9}}', "Type", ErrorKind.INVALID_ARGUMENT),
    ('{"rasterFunction":"Statistics","rasterFunctionArguments":{"Bogus":1}}', "Bogus", ErrorKind.INVALID_ARGUMENT),
    ('{"rasterFunction":"None","outputPixelType":"U9"}', "U9", ErrorKind.INVALID_ARGUMENT),
])
def test_bad_rendering_rules_are_refused_by_name(core, rule, fragment, kind):
    with pytest.raises(ImgsvcError) as info:
        export(core, "whole", renderingRule=rule)
    assert info.value.kind is kind and fragment in info.value.text and info.value.parameter == "renderingRule"


class _SumOfRasters(RasterFunction):
    """A test-only function over a list of rasters and numbers, as Local and CompositeBand take them."""

    NAME = "TestSum"
    RASTER_INPUTS = {"Rasters": ("Rasters",)}
    RASTER_LISTS = frozenset({"Rasters"})

    def describe(self, inputs):
        return BandsInfo(inputs[0].names, "float64", None)

    def apply(self, inputs, grid):
        valid = np.logical_and.reduce([r.valid for r in inputs])
        return sum(r.data.astype(np.float64) for r in inputs), valid


def test_raster_lists_take_the_service_image_nested_functions_and_numbers(core, monkeypatch):
    monkeypatch.setitem(REGISTRY, "testsum", _SumOfRasters)
    rule = json.loads(f'{{"rasterFunction":"TestSum","rasterFunctionArguments":{{"Rasters":["$$",{FOCAL_MEAN},0.5]}}}}')
    chain = parse_rule(rule)
    assert [type(node).__name__ for node in chain.root.inputs] == ["ServiceImage", "Call", "Constant"]
    assert chain.buffer == 1
    query = {"bbox": native_bbox(200, 360), "size": "160,300", "interpolation": "RSP_NearestNeighbor"}
    plain, valid = export(core, "whole", **query)
    mean, _ = export(core, "whole", renderingRule=FOCAL_MEAN, **query)
    total, total_valid = export(core, "whole", renderingRule=json.dumps(rule), **query)
    assert total.dtype == np.float64
    np.testing.assert_allclose(total[0][total_valid], (plain[0] + mean[0] + 0.5)[total_valid], rtol=1e-6)
    with pytest.raises(ImgsvcError, match="list of rasters"):
        parse_rule({"rasterFunction": "TestSum", "rasterFunctionArguments": {"Rasters": "$$"}})


def test_a_rule_reads_one_catalog_item_alone_by_its_objectid(core):
    """"$2" is the right half alone: the mosaic minus it is 0 where it has data, and NoData where it has none."""
    rule = {"rasterFunction": "Local", "rasterFunctionArguments": {"Operation": 2, "Rasters": ["$$", "$2"]}}
    difference, valid = export(core, "halves", bbox=native_bbox(200, 520), size="320,300",
                               renderingRule=json.dumps(rule), interpolation="RSP_NearestNeighbor")
    whole, whole_valid = export(core, "whole", bbox=native_bbox(200, 520), size="320,300",
                                interpolation="RSP_NearestNeighbor")
    right = SPLIT - 200  # the output column where the right half (OBJECTID 2) begins
    assert not valid[:, :right].any()  # the left half's columns: $2 has no data there
    np.testing.assert_array_equal(valid[:, right:], whole_valid[:, right:])
    assert (difference[0][valid] == 0).all() and valid.any()
    with pytest.raises(ImgsvcError, match=r"\$3") as info:
        export(core, "halves", renderingRule=json.dumps({**rule, "rasterFunctionArguments": {
            "Operation": 2, "Rasters": ["$$", "$3"]}}))
    assert info.value.kind is ErrorKind.INVALID_ARGUMENT and info.value.parameter == "renderingRule"
    assert parse_rule(rule).item_ids == {2}
