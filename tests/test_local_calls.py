"""The gateway calling the core in its own process (imgsvc.grpc.local, docs/decisions.md "The gateway calls the core
in process") answers as the gateway calling it over gRPC does: the same bytes, the same error envelopes, the same
request id; and its calls stop at their deadline like a gRPC call's."""
from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from imgsvc import metrics
from imgsvc.errors import ErrorKind, ImgsvcError
from imgsvc.grpc.local import LocalCalls
from imgsvc.grpc.requests import export_params
from imgsvc.grpc.server import create_server, thread_pool
from imgsvc.rest.app import GatewaySettings, create_app
from imgsvc.rest.query import Params, export_request
from tests.conftest import _Gateway

SERVICE = "/arcgis/rest/services/dem/ImageServer"
GOOD = {"bbox": "384000,4055000,396000,4064000", "size": "64,48", "format": "png", "f": "image"}
# Requests the service refuses, each for a reason of its own (parameter, service, rule, size, format).
REFUSED = [
    (SERVICE + "/exportImage", {**GOOD, "bbox": "1,2,3"}),
    (SERVICE + "/exportImage", {**GOOD, "size": "90000,90000"}),
    (SERVICE + "/exportImage", {**GOOD, "format": "webp"}),
    (SERVICE + "/exportImage", {**GOOD, "renderingRule": '{"rasterFunction":"NoSuchFunction"}'}),
    (SERVICE + "/exportImage", {**GOOD, "mosaicRule": '{"mosaicMethod":"esriMosaicNowhere"}'}),
    ("/arcgis/rest/services/nowhere/ImageServer/exportImage", GOOD),
    (SERVICE + "/identify", {"geometry": "not a point", "f": "json"}),
    (SERVICE + "/legend", {"bandIds": "7", "f": "json"}),
]


@pytest.fixture(scope="module")
def both(image_service, tmp_path_factory):
    """Two gateways on one server: one calls it over gRPC, the other in process on its threads."""
    pool = thread_pool(image_service)
    server, port = create_server(image_service, "127.0.0.1:0", executor=pool)
    server.start()
    settings = GatewaySettings(grpc_target=f"127.0.0.1:{port}", output_dir=tmp_path_factory.mktemp("both"))
    with _Gateway(create_app(settings)) as remote, _Gateway(create_app(settings, LocalCalls(image_service, pool))) \
            as local, httpx.Client(timeout=60) as client:
        yield client, remote, local
    server.stop(grace=None)


def test_an_image_is_the_same_bytes_either_way(both):
    client, remote, local = both
    over_grpc = client.get(remote + SERVICE + "/exportImage", params=GOOD)
    in_process = client.get(local + SERVICE + "/exportImage", params=GOOD)
    assert over_grpc.status_code == in_process.status_code == 200
    assert over_grpc.headers["content-type"] == in_process.headers["content-type"] == "image/png"
    assert over_grpc.content == in_process.content and len(in_process.content) > 100


@pytest.mark.parametrize("path, query", REFUSED)
def test_a_refusal_is_the_same_envelope_either_way(both, path, query):
    client, remote, local = both
    over_grpc = client.get(remote + path, params=query).json()
    in_process = client.get(local + path, params=query).json()
    assert "error" in in_process and in_process["error"]["code"] in (400, 404)
    assert over_grpc == in_process


def test_the_callers_request_id_reaches_the_service(both):
    client, _, local = both
    counted = metrics.GRPC_REQUESTS.labels("ExportImage", "OK")._value.get()
    reply = client.get(local + SERVICE + "/exportImage", params=GOOD, headers={"X-Request-Id": "trace-me-42"})
    assert reply.headers["x-request-id"] == "trace-me-42"
    # The call went through the interceptor: it is counted among the ImageService's calls.
    assert metrics.GRPC_REQUESTS.labels("ExportImage", "OK")._value.get() == counted + 1


def test_an_in_process_call_stops_at_its_deadline(image_service):
    calls = LocalCalls(image_service, thread_pool(image_service))
    message = export_request("dem", Params({"size": "4000,3000", "format": "tiff",
                                            "interpolation": "RSP_CubicConvolution"}.items()))
    ended = lambda: sum(metrics.GRPC_REQUESTS.labels("ExportImage", code)._value.get()  # noqa: E731
                        for code in ("DEADLINE_EXCEEDED", "CANCELLED"))
    before = ended()
    started = time.monotonic()
    with pytest.raises(ImgsvcError) as caught:
        asyncio.run(calls("ExportImage", message, [], 0.05))
    assert caught.value.kind is ErrorKind.DEADLINE_EXCEEDED
    # The work itself stopped too, at the service's next check, and the interceptor counted the call as ended by its
    # deadline or by its caller leaving.
    calls.executor.shutdown(wait=True)
    stopped = time.monotonic() - started
    assert ended() == before + 1
    # The same request without a deadline takes far longer than the one that was stopped (the work was real).
    whole = time.monotonic()
    image_service.export_image(export_params(message))
    assert time.monotonic() - whole > 2 * stopped
