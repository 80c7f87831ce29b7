"""Error parity on every endpoint (docs/protocol.md §8): the ArcGIS envelope as application/json (JSONP when asked),
HTTP 200 by default and the envelope's code as the status when the setting is off, never an image content type."""
from __future__ import annotations

import json
import socket
from urllib.parse import urlsplit

import pytest

SERVICE = "/arcgis/rest/services/{}/ImageServer"
DEM_3857 = "-13167000,4388000,-13151000,4400000"
RESOURCES = ["", "exportImage", "identify", "keyProperties", "rasterFunctionInfos", "statistics", "histograms",
             "legend", "info", "info/iteminfo", "info/metadata", "map"]

# (resource, query, envelope code): bad input for each endpoint.
BAD = [
    ("", {"f": "image"}, 400),
    ("", {"f": "json", "renderingRule": "{"}, 400),
    ("", {"f": "json", "renderingRule": '{"rasterFunction": "Pansharpening"}'}, 400),
    ("exportImage", {"f": "image", "bbox": "a,b,c,d"}, 400),
    ("exportImage", {"f": "image", "bbox": DEM_3857, "size": "100,5000"}, 400),
    ("exportImage", {"f": "image", "bbox": DEM_3857, "bboxSR": "{}"}, 400),
    ("exportImage", {"f": "image", "bbox": DEM_3857, "time": "5,1"}, 400),
    ("exportImage", {"f": "gif"}, 400),
    ("identify", {"f": "json"}, 400),
    ("identify", {"f": "json", "geometry": '{"x": "a", "y": 2}'}, 400),
    ("identify", {"f": "image", "geometry": "1,2"}, 400),
    ("keyProperties", {"f": "xml"}, 400),
    ("rasterFunctionInfos", {"f": "image"}, 400),
    ("statistics", {"f": "json", "variable": "salinity"}, 400),
    ("statistics", {"f": "json", "renderingRule": "[]"}, 400),
    ("histograms", {"f": "json", "renderingRule": '{"rasterFunction": "Pansharpening"}'}, 400),
    ("legend", {"f": "json", "bandIds": "x"}, 400),
    ("legend", {"f": "json", "bandIds": "-1"}, 400),
    ("info", {"f": "kmz"}, 400),
    ("info/metadata", {"f": "image"}, 400),
    ("map", {"f": "json"}, 400),
]


def assert_envelope(reply, code: int, status: int = 200) -> dict:
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"] == "application/json"
    error = reply.json()["error"]
    assert error["code"] == code and isinstance(error["message"], str) and error["message"]
    assert isinstance(error["details"], list) and all(isinstance(d, str) for d in error["details"])
    return error


@pytest.mark.parametrize("resource, query, code", BAD)
def test_bad_input_on_every_endpoint_is_the_envelope_with_http_200(http, resource, query, code):
    url = f"{SERVICE.format('dem')}/{resource}"
    assert_envelope(http.get(url, params=query), code)
    assert_envelope(http.post(url, data=query), code)


@pytest.mark.parametrize("resource, query, code", BAD)
def test_the_setting_switches_to_the_envelope_code_as_http_status(http_4xx, resource, query, code):
    assert_envelope(http_4xx.get(f"{SERVICE.format('dem')}/{resource}", params=query), code, status=code)


@pytest.mark.parametrize("resource, query, detail", [
    ("", {"f": "json", "renderingRule": '{"rasterFunction": "Pansharpening"}'},
     "renderingRule rasterFunction 'Pansharpening' is not supported"),
    ("exportImage", {"f": "image", "sliceId": "3"}, "sliceId is not supported"),
    ("statistics", {"f": "json", "variable": "salinity"}, "variable is not supported"),
    ("histograms", {"f": "json", "renderingRule": '{"rasterFunction": "Pansharpening"}'},
     "renderingRule rasterFunction 'Pansharpening' is not supported"),
])
def test_what_is_not_built_answers_as_arcgis_refuses_a_value_naming_the_parameter(http, http_4xx, resource, query,
                                                                                  detail):
    url = f"{SERVICE.format('dem')}/{resource}"
    for error in (assert_envelope(http.get(url, params=query), 400),
                  assert_envelope(http_4xx.get(url, params=query), 400, status=400)):
        assert error["message"] == "Invalid or missing input parameters."
        assert any(d.startswith(detail) for d in error["details"]), error


@pytest.mark.parametrize("resource", RESOURCES)
def test_unknown_service_is_404_on_every_resource(http, http_4xx, resource):
    query = {"f": "json", "bbox": DEM_3857, "geometry": "1,2"}
    if resource in ("map",):
        query["f"] = "html"
    error = assert_envelope(http.get(f"{SERVICE.format('nope')}/{resource}", params=query), 404)
    assert "nope" in " ".join(error["details"])
    assert_envelope(http_4xx.get(f"{SERVICE.format('nope')}/{resource}", params=query), 404, status=404)


@pytest.mark.parametrize("path", [
    SERVICE.format("dem") + "/exportImages", SERVICE.format("dem") + "/identify/extra",
    "/arcgis/rest/services/dem/MapServer", "/arcgis/rest/services/dem/ImageServer/info/thumbnail",
    "/arcgis/rest/static/vendor/none.js", "/arcgis/rest/directories/arcgisoutput/x_ImageServer/_ags_1.png",
    "/favicon.ico"])
def test_unknown_resources_are_404_envelopes(http, path):
    assert_envelope(http.get(path, params={"f": "json"}), 404)


def test_errors_are_jsonp_wrapped_when_a_callback_is_given(http):
    reply = http.get(SERVICE.format("dem") + "/exportImage", params={"f": "image", "bbox": "x", "callback": "cb"})
    assert reply.status_code == 200 and reply.headers["content-type"] == "application/javascript"
    assert reply.text.startswith("cb({") and reply.text.endswith("});")
    assert json.loads(reply.text[3:-2])["error"]["code"] == 400


def test_a_method_the_gateway_does_not_take_is_an_envelope(http, http_4xx):
    assert_envelope(http.request("PUT", SERVICE.format("dem"), params={"f": "json"}), 405)
    assert_envelope(http_4xx.request("DELETE", SERVICE.format("dem") + "/exportImage"), 405, status=405)


def test_an_oversized_body_is_refused_whether_or_not_its_length_is_declared(http, http_4xx):
    big = "bbox=" + "1" * (1024 * 1024 + 10)
    url = SERVICE.format("dem") + "/exportImage"
    headers = {"content-type": "application/x-www-form-urlencoded"}
    error = assert_envelope(http.post(url, content=big, headers=headers), 400)
    assert "too large" in error["details"][0]
    assert_envelope(http_4xx.post(url, content=big, headers=headers), 400, status=400)

    def chunks():  # no Content-Length: the body arrives chunked and must be cut off while it streams
        for _ in range(20):
            yield b"x" * 100_000

    assert "too large" in assert_envelope(http.post(url, content=chunks(), headers=headers), 400)["details"][0]


def test_a_lying_content_length_does_not_hang_the_gateway(gateway_url):
    host, port = urlsplit(gateway_url).hostname, urlsplit(gateway_url).port
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(b"POST /arcgis/rest/services/dem/ImageServer/exportImage HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 99999999\r\n\r\nf=json")
        reply = b""
        while b"}}" not in reply:  # the whole envelope, however the server splits its writes
            part = sock.recv(65536)
            if not part:
                break
            reply += part
    text = reply.decode("latin-1")
    assert text.startswith("HTTP/1.1 200") and "The request body is too large" in text


def test_garbled_bytes_and_bad_multipart_are_envelopes(http):
    url = SERVICE.format("dem") + "/exportImage"
    garbled = http.post(url, content=b"bbox=%ff%fe%00&size=\xff\xfe&f=json",
                        headers={"content-type": "application/x-www-form-urlencoded"})
    assert_envelope(garbled, 400)
    multipart = http.post(url, content=b"--xx\r\nnot a part", headers={"content-type": "multipart/form-data; "
                                                                                       "boundary=xx"})
    assert_envelope(multipart, 400)


def test_an_error_for_f_image_is_never_an_image(http):
    for query in ({"f": "image", "bbox": DEM_3857, "size": "0,0"}, {"f": "image", "bbox": DEM_3857,
                                                                     "format": "lerc", "lercVersion": "7"}):
        reply = http.get(SERVICE.format("dem") + "/exportImage", params=query)
        assert not reply.headers["content-type"].startswith("image/")
        assert_envelope(reply, 400)


def test_export_form_shows_a_bad_parameter_on_the_page(http):
    page = http.get(SERVICE.format("dem") + "/exportImage", params={"f": "html", "bbox": "1,2,3"})
    assert page.headers["content-type"].startswith("text/html")
    assert "class='error'" in page.text and "bbox needs 4 comma-separated numbers" in page.text


def test_a_gateway_bug_is_a_500_envelope_that_tells_nothing_of_the_exception(http_4xx, monkeypatch, caplog):
    from imgsvc.rest import arcgis_json

    def broken(reply):
        raise KeyError("/srv/secret/root.json")

    monkeypatch.setattr(arcgis_json, "root_doc", broken)
    with caplog.at_level("ERROR"):
        reply = http_4xx.get(SERVICE.format("dem"), params={"f": "json"})
        error = assert_envelope(reply, 500, status=500)
    rid = reply.headers["x-request-id"]
    assert error == {"code": 500, "message": "Unable to complete operation.",
                     "details": [f"An internal error occurred; see the server log, request id {rid}."]}
    assert f"request id {rid}" in caplog.text
    assert "/srv/secret/root.json" in caplog.text
