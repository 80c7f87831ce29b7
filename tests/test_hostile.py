"""Hostile input through both doors (issue 13): no user text reaches a file, JSON documents and bboxes are bounded
at the parse stage, and what goes wrong is a 400 naming the parameter, never a 500 or a hang."""
from __future__ import annotations

import errno
import json
import os
import sys
import threading

import grpc
import httpx
import pyproj
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from imgsvc import documents, sr
from imgsvc.catalog import Catalog, ServiceSettings
from imgsvc.cli import register
from imgsvc.grpc import create_server
from imgsvc.rest.app import GatewaySettings, create_app
from imgsvc.rest.query import Params, export_request
from imgsvc.service import ImageService
from imgsvc.v1 import image_service_pb2 as pb
from imgsvc.v1 import image_service_pb2_grpc as pb_grpc
from tests import rasters
from tests.conftest import _Gateway

EXPORT = "/arcgis/rest/services/dem/ImageServer/exportImage"
DEM_3857 = "-13167000,4388000,-13151000,4400000"
BASE = {"bbox": DEM_3857, "bboxSR": "3857", "size": "32,32", "format": "png"}
NAD27_TO_WGS84 = ('GEOGCRS["NAD27",DATUM["North American Datum 1927",ELLIPSOID["Clarke 1866",6378206.4,'
                  '294.978698213898]],CS[ellipsoidal,2],AXIS["lat",north],AXIS["lon",east],'
                  'ANGLEUNIT["degree",0.0174532925199433]]')


def violated_field(failure: grpc.RpcError) -> str | None:
    status = rpc_status.from_call(failure)
    for packed in status.details if status is not None else ():
        if packed.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            packed.Unpack(bad)
            return bad.field_violations[0].field
    return None


def assert_refused(http, stub, query: dict, parameter: str, grpc_door: bool = True) -> dict:
    reply = http.post(EXPORT, data={**query, "f": "json"})
    assert reply.status_code == 200 and reply.headers["content-type"] == "application/json", reply.text
    error = reply.json()["error"]
    assert error["code"] == 400 and parameter in " ".join(error["details"]), error
    if grpc_door:
        with pytest.raises(grpc.RpcError) as failure:
            stub.ExportImage(export_request("dem", Params(query.items())))
        assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT, failure.value.details()
        assert violated_field(failure.value) == parameter
    return error


# ---- no user text reaches a file ------------------------------------------------------------------------------

FILE_REFERENCES = [
    ("datumTransformation", {"wkt": "+proj=hgridshift +grids=/etc/passwd"}),
    ("datumTransformation", {"wkt": "+proj=pipeline +step +init=/etc/passwd:x"}),
    ("datumTransformation", {"wkt": "+proj=vgridshift +geoidgrids = /etc/passwd"}),
    ("datumTransformation", {"wkt": "+proj=tinshift +file=/etc/passwd"}),
    ("datumTransformation", {"wkt": "+proj=deformation +xy_grids=/etc/passwd +t_epoch=2000"}),
    ("datumTransformation", {"wkt": '{"type": "Transformation", "parameters": [{"value": "/etc/passwd"}]}'}),
    ("datumTransformation", {"geoTransforms": [{"wkt": "+proj=hgridshift +GRIDS=@/etc/passwd"}]}),
    ("imageSR", {"wkt": f'BOUNDCRS[SOURCECRS[{NAD27_TO_WGS84}],TARGETCRS[{NAD27_TO_WGS84}],ABRIDGEDTRANSFORMATION'
                        '["x",METHOD["NTv2"],PARAMETERFILE["Latitude and longitude difference file","/etc/passwd"]]]'}),
    ("imageSR", {"wkt": 'GEOGCS["x",DATUM["D",SPHEROID["S",6378137,298.257223563]],PRIMEM["G",0],'
                        'UNIT["Degree",0.0174532925199433],EXTENSION["PROJ4_GRIDS","/etc/passwd"]]'}),
    ("imageSR", {"wkt": "+proj=longlat +nadgrids=/etc/passwd"}),
    ("bboxSR", {"wkt": '{"type": "GeographicCRS"}'}),
]


@pytest.mark.parametrize("parameter, value", FILE_REFERENCES)
def test_a_spatial_reference_or_transformation_naming_a_file_is_refused_naming_the_parameter(http, stub, parameter,
                                                                                            value):
    query = {**BASE, "imageSR": "4326", parameter: json.dumps(value)}
    error = assert_refused(http, stub, query, parameter)
    assert "/etc/passwd" not in json.dumps(error)


def test_proj_networking_is_off():
    assert not sr.network.is_network_enabled()  # imgsvc.sr turned PROJ's networking off when imported


def test_a_named_pipe_in_a_grid_key_is_never_opened(http, stub, tmp_path):
    """The issue's finding: a named pipe named as a grid blocked a worker for ever.  Opening a pipe for reading
    blocks until a writer comes, so a server that opened it would not answer; and a writer opening it without
    blocking fails (ENXIO) only while no reader has it open.  The in-process gRPC server's Python-level opens are
    watched by an audit hook as well."""
    fifo = tmp_path / "grid.gsb"
    os.mkfifo(fifo)
    opened = []
    watching = threading.Event()
    sys.addaudithook(lambda event, args: opened.append(args) if (
        watching.is_set() and event == "open" and str(fifo) in str(args[0])) else None)
    query = {**BASE, "imageSR": "4326", "datumTransformation": json.dumps({"wkt": f"+proj=hgridshift +grids={fifo}"})}
    watching.set()
    try:
        assert_refused(http, stub, query, "datumTransformation")
    finally:
        watching.clear()
    assert opened == []
    with pytest.raises(OSError) as no_reader:
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    assert no_reader.value.errno == errno.ENXIO


def test_a_transformation_by_its_code_and_a_plain_wkt_still_work(http):
    query = {**BASE, "imageSR": json.dumps({"wkt": pyproj.CRS(4267).to_wkt()}), "datumTransformation": "1173",
             "f": "json"}
    reply = http.get(EXPORT, params=query).json()
    assert "href" in reply and reply["width"] == 32, reply


# ---- parse limits -------------------------------------------------------------------------------------------------

def nested_rule(depth: int) -> str:
    """A rendering rule nesting JSON objects ``depth`` levels deep, as text (json.dumps recurses)."""
    return '{"rasterFunction": "None", "a": ' * (depth - 1) + "{}" + "}" * (depth - 1)


@pytest.mark.parametrize("depth", [documents.MAX_DEPTH + 1, 45, 900, 5000])
def test_a_rendering_rule_nested_past_the_limit_is_refused_naming_it(http, stub, depth):
    reply = http.post(EXPORT, data={**BASE, "renderingRule": nested_rule(depth), "f": "json"}).json()
    assert reply["error"]["code"] == 400 and "renderingRule" in reply["error"]["details"][0], reply


@pytest.mark.parametrize("depth", [documents.MAX_DEPTH + 1])
def test_a_grpc_rule_nested_past_the_limit_is_invalid_naming_it(stub, depth):
    request = export_request("dem", Params(BASE.items()))
    request.rendering_rule.update(json.loads(nested_rule(depth)))
    with pytest.raises(grpc.RpcError) as failure:
        stub.ExportImage(request)
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violated_field(failure.value) == "renderingRule"


def _length_delimited(number: int, payload: bytes) -> bytes:
    def varint(n: int) -> bytes:
        out = bytearray()
        while True:
            out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
            n >>= 7
            if not n:
                return bytes(out)
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def test_a_grpc_request_nested_past_the_decoders_depth_is_invalid_not_internal(grpc_server):
    """Past ~50 JSON levels the protobuf decoder itself gives up ("Exception deserializing request!" as INTERNAL
    before): the bytes are built by hand, as no protobuf library would build them."""
    struct = b""
    for _ in range(900):  # Struct{fields: {"a": Value{struct_value: struct}}}
        struct = _length_delimited(1, _length_delimited(1, b"a") + _length_delimited(2, _length_delimited(5, struct)))
    number = pb.ExportImageRequest.DESCRIPTOR.fields_by_name["rendering_rule"].number
    data = _length_delimited(1, b"dem") + _length_delimited(number, struct)
    with grpc.insecure_channel(grpc_server) as channel:
        call = channel.unary_unary("/imgsvc.v1.ImageService/ExportImage",
                                   response_deserializer=pb.ExportImageResponse.FromString)
        with pytest.raises(grpc.RpcError) as failure:
            call(data)
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "cannot be decoded" in failure.value.details() and str(documents.MAX_DEPTH) in failure.value.details()


@pytest.mark.parametrize("mosaic_rule", [
    {"itemRenderingRule": json.loads(nested_rule(40))},
    {"sortValue": json.loads(nested_rule(60))},
    {"mosaicMethod": "esriMosaicAttribute", "sortField": "x", "sortValue": float("nan")},
])
def test_a_mosaic_rule_past_the_limits_is_refused_naming_it(http, mosaic_rule):
    reply = http.post(EXPORT, data={**BASE, "mosaicRule": json.dumps(mosaic_rule), "f": "json"}).json()
    assert reply["error"]["code"] == 400 and "mosaicRule" in reply["error"]["details"][0], reply


@pytest.mark.parametrize("text", [
    '{"rasterFunction": "Stretch", "rasterFunctionArguments": {"Gamma": [NaN]}}',
    '{"rasterFunction": "Stretch", "rasterFunctionArguments": {"Min": Infinity}}',
    '{"rasterFunction": "Stretch", "rasterFunctionArguments": {"Max": -1e999}}',
])
def test_nan_or_infinity_in_a_rule_is_refused_at_the_rest_door(http, text):
    reply = http.post(EXPORT, data={**BASE, "renderingRule": text, "f": "json"}).json()
    assert reply["error"]["code"] == 400 and "renderingRule" in reply["error"]["details"][0], reply


@pytest.mark.parametrize("field", ["rendering_rule", "mosaic_rule"])
def test_nan_in_a_grpc_struct_is_invalid_naming_the_parameter(stub, field):
    """A Struct can carry a NaN number that JSON cannot: "Fail to serialize NaN for Value.number_value" was a 500."""
    request = export_request("dem", Params(BASE.items()))
    if field == "rendering_rule":
        request.rendering_rule.update({"rasterFunction": "Stretch",
                                       "rasterFunctionArguments": {"Gamma": [float("nan")]}})
    else:
        request.mosaic_rule.item_rendering_rule.update({"rasterFunction": "None", "x": float("nan")})
    with pytest.raises(grpc.RpcError) as failure:
        stub.ExportImage(request)
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violated_field(failure.value) == {"rendering_rule": "renderingRule", "mosaic_rule": "mosaicRule"}[field]


def test_a_kernel_summing_past_float64_is_refused_naming_it(http, stub):
    rule = {"rasterFunction": "Convolution", "rasterFunctionArguments": {"Type": -1, "Rows": 3, "Columns": 3,
                                                                         "Kernel": [1e308] * 9}}
    error = assert_refused(http, stub, {**BASE, "renderingRule": json.dumps(rule)}, "renderingRule")
    assert "Kernel" in error["details"][0]


@pytest.mark.parametrize("bbox", ["0,0,1e-300,1e-300", "-1e308,-1e308,1e308,1e308", "0,0,1e308,1",
                                  "-13167000,4388000,-13167000.000000001,4388000.000000001"])
def test_a_degenerate_or_enormous_bbox_is_refused_naming_it(http, stub, bbox):
    assert_refused(http, stub, {**BASE, "bbox": bbox}, "bbox")


# ---- no path in any answer ----------------------------------------------------------------------------------------

def test_a_broken_raster_answers_a_500_naming_the_request_id_never_its_path(tmp_path, caplog):
    """A raster truncated after registration fails in GDAL with a message naming the file: both doors answer the
    generic 500 with the request id, and the log has the rest."""
    secret = tmp_path / "secret-folder"
    secret.mkdir()
    raster = rasters.dem(secret / "broken.tif")
    catalog = Catalog(tmp_path / "catalog.sqlite")
    register(catalog, "broken", raster, ServiceSettings())
    raster.write_bytes(raster.read_bytes()[:20_000])  # the header and directories survive, the tiles do not
    server, port = create_server(ImageService(Catalog(tmp_path / "catalog.sqlite", readonly=True)), "127.0.0.1:0")
    server.start()
    try:
        query = {"bbox": "384000,4055000,396000,4064000", "size": "64,48", "format": "tiff", "f": "json"}
        app = create_app(GatewaySettings(grpc_target=f"127.0.0.1:{port}", output_dir=tmp_path / "out"))
        with caplog.at_level("ERROR"), _Gateway(app) as url:
            reply = httpx.post(f"{url}/arcgis/rest/services/broken/ImageServer/exportImage", data=query,
                               headers={"X-Request-Id": "broken-1"})
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel, pytest.raises(grpc.RpcError) as failure:
                pb_grpc.ImageServiceStub(channel).ExportImage(export_request("broken", Params(query.items())),
                                                              metadata=(("x-request-id", "broken-2"),))
    finally:
        server.stop(grace=None)
    assert reply.json() == {"error": {"code": 500, "message": "Unable to complete operation.", "details": [
        "An internal error occurred; see the server log, request id broken-1."]}}
    assert failure.value.code() == grpc.StatusCode.INTERNAL
    assert "secret-folder" not in failure.value.details() and "request id broken-2" in failure.value.details()
    assert "secret-folder" not in str(rpc_status.from_call(failure.value))
    assert "secret-folder" in caplog.text and "broken-1" in caplog.text
