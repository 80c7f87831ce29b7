"""Footprints (the outline of each item's valid data) and the default pixel size ranges of a mosaic dataset's items:
each answer follows from how the test lays the items out."""
from __future__ import annotations

import sqlite3

import numpy as np
import pytest
import shapely
from pyproj import CRS
from rasterio.io import MemoryFile
from shapely.geometry import MultiPolygon, Point, Polygon

from imgsvc import catalog_query, footprints
from imgsvc.catalog import Catalog
from imgsvc.catalog.attributes import MAX_RANGE_FACTOR
from imgsvc.cli import main
from imgsvc.grpc.requests import export_params
from imgsvc.identify import identify_params
from imgsvc.read import describe_raster, valid_outline
from imgsvc.rest.query import Params, export_request
from imgsvc.service import ImageService
from tests import rasters

X0, Y0 = rasters.ORIGIN


def triangle_scene(path, size=200, res=10.0, origin=(X0, Y0), value=7):
    """A scene whose data fills the lower-left triangle below the anti-diagonal (the rest is nodata), as a path/row
    scene's slanted edge does."""
    rows, cols = np.mgrid[0:size, 0:size]
    data = np.where(rows + cols >= size, value, 0).astype(np.uint8)[None]
    return rasters.write_raster(path, data, res=res, nodata=0, origin=origin)


def polygon(fp):
    return MultiPolygon([Polygon(r) for r in fp])


def test_an_outline_holds_every_valid_pixel_and_little_more(tmp_path):
    size, res = 200, 10.0
    item = describe_raster(triangle_scene(tmp_path / "t.tif", size, res))
    fp = valid_outline(item)
    shape = polygon(fp)
    # Every valid pixel's centre is inside; the nodata corner's far pixel is outside.
    rows, cols = np.nonzero(np.mgrid[0:size, 0:size].sum(axis=0) >= size)
    centres = shapely.points(X0 + (cols + 0.5) * res, Y0 - (rows + 0.5) * res)
    assert shapely.covers(shape, centres).all()
    assert not shape.covers(Point(X0 + res, Y0 - res))
    valid_area = (size * size + size) / 2 * res * res
    assert valid_area <= shape.area <= valid_area * 1.05
    # Esri rings: closed, outer boundaries clockwise.
    ring = fp[0]
    assert ring[0] == ring[-1] and not shapely.LinearRing(ring).is_ccw


def test_a_raster_valid_everywhere_is_its_bounds(tmp_path):
    path = rasters.write_raster(tmp_path / "full.tif", np.ones((1, 50, 60), np.uint8))
    item = describe_raster(path)
    assert polygon(valid_outline(item)).equals(shapely.box(*item.bounds))


@pytest.fixture(scope="module")
def triangles(tmp_path_factory):
    """Two triangle scenes side by side: the second's bounds start where the first's end."""
    folder = tmp_path_factory.mktemp("triangles")
    triangle_scene(folder / "west.tif", value=1)
    triangle_scene(folder / "east.tif", origin=(X0 + 2000.0, Y0), value=2)
    db = str(folder / "catalog.sqlite")
    assert main(["add", "tri", str(folder / "*.tif"), "--catalog", db]) == 0
    return ImageService(Catalog(db, readonly=True))


def query(core, **kw):
    return core.query(catalog_query.query_params("tri", **kw))


def test_query_answers_the_footprints_and_tests_them_not_the_bounds(triangles):
    whole = query(triangles, out_fields=("*",))
    shapes = {f.attributes["Name"]: polygon(f.rings) for f in whole.features}
    assert shapes["west"].area < 0.55 * 2000 * 2000
    # The north-west quarter of the west scene: inside its bounds, outside its data.
    corner = (X0 + 10, Y0 - 900, X0 + 900, Y0 - 10)
    assert query(triangles, geometry=catalog_query.query_geometry("envelope", corner)).features == ()
    assert query(triangles, geometry=catalog_query.query_geometry("envelope", corner), count_only=True).count == 0
    by_bounds = query(triangles, geometry=catalog_query.query_geometry("envelope", corner), spatial_rel="esriSpatialRelEnvelopeIntersects")
    assert [f.attributes["OBJECTID"] for f in by_bounds.features] == [2]  # "east" sorts first: OBJECTID 1 is east
    south = (X0 + 10, Y0 - 1990, X0 + 3990, Y0 - 1500)
    assert query(triangles, geometry=catalog_query.query_geometry("envelope", south), count_only=True).count == 2
    # Paging counts the footprints' matches.
    page = query(triangles, geometry=catalog_query.query_geometry("envelope", south), record_count=1)
    assert len(page.features) == 1 and page.exceeded_transfer_limit


def test_query_takes_points_and_polygons_with_holes(triangles):
    inside = (X0 + 1900.0, Y0 - 1900.0)  # the west scene's data
    assert query(triangles, geometry=catalog_query.query_geometry("point", inside)).features[0].attributes == \
        {"OBJECTID": 2}
    assert query(triangles, geometry=catalog_query.query_geometry("point", (X0 + 100, Y0 - 100)),
                 count_only=True).count == 0
    # A polygon over the east scene's data only (its south-east corner): only the east scene meets it.
    corner = ((X0 + 3900, Y0 - 1990), (X0 + 3990, Y0 - 1990), (X0 + 3990, Y0 - 1900), (X0 + 3900, Y0 - 1990))
    assert query(triangles, geometry=catalog_query.query_geometry("polygon", (corner,)),
                 ids_only=True).object_ids == (1,)
    # Esri polygon rings combine by the even-odd rule: a counter-clockwise ring inside is a hole.
    outer = ((0, 0), (0, 10), (10, 10), (10, 0), (0, 0))
    hole = ((2, 2), (8, 2), (8, 8), (2, 8), (2, 2))
    utm = CRS.from_epsg(32611)
    holed = footprints.area("polygon", (outer, hole), utm, utm)
    assert not holed.covers(Point(5, 5)) and holed.covers(Point(1, 1))


def test_query_pixel_size_keeps_the_items_visible_there(resolutions):
    core = ImageService(Catalog(resolutions, readonly=True))
    names = {px: {f.attributes["Name"] for f in core.query(catalog_query.query_params(
        "res", out_fields=("Name",), pixel_size=(px, px, None))).features} for px in (5.0, 40.0, 1000.0)}
    assert names == {5.0: {"fine", "alone"}, 40.0: {"fine", "coarse", "alone"}, 1000.0: set()}
    # The same pixel size given in degrees (≈ 40 m at the service's latitude).
    degrees = core.query(catalog_query.query_params("res", out_fields=("Name",),
                                                    pixel_size=(0.00045, 0.00045, CRS.from_epsg(4326))))
    assert {f.attributes["Name"] for f in degrees.features} == {"fine", "coarse", "alone"}


def test_export_and_identify_skip_items_whose_footprint_misses(triangles):
    corner = export_params(export_request("tri", Params({
        "bbox": f"{X0 + 10},{Y0 - 900},{X0 + 900},{Y0 - 10}", "size": "50,50", "format": "tiff"}.items())))
    assert triangles.plan_export(corner).plan.reads == ()
    inside = triangles.identify(identify_params("tri", (X0 + 1900, Y0 - 1900)))
    assert inside.values == (1.0,) and [f.attributes["OBJECTID"] for f in inside.catalog_items.features] == [2]
    outside = triangles.identify(identify_params("tri", (X0 + 100, Y0 - 100)))
    assert outside.values is None and outside.catalog_items.features == ()


def test_item_centres_are_the_footprints_centroids(triangles):
    for feature in query(triangles, out_fields=("*",)).features:
        c = polygon(feature.rings).centroid
        assert feature.attributes["CenterX"] == pytest.approx(c.x, abs=1.0)
        assert feature.attributes["CenterY"] == pytest.approx(c.y, abs=1.0)


# Pixel size ranges: a 30 m scene half covered by a 10 m scene, and a 30 m scene nothing finer covers.
@pytest.fixture(scope="module")
def resolutions(tmp_path_factory):
    folder = tmp_path_factory.mktemp("resolutions")
    rasters.write_raster(folder / "coarse.tif", np.full((1, 100, 100), 30, np.uint8), res=30.0, nodata=0,
                         overviews=())
    rasters.write_raster(folder / "fine.tif", np.full((1, 160, 160), 10, np.uint8), res=10.0, nodata=0,
                         overviews=(2, 4))
    rasters.write_raster(folder / "alone.tif", np.full((1, 100, 100), 99, np.uint8), res=30.0, nodata=0, overviews=(),
                         origin=(X0 + 6000.0, Y0))
    db = str(folder / "catalog.sqlite")
    assert main(["add", "res", str(folder / "coarse.tif"), str(folder / "fine.tif"), str(folder / "alone.tif"),
                 "--catalog", db]) == 0
    return db


def test_default_ranges_follow_arcgis_cell_size_ranges(resolutions):
    items = {i.attributes["Name"]: i.attributes for i in Catalog(resolutions, readonly=True).items("res")}
    fine, coarse, alone = items["fine"], items["coarse"], items["alone"]
    assert (fine["LowPS"], fine["HighPS"]) == pytest.approx((10.0, 40.0))
    assert fine["MinPS"] == 0 and fine["MaxPS"] == pytest.approx(MAX_RANGE_FACTOR * 40.0)
    assert coarse["MinPS"] == pytest.approx(30.0) and coarse["MaxPS"] == pytest.approx(MAX_RANGE_FACTOR * 30.0)
    assert alone["MinPS"] == 0


def value_at_centre_of_fine(core, pixel):
    """The value exported at the fine scene's centre at output pixel size ``pixel`` (First over None order: the
    coarse scene, OBJECTID 1, is on top where both show)."""
    half = 100 * pixel
    cx, cy = X0 + 800.0, Y0 - 800.0
    params = export_params(export_request("res", Params({
        "bbox": f"{cx - half},{cy - half},{cx + half},{cy + half}", "size": "200,200", "format": "tiff",
        "interpolation": "RSP_NearestNeighbor"}.items())))
    with MemoryFile(core.export_image(params).encoded.data) as mem, mem.open() as tif:
        return int(tif.read(1)[100, 100])


def test_zooming_in_shows_the_finer_item_and_zooming_out_past_every_range_still_answers(resolutions):
    core = ImageService(Catalog(resolutions, readonly=True))
    assert value_at_centre_of_fine(core, 5.0) == 10  # finer than the coarse item's MinPS: only the fine one
    assert value_at_centre_of_fine(core, 40.0) == 30  # both visible; the coarse one is first
    # Coarser than every item's MaxPS: the items there are used rather than nothing.
    assert value_at_centre_of_fine(core, 2000.0) in (10, 30)


def test_an_attribute_table_sets_the_ranges_it_names(tmp_path):
    rasters.write_raster(tmp_path / "a.tif", np.full((1, 20, 20), 1, np.uint8), overviews=())
    rasters.write_raster(tmp_path / "b.tif", np.full((1, 20, 20), 2, np.uint8), res=10.0)
    (tmp_path / "t.csv").write_text("Name,MinPS\na,5\nb,\n")
    db = str(tmp_path / "c.sqlite")
    assert main(["add", "m", str(tmp_path / "a.tif"), str(tmp_path / "b.tif"), "--attrs", str(tmp_path / "t.csv"),
                 "--catalog", db]) == 0
    items = {i.attributes["Name"]: i.attributes for i in Catalog(db, readonly=True).items("m")}
    assert items["a"]["MinPS"] == 5 and items["a"]["MaxPS"] == pytest.approx(300.0)
    # An empty cell leaves the range to the catalog: nothing finer covers b.
    assert items["b"]["MinPS"] == 0 and items["b"]["MaxPS"] == pytest.approx(MAX_RANGE_FACTOR * 10.0 * 20 / 3)


def test_migrate_fills_in_footprints_of_an_older_catalog(tmp_path):
    triangle_scene(tmp_path / "t1.tif")
    db = str(tmp_path / "c.sqlite")
    assert main(["add", "one", str(tmp_path / "t1.tif"), "--catalog", db]) == 0
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE items SET footprint = NULL")
    assert Catalog(db, readonly=True).items("one")[0].footprint == ()
    assert main(["--catalog", db, "migrate"]) == 0
    fp = Catalog(db, readonly=True).items("one")[0].footprint
    assert polygon(fp).area < 0.55 * 2000 * 2000


def test_footprints_are_taken_to_other_srs_densified():
    ring = footprints.rectangle((X0, Y0 - 1000, X0 + 1000, Y0))
    out = footprints.to_crs(ring, CRS.from_epsg(32611), CRS.from_epsg(4326))
    assert len(out[0]) > 4 * footprints.EDGE_POINTS
    assert all(-118.4 < x < -118.3 and 36.7 < y < 36.8 for x, y in out[0])
