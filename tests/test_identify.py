"""identify through both doors, against the pixel values rasterio reads from the same file."""
from __future__ import annotations

import json
import math

import grpc
import numpy as np
import pytest
import rasterio
from pyproj import Transformer

from imgsvc import sr
from imgsvc.errors import ErrorKind, ImgsvcError
from imgsvc.grpc.requests import identify_params
from imgsvc.identify import IdentifyParams
from imgsvc.v1 import image_service_pb2 as pb

IDENTIFY = "/arcgis/rest/services/{}/ImageServer/identify"


def pixel_centre(path, row: int, col: int) -> tuple[float, float]:
    with rasterio.open(path) as src:
        return src.xy(row, col)


def file_values(path, row: int, col: int) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(window=((row, row + 1), (col, col + 1)))[:, 0, 0]


def test_point_json_in_the_service_sr_gives_the_float_value(http, dem_path):
    x, y = pixel_centre(dem_path, 300, 400)
    geometry = json.dumps({"x": x, "y": y, "spatialReference": {"wkid": 32611}})
    doc = http.get(IDENTIFY.format("dem"), params={"geometry": geometry, "geometryType": "esriGeometryPoint",
                                                   "f": "json"}).json()
    expected = np.float32(file_values(dem_path, 300, 400)[0])
    assert np.float32(doc["value"]) == expected
    assert doc["objectId"] == 0 and doc["name"] == "Pixel"
    assert doc["location"] == {"x": x, "y": y, "spatialReference": {"wkid": 32611, "latestWkid": 32611}}
    assert doc["properties"] is None and doc["catalogItems"] is None and doc["catalogItemVisibilities"] == []


def test_qgis_plain_xy_multiband_value_is_comma_separated_ints(http, u16_path):
    x, y = pixel_centre(u16_path, 123, 77)
    doc = http.get(IDENTIFY.format("ms"), params={"f": "json", "geometryType": "esriGeometryPoint",
                                                  "geometry": f"{x},{y}"}).json()
    assert doc["value"] == ", ".join(str(v) for v in file_values(u16_path, 123, 77))
    assert [int(v) for v in doc["value"].split(",")] == list(file_values(u16_path, 123, 77))


def test_esri_leaflet_point_in_4326_is_projected_to_the_pixel(http, dem_path):
    x, y = pixel_centre(dem_path, 500, 600)
    lon, lat = Transformer.from_crs(32611, 4326, always_xy=True).transform(x, y)
    geometry = json.dumps({"x": lon, "y": lat, "spatialReference": {"wkid": 4326}})
    doc = http.get(IDENTIFY.format("dem"), params={"returnGeometry": "false", "geometry": geometry,
                                                   "geometryType": "esriGeometryPoint", "f": "json"}).json()
    assert np.float32(doc["value"]) == file_values(dem_path, 500, 600)[0]
    assert doc["location"]["spatialReference"]["wkid"] == 4326 and doc["location"]["x"] == lon


def test_nodata_pixel_hole_and_outside_the_extent_are_NoData(http, dem_path, u16_path):
    x, y = pixel_centre(dem_path, 120, 230)  # inside the -9999 hole
    assert http.get(IDENTIFY.format("dem"), params={"geometry": f"{x},{y}", "f": "json"}).json()["value"] == "NoData"
    assert http.get(IDENTIFY.format("dem"), params={"geometry": "0,0", "f": "json"}).json()["value"] == "NoData"
    x, y = pixel_centre(u16_path, 10, 495)  # the zero (nodata) strip on the right
    assert http.get(IDENTIFY.format("ms"), params={"geometry": f"{x},{y}", "f": "json"}).json()["value"] == "NoData"


def test_identify_post_and_jsonp_and_case_insensitive_names(http, dem_path):
    x, y = pixel_centre(dem_path, 50, 50)
    get = http.get(IDENTIFY.format("dem"), params={"GEOMETRY": f"{x},{y}", "F": "json"}).json()
    post = http.post("/arcgis/rest/services/dem/ImageServer/Identify", data={"geometry": f"{x},{y}",
                                                                            "f": "json"}).json()
    assert get == post and get["value"] != "NoData"
    wrapped = http.get(IDENTIFY.format("dem"), params={"geometry": f"{x},{y}", "f": "json", "callback": "cb"})
    assert wrapped.text == f"cb({json.dumps(get)});"


def test_grpc_identify_returns_typed_values(stub, u16_path):
    x, y = pixel_centre(u16_path, 200, 300)
    reply = stub.Identify(pb.IdentifyRequest(service="ms", geometry=pb.Point(x=x, y=y)))
    assert list(reply.values) == [float(v) for v in file_values(u16_path, 200, 300)]
    assert reply.pixel_type == pb.PIXEL_TYPE_U16 and not reply.no_data


@pytest.mark.parametrize("query, fragment", [
    ({}, "geometry is required"),
    ({"geometry": "1,2,3"}, "geometry"),
    ({"geometry": '{"x": 1}'}, "geometry"),
    ({"geometry": "nan,4"}, "finite"),
    ({"geometry": "1,2", "geometryType": "esriGeometryLine"}, "geometryType"),
    ({"geometry": '{"x":1,"y":2,"spatialReference":{"wkid":999999}}'}, "999999"),
    ({"geometry": "1,2", "renderingRule": '{"rasterFunction":"Pansharpening"}'}, "Pansharpening"),
    ({"geometry": "1,2", "returnGeometry": "perhaps"}, "returnGeometry"),
])
def test_bad_identify_input_gets_the_envelope(http, query, fragment):
    rest = http.get(IDENTIFY.format("dem"), params=dict(query, f="json"))
    assert rest.status_code == 200 and rest.headers["content-type"] == "application/json"
    error = rest.json()["error"]
    assert error["code"] == 400 and fragment in " ".join(error["details"])


def test_polygon_identify_is_refused_by_name_over_both_doors(http, stub):
    rest = http.get(IDENTIFY.format("dem"), params={"geometry": '{"rings": []}', "geometryType":
                                                    "esriGeometryPolygon", "f": "json"}).json()
    assert rest["error"]["code"] == 400 and rest["error"]["message"] == "Invalid or missing input parameters."
    assert rest["error"]["details"][0].startswith("geometryType esriGeometryPolygon is not supported")
    with pytest.raises(grpc.RpcError) as info:
        stub.Identify(pb.IdentifyRequest(service="dem", geometry=pb.Point(x=1, y=2),
                                         geometry_type=pb.ESRI_GEOMETRY_POLYGON))
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_a_grpc_identify_request_becomes_the_core_s_parameters():
    point = pb.Point(x=1.5, y=2.5, spatial_reference=pb.SpatialReference(wkid=4326))
    assert identify_params(pb.IdentifyRequest(service="dem", geometry=point, pixel_size=pb.Point(x=30, y=30))) \
        == IdentifyParams("dem", 1.5, 2.5, sr.crs_from_wkid(4326))
    assert identify_params(pb.IdentifyRequest(service="dem", geometry=pb.Point(x=1, y=2))).crs is None


@pytest.mark.parametrize("request_, kind, fragment", [
    (pb.IdentifyRequest(geometry=pb.Point(x=1, y=2)), ErrorKind.INVALID_ARGUMENT, "service is required"),
    (pb.IdentifyRequest(service="dem"), ErrorKind.INVALID_ARGUMENT, "geometry is required"),
    (pb.IdentifyRequest(service="dem", geometry_type=pb.ESRI_GEOMETRY_POLYGON), ErrorKind.UNIMPLEMENTED,
     "esriGeometryPolygon"),
    (pb.IdentifyRequest(service="dem", geometry=pb.Point(x=math.inf, y=2)), ErrorKind.INVALID_ARGUMENT, "finite"),
    (pb.IdentifyRequest(service="dem", geometry=pb.Point(x=1, y=2), pixel_size=pb.Point(x=-1, y=1)),
     ErrorKind.INVALID_ARGUMENT, "pixelSize"),
    (pb.IdentifyRequest(service="dem", geometry=pb.Point(x=1, y=2),
                        mosaic_rule=pb.MosaicRule(mosaic_method=pb.ESRI_MOSAIC_SEAMLINE, blend_width=-1)),
     ErrorKind.INVALID_ARGUMENT, "blendWidth"),
])
def test_the_core_checks_identify_parameters(request_, kind, fragment):
    with pytest.raises(ImgsvcError) as info:
        identify_params(request_)
    assert info.value.kind is kind and fragment in info.value.text


def test_identify_html_form_then_result(http, dem_path):
    form = http.get(IDENTIFY.format("dem"))
    assert form.headers["content-type"].startswith("text/html") and "name='geometry'" in form.text
    x, y = pixel_centre(dem_path, 300, 400)
    page = http.get(IDENTIFY.format("dem"), params={"geometry": f"{x},{y}", "f": "html"}).text
    assert "id='result'" in page and "&quot;name&quot;: &quot;Pixel&quot;" in page
