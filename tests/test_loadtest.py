"""`imgsvc loadtest` against servers whose answers it knows: a gRPC and an HTTP service that take a fixed 100 ms
per request on two workers (so 20 requests a second at most), and the real imgsvc server through both doors."""
from __future__ import annotations

import asyncio
import json
import multiprocessing
import threading
import time
from concurrent import futures

import grpc
import httpx
import numpy as np
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from imgsvc.cli import main
from imgsvc.errors import ImgsvcError
from imgsvc.loadtest.doors import Outcome
from imgsvc.loadtest.drivers import due_times
from imgsvc.loadtest.recording import Recorder
from imgsvc.loadtest.target import check_allowed, parse_target
from imgsvc.serving import listening_socket
from imgsvc.v1 import image_service_pb2 as pb
from imgsvc.v1 import image_service_pb2_grpc as pb_grpc

SERVICE_S = 0.100
SERVER_WORKERS = 2
CAPACITY_RPS = SERVER_WORKERS / SERVICE_S
IMAGE = b"\x89PNG" + bytes(96)
EXTENT = {"xmin": 0.0, "ymin": 0.0, "xmax": 100000.0, "ymax": 100000.0, "spatialReference": {"wkid": 3857}}


class FixedDelayService(pb_grpc.ImageServiceServicer):
    def GetServiceInfo(self, request, context):  # noqa: N802
        sr = pb.SpatialReference(wkid=3857)
        return pb.ServiceInfo(name=request.service, pixel_size_x=10.0, pixel_size_y=10.0,
                              full_extent=pb.Envelope(xmin=0, ymin=0, xmax=100000, ymax=100000, spatial_reference=sr))

    def ExportImage(self, request, context):  # noqa: N802
        time.sleep(SERVICE_S)
        return pb.ExportImageResponse(image=IMAGE, content_type="image/png", extension="png")


def serve_fixed_delay_grpc(ports) -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=SERVER_WORKERS))
    pb_grpc.add_ImageServiceServicer_to_server(FixedDelayService(), server)
    ports.put(server.add_insecure_port("127.0.0.1:0"))
    server.start()
    server.wait_for_termination()


def slow_http_app() -> Starlette:
    workers = asyncio.Semaphore(SERVER_WORKERS)

    async def export(request):
        async with workers:  # two at a time, each taking the service time
            await asyncio.sleep(SERVICE_S)
        return Response(IMAGE, media_type="image/png")

    async def root(request):
        return JSONResponse({"fullExtent": EXTENT, "pixelSizeX": 10.0})

    return Starlette(routes=[Route("/arcgis/rest/services/slow/ImageServer", root),
                             Route("/arcgis/rest/services/slow/ImageServer/exportImage", export)])


def serve_fixed_delay_http(ports) -> None:
    sock = listening_socket("127.0.0.1:0", shared=False)
    ports.put(sock.getsockname()[1])
    uvicorn.Server(uvicorn.Config(slow_http_app(), log_level="warning")).run(sockets=[sock])


class OwnProcess:
    """A test server in a process of its own, so that its threads never wait on the harness's interpreter lock:
    what the harness measures is the server and the wire, not the two sharing one interpreter."""

    def __init__(self, serve) -> None:
        context = multiprocessing.get_context("spawn")
        self.ports = context.Queue()
        self.process = context.Process(target=serve, args=(self.ports,), daemon=True)

    def __enter__(self) -> tuple[int, int]:
        self.process.start()
        return self.process.pid, self.ports.get(timeout=60)

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        self.process.join(10)


@pytest.fixture(scope="module")
def slow_grpc_server():
    with OwnProcess(serve_fixed_delay_grpc) as (pid, port):
        yield pid, f"grpc://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def slow_grpc(slow_grpc_server) -> str:
    return slow_grpc_server[1]


@pytest.fixture(scope="module")
def slow_http():
    with OwnProcess(serve_fixed_delay_http) as (_, port):
        wait_until_answering(f"http://127.0.0.1:{port}/arcgis/rest/services/slow/ImageServer")
        yield f"http://127.0.0.1:{port}/arcgis/rest/services/slow/ImageServer"


def wait_until_answering(url: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(url, timeout=5)
            return
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def loadtest(tmp_path, *args: str) -> dict:
    out = tmp_path / f"run{len(list(tmp_path.glob('run*.json')))}.json"
    assert main(["loadtest", *args, "--json", str(out), "--quiet"]) == 0
    return json.loads(out.read_text())


@pytest.fixture(params=["grpc", "rest"])
def slow_target(request) -> str:
    return request.getfixturevalue(f"slow_{'http' if request.param == 'rest' else 'grpc'}")


def test_closed_loop_reports_the_known_service_time_and_capacity(slow_target, tmp_path):
    run = loadtest(tmp_path, slow_target, "--service", "slow", "--concurrency", str(SERVER_WORKERS),
                   "--duration", "2", "--warmup", "0.3")
    service_ms = SERVICE_S * 1000
    latency = run["latency_ms"]
    # Nothing can answer faster than the service time; the client's and the wire's overhead is a few percent of it,
    # more in the tail and on a 2-core machine busy with other work, which stalls a thread now and then.
    assert service_ms <= latency["p50"] <= 1.1 * service_ms and service_ms <= latency["p90"] <= 1.5 * service_ms
    assert latency["p99"] <= 2 * service_ms
    assert 0.9 * CAPACITY_RPS <= run["throughput_rps"] <= 1.01 * CAPACITY_RPS
    assert run["errors"] == 0 and run["mode"] == "closed" and run["bytes"] == run["requests"] * len(IMAGE)
    assert abs(run["requests"] - run["throughput_rps"] * run["elapsed_s"]) < 1


def test_open_loop_above_capacity_shows_the_queue_that_closed_loop_hides(slow_grpc, tmp_path):
    common = [slow_grpc, "--service", "slow", "--duration", "2", "--warmup", "0"]
    overloaded = loadtest(tmp_path, *common, "--rate", str(1.5 * CAPACITY_RPS))
    # Half again what it serves for 2 s: the last request waits behind a backlog of a second's work.
    assert overloaded["rate_rps"] == 1.5 * CAPACITY_RPS and overloaded["mode"] == "open"
    assert overloaded["latency_ms"]["p99"] > 10 * SERVICE_S * 1000
    assert overloaded["throughput_rps"] == pytest.approx(CAPACITY_RPS, rel=0.1)
    underloaded = loadtest(tmp_path, *common, "--rate", str(0.5 * CAPACITY_RPS))
    # Bounds a busy machine (other suites on the 2 cores) still meets, far below the overloaded run's 10x.
    assert underloaded["latency_ms"]["p99"] < 3 * SERVICE_S * 1000
    closed = loadtest(tmp_path, *common, "--concurrency", str(2 * SERVER_WORKERS))
    # Closed loop offers only as much as is answered: twice the workers wait one service time each, never more.
    assert closed["latency_ms"]["p99"] < 5 * SERVICE_S * 1000


def test_step_mode_finds_the_highest_rate_under_the_p99_target(slow_grpc, tmp_path):
    run = loadtest(tmp_path, slow_grpc, "--service", "slow", "--step", "8,8,40", "--p99-target", "250",
                   "--duration", "1", "--warmup", "0.2")
    assert [step["rate_rps"] for step in run["steps"]] == [8, 16, 24]  # 24 > capacity: the queue grows
    assert run["max_rate_rps"] == 16 and run["rate_rps"] == 16 and run["mode"] == "step"


def test_percentiles_are_those_of_the_recorded_latencies():
    latencies = np.random.default_rng(7).lognormal(mean=np.log(0.02), sigma=0.8, size=20011)  # seconds
    recorder = Recorder(origin=0.0, interval_s=1.0)
    for i, latency in enumerate(latencies):
        recorder.record(i * 0.001, i * 0.001 + latency, Outcome(nbytes=10, error="HTTP 503" if i % 100 == 0 else None))
    summary = recorder.summary()
    exact = np.percentile(latencies * 1000, [50, 90, 99, 99.9], method="inverted_cdf")
    # Three significant digits: each percentile within 0.1% of the latency at that rank.
    assert [summary["latency_ms"][k] for k in ("p50", "p90", "p99", "p999")] == pytest.approx(exact, rel=1e-3)
    assert summary["latency_ms"]["max"] == pytest.approx(latencies.max() * 1000, abs=1e-3)
    assert summary["requests"] == 20011 and summary["errors_by_kind"] == {"HTTP 503": 201}
    assert summary["bytes"] == 200110 and sum(row["requests"] for row in summary["timeline"]) == 20011


def test_ramp_spreads_the_first_requests():
    times = list(zip(range(200), due_times(rate=100, ramp_s=1.0, start=0.0)))
    assert times[50][1] == pytest.approx(1.0)  # half the rate on average over the ramp: 50 requests in 1 s
    assert times[150][1] == pytest.approx(2.0)
    assert times[10][1] - times[9][1] > times[49][1] - times[48][1]


def test_json_html_and_compare(slow_grpc_server, tmp_path, capsys):
    pid, target = slow_grpc_server
    html = tmp_path / "report.html"
    run = loadtest(tmp_path, target, "--service", "slow", "--requests", "12", "--concurrency", "2",
                   "--warmup", "0", "--html", str(html), "--server-pid", str(pid))
    assert run["requests"] == 12 and set(run["latency_ms"]) >= {"p50", "p90", "p99", "p999", "max"}
    assert run["server"]["pids"] == [pid] and run["server"]["rss_bytes"] > 0
    assert run["timeline"] and sum(b["count"] for b in run["histogram"]) == 12
    page = html.read_text()
    assert page.count("<svg") == 2 and "Latency over time" in page and "Latency histogram" in page
    capsys.readouterr()
    first, second = sorted(tmp_path.glob("run*.json"))[0], tmp_path / "run-b.json"
    second.write_text(json.dumps({**run, "throughput_rps": run["throughput_rps"] * 2}))
    assert main(["loadtest", "--compare", str(first), str(second)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert next(line for line in lines if line.startswith("throughput")).split()[-1] == "2.00"
    assert next(line for line in lines if line.startswith("latency p99")).split()[-1] == "1.00"


def test_targets_off_this_machine_are_refused_unless_allowed(capsys):
    assert main(["loadtest", "grpc://192.0.2.7:50051", "--service", "x"]) == 2
    assert "'192.0.2.7' is not loopback" in capsys.readouterr().err
    check_allowed(parse_target("grpc://192.0.2.7:50051", "x"), ["192.0.2.7"])  # named by the operator
    check_allowed(parse_target("http://localhost:1/arcgis/rest/services/x/ImageServer", None), [])


def test_a_grpc_target_names_replicas_by_address_and_each_must_be_allowed():
    target = parse_target("grpc://127.0.0.1:5001,127.0.0.1:5002", "dem")
    assert target.address == "ipv4:127.0.0.1:5001,127.0.0.1:5002"  # gRPC's list, spread over round-robin
    assert target.endpoints == (("127.0.0.1", 5001), ("127.0.0.1", 5002))
    check_allowed(target, [])
    with pytest.raises(ImgsvcError, match="one family"):
        parse_target("grpc://localhost:1,127.0.0.1:2", "dem")
    with pytest.raises(ImgsvcError, match="192.0.2.7"):
        check_allowed(parse_target("grpc://127.0.0.1:1,192.0.2.7:2", "dem"), [])


def test_real_server_through_both_doors(grpc_server, gateway_url, tmp_path):
    mix = ["--size", "96,64", "--format", "png,jpg,tiff", "--scale", "1,3", "--warmup", "0",
           "--interpolation", "RSP_BilinearInterpolation", "--interpolation", "RSP_NearestNeighbor",
           "--rendering-rule", '{"rasterFunction":"None"}', "--rendering-rule", '{"rasterFunction":"Hillshade"}']
    via_grpc = loadtest(tmp_path, f"grpc://{grpc_server}", "--service", "dem", "--requests", "20",
                        "--concurrency", "2", *mix)
    via_rest = loadtest(tmp_path, f"{gateway_url}/arcgis/rest/services/dem/ImageServer", "--requests", "20",
                        "--rate", "40", *mix)
    for run in (via_grpc, via_rest):
        assert run["requests"] == 20 and run["errors"] == 0 and run["bytes"] > 20 * 100
    # The gateway is `imgsvc serve` in its own process: found by the port it listens on, its CPU and memory read.
    assert via_rest["server"]["rss_bytes"] > 10 * 2**20 and via_rest["server"]["cpu_seconds"] > 0


def test_recorded_requests_file(gateway_url, tmp_path):
    recorded = tmp_path / "requests.txt"
    recorded.write_text("# one URL and one JSON request\n"
                        f"{gateway_url}/arcgis/rest/services/dem/ImageServer/exportImage?"
                        "bbox=384000,4055000,396000,4064000&size=64,48&format=png&f=image\n\n"
                        '{"bbox": [384000, 4055000, 396000, 4064000], "size": [32, 32], "format": "jpg"}\n')
    run = loadtest(tmp_path, f"{gateway_url}/arcgis/rest/services/dem/ImageServer", "--requests-file",
                   str(recorded), "--requests", "6", "--warmup", "0")
    assert run["requests"] == 6 and run["errors"] == 0


def test_errors_are_counted_by_kind(gateway_url, tmp_path):
    run = loadtest(tmp_path, f"{gateway_url}/arcgis/rest/services/dem/ImageServer", "--requests", "4",
                   "--warmup", "0", "--param", "pixelType=NOPE")
    assert run["errors"] == 4 and run["errors_by_kind"] == {"ArcGIS 400": 4}


class CommittedThenUnavailable(FixedDelayService):
    """The first time it sees a request whose bbox starts with an even digit, it begins the answer (initial
    metadata: the call is committed, gRPC's retry policy will not retry it) and then fails UNAVAILABLE, as a
    replica killed mid-answer does; the same request sent again is answered."""

    def __init__(self) -> None:
        self.failed: set[bytes] = set()
        self.lock = threading.Lock()

    def ExportImage(self, request, context):  # noqa: N802
        key = request.SerializeToString()
        with self.lock:
            fails = int(str(request.bbox.xmin)[0]) % 2 == 0 and key not in self.failed
            self.failed.add(key)
        if fails:
            context.send_initial_metadata(())
            context.abort(grpc.StatusCode.UNAVAILABLE, "the replica went away")
        return pb.ExportImageResponse(image=IMAGE, content_type="image/png", extension="png")


def test_retries_send_again_what_grpc_cannot_retry(tmp_path):
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    pb_grpc.add_ImageServiceServicer_to_server(CommittedThenUnavailable(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        common = [f"grpc://127.0.0.1:{port}", "--service", "flaky", "--requests", "60", "--warmup", "0",
                  "--concurrency", "2"]
        shown = loadtest(tmp_path, *common)
        assert shown["errors_by_kind"] == {"gRPC UNAVAILABLE": shown["errors"]} and shown["errors"] >= 15
        assert shown["retries"] == 0
        retried = loadtest(tmp_path, *common, "--retries", "1", "--seed", "2")  # requests not yet seen
        assert retried["errors"] == 0 and retried["requests"] == 60 and retried["retries"] >= 15
    finally:
        server.stop(grace=None)
