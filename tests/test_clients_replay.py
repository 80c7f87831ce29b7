"""Every exportImage request a real client sent (tests/clients/recorded_requests.json, kept true to the pinned
clients by the test_clients_* tests) replayed as a golden request through both doors: the REST gateway, with the
client's own method, query string and form body, and the gRPC service, with the request the gateway's parser
builds from the same parameters.  Both must give the same bytes."""
from __future__ import annotations

import json
from urllib.parse import parse_qsl

import pytest

from imgsvc.rest.arcgis_json import extent_doc
from imgsvc.rest.query import Params, export_request
from tests.clients import harness

RECORDED = json.loads(harness.RECORDED_REQUESTS.read_text())
EXPORTS = sorted({(client, r["method"], r["path"], r["query"], r["body"])
                  for client, requests in RECORDED.items() for r in requests if r["path"].endswith("/exportImage")})


def test_every_client_left_golden_exports():
    clients = {client.split(" ")[0] for client, *_ in EXPORTS}
    assert clients == {"esri-leaflet", "openlayers", "arcgis-maps-sdk-js", "gdal-wms-ags", "arcgis-python"}


@pytest.mark.parametrize("client, method, path, query, body", EXPORTS,
                         ids=[f"{e[0]}:{i}" for i, e in enumerate(EXPORTS)])
def test_recorded_export_gives_the_same_bytes_through_both_doors(http, stub, client, method, path, query, body):
    service = path.split("/")[-3]
    params = parse_qsl(query, keep_blank_values=True) + parse_qsl(body, keep_blank_values=True)
    rest = http.request(method, f"{path}?{query}" if query else path, content=body.encode() or None,
                        headers={"Content-Type": "application/x-www-form-urlencoded"} if body else {})
    assert rest.status_code == 200
    reply = stub.ExportImage(export_request(service, Params(params)))
    if dict(params)["f"] == "json":
        doc = rest.json()
        assert (doc["width"], doc["height"], doc["extent"]) == (reply.width, reply.height, extent_doc(reply.extent))
        image = http.get(doc["href"])
        assert image.content == reply.image
        assert image.headers["content-type"] == reply.content_type
    else:
        assert rest.content == reply.image
        assert rest.headers["content-type"] == reply.content_type
