"""Request ids, the JSON access log and /metrics (issue 13), from a real `imgsvc serve` process."""
from __future__ import annotations

import json
import re
import time

import grpc
import httpx
import pytest

from imgsvc.v1 import image_service_pb2 as pb
from imgsvc.v1 import image_service_pb2_grpc as pb_grpc
from tests.conftest import start_serve

EXPORT = "/arcgis/rest/services/dem/ImageServer/exportImage"
QUERY = {"bbox": "384000,4055000,396000,4064000", "size": "32,24", "format": "png", "f": "image"}


@pytest.fixture(scope="module")
def served(catalog_path, tmp_path_factory):
    """An `imgsvc serve` process: its gateway client, its gRPC target and the lines it prints (stderr included)."""
    lines: list[str] = []
    process, target, url = start_serve(["--catalog", str(catalog_path), "serve", "--grpc", "127.0.0.1:0", "--http",
                                        "127.0.0.1:0", "--output-dir", str(tmp_path_factory.mktemp("out"))], lines)
    with httpx.Client(base_url=url, timeout=60) as http:
        for _ in range(100):
            try:
                http.get("/arcgis/rest/info", params={"f": "json"}).raise_for_status()
                break
            except httpx.HTTPError:
                time.sleep(0.05)
        yield http, target, lines
    process.terminate()
    process.wait(30)


def access_lines(lines: list[str], request_id: str) -> list[dict]:
    """The access log's lines of one request, waiting a moment for them to be printed."""
    for _ in range(100):
        found = [json.loads(line) for line in list(lines)
                 if line.startswith("{") and f'"request_id": "{request_id}"' in line]
        if len(found) >= 2:
            return found
        time.sleep(0.02)
    return found


def test_a_sane_request_id_is_answered_back_and_ties_both_doors_log_lines(served):
    http, _, lines = served
    reply = http.get(EXPORT, params=QUERY, headers={"X-Request-Id": "probe-42.a:b"})
    assert reply.status_code == 200 and reply.headers["x-request-id"] == "probe-42.a:b"
    rest, grpc_line = sorted(access_lines(lines, "probe-42.a:b"), key=lambda line: line["door"], reverse=True)
    assert rest == {"door": "rest", "method": "GET", "path": EXPORT, "status": 200, "ms": rest["ms"],
                    "bytes": len(reply.content), "request_id": "probe-42.a:b"}
    assert rest["ms"] > 0
    assert grpc_line["door"] == "grpc" and grpc_line["path"] == "/imgsvc.v1.ImageService/ExportImage"
    assert grpc_line["status"] == "OK" and grpc_line["bytes"] > len(reply.content)


@pytest.mark.parametrize("given", ["", "two words", "x" * 200, "semi;colon", "é".encode("latin-1")])
def test_an_insane_or_missing_request_id_is_replaced_by_a_new_one(served, given):
    http, _, _ = served
    reply = http.get("/arcgis/rest/services", params={"f": "json"}, headers={"X-Request-Id": given})
    assert re.fullmatch(r"[0-9a-f]{32}", reply.headers["x-request-id"])


def test_grpc_callers_get_their_request_id_back_or_a_new_one(served):
    _, target, lines = served
    with grpc.insecure_channel(target) as channel:
        stub = pb_grpc.ImageServiceStub(channel)
        _, call = stub.ListServices.with_call(pb.ListServicesRequest(), metadata=(("x-request-id", "grpc-7"),))
        assert dict(call.initial_metadata())["x-request-id"] == "grpc-7"
        _, call = stub.ListServices.with_call(pb.ListServicesRequest())
        assert re.fullmatch(r"[0-9a-f]{32}", dict(call.initial_metadata())["x-request-id"])
    assert any('"request_id": "grpc-7"' in line for line in lines)


def test_a_refusal_answers_its_request_id_too(served):
    http, _, _ = served
    reply = http.get(EXPORT, params={**QUERY, "bbox": "0,0,1e-300,1e-300", "f": "json"},
                     headers={"X-Request-Id": "bad-bbox"})
    assert reply.headers["x-request-id"] == "bad-bbox" and reply.json()["error"]["code"] == 400


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one series of the exposition text."""
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            series_labels = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
            if all(series_labels.get(k) == v for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no series {name} {labels}")


def test_metrics_count_requests_latency_bytes_in_flight_and_errors_of_both_doors(served):
    http, _, _ = served
    image = http.get(EXPORT, params=QUERY)
    http.get(EXPORT, params={**QUERY, "bbox": "1,2,3", "f": "json"})  # refused by the gateway's parse
    http.get(EXPORT, params={**QUERY, "bbox": "0,0,1e-300,1e-300", "f": "json"})  # refused by the gRPC service
    reply = http.get("/metrics")
    assert reply.headers["content-type"].startswith("text/plain")
    text = reply.text
    labels = {"operation": "exportimage", "format": "image", "status": "200"}
    assert metric(text, "imgsvc_http_requests_total", **labels) >= 1
    assert metric(text, "imgsvc_http_request_seconds_count", **labels) >= 1
    assert metric(text, "imgsvc_http_request_seconds_bucket", le="+Inf", **labels) >= 1
    assert metric(text, "imgsvc_http_response_bytes_total", operation="exportimage", format="image") >= \
        len(image.content)
    assert metric(text, "imgsvc_http_requests_total", operation="exportimage", format="json", status="400") >= 1
    assert metric(text, "imgsvc_errors_total", door="rest", kind="INVALID_ARGUMENT") >= 1
    assert metric(text, "imgsvc_http_requests_in_flight") == 1  # this very request
    assert metric(text, "imgsvc_grpc_requests_total", method="ExportImage", code="OK") >= 1
    assert metric(text, "imgsvc_grpc_requests_total", method="ExportImage", code="INVALID_ARGUMENT") >= 1
    assert metric(text, "imgsvc_grpc_request_seconds_count", method="ExportImage") >= 1
    assert metric(text, "imgsvc_grpc_response_bytes_total", method="ExportImage") > 0
    assert metric(text, "imgsvc_grpc_requests_in_flight", method="ExportImage") == 0


def test_metrics_time_the_export_stages_and_show_slots_memory_and_the_cache(served):
    http, _, _ = served
    for size in ("40,30", "48,36"):  # requests no other test makes: the first of each is a miss, the second a hit
        if size == "48,36":
            before = http.get("/metrics").text
        for _ in range(2):
            assert http.get(EXPORT, params={**QUERY, "size": size}).status_code == 200
    text = http.get("/metrics").text
    for stage in ("plan", "render", "functions", "encode"):
        # The cached answer skips every stage: one more timing each.
        assert metric(text, "imgsvc_export_stage_seconds_count", stage=stage) == \
            metric(before, "imgsvc_export_stage_seconds_count", stage=stage) + 1
        assert metric(text, "imgsvc_export_stage_seconds_sum", stage=stage) > 0
    assert metric(text, "imgsvc_response_cache_lookups_total", result="hit") == \
        metric(before, "imgsvc_response_cache_lookups_total", result="hit") + 1
    assert metric(text, "imgsvc_response_cache_bytes") > 0
    # Nothing in flight now: no slot taken, none waiting, no memory held.
    assert metric(text, "imgsvc_exports_running") == metric(text, "imgsvc_exports_queued") == 0
    assert metric(text, "imgsvc_memory_reserved_bytes") == 0
