"""Bounded work per request (docs/decisions.md "Bounded work"): an export's memory is known before it reads and is
refused over the request's budget, the exports in flight share the server's budget (waiting, then refused as
busy), and a request's work stops at its deadline or when its caller is gone, through both doors."""
from __future__ import annotations

import socket
import threading
import time
import tracemalloc
import urllib.parse

import grpc
import httpx
import numpy as np
import pytest

from imgsvc import budget, metrics
from imgsvc.catalog import Catalog, ServiceSettings
from imgsvc.cli import register
from imgsvc.errors import ErrorKind, ImgsvcError
from imgsvc.grpc.local import LocalCalls
from imgsvc.grpc.server import create_server, thread_pool
from imgsvc.grpc.requests import export_params
from imgsvc.plan import SIZE_LIMIT_DETAIL
from imgsvc.rest.app import GatewaySettings, create_app
from imgsvc.rest.query import Params, export_request
from imgsvc.service import ImageService
from imgsvc.v1 import image_service_pb2_grpc as pb_grpc
from tests import rasters
from tests.conftest import _Gateway

X0, Y0 = rasters.ORIGIN
ITEMS = 24


@pytest.fixture(scope="module")
def catalog_file(tmp_path_factory, dem_path, u16_path):
    """The conftest DEM and 4-band rasters, and a mosaic of ITEMS overlapping 400² Float32 items."""
    folder = tmp_path_factory.mktemp("bounded")
    db = folder / "catalog.sqlite"
    catalog = Catalog(db)
    register(catalog, "dem", dem_path, ServiceSettings())
    register(catalog, "ms", u16_path, ServiceSettings(max_image_width=4100, max_image_height=4100))
    paths = [rasters.write_raster(folder / f"item{i}.tif", rasters.smooth_field(400, 400, seed=i)[None]
                                  .astype(np.float32), origin=(X0 + 300 * (i % 6), Y0 - 300 * (i // 6)),
                                  overviews=()) for i in range(ITEMS)]
    register(catalog, "many", paths, ServiceSettings(max_mosaic_image_count=ITEMS))
    return db


def request(service: str, **query):
    return export_params(export_request(service, Params(query.items())))


MANY_MEAN = {"size": "3000,3000", "format": "tiff", "mosaicRule": '{"mosaicOperation":"MT_MEAN"}',
             "interpolation": "RSP_CubicConvolution"}


@pytest.mark.parametrize("service, query", [
    ("dem", {"size": "1500,1200", "format": "tiff"}),
    ("dem", {"size": "800,800", "format": "png", "renderingRule": '{"rasterFunction":"Hillshade"}'}),
    ("ms", {"size": "1200,1000", "format": "tiff", "pixelType": "F64", "bandIds": "0,1,2,3,3,2,1,0"}),
    ("ms", {"size": "900,900", "format": "lerc", "renderingRule": '{"rasterFunction":"NDVI"}'}),
    ("many", {"size": "1200,1200", "format": "tiff", "mosaicRule": '{"mosaicOperation":"MT_MEAN"}'}),
    ("many", {"size": "1000,1000", "format": "tiff", "mosaicRule": '{"mosaicOperation":"MT_BLEND"}'}),
])
def test_the_estimate_bounds_what_an_export_allocates(catalog_file, service, query):
    core = ImageService(Catalog(catalog_file, readonly=True))
    params = request(service, **query)
    estimate = budget.export_bytes(core.plan_export(params).plan)
    core.export_image(params)  # warm: caches, datasets
    tracemalloc.start()
    try:
        core.export_image(params)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak <= estimate <= 12 * peak, (peak, estimate)  # an upper bound, not a wild one


def test_an_export_over_the_request_budget_is_refused_as_over_the_size_limit(catalog_file):
    params = request("ms", size="4000,4000", format="tiff", pixelType="F64")
    small = ImageService(Catalog(catalog_file, readonly=True), max_request_bytes=256 * 2**20)
    with pytest.raises(ImgsvcError) as caught:
        small.export_image(params)
    assert caught.value.kind is ErrorKind.INVALID_ARGUMENT and caught.value.details[0] == SIZE_LIMIT_DETAIL
    assert caught.value.parameter == "size"
    tracemalloc.start()
    try:
        with pytest.raises(ImgsvcError):
            small.export_image(params)
        assert tracemalloc.get_traced_memory()[1] < 16 * 2**20  # refused before reading anything
    finally:
        tracemalloc.stop()


def test_a_thousand_band_ids_are_refused_naming_bandids(http):
    reply = http.get("/arcgis/rest/services/ms/ImageServer/exportImage",
                     params={"bandIds": ",".join(["0"] * 1000), "f": "json"}).json()
    assert reply["error"]["code"] == 400 and "bandIds" in reply["error"]["details"][0]


def test_the_shared_budget_waits_for_room_then_refuses_as_busy():
    shared = budget.MemoryBudget(100, wait_seconds=0.3)
    release = threading.Event()
    holding = threading.Event()

    def hold():
        with shared.reserve(80):
            holding.set()
            release.wait(5)

    holder = threading.Thread(target=hold)
    holder.start()
    holding.wait(5)
    started = time.monotonic()
    with pytest.raises(ImgsvcError) as caught:
        with shared.reserve(50):
            pass
    assert caught.value.kind is ErrorKind.RESOURCE_EXHAUSTED and time.monotonic() - started >= 0.25
    with shared.reserve(20):  # fits beside the holder
        assert shared.in_use == 100
    # A waiting request goes ahead as soon as room is made.
    threading.Timer(0.1, release.set).start()
    with shared.reserve(90):
        assert shared.in_use == 90
    holder.join()
    with shared.reserve(10**9):  # larger than the whole budget: runs alone
        assert shared.in_use == 100
    assert shared.in_use == 0


@pytest.fixture(scope="module", params=["gateway over gRPC", "gateway in process"])
def doors(request, catalog_file, tmp_path_factory):
    """A gRPC server and a gateway over a service whose shared budget the test can fill; the gateway calls the
    server over gRPC (`--gateway-only`) or in process, on the server's threads (`imgsvc serve`)."""
    core = ImageService(Catalog(catalog_file, readonly=True), memory=budget.MemoryBudget(2**30, wait_seconds=0.2))
    pool = thread_pool(core)
    server, port = create_server(core, "127.0.0.1:0", executor=pool)
    server.start()
    target = f"127.0.0.1:{port}"
    calls = LocalCalls(core, pool) if request.param == "gateway in process" else None
    with _Gateway(create_app(GatewaySettings(grpc_target=target, output_dir=tmp_path_factory.mktemp("out"),
                                             errors_with_http_200=False), calls)) as url:
        channel = grpc.insecure_channel(target)
        yield core, pb_grpc.ImageServiceStub(channel), url
        channel.close()
    server.stop(grace=None)


def test_a_busy_server_answers_503_and_resource_exhausted(doors):
    core, stub, url = doors
    with core.memory.reserve(core.memory.total):
        reply = httpx.get(f"{url}/arcgis/rest/services/dem/ImageServer/exportImage", params={"f": "json"})
        assert reply.status_code == 503 and reply.json()["error"]["code"] == 503
        assert "busy" in reply.json()["error"]["details"][0]
        with pytest.raises(grpc.RpcError) as caught:
            stub.ExportImage(export_request("dem", Params({"f": "image"}.items())))
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert httpx.get(f"{url}/arcgis/rest/services/dem/ImageServer/exportImage",
                     params={"f": "image", "format": "png"}).status_code == 200


def cpu_seconds_over(seconds: float) -> float:
    start = time.process_time()
    time.sleep(seconds)
    return time.process_time() - start


def test_work_stops_soon_after_the_grpc_deadline(doors):
    core, stub, _ = doors
    message = export_request("many", Params(MANY_MEAN.items()))
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as caught:
        stub.ExportImage(message, timeout=0.3)
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    time.sleep(0.5)  # the item being resampled when the deadline passed finishes
    assert cpu_seconds_over(1.0) < 0.3
    # The same request without a deadline takes far longer than the one that was stopped (the work was real).
    whole = time.monotonic()
    core.export_image(request("many", **MANY_MEAN))
    assert time.monotonic() - whole > 3 * 0.3 and time.monotonic() - started > 1.5


def test_a_rest_client_that_hangs_up_stops_the_work(doors):
    core, _, url = doors
    host, port = url.removeprefix("http://").rsplit(":", 1)
    before = metrics.GRPC_REQUESTS.labels("ExportImage", "CANCELLED")._value.get()
    answered = metrics.HTTP_REQUESTS.labels("exportimage", "image", "499")._value.get()
    query = urllib.parse.urlencode({**MANY_MEAN, "f": "image"})
    with socket.create_connection((host, int(port))) as client:
        client.sendall(f"GET /arcgis/rest/services/many/ImageServer/exportImage?{query} HTTP/1.1\r\n"
                       f"Host: {host}\r\n\r\n".encode())
        time.sleep(0.3)
    time.sleep(0.5)  # the item being resampled when the client hung up finishes
    assert cpu_seconds_over(1.0) < 0.3
    assert metrics.GRPC_REQUESTS.labels("ExportImage", "CANCELLED")._value.get() == before + 1
    assert metrics.HTTP_REQUESTS.labels("exportimage", "image", "499")._value.get() == answered + 1  # nginx's code


def test_the_servers_own_ceiling_stops_an_export(catalog_file):
    core = ImageService(Catalog(catalog_file, readonly=True), request_timeout=0.2)
    with pytest.raises(ImgsvcError) as caught:
        core.export_image(request("many", **MANY_MEAN))
    assert caught.value.kind is ErrorKind.DEADLINE_EXCEEDED and caught.value.code == 504


def test_a_caller_gone_stops_the_work(catalog_file):
    core = ImageService(Catalog(catalog_file, readonly=True))
    gone = threading.Event()
    threading.Timer(0.2, gone.set).start()
    started = time.monotonic()
    with pytest.raises(ImgsvcError) as caught:
        core.export_image(request("many", **MANY_MEAN), budget.Deadline(gone=gone.is_set))
    assert caught.value.kind is ErrorKind.CANCELLED and time.monotonic() - started < 1.5


def test_export_slots_run_some_queue_some_and_refuse_the_rest():
    slots = budget.ExportSlots(running=1, waiting=1)
    release = threading.Event()
    order = []

    def export(name):
        with slots.take(budget.Deadline(5)):
            order.append(name)
            release.wait(5)

    first = threading.Thread(target=export, args=("first",))
    first.start()
    while slots.active < 1:
        time.sleep(0.01)
    second = threading.Thread(target=export, args=("second",))
    second.start()
    while slots.queued < 1:
        time.sleep(0.01)
    with pytest.raises(ImgsvcError) as caught:  # running and waiting are full: refused at once
        with slots.take(budget.Deadline(5)):
            pass
    assert caught.value.kind is ErrorKind.RESOURCE_EXHAUSTED
    release.set()
    first.join()
    second.join()
    assert order == ["first", "second"] and (slots.active, slots.queued) == (0, 0)
    with pytest.raises(ImgsvcError) as caught:  # a wait past the deadline is the deadline's
        with slots.take(), slots.take(budget.Deadline(0.2)):
            pass
    assert caught.value.kind is ErrorKind.DEADLINE_EXCEEDED


def test_health_and_metadata_answer_while_every_export_slot_is_taken(catalog_file):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from imgsvc.v1 import image_service_pb2 as pb

    core = ImageService(Catalog(catalog_file, readonly=True), slots=budget.ExportSlots(running=2, waiting=4))
    server, port = create_server(core, "127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    stub = pb_grpc.ImageServiceStub(channel)
    health = health_pb2_grpc.HealthStub(channel)
    try:
        with core.slots.take(), core.slots.take():  # every running slot taken: exports wait
            waiting = [stub.ExportImage.future(export_request("dem", Params({"f": "image"}.items())), timeout=30)
                       for _ in range(4)]
            deadline = time.monotonic() + 10
            while core.slots.queued < 4 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert core.slots.queued == 4
            started = time.monotonic()
            assert health.Check(health_pb2.HealthCheckRequest(), timeout=2).status == \
                health_pb2.HealthCheckResponse.SERVING
            assert [s.name for s in stub.ListServices(pb.ListServicesRequest(), timeout=2).services]
            stub.GetServiceInfo(pb.GetServiceInfoRequest(service="dem"), timeout=2)
            assert time.monotonic() - started < 2
            with pytest.raises(grpc.RpcError) as caught:  # the queue is full too
                stub.ExportImage(export_request("dem", Params({"f": "image"}.items())), timeout=5)
            assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert all(call.result().image for call in waiting)  # the waiting ones ran once slots were free
    finally:
        channel.close()
        server.stop(grace=None)
