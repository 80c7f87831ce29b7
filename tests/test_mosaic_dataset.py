"""Mosaic datasets: several rasters with attributes as one service, chosen by time and fields, ordered by the mosaic
methods, combined by the operators; each answer known from how the test builds the items."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
from rasterio.io import MemoryFile

from imgsvc.catalog import Catalog
from imgsvc.catalog.records import FieldType
from imgsvc.catalog_query import query_geometry, query_params
from imgsvc.cli import main
from imgsvc.errors import ImgsvcError
from imgsvc.grpc.requests import export_params
from imgsvc.rest.query import Params, export_request
from imgsvc.service import ImageService
from tests import rasters
from tests.conftest import BACKENDS

X0, Y0 = rasters.ORIGIN
RES = 30.0
# Three 100x100 scenes of constant value, each shifted 40 px east and 20 px south of the previous one:
# name, value, column offset, row offset, attributes.
SCENES = [
    ("scene_a", 10, 0, 0, "2019,2019-06-01,0.5,alpha"),
    ("scene_b", 20, 40, 20, "2020,2020-06-01,0.1,beta"),
    ("scene_c", 30, 80, 40, "2021,2021-06-01T12:00:00Z,,alpha"),
]


def write_scene(folder, name, value, col, row):
    data = np.full((1, 100, 100), value, np.uint16)
    return rasters.write_raster(folder / f"{name}.tif", data, nodata=0, overviews=(2,),
                                origin=(X0 + RES * col, Y0 - RES * row))


def build_scenes_catalog(folder, db: str | None = None) -> str:
    """The three scenes with their attribute table, registered as the time-aware mosaic dataset "mos" in the
    catalog ``db`` (default: a SQLite file in ``folder``)."""
    for name, value, col, row, _ in SCENES:
        write_scene(folder, name, value, col, row)
    table = folder / "attrs.csv"
    table.write_text("Name,Year,AcqDate,Cloud,Sensor\n" + "\n".join(f"{n},{a}" for n, *_, a in SCENES) + "\n")
    db = db or str(folder / "catalog.sqlite")
    assert main(["add", "mos", str(folder / "scene_*.tif"), "--attrs", str(table), "--time-field", "AcqDate",
                 "--catalog", db]) == 0
    return db


@pytest.fixture(scope="module", params=BACKENDS)
def catalog_file(request, tmp_path_factory, new_catalog):
    """The scenes' catalog, in each database: what a where clause, time, order or page selects is the same."""
    return build_scenes_catalog(tmp_path_factory.mktemp("mosaic"), new_catalog(request.param))


@pytest.fixture(scope="module")
def core(catalog_file):
    return ImageService(Catalog(catalog_file, readonly=True))


def export(core, **query):
    query = {"format": "tiff", "bbox": f"{X0},{Y0 - RES * 140},{X0 + RES * 200},{Y0}", "size": "200,140",
             "interpolation": "RSP_NearestNeighbor", **query}
    result = core.export_image(export_params(export_request("mos", Params(query.items()))))
    with MemoryFile(result.encoded.data) as mem, mem.open() as tif:
        return tif.read(1), tif.read_masks(1) > 0


# Pixels (row, col) of the output grid: only a, a and b, a b and c, only c.
ONLY_A, A_B, A_B_C, ONLY_C = (10, 10), (30, 60), (60, 90), (130, 170)


def values_at(image, valid, *pixels):
    return [int(image[p]) if valid[p] else None for p in pixels]


def test_the_catalog_holds_each_items_fields(catalog_file):
    catalog = Catalog(catalog_file, readonly=True)
    service = catalog.service("mos")
    types = {f.name: f.type for f in service.fields}
    assert types["OBJECTID"] is FieldType.OID and types["Name"] is FieldType.TEXT
    assert (types["Year"], types["AcqDate"], types["Cloud"], types["Sensor"]) == (
        FieldType.INTEGER, FieldType.DATE, FieldType.DOUBLE, FieldType.TEXT)
    items = catalog.items("mos")
    assert [i.attributes["Name"] for i in items] == ["scene_a", "scene_b", "scene_c"]
    assert items[0].attributes["AcqDate"] == 1559347200000 and items[2].attributes["Cloud"] is None
    assert items[2].attributes["AcqDate"] == 1622548800000  # 2021-06-01T12:00Z
    assert items[0].attributes["LowPS"] == RES and items[0].attributes["HighPS"] == 2 * RES
    assert items[1].attributes["CenterX"] == X0 + RES * 90 and service.description.item_count == 3


def test_default_is_none_first_by_object_id(core):
    image, valid = export(core)
    assert values_at(image, valid, ONLY_A, A_B, A_B_C, ONLY_C) == [10, 10, 10, 30]
    assert not valid[0, 199] and not valid[139, 0]  # no scene there


@pytest.mark.parametrize("rule, expected", [
    ({"mosaicMethod": "esriMosaicNone", "ascending": False}, [10, 20, 30, 30]),
    ({"mosaicMethod": "esriMosaicLockRaster", "lockRasterIds": [2]}, [None, 20, 20, None]),
    ({"mosaicMethod": "esriMosaicLockRaster", "lockRasterIds": [3, 1]}, [10, 10, 30, 30]),
    ({"fids": [2, 3]}, [None, 20, 20, 30]),
    ({"mosaicMethod": "esriMosaicAttribute", "sortField": "Year", "sortValue": 2021}, [10, 20, 30, 30]),
    ({"mosaicMethod": "esriMosaicAttribute", "sortField": "year", "sortValue": 2020}, [10, 20, 20, 30]),
    ({"mosaicMethod": "esriMosaicAttribute", "sortField": "AcqDate", "sortValue": "2020-05-01"}, [10, 20, 20, 30]),
    ({"mosaicMethod": "esriMosaicAttribute", "sortField": "Cloud", "sortValue": 0}, [10, 20, 20, 30]),
    ({"mosaicMethod": "esriMosaicAttribute", "sortField": "Year", "sortValue": 2021, "ascending": False},
     [10, 10, 10, 30]),
    ({"mosaicMethod": "esriMosaicViewpoint", "viewpoint": {"x": X0 + RES * 150, "y": Y0 - RES * 90}},
     [10, 20, 30, 30]),
    ({"mosaicMethod": "esriMosaicNorthwest"}, [10, 10, 10, 30]),
    ({"where": "Year >= 2020"}, [None, 20, 20, 30]),
    ({"where": "Sensor = 'alpha'"}, [10, 10, 10, 30]),
    ({"where": "AcqDate < date '2020-01-01'"}, [10, 10, 10, None]),
    ({"where": "Cloud IS NULL"}, [None, None, 30, 30]),
    ({"where": "Name LIKE 'scene%' AND NOT Year IN (2019)", "mosaicOperation": "MT_MAX"}, [None, 20, 30, 30]),
    ({"where": "1=1"}, [10, 10, 10, 30]),
    ({"mosaicOperation": "MT_LAST"}, [10, 20, 30, 30]),
    ({"mosaicOperation": "MT_MAX"}, [10, 20, 30, 30]),
    ({"mosaicOperation": "MT_MIN"}, [10, 10, 10, 30]),
    ({"mosaicOperation": "MT_MEAN"}, [10, 15, 20, 30]),
    ({"mosaicOperation": "MT_SUM"}, [10, 30, 60, 30]),
])
def test_methods_and_operations(core, rule, expected):
    image, valid = export(core, mosaicRule=json.dumps(rule))
    assert values_at(image, valid, ONLY_A, A_B, A_B_C, ONLY_C) == expected


def test_blend_weighs_each_item_by_how_far_inside_it_the_pixel_lies(core):
    image, valid = export(core, mosaicRule='{"mosaicOperation":"MT_BLEND"}')

    def inside(row, col, col0, row0):  # distance, in pixels, from the pixel centre to the scene's nearest edge
        x, y = col + 0.5 - col0, row + 0.5 - row0
        return min(x, 100 - x, y, 100 - y)

    for row, col in (A_B, A_B_C, (50, 95), (45, 82)):
        weights = [(value, inside(row, col, c0, r0)) for _, value, c0, r0, _ in SCENES
                   if 0 < inside(row, col, c0, r0)]
        expected = sum(v * w for v, w in weights) / sum(w for _, w in weights)
        assert int(image[row, col]) == int(np.floor(expected + 0.5)), (row, col, weights)
    assert values_at(image, valid, ONLY_A, ONLY_C) == [10, 30]
    # Tiles agree: the left and right halves of the export equal the whole (weights come from geometry).
    left, _ = export(core, bbox=f"{X0},{Y0 - RES * 140},{X0 + RES * 100},{Y0}", size="100,140",
                     mosaicRule='{"mosaicOperation":"MT_BLEND"}')
    np.testing.assert_array_equal(left, image[:, :100])


def seamline_expected(blend_width_px: float) -> np.ndarray:
    """The Seamline composite of the default export computed here: each pixel from the scene it lies deepest
    inside (ties to the lower OBJECTID), feathered with the runner-up over ``blend_width_px`` pixels."""
    rows, cols = np.mgrid[0:140, 0:200] + 0.5
    order = [0, 1, 2]
    depths = [np.minimum(np.minimum(cols - SCENES[i][2], SCENES[i][2] + 100 - cols),
                         np.minimum(rows - SCENES[i][3], SCENES[i][3] + 100 - rows)) for i in order]
    values = [SCENES[i][1] for i in order]
    stack = np.where(np.array(depths) > 0, np.array(depths), -np.inf)
    best = np.argmax(stack, axis=0)  # the first of equal depths: the earlier in the order
    best_depth = np.take_along_axis(stack, best[None], 0)[0]
    runner_stack = stack.copy()
    np.put_along_axis(runner_stack, best[None], -np.inf, 0)
    runner = np.argmax(runner_stack, axis=0)
    runner_depth = np.take_along_axis(runner_stack, runner[None], 0)[0]
    v1, v2 = np.array(values)[best], np.array(values)[runner]
    if blend_width_px == 0:
        return np.where(best_depth > -np.inf, v1, 0)
    with np.errstate(invalid="ignore"):
        w = np.where(runner_depth > -np.inf, np.clip(1 - (best_depth - runner_depth) / blend_width_px, 0, 1), 0)
    return np.where(best_depth > -np.inf, np.floor((v1 + w * v2) / (1 + w) + 0.5), 0)


@pytest.mark.parametrize("blend_width_px", [0, 12])
def test_seamline_cuts_down_the_middle_of_each_overlap_and_feathers_across(core, blend_width_px):
    rule = {"mosaicMethod": "esriMosaicSeamline", "blendWidth": blend_width_px * RES}
    image, valid = export(core, mosaicRule=json.dumps(rule))
    expected = seamline_expected(blend_width_px)
    assert (valid == (expected > 0)).all()
    # Exact away from the feathering; within one level inside it (a depth computed in metres, not pixels, may round
    # a .5 the other way).
    assert np.abs(image.astype(int) - expected).max() <= (1 if blend_width_px else 0)
    assert values_at(image, valid, ONLY_A, ONLY_C) == [10, 30]
    if blend_width_px:
        assert set(np.unique(image[valid])) - {10, 20, 30}  # blended values exist
    # Tiles agree: seamlines come from the items' geometry, not from the request.
    left, _ = export(core, bbox=f"{X0},{Y0 - RES * 140},{X0 + RES * 100},{Y0}", size="100,140",
                     mosaicRule=json.dumps(rule))
    assert np.abs(left.astype(int) - image[:, :100]).max() <= (1 if blend_width_px else 0)


def test_center_orders_by_distance_to_the_view_centre(core):
    # A view centred on scene_c's centre: c is on top wherever it has data.
    bbox = f"{X0 + RES * 80},{Y0 - RES * 140},{X0 + RES * 180},{Y0 - RES * 40}"
    image, valid = export(core, bbox=bbox, size="100,100", mosaicRule='{"mosaicMethod":"esriMosaicCenter"}')
    assert int(image[10, 10]) == 30 and int(image[90, 90]) == 30


@pytest.mark.parametrize("time, expected", [
    ("1559347200000", [10, 10, 10, None]),                      # the instant of scene_a
    ("1577836800000,1609459199000", [None, 20, 20, None]),      # 2020
    ("1577836800000,null", [None, 20, 20, 30]),                 # from 2020 on
    ("null,1590969600000", [10, 10, 10, None]),                 # until 2020-06-01 00:00 (inclusive)
    ("null,1590969600001", [10, 10, 10, None]),
    ("1000,2000", [None, None, None, None]),
])
def test_time_selects_items_on_a_time_aware_service(core, time, expected):
    image, valid = export(core, time=time)
    assert values_at(image, valid, ONLY_A, A_B, A_B_C, ONLY_C) == expected


@pytest.mark.parametrize("where", ["1=1; DROP TABLE items", "Name = 'x' OR 1=1 --", "Name = ''); DELETE FROM items; --'",
                                   "(SELECT 1)", "Nope = 1", "Year = 'abc'"])
def test_a_where_clause_is_never_sql(core, catalog_file, where):
    with pytest.raises(ImgsvcError) as info:
        export(core, mosaicRule=json.dumps({"where": where}))
    assert info.value.parameter == "mosaicRule" and info.value.details[0].startswith("where")
    assert len(Catalog(catalog_file, readonly=True).items("mos")) == 3


def test_bad_attribute_rules_are_refused_naming_them(core):
    for rule, fragment in (({"mosaicMethod": "esriMosaicAttribute"}, "sortField"),
                           ({"mosaicMethod": "esriMosaicAttribute", "sortField": "Nope"}, "Nope"),
                           ({"mosaicMethod": "esriMosaicAttribute", "sortField": "AcqDate", "sortValue": "soon"},
                            "soon"),
                           ({"mosaicMethod": "esriMosaicViewpoint"}, "viewpoint")):
        with pytest.raises(ImgsvcError, match=fragment) as info:
            export(core, mosaicRule=json.dumps(rule))
        assert info.value.parameter == "mosaicRule"


# 40 minus each item: a=30, b=20, c=10, so that the operation picks a different item than without the rule.
FORTY_MINUS = {"rasterFunction": "Arithmetic",
               "rasterFunctionArguments": {"Raster": 40, "Raster2": "$$", "Operation": 2}}


@pytest.mark.parametrize("operation, expected", [
    ("MT_MAX", [30, 30, 30, 10]),   # the largest of 40 - v: the smallest item wins
    ("MT_MIN", [30, 20, 10, 10]),
    ("MT_MEAN", [30, 25, 20, 10]),
])
def test_the_item_rendering_rule_runs_on_each_item_before_the_operation(core, operation, expected):
    image, valid = export(core, mosaicRule=json.dumps({"mosaicOperation": operation,
                                                       "itemRenderingRule": FORTY_MINUS}))
    assert values_at(image, valid, ONLY_A, A_B, A_B_C, ONLY_C) == expected
    if operation != "MT_MEAN":  # a mean commutes with 40 - v; Max and Min do not
        after, after_valid = export(core, mosaicRule=json.dumps({"mosaicOperation": operation}),
                                    renderingRule=json.dumps(FORTY_MINUS))
        assert values_at(after, after_valid, A_B)[0] != expected[1]


def test_the_item_rendering_rule_and_the_rendering_rule_chain(core):
    stretch = {"rasterFunction": "Arithmetic", "rasterFunctionArguments": {"Raster": "$$", "Raster2": 2,
                                                                           "Operation": 3}}
    image, valid = export(core, mosaicRule=json.dumps({"mosaicOperation": "MT_MAX", "itemRenderingRule": FORTY_MINUS}),
                          renderingRule=json.dumps(stretch))
    assert values_at(image, valid, ONLY_A, A_B, A_B_C, ONLY_C) == [60, 60, 60, 20]


@pytest.mark.parametrize("item_rule, fragment", [
    ({"rasterFunction": "Arithmetic", "rasterFunctionArguments": {"Raster": "$2", "Raster2": 1, "Operation": 1}},
     r"\$2"),
    ({"rasterFunction": "NoSuchFunction"}, "NoSuchFunction"),
])
def test_a_bad_item_rendering_rule_is_refused_naming_the_mosaic_rule(core, item_rule, fragment):
    with pytest.raises(ImgsvcError, match=fragment) as info:
        export(core, mosaicRule=json.dumps({"itemRenderingRule": item_rule}))
    assert info.value.parameter == "mosaicRule" and "itemRenderingRule" in info.value.details[0]


@pytest.mark.parametrize("backend", BACKENDS)
def test_append_adds_items_after_the_others(tmp_path, new_catalog, backend):
    folder = tmp_path
    db = new_catalog(backend)
    write_scene(folder, "one", 5, 0, 0)
    write_scene(folder, "two", 7, 300, 0)
    assert main(["add", "grow", str(folder / "one.tif"), "--catalog", db]) == 0
    before = Catalog(db).service("grow").description
    assert main(["add", "grow", str(folder / "two.tif"), "--append", "--catalog", db]) == 0
    catalog = Catalog(db)
    after = catalog.service("grow").description
    assert [i.object_id for i in catalog.items("grow")] == [1, 2] and after.item_count == 2
    assert after.extent[2] == before.extent[2] + RES * 300 and after.stats[0].min == 5 and after.stats[0].max == 7
    assert catalog.distributions("grow")[0].count == 2 * 100 * 100


def test_a_table_and_time_field_are_checked_at_registration(tmp_path):
    write_scene(tmp_path, "x", 1, 0, 0)
    table = tmp_path / "t.csv"
    table.write_text("Name,When\nx,yesterday\n")
    db = str(tmp_path / "c.sqlite")
    assert main(["add", "s", str(tmp_path / "x.tif"), "--attrs", str(table), "--time-field", "When",
                 "--catalog", db]) == 2  # When is text, not a date
    table.write_text("Name,Drop Table\nx,1\n")
    assert main(["add", "s", str(tmp_path / "x.tif"), "--attrs", str(table), "--catalog", db]) == 2
    assert Catalog(db).service_names() == []


def test_the_root_of_a_mosaic_dataset_lists_its_fields_and_time(core):
    from imgsvc.grpc import convert
    from imgsvc.rest.arcgis_json import root_doc

    root = root_doc(convert.service_info(core.service("mos"), time_extent=core.time_extent("mos")))
    assert root["objectIdField"] == "OBJECTID" and root["fields"][0] == {
        "name": "OBJECTID", "type": "esriFieldTypeOID", "alias": "OBJECTID"}
    assert {"name": "AcqDate", "type": "esriFieldTypeDate", "alias": "AcqDate"} in root["fields"]
    assert root["timeInfo"]["startTimeField"] == "AcqDate"
    assert root["timeInfo"]["timeExtent"] == [1559347200000, 1622548800000]
    assert "Catalog" in root["capabilities"].split(",") and root["serviceSourceType"].endswith("MosaicDataset")
    assert root["defaultMosaicMethod"] == "None" and root["mosaicOperator"] == "First"


# ---- /query over the catalog ---------------------------------------------------------------------------------

def query(core, **values):
    return core.query(query_params("mos", **values))


def test_query_selects_orders_and_pages_the_items(core):
    everything = query(core, out_fields=("*",))
    assert [f.attributes["Name"] for f in everything.features] == ["scene_a", "scene_b", "scene_c"]
    assert everything.features[1].attributes["Year"] == 2020 and everything.features[1].attributes["OBJECTID"] == 2
    ring = everything.features[0].rings[0]
    assert ring[0] == ring[-1] and min(p[0] for p in ring) == X0 and max(p[1] for p in ring) == Y0
    assert query(core, where="Cloud > 0.2").features[0].attributes == {"OBJECTID": 1}
    assert query(core, count_only=True).count == 3
    assert query(core, ids_only=True, order_by="Year DESC").object_ids == (3, 2, 1)
    assert query(core, ids_only=True, object_ids=(3, 1)).object_ids == (1, 3)
    page = query(core, order_by="Sensor ASC, Year DESC", record_count=2, out_fields=("Name",))
    assert [f.attributes["Name"] for f in page.features] == ["scene_c", "scene_a"] and page.exceeded_transfer_limit
    rest = query(core, order_by="Sensor ASC, Year DESC", offset=2, out_fields=("Name",))
    assert [f.attributes["Name"] for f in rest.features] == ["scene_b"] and not rest.exceeded_transfer_limit
    east = (X0 + RES * 150, Y0 - RES * 130, X0 + RES * 170, Y0 - RES * 110)
    assert query(core, ids_only=True, geometry=query_geometry("envelope", east)).object_ids == (3,)
    assert query(core, ids_only=True, time=(1577836800000, None)).object_ids == (2, 3)
    assert query(core, return_geometry=False).features[0].rings == ()


def test_query_through_the_gateway_answers_arcgis_json_and_geojson(catalog_file, tmp_path):
    import httpx

    from tests.conftest import _Serve

    with _Serve(catalog_file, tmp_path) as url:
        base = f"{url}/arcgis/rest/services/mos/ImageServer/query"
        doc = httpx.get(base, params={"where": "Year >= 2020", "outFields": "Name,AcqDate", "outSR": "4326",
                                      "orderByFields": "AcqDate DESC", "f": "json"}).json()
        assert [f["attributes"]["Name"] for f in doc["features"]] == ["scene_c", "scene_b"]
        assert doc["features"][1]["attributes"] == {"OBJECTID": 2, "Name": "scene_b", "AcqDate": 1590969600000}
        ring = doc["features"][0]["geometry"]["rings"][0]
        assert doc["spatialReference"]["wkid"] == 4326 and -120 < ring[0][0] < -117 and ring[0] == ring[-1]
        assert httpx.get(base, params={"returnCountOnly": "true", "f": "json"}).json() == {"count": 3}
        geojson = httpx.get(base, params={"objectIds": "2", "f": "geojson"}).json()
        assert geojson["type"] == "FeatureCollection" and geojson["features"][0]["id"] == 2
        error = httpx.get(base, params={"where": "Nope = 1", "f": "json"}).json()["error"]
        assert error["code"] == 400 and "Nope" in error["details"][0]
        error = httpx.get(base, params={"orderByFields": "Name; DROP TABLE items", "f": "json"}).json()["error"]
        assert error["code"] == 400 and "orderByFields" in error["details"][0]
        assert httpx.get(base, params={"f": "json"}).json()["features"][2]["attributes"] == {"OBJECTID": 3}
        # A point, a polygon (ArcGIS JSON) and pixelSize: only C's data is under the point; only A's under the square.
        only_c = json.dumps({"x": X0 + RES * 170.5, "y": Y0 - RES * 130.5, "spatialReference": {"wkid": 32611}})
        assert httpx.get(base, params={"geometry": only_c, "geometryType": "esriGeometryPoint",
                                       "returnIdsOnly": "true", "f": "json"}).json()["objectIds"] == [3]
        square = [[X0 + RES * 5, Y0 - RES * 5], [X0 + RES * 5, Y0 - RES * 15], [X0 + RES * 15, Y0 - RES * 15],
                  [X0 + RES * 15, Y0 - RES * 5], [X0 + RES * 5, Y0 - RES * 5]]
        doc = httpx.get(base, params={"geometry": json.dumps({"rings": [square]}), "returnIdsOnly": "true",
                                      "f": "json"}).json()
        assert doc["objectIds"] == [1]
        for size, count in (("100,100", 3), ("1000,1000", 0)):  # each item's MaxPS: 10 x its 60 m overview
            assert httpx.get(base, params={"pixelSize": size, "returnCountOnly": "true",
                                           "f": "json"}).json() == {"count": count}
        error = httpx.get(base, params={"geometry": only_c, "geometryType": "esriGeometryPolyline",
                                        "f": "json"}).json()["error"]
        assert error["code"] == 400 and "geometryType" in error["details"][0]
        # The map page offers the mosaic methods and a date slider over the items' times.
        page = httpx.get(f"{url}/arcgis/rest/services/mos/ImageServer/map").text
        config = json.loads(re.search(r"const CONFIG = (\{.*\});", page).group(1))
        assert config["mosaicMethods"] == ["None", "Center", "Nadir", "NorthWest", "Seamline"]
        assert config["timeExtent"] == [1559347200000, 1622548800000] and "setTimeRange" in page


def test_identify_answers_from_the_rules_top_item_with_the_items_under_the_point(core, catalog_file, tmp_path):
    from imgsvc.identify import identify_params
    from imgsvc.mosaic import MosaicMethod, MosaicRule

    x, y = X0 + RES * 90.5, Y0 - RES * 60.5  # pixel A_B_C: all three scenes
    first = core.identify(identify_params("mos", (x, y)))
    assert first.values == (10.0,) and first.object_id == 1 and first.visibilities == (1.0, 0.0, 0.0)
    assert [f.attributes["Name"] for f in first.catalog_items.features] == ["scene_a", "scene_b", "scene_c"]
    latest = core.identify(identify_params("mos", (x, y), mosaic_rule=MosaicRule(
        method=MosaicMethod.ATTRIBUTE, sort_field="Year", sort_value=2030)))
    assert latest.values == (30.0,) and latest.visibilities == (0.0, 0.0, 1.0)
    in_2020 = core.identify(identify_params("mos", (x, y), time=(1577836800000, 1609459199000)))
    assert in_2020.values == (20.0,) and [f.attributes["OBJECTID"] for f in in_2020.catalog_items.features] == [2]
    bare = core.identify(identify_params("mos", (x, y), return_catalog_items=False))
    assert bare.catalog_items is None and bare.values == (10.0,)
    import httpx

    from tests.conftest import _Serve

    with _Serve(catalog_file, tmp_path) as url:
        doc = httpx.get(f"{url}/arcgis/rest/services/mos/ImageServer/identify",
                        params={"geometry": f"{x},{y}", "mosaicRule": '{"mosaicMethod":"esriMosaicLockRaster",'
                                                                      '"lockRasterIds":[2]}', "f": "json"}).json()
    assert doc["value"] == "20" and doc["objectId"] == 2 and doc["catalogItemVisibilities"] == [0, 1, 0]
    assert [f["attributes"]["Name"] for f in doc["catalogItems"]["features"]] == ["scene_a", "scene_b", "scene_c"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_items_show_within_their_pixel_size_range(tmp_path, new_catalog, backend):
    for name, value, col, row, _ in SCENES:
        write_scene(tmp_path, name, value, col, row)
    table = tmp_path / "ps.csv"
    # scene_a only when zoomed out (50 m or coarser), scene_c only when zoomed in (up to 40 m), scene_b always.
    table.write_text("Name,MinPS,MaxPS,Category\nscene_a,50,,1\nscene_b,,,1\nscene_c,,40,2\n")
    db = new_catalog(backend)
    assert main(["add", "ps", str(tmp_path / "scene_*.tif"), "--attrs", str(table), "--catalog", db]) == 0
    catalog = Catalog(db, readonly=True)
    assert [i.attributes["Category"] for i in catalog.items("ps")] == [1, 1, 2]
    assert [f.name for f in catalog.service("ps").fields][-1] == "ZOrder"  # set built-ins add no field
    core = ImageService(catalog)

    def at(size: str, **extra):
        query = {"format": "tiff", "bbox": f"{X0},{Y0 - RES * 140},{X0 + RES * 200},{Y0}", "size": size,
                 "interpolation": "RSP_NearestNeighbor", **extra}
        result = core.export_image(export_params(export_request("ps", Params(query.items()))))
        with MemoryFile(result.encoded.data) as mem, mem.open() as tif:
            return tif.read(1), tif.read_masks(1) > 0

    fine, fine_valid = at("200,140")  # 30 m
    assert values_at(fine, fine_valid, ONLY_A, A_B, A_B_C, ONLY_C) == [None, 20, 20, 30]
    coarse, coarse_valid = at("50,35")  # 120 m: pixels (row, col) scale by 1/4
    assert values_at(coarse, coarse_valid, (2, 2), (7, 15), (15, 22), (32, 42)) == [10, 10, 10, None]
    locked, locked_valid = at("200,140", mosaicRule='{"mosaicMethod":"esriMosaicLockRaster","lockRasterIds":[1]}')
    assert values_at(locked, locked_valid, ONLY_A) == [10]  # a locked raster shows at every pixel size
    bad = tmp_path / "bad.csv"
    bad.write_text("Name,Category\nscene_a,1.5\n")
    assert main(["add", "bad", str(tmp_path / "scene_a.tif"), "--attrs", str(bad), "--catalog", db]) == 2


# Three overlapping items in different CRSs and resolutions, smooth fields with NoData holes: UTM 11N at 30 m, UTM 11N
# at 60 m and UTM 10N at 45 m (the service SR is the first item's).
MIXED = [("utm11_30m", "EPSG:32611", 30.0, (0, 0), 0), ("utm11_60m", "EPSG:32611", 60.0, (1500.0, -900.0), 1),
         ("utm10_45m", "EPSG:32610", 45.0, None, 2)]


@pytest.fixture(scope="module")
def mixed_catalog(tmp_path_factory):
    from rasterio.warp import transform as transform_points

    folder = tmp_path_factory.mktemp("mixed")
    for name, crs, res, shift, seed in MIXED:
        data = (rasters.smooth_field(120, 120, seed=seed) + 1000 * seed).astype(np.float32)
        data[40 + 10 * seed:60 + 10 * seed, 30:55] = -9999
        if shift is None:  # the same place, seen from the next zone
            xs, ys = transform_points("EPSG:32611", crs, [X0 + 2200.0], [Y0 - 600.0])
            origin = (xs[0], ys[0])
        else:
            origin = (X0 + shift[0], Y0 + shift[1])
        rasters.write_raster(folder / f"{name}.tif", data[None], crs=crs, res=res, nodata=-9999.0, origin=origin,
                             overviews=())
    db = str(folder / "catalog.sqlite")
    assert main(["add", "mixed", *(str(folder / f"{m[0]}.tif") for m in MIXED), "--catalog", db]) == 0
    return folder, db


def gdal_items(folder, bbox, shape):
    """Each item warped alone by GDAL (rasterio.warp.reproject, nearest) onto the export's grid, in OBJECTID
    order: (values, valid)."""
    from rasterio.transform import from_bounds
    from rasterio.warp import Resampling, reproject

    out = []
    for name, *_ in MIXED:
        with rasterio_open(folder / f"{name}.tif") as src:
            values = np.full(shape, -9999.0, np.float32)
            reproject(src.read(1), values, src_transform=src.transform, src_crs=src.crs, src_nodata=-9999.0,
                      dst_transform=from_bounds(*bbox, shape[1], shape[0]), dst_crs="EPSG:32611",
                      dst_nodata=-9999.0, resampling=Resampling.nearest)
        out.append((values, values != -9999.0))
    return out


def rasterio_open(path):
    import rasterio

    return rasterio.open(path)


@pytest.mark.parametrize("operation", ["MT_FIRST", "MT_LAST", "MT_MIN", "MT_MAX", "MT_MEAN", "MT_SUM"])
def test_operators_over_items_of_other_crss_and_resolutions_match_gdal(mixed_catalog, operation):
    folder, db = mixed_catalog
    core = ImageService(Catalog(db, readonly=True))
    # 62 m output pixels: coarser than every item, so each shows (a finer view hides the coarser items where the
    # 30 m one has data: their MinPS, docs/decisions.md "Pixel size ranges").
    bbox = (X0 - 310.0, Y0 - 4960.0, X0 + 6510.0, Y0 + 930.0)
    shape = (95, 110)
    result = core.export_image(export_params(export_request("mixed", Params({
        "bbox": ",".join(map(str, bbox)), "size": f"{shape[1]},{shape[0]}", "format": "tiff",
        "interpolation": "RSP_NearestNeighbor", "mosaicRule": json.dumps({"mosaicOperation": operation}),
    }.items()))))
    with MemoryFile(result.encoded.data) as mem, mem.open() as tif:
        image, valid = tif.read(1), tif.read_masks(1) > 0
    items = gdal_items(folder, bbox, shape)
    stack = np.ma.masked_array([v for v, _ in items], [~m for _, m in items])
    covered = ~np.ma.getmaskarray(stack).all(axis=0)
    if operation == "MT_FIRST":
        expected = np.choose(np.argmax(~np.ma.getmaskarray(stack), axis=0), stack.data)
    elif operation == "MT_LAST":
        last = len(items) - 1 - np.argmax(~np.ma.getmaskarray(stack)[::-1], axis=0)
        expected = np.choose(last, stack.data)
    else:
        expected = {"MT_MIN": stack.min, "MT_MAX": stack.max, "MT_MEAN": stack.mean, "MT_SUM": stack.sum}[
            operation](axis=0).filled(0)
    assert covered.sum() > 0.5 * covered.size and (np.ma.getmaskarray(stack).sum(axis=0) == 0).any()
    np.testing.assert_array_equal(valid, covered)
    # Equal but where the UTM 10N item's pixel under an output centre is a near tie that GDAL's approximate
    # transformer and ours settle on different neighbours (both within 1/8 source pixel of exact).
    differ = ~np.isclose(image[covered], expected[covered], rtol=1e-6)
    assert differ.sum() <= 0.001 * covered.sum()
