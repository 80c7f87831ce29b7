"""Both front doors, for real: golden requests give the same bytes over REST and gRPC; errors give the ArcGIS
envelope over REST and the matching status with the same message over gRPC."""
from __future__ import annotations

import io
import json
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pytest
from PIL import Image

from imgsvc.rest.query import Params, export_request
from imgsvc.v1 import image_service_pb2 as pb

EXPORT = "/arcgis/rest/services/{}/ImageServer/exportImage"
DEM_3857 = "-13167000,4388000,-13151000,4400000"

# Golden requests as the real clients send them (docs/protocol.md §12), with the service they hit.
GOLDEN = [
    ("dem", {"bbox": DEM_3857, "bboxSR": "3857", "imageSR": "3857", "size": "512,512", "format": "png",
             "f": "image"}),
    ("dem", {"bbox": "-13167000,4400000,-13151000,4388000", "size": "800,600", "format": "jpgpng",
             "transparent": "true", "bboxSR": "3857", "imageSR": "3857", "f": "image"}),            # esri-leaflet
    ("dem", {"f": "image", "format": "png32", "transparent": "true", "size": "800,600", "bbox": DEM_3857,
             "bboxSR": "3857", "imageSR": "3857", "dpi": "90"}),                                     # OpenLayers
    ("dem", {"bbox": "384000.000000,4055000.000000,396000.000000,4064000.000000", "size": "400,300",
             "format": "png", "layers": "show:", "transparent": "true", "f": "image"}),              # QGIS
    ("dem", {"bbox": DEM_3857, "bboxSR": "102100", "imageSR": "4326", "size": "300,300", "format": "tiff",
             "interpolation": "RSP_NearestNeighbor", "f": "image"}),
    ("ms", {"bbox": "381000,4066000,384000,4069000", "size": "256,256", "format": "jpg", "bandIds": "3,2,1",
            "f": "image"}),
    ("ms", {"bbox": "381000,4066000,386000,4069000", "size": "300,200", "format": "tiff", "bandIds": "2,2,0",
            "pixelType": "U8", "noData": "0", "f": "image"}),
]


def grpc_request(service: str, query: dict) -> pb.ExportImageRequest:
    return export_request(service, Params(query.items()))


@pytest.mark.parametrize("service, query", GOLDEN)
def test_golden_requests_give_the_same_bytes_through_both_doors(http, stub, service, query):
    rest = http.get(EXPORT.format(service), params=query)
    assert rest.status_code == 200, rest.text
    assert rest.headers["content-type"].startswith("image/")
    reply = stub.ExportImage(grpc_request(service, query))
    assert rest.content == reply.image
    assert rest.headers["content-type"] == reply.content_type


def test_hand_built_grpc_request_equals_the_rest_query(http, stub):
    req = pb.ExportImageRequest(
        service="dem", bbox=pb.Envelope(xmin=-13167000, ymin=4388000, xmax=-13151000, ymax=4400000),
        bbox_sr=pb.SpatialReference(wkid=3857), image_sr=pb.SpatialReference(wkid=3857),
        size=pb.Size(width=512, height=512), format=pb.FORMAT_PNG)
    rest = http.get(EXPORT.format("dem"), params=GOLDEN[0][1])
    assert stub.ExportImage(req).image == rest.content


def test_png_shows_the_data(http):
    rest = http.get(EXPORT.format("dem"), params=GOLDEN[0][1])
    image = Image.open(io.BytesIO(rest.content))
    assert image.format == "PNG" and image.size == (512, 512)
    pixels = np.asarray(image.convert("LA"))
    gray, alpha = pixels[..., 0], pixels[..., 1]
    assert (alpha == 255).mean() > 0.9 and (alpha == 0).any()   # the nodata hole is transparent
    assert gray[alpha == 255].std() > 20                        # terrain, not a flat fill


def test_jpgpng_is_jpeg_when_nothing_is_masked(http):
    rest = http.get(EXPORT.format("dem"), params={"bbox": "386000,4055000,396000,4064000", "size": "200,180",
                                                  "f": "image"})
    assert rest.content[:2] == b"\xff\xd8" and rest.headers["content-type"] == "image/jpeg"


def test_f_json_returns_the_image_resource_and_its_href_serves_the_file(http):
    query = dict(GOLDEN[0][1], f="json")
    doc = http.get(EXPORT.format("dem"), params=query).json()
    assert set(doc) == {"href", "width", "height", "extent", "scale"}
    assert (doc["width"], doc["height"], doc["scale"]) == (512, 512, 0)
    assert doc["extent"]["spatialReference"] == {"wkid": 102100, "latestWkid": 3857}
    assert doc["href"].endswith(".png") and "/rest/directories/arcgisoutput/dem_ImageServer/_ags_" in doc["href"]
    image = http.get(doc["href"])
    assert image.status_code == 200 and image.content == http.get(EXPORT.format("dem"), params=GOLDEN[0][1]).content


def test_post_form_equals_get(http):
    query = dict(GOLDEN[0][1], bboxSR='{"wkid": 3857}')
    assert http.post(EXPORT.format("dem"), data=query).content == http.get(EXPORT.format("dem"), params=query).content


def test_root_resource_and_service_list(http):
    for path in ("/arcgis/rest/services/dem/ImageServer", "/arcgis/rest/services/dem/ImageServer/"):
        root = http.get(path, params={"f": "json"}).json()
        assert root["name"] == "dem" and root["bandCount"] == 1 and root["pixelType"] == "F32"
        assert root["extent"]["spatialReference"]["latestWkid"] == 32611
        assert root["pixelSizeX"] == 30 and root["noDataValues"] == [-9999]
        assert isinstance(root["fields"], list) and root["rasterFunctionInfos"][0]["name"] == "None"
        assert root["capabilities"].startswith("Image") and root["serviceDataType"].startswith("esriImageService")
        assert len(root["minValues"]) == len(root["stdvValues"]) == 1 and root["currentVersion"] >= 10.91
    assert http.post("/arcgis/rest/services/ms/ImageServer", data={"f": "json"}).json()["bandNames"][3] == \
        "NearInfrared"
    services = http.get("/arcgis/rest/services", params={"f": "json"}).json()["services"]
    assert {"name": "dem", "type": "ImageServer"} in services
    assert "<html" in http.get("/arcgis/rest/services/dem/ImageServer").text


def test_jsonp_and_cors(http):
    rest = http.get("/arcgis/rest/services/dem/ImageServer", params={"f": "json", "callback": "cb.c0"},
                    headers={"Origin": "http://example.test"})
    assert rest.text.startswith("cb.c0({") and rest.headers["access-control-allow-origin"] == "*"
    bad = http.get("/arcgis/rest/services/dem/ImageServer", params={"f": "json", "callback": "alert(1)//"})
    assert bad.text.startswith("{")


BAD = [
    ({"bbox": "1,2,3"}, 400),
    ({"bbox": "1,2,1,4"}, 400),
    ({"bbox": "nan,2,3,4"}, 400),
    ({"bbox": "1,2,inf,4"}, 400),
    ({"bbox": DEM_3857, "bboxSR": "123456"}, 400),
    ({"bbox": DEM_3857, "size": "0,10"}, 400),
    ({"bbox": DEM_3857, "size": "-1,10"}, 400),
    ({"bbox": DEM_3857, "size": "5000,10"}, 400),
    ({"bbox": DEM_3857, "format": "webp"}, 400),
    ({"bbox": DEM_3857, "renderingRule": "{oops"}, 400),
    ({"bbox": DEM_3857, "mosaicRule": "{"}, 400),
    ({"bbox": '{"xmin": 1, "ymin"'}, 400),
    ({"bbox": DEM_3857, "imageSR": '{"wkid": }'}, 400),
    ({"bbox": DEM_3857, "bandIds": "7"}, 400),
]


@pytest.mark.parametrize("query, code", BAD)
def test_bad_input_gets_the_envelope_over_rest_and_invalid_argument_over_grpc(http, stub, query, code):
    query = dict(query, f="image")
    rest = http.get(EXPORT.format("dem"), params=query)
    assert rest.status_code == 200 and rest.headers["content-type"] == "application/json"
    error = rest.json()["error"]
    assert error["code"] == code and error["message"] == "Invalid or missing input parameters."
    assert error["details"] and all(isinstance(d, str) for d in error["details"])
    try:
        request = grpc_request("dem", query)
    except Exception:
        return  # the gateway refused it while parsing the dialect; nothing reached gRPC
    with pytest.raises(grpc.RpcError) as info:
        stub.ExportImage(request)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details() == " ".join([error["message"], *error["details"]])


def test_size_limit_detail_is_arcgis_verbatim(http):
    error = http.get(EXPORT.format("dem"), params={"bbox": DEM_3857, "size": "100,5000", "f": "image"}).json()
    assert error["error"]["details"] == ["The requested image exceeds the size limit."]


def test_unknown_service_is_a_404_envelope_and_not_found(http, stub):
    for path in (EXPORT.format("nope"), "/arcgis/rest/services/nope/ImageServer"):
        rest = http.get(path, params={"f": "json", "bbox": DEM_3857})
        assert rest.headers["content-type"] == "application/json"
        assert rest.json()["error"]["code"] == 404
    with pytest.raises(grpc.RpcError) as info:
        stub.ExportImage(pb.ExportImageRequest(service="nope"))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert http.get("/arcgis/rest/nothing/here").json()["error"]["code"] == 404


def test_unimplemented_parameters_are_refused_by_name(http, stub):
    query = {"bbox": DEM_3857, "f": "image", "renderingRule": json.dumps({"rasterFunction": "Pansharpening"})}
    error = http.get(EXPORT.format("dem"), params=query).json()["error"]
    assert "renderingRule" in " ".join(error["details"])
    with pytest.raises(grpc.RpcError) as info:
        stub.ExportImage(grpc_request("dem", query))
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_concurrent_requests_give_the_same_bytes(http):
    service, query = GOLDEN[4]
    expected = http.get(EXPORT.format(service), params=query).content
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda _: http.get(EXPORT.format(service), params=query).content, range(12)))
    assert all(r == expected for r in results)


def test_health_and_reflection(grpc_server):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(grpc_server) as channel:
        status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service="imgsvc.v1.ImageService"))
        assert status.status == health_pb2.HealthCheckResponse.SERVING


# Every format through the gateway: the content type, the signature clients sniff, and the href extension.
FORMAT_SIGNATURES = [
    ("png", "image/png", b"\x89PNG", "png"), ("png8", "image/png", b"\x89PNG", "png"),
    ("png24", "image/png", b"\x89PNG", "png"), ("png32", "image/png", b"\x89PNG", "png"),
    ("jpg", "image/jpeg", b"\xff\xd8", "jpg"), ("bmp", "image/bmp", b"BM", "bmp"),
    ("gif", "image/gif", b"GIF8", "gif"), ("tiff", "image/tiff", b"II*\x00", "tif"),
    ("lerc", "application/octet-stream", b"Lerc2 ", "lerc"), ("bip", "application/octet-stream", b"", "bip"),
    ("bsq", "application/octet-stream", b"", "bsq"),
]


@pytest.mark.parametrize("fmt, content_type, magic, extension", FORMAT_SIGNATURES)
def test_every_format_through_the_gateway(http, http_on, fmt, content_type, magic, extension):
    """... and the same bytes with the rasters in S3 and the catalog on PostgreSQL (conftest.STORAGES)."""
    query = {"bbox": DEM_3857, "bboxSR": "3857", "size": "64,48", "format": fmt, "f": "image"}
    rest = http_on.get(EXPORT.format("dem"), params=query)
    assert rest.content == http.get(EXPORT.format("dem"), params=query).content
    assert rest.headers["content-type"] == content_type and rest.content.startswith(magic)
    if fmt in ("bip", "bsq"):  # F32 pixels, then the 1-bit mask
        assert len(rest.content) == 64 * 48 * 4 + (64 * 48 + 7) // 8
    doc = http_on.get(EXPORT.format("dem"), params=dict(query, f="json")).json()
    assert doc["href"].endswith("." + extension)


def test_lerc_version_1_and_kmz_through_the_gateway(http):
    import zipfile

    lerc1 = http.get(EXPORT.format("dem"), params={"bbox": DEM_3857, "bboxSR": "3857", "size": "64,48",
                                                   "format": "lerc", "lercVersion": "1", "f": "image"})
    assert lerc1.content.startswith(b"CntZImage ")
    kmz = http.get(EXPORT.format("dem"), params={"bbox": DEM_3857, "bboxSR": "3857", "size": "64,48", "f": "kmz"})
    assert kmz.headers["content-type"] == "application/vnd.google-earth.kmz"
    with zipfile.ZipFile(io.BytesIO(kmz.content)) as archive:
        kml = archive.read("doc.kml").decode()
    assert "<LatLonBox>" in kml and "-118.2" in kml
