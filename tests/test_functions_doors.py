"""Rendering rules through both doors: the example rules of docs/protocol.md §6.3b and the demo templates give the
same image over REST and gRPC, and hostile rules are refused with a clear error (never a 500, never a hang)."""
from __future__ import annotations

import json

import grpc
import httpx
import pytest

from imgsvc.catalog import Catalog, ServiceSettings
from imgsvc.cli import DEMO_TEMPLATES, add_demo_templates, register
from imgsvc.rest.query import Params, export_request
from tests.conftest import _Serve

# docs/protocol.md §6.3b, with the service each one is meant for.
EXAMPLES = [
    ("dem", {"rasterFunction": "Hillshade", "rasterFunctionArguments": {"Azimuth": 315, "Altitude": 45,
                                                                         "ZFactor": 1}, "variableName": "DEM"}),
    ("dem", {"rasterFunction": "Hillshade", "rasterFunctionArguments": {"HillshadeType": 1, "SlopeType": 3,
                                                                         "ZFactor": 1, "PSPower": 0.664,
                                                                         "PSZFactor": 0.024},
             "variableName": "Raster"}),
    ("dem", {"rasterFunction": "Slope", "rasterFunctionArguments": {"ZFactor": 0.3, "SlopeType": 1}}),
    ("dem", {"rasterFunction": "Aspect"}),
    ("dem", {"rasterFunction": "ShadedRelief", "rasterFunctionArguments": {
        "Azimuth": 215, "Altitude": 75, "ZFactor": 0.3, "Colormap": [[1, 255, 0, 0], [2, 0, 255, 0],
                                                                     [3, 125, 25, 255]]}, "variableName": "Raster"}),
    ("ms", {"rasterFunction": "Colormap", "rasterFunctionArguments": {"ColormapName": "Elevation"},
            "variableName": "Raster"}),
    ("ms", {"rasterFunction": "Stretch", "rasterFunctionArguments": {
        "StretchType": 3, "NumberOfStandardDeviations": 2.5, "Statistics": [[0, 255, 120, 30]], "DRA": False,
        "Min": 0, "Max": 255}, "outputPixelType": "U8", "variableName": "Raster"}),
    ("ms", {"rasterFunction": "NDVI", "rasterFunctionArguments": {"VisibleBandID": 2, "InfraredBandID": 3,
                                                                  "ScientificOutput": True}}),
    ("ms", {"rasterFunction": "BandArithmetic", "rasterFunctionArguments": {"Method": 0,
                                                                            "BandIndexes": "(B4-B3)/(B4+B3)"},
            "outputPixelType": "F32"}),
    ("dem", {"rasterFunction": "Remap", "rasterFunctionArguments": {
        "InputRanges": [0, 100, 100, 500], "OutputValues": [1, 2], "NoDataRanges": [-9999, -9998],
        "AllowUnmatched": False}, "outputPixelType": "U8"}),
    ("ms", {"rasterFunction": "Mask", "rasterFunctionArguments": {"NoDataValues": ["0"], "IncludedRanges": [1, 255],
                                                                  "NoDataInterpretation": 0}}),
    ("dem", {"rasterFunction": "Clip", "rasterFunctionArguments": {
        "ClippingGeometry": {"rings": [[[0, 0], [0, 10], [10, 10], [10, 0], [0, 0]]],
                             "spatialReference": {"wkid": 3857}}, "ClipType": 1}}),
    ("ms", {"rasterFunction": "ExtractBand", "rasterFunctionArguments": {"BandIDs": [3, 2, 1]}}),
    ("dem", {"rasterFunction": "Convolution", "rasterFunctionArguments": {"Type": -1, "Rows": 3, "Columns": 3,
                                                                          "Kernel": [0, -1, 0, -1, 5, -1, 0, -1, 0]}}),
    ("dem", {"rasterFunction": "Local", "rasterFunctionArguments": {"Operation": 3, "Rasters": ["$$", 0.3048]}}),
    ("dem", {"rasterFunction": "None"}),
]


@pytest.fixture(scope="module")
def served(tmp_path_factory, dem_path, u16_path):
    """A catalog with the demo templates on the test rasters, served by `imgsvc serve`: (REST client, gRPC stub)."""
    from imgsvc.v1 import image_service_pb2_grpc as pb_grpc

    folder = tmp_path_factory.mktemp("rules")
    catalog = Catalog(folder / "catalog.sqlite")
    register(catalog, "dem", dem_path, ServiceSettings())
    register(catalog, "ms", u16_path, ServiceSettings())
    add_demo_templates(catalog, {"dem": DEMO_TEMPLATES["elevation"], "ms": DEMO_TEMPLATES["multispectral"]})
    serve = _Serve(folder / "catalog.sqlite", folder / "output")
    with serve as url, httpx.Client(base_url=url, timeout=60) as http, \
            grpc.insecure_channel(serve.grpc_target, options=[("grpc.max_receive_message_length", 1 << 28)]) as ch:
        yield http, pb_grpc.ImageServiceStub(ch)


def both_doors(served, service: str, rule: dict, **extra) -> tuple[bytes, bytes]:
    http, stub = served
    query = {"size": "160,120", "format": "tiff", "renderingRule": json.dumps(rule), **extra}
    rest = http.get(f"/arcgis/rest/services/{service}/ImageServer/exportImage", params={**query, "f": "image"})
    assert rest.headers["content-type"] == "image/tiff", rest.text
    return rest.content, stub.ExportImage(export_request(service, Params(query.items()))).image


@pytest.mark.parametrize("service, rule", EXAMPLES, ids=[f"{s}-{r['rasterFunction']}" for s, r in EXAMPLES])
def test_the_example_rules_give_the_same_image_through_both_doors(served, service, rule):
    rest, grpc_image = both_doors(served, service, rule)
    assert rest == grpc_image and len(rest) > 1000


@pytest.mark.parametrize("service, name", [(s, t.name) for s, key in (("dem", "elevation"), ("ms", "multispectral"))
                                           for t in DEMO_TEMPLATES[key]])
def test_the_demo_templates_render_by_name_through_both_doors(served, service, name):
    rest, grpc_image = both_doors(served, service, {"rasterFunction": name})
    assert rest == grpc_image
    infos = served[0].get(f"/arcgis/rest/services/{service}/ImageServer/rasterFunctionInfos", params={"f": "json"})
    assert name in [f["name"] for f in infos.json()["rasterFunctionInfos"]]


def nested(depth: int) -> str:
    """A rule of ``depth`` nested None calls, as JSON text (too deep for json.dumps at 2000)."""
    call = '{"rasterFunction": "None", "rasterFunctionArguments": {"Raster": '
    return call * (depth - 1) + '{"rasterFunction": "None"}' + "}}" * (depth - 1)


@pytest.mark.parametrize("rule, fragment", [
    (nested(40), "renderingRule"),
    (nested(2000), "renderingRule"),
    ({"rasterFunction": "BandArithmetic", "rasterFunctionArguments": {"Method": 0,
                                                                      "BandIndexes": "__import__('os')"}}, "__import__"),
    ({"rasterFunction": "BandArithmetic", "rasterFunctionArguments": {"Method": 0, "BandIndexes": "B1.real"}}, "."),
    ({"rasterFunction": "BandArithmetic", "rasterFunctionArguments": {"Method": 0, "BandIndexes": "9**9**9"}}, "*"),
    ({"rasterFunction": "BandArithmetic", "rasterFunctionArguments": {"Method": 0,
                                                                      "BandIndexes": "(" * 5000 + "B1" + ")" * 5000}},
     "BandIndexes"),
    ({"rasterFunction": "Convolution", "rasterFunctionArguments": {"Type": -1, "Rows": 3, "Columns": 3,
                                                                   "Kernel": [1] * 100000}}, "Kernel"),
    ({"rasterFunction": "NoSuchFunction"}, "NoSuchFunction"),
])
def test_hostile_rules_are_refused_with_a_clear_error(served, rule, fragment):
    http, stub = served
    text = rule if isinstance(rule, str) else json.dumps(rule)
    query = {"size": "64,64", "format": "tiff", "renderingRule": text, "f": "json"}
    response = http.post("/arcgis/rest/services/ms/ImageServer/exportImage", data=query)
    error = response.json()["error"]
    assert error["code"] == 400 and fragment in " ".join(error["details"]), error


def test_a_huge_rule_is_refused_before_it_is_read(served):
    http, _ = served
    rule = json.dumps({"rasterFunction": "Convolution", "rasterFunctionArguments": {"Kernel": [1] * 20_000_000}})
    response = http.post("/arcgis/rest/services/ms/ImageServer/exportImage",
                         data={"renderingRule": rule, "f": "json"})  # ~40 MB
    error = response.json()["error"]
    assert error["code"] == 400 and "too large" in error["details"][0]


def test_division_by_zero_and_huge_values_give_nodata_not_errors(served):
    http, _ = served
    for expression in ("B1/(B2-B2)", "B1*1e300*1e300"):
        rule = {"rasterFunction": "BandArithmetic", "rasterFunctionArguments": {"Method": 0,
                                                                                "BandIndexes": expression}}
        rest = http.get("/arcgis/rest/services/ms/ImageServer/exportImage",
                        params={"size": "64,64", "format": "tiff", "renderingRule": json.dumps(rule), "f": "image"})
        assert rest.headers["content-type"] == "image/tiff"


def legend(served, service: str, rule: dict) -> dict:
    return served[0].get(f"/arcgis/rest/services/{service}/ImageServer/legend",
                         params={"renderingRule": json.dumps(rule), "f": "json"}).json()


def test_the_legend_of_a_rule_shows_its_colour_map_ramp_or_output(served):
    import base64
    import io

    import numpy as np
    from PIL import Image

    classes = legend(served, "dem", {"rasterFunction": "Colormap", "rasterFunctionArguments": {
        "Colormap": [[1, 255, 0, 0], [2, 0, 255, 0], [3, 0, 0, 255, 0]],
        "Raster": {"rasterFunction": "Remap", "rasterFunctionArguments": {"InputRanges": [0, 2000, 2000, 9000],
                                                                          "OutputValues": [1, 2]}}}})
    layer = classes["layers"][0]
    assert layer["legendType"] == "Unique Values" and [e["label"] for e in layer["legend"]] == ["1", "2"]
    first = np.asarray(Image.open(io.BytesIO(base64.b64decode(layer["legend"][0]["imageData"]))).convert("RGB"))
    assert first[10, 10].tolist() == [255, 0, 0]  # the class's own colour (value 3 is transparent: no entry)
    ramp = legend(served, "dem", {"rasterFunction": "Aspect Colors"})["layers"][0]
    assert ramp["legendType"] == "Stretched" and ramp["legend"][0]["label"] == "High : 360"
    assert ramp["legend"][2]["label"] == "Low : -1"
    top = np.asarray(Image.open(io.BytesIO(base64.b64decode(ramp["legend"][0]["imageData"]))).convert("RGB"))
    assert top[0, 10].tolist() == [255, 0, 0] and len({tuple(p) for p in top[:, 10]}) > 3  # coloured, not gray
    ndvi = legend(served, "ms", {"rasterFunction": "NDVI Colorized"})["layers"][0]
    assert ndvi["legend"][0]["label"] == "High : 200" and ndvi["legend"][2]["label"] == "Low : 0"
    rgb = legend(served, "ms", {"rasterFunction": "Natural Color"})["layers"][0]
    assert rgb["legendType"] == "RGB Composite" and [e["label"] for e in rgb["legend"]] == [
        "Red: Red", "Green: Green", "Blue: Blue"]
    shade = legend(served, "dem", {"rasterFunction": "Hillshade"})["layers"][0]
    assert shade["legend"][0]["label"] == "High : 255" and shade["legend"][2]["label"] == "Low : 0"
